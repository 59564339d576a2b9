"""Search strategies: exhaustive, random, regularized evolution, REINFORCE.

A strategy proposes architectures and hands them to the :class:`~latbench.nas.evaluate.Evaluator`
in batches until ``evaluations`` distinct architectures have been evaluated (re-proposing a known
architecture is free). Every strategy is seeded and deterministic for a seed. Candidates are
compared by :meth:`Candidate.key`: a candidate that meets every constraint beats one that does
not; among feasible ones the higher objective wins, among infeasible ones the smaller violation
(so the search is pulled towards the feasible region instead of wandering outside it).

Registry :data:`STRATEGIES` (``exhaustive``, ``random``, ``evolution``, ``reinforce``);
third parties register more through the ``latbench.strategies`` entry-point group.
"""

from __future__ import annotations

import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from latbench._registry import Registry
from latbench.errors import ConfigError, SearchError
from latbench.nas.evaluate import Candidate, Evaluator
from latbench.spaces import SearchSpace

log = logging.getLogger(__name__)

__all__ = [
    "STRATEGIES",
    "Exhaustive",
    "RandomSearch",
    "RegularizedEvolution",
    "Reinforce",
    "Strategy",
    "create_strategy",
]

#: stop when this many proposals per budgeted evaluation brought nothing new (converged policy)
MAX_PROPOSALS_PER_EVAL = 50


class Strategy(ABC):
    """A search strategy; keyword settings in ``__init__``, the search in :meth:`run`."""

    name: ClassVar[str] = ""

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    @abstractmethod
    def run(self, space: SearchSpace, evaluator: Evaluator, evaluations: int, seed: int) -> None:
        """Propose and evaluate until ``evaluator.n_evaluated`` reaches ``evaluations``."""

    @staticmethod
    def _stalled(evaluator: Evaluator, evaluations: int) -> bool:
        return evaluator.proposals > MAX_PROPOSALS_PER_EVAL * max(evaluations, 1)


STRATEGIES: Registry[type[Strategy]] = Registry("strategies")


def create_strategy(name: str, **params: Any) -> Strategy:
    """A strategy by registry name with keyword settings."""
    cls = STRATEGIES.get(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"strategy {name!r}: bad setting(s) {sorted(params)}: {exc}") from None


@STRATEGIES.register("exhaustive")
class Exhaustive(Strategy):
    """Every architecture of the space (or of ``candidates``), in batches; ignores the budget.

    Refuses spaces larger than ``max_size`` (FBNet has 9^22 architectures).
    """

    name = "exhaustive"

    def __init__(
        self,
        batch: int = 4096,
        max_size: int = 1_000_000,
        candidates: Sequence[str] | None = None,
    ) -> None:
        self.batch = batch
        self.max_size = max_size
        self._candidates = None if candidates is None else list(candidates)

    def run(self, space: SearchSpace, evaluator: Evaluator, evaluations: int, seed: int) -> None:
        if self._candidates is None and space.size() > self.max_size:
            raise SearchError(
                f"exhaustive search over {space.name} ({space.size():.3g} architectures) is "
                f"not possible; expected a space of at most {self.max_size:,}: use random, "
                "evolution or reinforce"
            )
        it = iter(self._candidates) if self._candidates is not None else space.enumerate()
        while True:
            chunk = [a for _, a in zip(range(self.batch), it, strict=False)]
            if not chunk:
                return
            evaluator.evaluate(chunk)


@STRATEGIES.register("random")
class RandomSearch(Strategy):
    """Uniform random architectures (or draws from ``candidates``), ``batch`` per call."""

    name = "random"

    def __init__(self, batch: int = 256, candidates: Sequence[str] | None = None) -> None:
        self.batch = batch
        self._candidates = None if candidates is None else list(candidates)

    def run(self, space: SearchSpace, evaluator: Evaluator, evaluations: int, seed: int) -> None:
        rng = random.Random(seed)
        pool = self._candidates
        if pool is not None:
            order = list(pool)
            rng.shuffle(order)
            for i in range(0, min(evaluations, len(order)), self.batch):
                evaluator.evaluate(order[i : min(i + self.batch, evaluations)])
            return
        nrng = np.random.default_rng(seed)
        nc, npos = len(space.choices), space.num_positions
        while evaluator.n_evaluated < evaluations and not self._stalled(evaluator, evaluations):
            k = min(self.batch, evaluations - evaluator.n_evaluated)
            ops = nrng.integers(0, nc, size=(k, npos)).tolist()  # one draw for the whole batch
            evaluator.evaluate([space.from_ops(o) for o in ops])


@STRATEGIES.register("evolution")
class RegularizedEvolution(Strategy):
    """Regularized (aging) evolution, Real et al. (AAAI 2019), batched.

    Start from ``population`` random architectures. Each step makes ``children`` offspring: for
    each, draw ``sample`` members of the population at random, mutate the best of them (one
    position changed, :meth:`SearchSpace.mutate`), evaluate all offspring in one batch, append
    them and remove as many of the *oldest* members. Ageing instead of killing the worst keeps the
    population diverse and is what makes the method robust to noisy objectives. ``children`` > 1
    is the asynchronous-workers variant; it lets the predictor score a batch per call.
    """

    name = "evolution"

    def __init__(self, population: int = 32, sample: int = 4, children: int = 4) -> None:
        self.population = population
        self.sample = sample
        self.children = children

    def run(self, space: SearchSpace, evaluator: Evaluator, evaluations: int, seed: int) -> None:
        if not 1 <= self.sample <= self.population:
            raise ConfigError(
                f"evolution: sample={self.sample}; expected 1 <= sample <= population="
                f"{self.population}"
            )
        rng = random.Random(seed)
        nrng = np.random.default_rng(seed)
        nc = len(space.choices)
        npos = space.num_positions
        ops_of: dict[str, tuple[int, ...]] = {}
        arch_of: dict[tuple[int, ...], str] = {}

        def ops(arch: str) -> tuple[int, ...]:
            o = ops_of.get(arch)
            if o is None:
                o = ops_of[arch] = space.ops(arch)
            return o

        def mutate(arch: str) -> str:
            # one position to a different choice, as SearchSpace.mutate, on cached op tuples
            o = list(ops(arch))
            pos = rng.randrange(npos)
            c = rng.randrange(nc - 1)
            o[pos] = c + 1 if c >= o[pos] else c
            t = tuple(o)
            a = arch_of.get(t)
            if a is None:
                a = arch_of[t] = space.from_ops(t)
                ops_of[a] = t
            return a

        init = [space.random_arch(rng) for _ in range(min(self.population, evaluations))]
        pop: list[Candidate] = list(evaluator.evaluate(init))
        head = 0  # index of the oldest member once the ring buffer ``pop`` is full
        while evaluator.n_evaluated < evaluations and not self._stalled(evaluator, evaluations):
            k = max(1, min(self.children, evaluations - evaluator.n_evaluated))
            size = len(pop)
            s = min(self.sample, size)
            # rank the population, ties broken at random: objectives such as params have large
            # plateaus, and a fixed tie order would stop the population drifting across them
            tie = nrng.random(size).tolist()
            keys = [(*c.key(), t) for c, t in zip(pop, tie, strict=True)]
            rank = np.empty(size)
            rank[sorted(range(size), key=keys.__getitem__)] = np.arange(size)
            # k tournaments of s distinct members each: the s smallest of random keys per row
            draw = nrng.random((k, size)).argpartition(s - 1, axis=1)[:, :s]
            winners = draw[np.arange(k), rank[draw].argmax(axis=1)].tolist()
            kids = [mutate(pop[w].arch) for w in winners]
            for cand in evaluator.evaluate(kids):
                if len(pop) < self.population:
                    pop.append(cand)
                else:
                    pop[head] = cand
                    head = (head + 1) % len(pop)


@STRATEGIES.register("reinforce")
class Reinforce(Strategy):
    """REINFORCE policy gradient over independent categorical choices (EPNAS style).

    The policy holds one logit vector per position. Each step samples ``batch`` architectures,
    evaluates them, and turns their order (feasible by objective, then infeasible by violation)
    into centred rank rewards in ``[-0.5, 0.5]``: rank rewards make the update independent of the
    objective's scale (params in millions, synflow in 1e30) and act as the baseline. The update is
    ``theta += lr * mean_i r_i * (onehot_i - p)`` (the gradient of ``log p(arch_i)``) plus an
    entropy bonus ``entropy`` that keeps the policy from collapsing early.
    """

    name = "reinforce"

    def __init__(self, batch: int = 32, lr: float = 1.0, entropy: float = 0.01) -> None:
        self.batch = batch
        self.lr = lr
        self.entropy = entropy

    def run(self, space: SearchSpace, evaluator: Evaluator, evaluations: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        npos, nc = space.num_positions, len(space.choices)
        theta = np.zeros((npos, nc))
        self.final_probs: list[list[float]] = []
        while evaluator.n_evaluated < evaluations and not self._stalled(evaluator, evaluations):
            b = max(2, min(self.batch, evaluations - evaluator.n_evaluated))
            z = theta - theta.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            u = rng.random((b, npos, 1))
            ops = (u > np.cumsum(p, axis=1)[None, :, :]).sum(axis=2).clip(0, nc - 1)
            archs = [space.from_ops(row) for row in ops.tolist()]
            cands = evaluator.evaluate(archs)
            keys = [c.key() for c in cands]
            order = sorted(range(b), key=lambda i: keys[i])
            ranks = np.empty(b)
            ranks[order] = np.arange(b)
            reward = ranks / (b - 1) - 0.5
            onehot = np.zeros((b, npos, nc))
            onehot[np.arange(b)[:, None], np.arange(npos)[None, :], ops] = 1.0
            grad = np.mean(reward[:, None, None] * (onehot - p[None]), axis=0)
            logp = np.log(p + 1e-12)
            ent_grad = -p * (logp - np.sum(p * logp, axis=1, keepdims=True))
            theta += self.lr * (grad + self.entropy * ent_grad)
        z = theta - theta.max(axis=1, keepdims=True)
        p = np.exp(z)
        self.final_probs = (p / p.sum(axis=1, keepdims=True)).round(4).tolist()

    def params(self) -> dict[str, Any]:
        return {"batch": self.batch, "lr": self.lr, "entropy": self.entropy}
