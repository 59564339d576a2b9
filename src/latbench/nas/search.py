"""The search driver: run a strategy under constraints and collect the Pareto front.

>>> from latbench import predictors
>>> from latbench.nas import search, objectives
>>> from latbench.spaces import get_space
>>> space = get_space("nb201")
>>> p = predictors.load("pixel3.lbp")                                # doctest: +SKIP
>>> lat = objectives.latency_constraint(p, 15.0, space)              # doctest: +SKIP
>>> obj = objectives.make_objective("params", space)
>>> res = search.run_search(space, obj, [lat], "evolution", evaluations=1000)  # doctest: +SKIP
>>> res.best[0].arch, res.pareto                                      # doctest: +SKIP

:func:`run_search` returns a :class:`SearchResult`: every evaluated candidate, the Pareto front
of the first latency constraint against the objective, and the ``top`` feasible architectures.
If no evaluated architecture meets the constraints it raises :class:`~latbench.errors.SearchError`
saying which constraint fails and by how much (for spaces small enough to enumerate, whether any
architecture of the space could meet it at all). Measuring the returned architectures on a real
device is the job of the CLI (``latbench search --verify N``), which composes devices.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latbench import __version__
from latbench._progress import Progress
from latbench._validate import expected_number
from latbench.errors import ConfigError, SearchError
from latbench.nas.evaluate import Candidate, Evaluator
from latbench.nas.objectives import Constraint, Objective, all_archs
from latbench.nas.pareto import pareto_front
from latbench.nas.strategies import Strategy, candidate_pool, create_strategy
from latbench.spaces import SearchSpace

log = logging.getLogger(__name__)

__all__ = ["RESULT_VERSION", "SearchResult", "run_search"]

RESULT_VERSION = 1
#: spaces up to this size are enumerated to explain an infeasible budget
EXPLAIN_MAX_SIZE = 100_000


@dataclass
class SearchResult:
    """Everything a search produced; :meth:`to_dict` is the ``result.json`` document."""

    space: str
    strategy: str
    strategy_params: dict[str, Any]
    seed: int
    evaluations: int
    evaluations_requested: int
    proposals: int
    wall_s: float
    constraint_s: float
    objective_s: float
    objective_name: str
    objective_description: str
    constraints: list[dict[str, Any]]
    evaluated: list[Candidate]
    pareto: list[Candidate]
    best: list[Candidate]
    x_name: str | None
    x_limit: float | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def evaluations_per_s(self) -> float:
        """Distinct candidates per second, end to end (proposals included)."""
        return self.evaluations / self.wall_s if self.wall_s > 0 else math.inf

    @property
    def evaluator_per_s(self) -> float:
        """Distinct candidates per second of evaluation time (constraints + objective) alone."""
        busy = self.constraint_s + self.objective_s
        return self.evaluations / busy if busy > 0 else math.inf

    def to_dict(self, history: bool = True) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format_version": RESULT_VERSION,
            "latbench_version": __version__,
            "space": self.space,
            "strategy": {"name": self.strategy, "params": self.strategy_params},
            "seed": self.seed,
            "objective": {"name": self.objective_name, "description": self.objective_description},
            "constraints": self.constraints,
            "evaluations": self.evaluations,
            "evaluations_requested": self.evaluations_requested,
            "proposals": self.proposals,
            "wall_s": self.wall_s,
            "constraint_s": self.constraint_s,
            "objective_s": self.objective_s,
            "evaluations_per_s": self.evaluations_per_s,
            "evaluator_per_s": self.evaluator_per_s,
            "pareto_x": self.x_name,
            "pareto": [c.to_dict() for c in self.pareto],
            "best": [c.to_dict() for c in self.best],
            **self.extra,
        }
        if history:
            doc["history"] = [c.to_dict() for c in self.evaluated]
        return doc


def _explain_infeasible(
    space: SearchSpace,
    constraints: Sequence[Constraint],
    evaluated: Sequence[Candidate],
    exhaustive: bool,
    pool: int | None = None,
) -> str:
    """A message saying which constraint no candidate met, and the best value seen.

    ``pool`` is the number of candidate architectures a strategy draws from (``candidates``,
    e.g. ``--table-only``), None for the whole space.
    """
    parts = []
    for c in constraints:
        best = min((cand.values[c.name] for cand in evaluated), default=math.nan)
        if best > c.limit:
            parts.append(f"{c.name} <= {c.limit:g} {c.unit} (lowest seen {best:.4g})")
    where = f"none of the {len(evaluated)} evaluated {space.name} architectures"
    if exhaustive and pool is None:
        where = f"no architecture of {space.name} ({len(evaluated)} evaluated, all of them)"
    elif pool is not None and len(evaluated) >= pool:
        where = f"none of the {pool} candidate {space.name} architectures (all of them evaluated)"
    if not parts:
        parts = ["the constraints together (each alone is met by some architecture)"]
    msg = f"{where} meets " + "; ".join(parts)
    if not (exhaustive and pool is None) and space.size() <= EXPLAIN_MAX_SIZE:
        every = all_archs(space)
        ok = np.ones(len(every), dtype=bool)
        for c in constraints:
            ok &= c.values(every) <= c.limit
        n = int(ok.sum())
        if pool is not None and len(evaluated) >= pool:
            msg += (
                f"; {n} of the {len(every)} architectures of the whole space would, outside "
                "the candidates"
                if n
                else "; no architecture of the whole space does: raise the budget"
            )
        else:
            msg += (
                f"; {n} of the {len(every)} architectures of the space would: evaluate more"
                if n
                else "; no architecture of the whole space does: raise the budget"
            )
    elif not (exhaustive and pool is None) and not (pool is not None and len(evaluated) >= pool):
        msg += (
            f"; {space.name} is too large to tell whether any of its architectures would: "
            "evaluate more (--evaluations), or raise the budget"
        )
    return msg + "; expected a budget some architecture can meet"


def run_search(
    space: SearchSpace,
    objective: Objective,
    constraints: Sequence[Constraint],
    strategy: str | Strategy = "evolution",
    *,
    evaluations: int = 1000,
    seed: int = 0,
    top: int = 10,
    progress: bool = False,
    strategy_params: dict[str, Any] | None = None,
) -> SearchResult:
    """Search ``space`` for the best ``objective`` under ``constraints``; see the module doc.

    ``evaluations`` is the budget of distinct architectures (``exhaustive`` ignores it); a budget
    that covers the whole space, or every architecture of a strategy's ``candidates``, evaluates
    all of them (``exhaustive`` over the same architectures). ``progress`` shows on stderr a tqdm
    bar on a terminal, else a line (evaluated, rate, ETA, how many meet the constraints) every
    30 s and at the end (a search shorter than 30 s prints none).
    """
    if expected_number(evaluations, integer=True, low=1) is not None:
        raise ConfigError(f"evaluations = {evaluations!r}; expected an integer >= 1")
    if expected_number(top, integer=True, low=1) is not None:
        raise ConfigError(f"top = {top!r}; expected an integer >= 1")
    if expected_number(seed, integer=True, low=0) is not None:
        # numpy's generators take no negative seed: refused here, not as a numpy traceback
        raise ConfigError(f"seed = {seed!r}; expected an integer >= 0")
    evaluations, top, seed = int(evaluations), int(top), int(seed)
    strat = (
        strategy
        if isinstance(strategy, Strategy)
        else create_strategy(strategy, **(strategy_params or {}))
    )
    exhaustive = strat.name == "exhaustive"
    # a strategy restricted to a pool of candidates (``candidates=``, the CLI's --table-only)
    # searches that pool, not the space: the pool is what an exhaustive switch must cover
    candidates = getattr(strat, "_candidates", None)
    pool = None if candidates is None else candidate_pool(space, candidates)
    size = space.size() if pool is None else len(pool)
    if not exhaustive and evaluations >= size and size <= 1_000_000:
        # a budget that covers the space (or the pool): evaluating every architecture is exact,
        # and faster than a strategy proposing ever more duplicates to find the last unseen ones
        log.info(
            "evaluations %d >= the %d architectures of %s: evaluating all of them (exhaustive)",
            evaluations,
            size,
            space.name if pool is None else f"the candidates of {space.name}",
        )
        strat, exhaustive = create_strategy("exhaustive", candidates=pool), True
    total = size if exhaustive and size <= 10**7 else min(evaluations, size)
    bar = Progress(
        progress, total, f"{strat.name} {space.name}", sys.stderr, leave=False, first=False
    )
    feasible_n = 0

    def tick(n: int) -> None:
        nonlocal feasible_n
        if not bar.active:
            return
        feasible_n += sum(1 for c in evaluator.history[-n:] if c.feasible)
        bar.update({"feasible": feasible_n}, n)

    evaluator = Evaluator(objective, constraints, on_new=tick)
    t0 = time.perf_counter()
    try:
        strat.run(space, evaluator, evaluations, seed)
    finally:
        bar.close()
    wall_s = time.perf_counter() - t0
    evaluated = evaluator.history
    log.info(
        "%s: %d evaluations in %.2f s (%d proposals)",
        strat.name,
        len(evaluated),
        wall_s,
        evaluator.proposals,
    )
    feasible = [c for c in evaluated if c.feasible and not math.isnan(c.objective)]
    met = [c for c in evaluated if c.feasible]
    if met and not feasible:
        # every candidate that meets the constraints has a NaN objective: the objective failed,
        # the constraints did not
        raise SearchError(
            f"objective {objective.name!r} is NaN for all {len(met)} evaluated {space.name} "
            f"architecture(s) that meet the constraints, e.g. {met[0].arch!r}; expected a "
            "number for each: check the objective"
        )
    if not feasible:
        raise SearchError(
            _explain_infeasible(
                space, constraints, evaluated, exhaustive, None if pool is None else len(pool)
            )
        )
    best = sorted(feasible, key=lambda c: (-c.objective, c.order))[:top]
    for con in constraints:
        if con.kind != "latency" or len(evaluated) < 2:
            continue
        slowest = max(c.values[con.name] for c in evaluated)
        if slowest <= con.limit and (exhaustive or con.limit >= 10 * slowest):
            # a budget in another unit (microseconds for milliseconds) passes everything: said
            # when every architecture was seen, or when the budget is far above all of them
            log.warning(
                "every one of the %d evaluated architectures meets %s <= %g %s (the slowest "
                "%.4g %s): the budget constrains nothing; expected a budget in %s that some "
                "architecture exceeds",
                len(evaluated),
                con.name,
                con.limit,
                con.unit,
                slowest,
                con.unit,
                con.unit,
            )

    # Pareto front: first latency constraint (else the first constraint) vs objective, among
    # candidates that meet every *other* constraint.
    x_con = next((c for c in constraints if c.kind == "latency"), None) or (
        constraints[0] if constraints else None
    )
    pareto: list[Candidate] = []
    if x_con is not None:
        others = [c for c in constraints if c is not x_con]
        on_axes = [
            c
            for c in evaluated
            if not math.isnan(c.objective) and all(c.values[o.name] <= o.limit for o in others)
        ]
        idx = pareto_front([c.values[x_con.name] for c in on_axes], [c.objective for c in on_axes])
        pareto = [on_axes[i] for i in idx]
    params = strat.params()
    extra: dict[str, Any] = {}
    if hasattr(strat, "final_probs"):
        extra["policy_probs"] = strat.final_probs
    return SearchResult(
        space=space.name,
        strategy=strat.name,
        strategy_params=params,
        seed=seed,
        evaluations=len(evaluated),
        evaluations_requested=evaluations,
        proposals=evaluator.proposals,
        wall_s=wall_s,
        constraint_s=evaluator.constraint_s,
        objective_s=evaluator.objective_s,
        objective_name=objective.name,
        objective_description=objective.description,
        constraints=[c.describe() for c in constraints],
        evaluated=evaluated,
        pareto=pareto,
        best=best,
        x_name=None if x_con is None else x_con.name,
        x_limit=None if x_con is None else x_con.limit,
        extra=extra,
    )
