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

import heapq
import logging
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from latbench._registry import Registry
from latbench._validate import expected_number
from latbench.errors import ConfigError, SearchError
from latbench.nas.evaluate import Candidate, Evaluator
from latbench.nas.pareto import pareto_front
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


STRATEGIES: Registry[type[Strategy]] = Registry("strategies", label="strategy")


def create_strategy(name: str, **params: Any) -> Strategy:
    """A strategy by registry name with keyword settings."""
    import inspect

    cls = STRATEGIES.get(name)
    sig = inspect.signature(cls.__init__).parameters
    known = [p for p in sig if p != "self"]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.values())
    unknown = sorted(set(params) - set(known))
    if unknown and not takes_any:  # a plugin's ``**settings`` checks its own
        raise ConfigError(
            f"strategy {name!r}: unknown setting(s) {unknown}; expected some of {known}"
        )
    return cls(**params)


def _setting(
    strategy: str,
    key: str,
    value: Any,
    *,
    low: float,
    integer: bool = True,
    high: float | None = None,
    positive: bool = False,
) -> Any:
    """Refuse a setting outside ``[low, high]`` (``> 0`` with ``positive``) or not an integer;
    return it as the ``int`` (``integer``) or ``float`` the strategy computes with (JSON's
    ``2.0`` for a population of 2)."""
    want = expected_number(value, integer=integer, low=low, high=high, positive=positive)
    if want:
        raise ConfigError(f"{strategy}: {key}={value!r}; expected {want}")
    return int(value) if integer else float(value)


def candidate_pool(space: SearchSpace, candidates: Sequence[str]) -> list[str]:
    """The distinct canonical architectures of ``candidates``, in their first order (ArchError
    for one that is not of ``space``)."""
    return list(dict.fromkeys(space.canonical(a) for a in candidates))


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
        self.batch = _setting("exhaustive", "batch", batch, low=1)
        self.max_size = _setting("exhaustive", "max_size", max_size, low=1)
        self._candidates = None if candidates is None else list(candidates)

    def run(self, space: SearchSpace, evaluator: Evaluator, evaluations: int, seed: int) -> None:
        if self._candidates is None and space.size() > self.max_size:
            raise SearchError(
                f"exhaustive search over {space.name} ({space.size():.3g} architectures) is "
                f"not possible; expected a space of at most {self.max_size:,}: use random, "
                "evolution or reinforce"
            )
        it = (
            iter(candidate_pool(space, self._candidates))
            if self._candidates is not None
            else space.enumerate()
        )
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
        self.batch = _setting("random", "batch", batch, low=1)
        self._candidates = None if candidates is None else list(candidates)

    def run(self, space: SearchSpace, evaluator: Evaluator, evaluations: int, seed: int) -> None:
        rng = random.Random(seed)
        pool = self._candidates
        if pool is not None:
            # distinct architectures: a pool that names one twice (or in two spellings) must
            # not cost budget slots that evaluate nothing new
            order = candidate_pool(space, pool)
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
    """Constraint-aware regularized (aging) evolution, Real et al. (AAAI 2019), then local search.

    *Explore* (the first ``1 - exploit`` of the budget): start from ``population`` random
    architectures. Each step makes ``children`` offspring: for each, draw ``sample`` members of
    the population at random and mutate the best of them (one position changed). Most
    tournaments use :meth:`Candidate.key` (feasible members by objective, equal objectives to the
    one with the most room under the budget; infeasible ones by violation), so the population is
    pulled onto the budget boundary. A share ``boundary`` of the tournaments ranks by objective
    alone among members at most ``tolerance`` (relative) over the budget (stochastic ranking,
    Runarsson & Yao 2000): good architectures just over the budget breed too, and the
    population rides the boundary from both sides. A child evaluated before (or already in the
    batch) is re-drawn up to ``retries`` times, so the budget buys new architectures. Offspring
    are scored in one batch, appended, and the *oldest* members leave (ageing keeps the
    population diverse; ``children`` > 1 lets a predictor score a batch per call).

    *Exploit* (the last ``exploit`` of the budget): local search. Each round expands one seed,
    evaluating in one batch its unseen neighbours (:meth:`SearchSpace.neighbours`) and the
    architectures with two of its positions swapped. Seeds cycle through: the best feasible
    candidate (most room first), the over-budget candidate nearest the budget among those whose
    objective beats the best feasible one (a swap or a cheaper op often repairs it without
    losing quality), and the non-dominated (load, objective) candidate nearest the budget.
    Under a latency budget the optimum sits on the boundary, often as a needle among
    architectures just over it, which ageing evolution alone steps over (see
    ``benchmarks/results/search.md``).
    """

    name = "evolution"

    def __init__(
        self,
        population: int = 32,
        sample: int = 4,
        children: int = 4,
        exploit: float = 0.4,
        retries: int = 8,
        boundary: float = 0.5,
        tolerance: float = 0.1,
    ) -> None:
        self.population = _setting("evolution", "population", population, low=1)
        self.sample = _setting("evolution", "sample", sample, low=1, high=self.population)
        self.children = _setting("evolution", "children", children, low=1)
        self.exploit = _setting("evolution", "exploit", exploit, low=0, high=1, integer=False)
        self.retries = _setting("evolution", "retries", retries, low=0)
        self.boundary = _setting("evolution", "boundary", boundary, low=0, high=1, integer=False)
        self.tolerance = _setting("evolution", "tolerance", tolerance, low=0, integer=False)

    def run(self, space: SearchSpace, evaluator: Evaluator, evaluations: int, seed: int) -> None:
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

        def arch(t: tuple[int, ...]) -> str:
            a = arch_of.get(t)
            if a is None:
                a = arch_of[t] = space.from_ops(t)
                ops_of[a] = t
            return a

        def mutate(parent: str, taken: set[str]) -> str:
            # one position to a different choice, as SearchSpace.mutate, on cached op tuples;
            # re-drawn while the child is known (free, but it would waste a proposal)
            base = ops(parent)
            child = parent
            for _ in range(max(1, self.retries)):
                o = list(base)
                pos = rng.randrange(npos)
                c = rng.randrange(nc - 1)
                o[pos] = c + 1 if c >= o[pos] else c
                child = arch(tuple(o))
                if child not in taken and not evaluator.known(child):
                    break
            return child

        limits = [(c.name, c.limit) for c in evaluator.constraints if c.limit > 0]

        def room(c: Candidate) -> float:
            # the tightest constraint's use of its limit (1 = on the budget); infeasible
            # members are already ordered by violation, so only feasible ones need it
            if not c.feasible:
                return 0.0
            return max((c.values[n] / lim for n, lim in limits), default=0.0)

        explore_n = evaluations - round(self.exploit * evaluations)
        init = [space.random_arch(rng) for _ in range(min(self.population, evaluations))]
        pop: list[Candidate] = list(evaluator.evaluate(init))
        head = 0  # index of the oldest member once the ring buffer ``pop`` is full
        while evaluator.n_evaluated < explore_n and not self._stalled(evaluator, evaluations):
            k = max(1, min(self.children, explore_n - evaluator.n_evaluated))
            size = len(pop)
            s = min(self.sample, size)
            # rank the population; equal objectives (params has large plateaus) go to the member
            # with the most room under the budget, then at random
            tie = nrng.random(size).tolist()
            keys = [(*c.key(), -room(c), t) for c, t in zip(pop, tie, strict=True)]
            rank = np.empty(size)
            rank[sorted(range(size), key=keys.__getitem__)] = np.arange(size)
            # stochastic ranking (Runarsson & Yao 2000): a share ``boundary`` of the tournaments
            # compare by objective alone among members at most ``tolerance`` over the budget, so
            # good architectures just over it breed too and their children cross the boundary
            okeys = [
                (c.violation <= self.tolerance, _obj(c), t) for c, t in zip(pop, tie, strict=True)
            ]
            orank = np.empty(size)
            orank[sorted(range(size), key=okeys.__getitem__)] = np.arange(size)
            # k tournaments of s distinct members each: the s smallest of random keys per row
            draw = nrng.random((k, size)).argpartition(s - 1, axis=1)[:, :s]
            by_obj = nrng.random(k) < self.boundary
            r = np.where(by_obj[:, None], orank[draw], rank[draw])
            winners = draw[np.arange(k), r.argmax(axis=1)].tolist()
            taken: set[str] = set()
            kids = []
            for w in winners:
                kid = mutate(pop[w].arch, taken)
                taken.add(kid)
                kids.append(kid)
            for cand in evaluator.evaluate(kids):
                if len(pop) < self.population:
                    pop.append(cand)
                else:
                    pop[head] = cand
                    head = (head + 1) % len(pop)
        self._local_search(space, evaluator, evaluations, rng)

    @staticmethod
    def _local_search(
        space: SearchSpace, evaluator: Evaluator, evaluations: int, rng: random.Random
    ) -> None:
        """Pareto local search along the budget boundary until the budget is spent.

        ``load`` is the tightest constraint's use of its limit (1 = on the budget). Each round
        takes the non-dominated (low load, high objective) candidates not yet expanded, feasible
        and infeasible alike, and expands the one nearest the boundary: its unseen neighbours are
        evaluated in one batch. A budget-bound optimum is a neighbour of such a candidate: either
        a cheaper one with room for a bigger op, or a better one just over the budget that one
        cheaper op repairs. When the front is spent, the next layer takes its place.
        """
        limits = [(c.name, c.limit) for c in evaluator.constraints if c.limit > 0]

        def load(c: Candidate) -> float:
            return max((c.values[n] / lim for n, lim in limits), default=0.0)

        # the pool (evaluated, objective known, not yet expanded) grows with the history; it
        # is kept incrementally (heaps for the feasible and repair picks, arrays for the
        # front) so that a round costs what its own front does, not a pass over the history
        cands: list[Candidate] = []
        xs: list[float] = []
        objs: list[float] = []
        alive: list[bool] = []
        feas_heap: list[tuple[float, float, int, int]] = []
        repair_heap: list[tuple[float, float, int, int]] = []
        seen = 0
        n_alive = 0
        best_obj = -math.inf
        turn = 0
        while evaluator.n_evaluated < evaluations:
            for c in evaluator.history[seen:]:
                if c.feasible and c.objective > best_obj:
                    best_obj = c.objective
                if math.isnan(c.objective) and c.feasible:
                    continue  # the objective failed on it: nothing to climb from
                i = len(cands)
                cands.append(c)
                xs.append(load(c))
                # an infeasible candidate's costly objective (a zero-cost proxy) is never
                # computed: it takes part as the worst objective, so that while nothing is
                # feasible the front is the candidates nearest the budget, and they are repaired
                objs.append(_obj(c))
                alive.append(True)
                n_alive += 1
                if c.feasible:
                    heapq.heappush(feas_heap, (-c.objective, xs[i], c.order, i))
                else:
                    heapq.heappush(repair_heap, (c.violation, -c.objective, c.order, i))
            seen = len(evaluator.history)
            if not n_alive:  # every neighbourhood searched: nothing left to exploit
                return
            while feas_heap and not alive[feas_heap[0][3]]:
                heapq.heappop(feas_heap)
            # a repair candidate must beat the best feasible objective, which only rises
            while repair_heap and (
                not alive[repair_heap[0][3]] or objs[repair_heap[0][3]] <= best_obj
            ):
                heapq.heappop(repair_heap)
            turn += 1
            if turn % 4 == 1 and feas_heap:  # the best feasible, the one with most room first
                pick = feas_heap[0][3]
            elif turn % 2 == 0 and repair_heap:  # better but over the budget, nearest first
                pick = repair_heap[0][3]
            else:  # the non-dominated (load, objective) candidate nearest the boundary
                live = np.flatnonzero(np.asarray(alive))
                xa = np.asarray(xs)[live]
                front = live[pareto_front(xa, np.asarray(objs)[live])]
                pick = int(min(front, key=lambda j: (abs(xs[j] - 1.0), cands[j].order)))
            seed = cands[pick]
            alive[pick] = False
            n_alive -= 1
            near = space.neighbours(seed.arch) + _swaps(space, seed.arch)
            fresh = [a for a in dict.fromkeys(near) if not evaluator.known(a)]
            room = evaluations - evaluator.n_evaluated
            if fresh and room > 0:
                rng.shuffle(fresh)  # a truncated last batch favours no position
                evaluator.evaluate(fresh[:room])


def _swaps(space: SearchSpace, arch: str) -> list[str]:
    """Architectures with the choices of two positions exchanged.

    A swap keeps the multiset of ops, so the objective of structural proxies (params, MACs of
    cells with equal shapes) stays put while the latency changes with the positions: the move
    that slides an over-budget candidate under the budget without giving up quality.
    """
    o = space.ops(arch)
    out = []
    for i in range(len(o)):
        for j in range(i + 1, len(o)):
            if o[i] != o[j]:
                t = list(o)
                t[i], t[j] = t[j], t[i]
                out.append(space.from_ops(t))
    return out


def _obj(c: Candidate) -> float:
    return -math.inf if math.isnan(c.objective) else c.objective


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
        self.batch = _setting("reinforce", "batch", batch, low=2)
        self.lr = _setting("reinforce", "lr", lr, low=0, integer=False, positive=True)
        self.entropy = _setting("reinforce", "entropy", entropy, low=0, integer=False)

    def run(self, space: SearchSpace, evaluator: Evaluator, evaluations: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        npos, nc = space.num_positions, len(space.choices)
        theta = np.zeros((npos, nc))
        self.final_probs: list[list[float]] = []
        while evaluator.n_evaluated < evaluations and not self._stalled(evaluator, evaluations):
            # never past the budget: the last single evaluation is a draw from the policy
            # without an update (a rank reward needs two)
            b = min(self.batch, evaluations - evaluator.n_evaluated)
            z = theta - theta.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            u = rng.random((b, npos, 1))
            ops = (u > np.cumsum(p, axis=1)[None, :, :]).sum(axis=2).clip(0, nc - 1)
            archs = [space.from_ops(row) for row in ops.tolist()]
            cands = evaluator.evaluate(archs)
            if b < 2:
                continue
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
