"""Batched, cached evaluation of candidate architectures against an objective and constraints.

The :class:`Evaluator` is what every strategy calls. It

* evaluates a *batch* of architectures at a time, so a predictor makes one vectorised
  ``predict`` call per population instead of one per candidate (that is where the thousands of
  candidates per second come from);
* caches every result per architecture, so a strategy that proposes an architecture twice gets
  the first result back for free, and only *new* architectures count against the budget;
* checks the constraints first and computes an ``expensive`` objective (a zero-cost proxy) only
  for candidates that meet them all.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latbench.errors import SearchError
from latbench.nas.objectives import Constraint, Objective

log = logging.getLogger(__name__)

__all__ = ["Candidate", "Evaluator"]


@dataclass(frozen=True)
class Candidate:
    """One evaluated architecture.

    ``objective`` is NaN when it was not computed (an expensive objective of a candidate that
    breaks a constraint); it may be ``-inf`` when it was computed and is minus infinity (NASWOT of
    a singular activation kernel). ``values`` maps each constraint name to its value, ``std`` the
    latency constraints to the predictor's uncertainty (ms) where it has one. ``violation`` is the
    sum of the relative excesses ``max(0, value / limit - 1)``; ``order`` is the evaluation index.

    :meth:`to_dict` is strict JSON: NaN (not computed) becomes ``null`` and an infinity the
    string ``"-inf"`` or ``"inf"``, so that a computed ``-inf`` stays distinct from "not computed"
    (Python's ``float`` reads both strings back).
    """

    arch: str
    objective: float
    values: dict[str, float]
    feasible: bool
    violation: float
    order: int
    std: dict[str, float] = field(default_factory=dict)

    def key(self) -> tuple[int, float]:
        """Sort key, larger is better: feasible before infeasible; then objective or violation."""
        if self.feasible:
            return (1, self.objective if not math.isnan(self.objective) else -math.inf)
        return (0, -self.violation)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "arch": self.arch,
            "objective": json_number(self.objective),
            "feasible": self.feasible,
            "violation": json_number(self.violation),
            "order": self.order,
            **{k: json_number(v) for k, v in self.values.items()},
        }
        for k, v in self.std.items():
            d[f"{k}_std"] = json_number(v)
        return d


def json_number(value: float) -> float | str | None:
    """``value`` for a JSON result: NaN (not computed) as None, an infinity as ``"inf"`` or
    ``"-inf"`` (a value that was computed: strict JSON has no infinity), else the float."""
    v = float(value)
    if math.isnan(v):
        return None
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


class Evaluator:
    """Evaluates architectures of one space, caching per architecture; see the module docstring.

    ``on_new(n)`` is called with the number of new architectures after each batch (progress).
    """

    def __init__(
        self,
        objective: Objective,
        constraints: Sequence[Constraint] = (),
        on_new: Callable[[int], None] | None = None,
    ) -> None:
        self.objective = objective
        self.constraints = list(constraints)
        self.on_new = on_new
        self._cache: dict[str, Candidate] = {}
        self.history: list[Candidate] = []
        self.proposals = 0
        self.constraint_s = 0.0
        self.objective_s = 0.0

    @property
    def n_evaluated(self) -> int:
        """Distinct architectures evaluated so far (what the budget counts)."""
        return len(self.history)

    def known(self, arch: str) -> bool:
        return arch in self._cache

    def evaluate(self, archs: Sequence[str]) -> list[Candidate]:
        """Candidates of ``archs`` (same order), evaluating only those not seen before."""
        self.proposals += len(archs)
        cache = self._cache
        new = list(dict.fromkeys(a for a in archs if a not in cache))
        if new:
            self._evaluate_new(new)
            if self.on_new is not None:
                self.on_new(len(new))
        return [cache[a] for a in archs]

    def _evaluate_new(self, new: list[str]) -> None:
        n = len(new)
        t0 = time.perf_counter()
        feasible = np.ones(n, dtype=bool)
        violation = np.zeros(n)
        cols: list[tuple[str, np.ndarray]] = []
        stds: list[tuple[str, np.ndarray]] = []
        for c in self.constraints:
            v = c.values(new)
            if v.shape[0] != n:
                raise ValueError(f"constraint {c.name} returned {v.shape[0]} values for {n}")
            bad = np.flatnonzero(np.isnan(v))
            if bad.size:
                # NaN <= limit is False: left alone it would pass for a violation of NaN size,
                # breaking every comparison of candidates and the infeasibility report
                raise SearchError(
                    f"constraint {c.name} gave NaN for {bad.size} of {n} architecture(s), e.g. "
                    f"{new[int(bad[0])]!r}; expected a number ({c.unit}) for every "
                    "architecture: check the predictor (or function) behind it"
                )
            cols.append((c.name, v))
            ok = v <= c.limit
            feasible &= ok
            violation += np.where(ok, 0.0, v / c.limit - 1.0)
            if c.std_fn is not None:
                s = c.std_fn(new)
                if s is not None:
                    stds.append((c.name, s))
        t1 = time.perf_counter()
        obj = np.full(n, np.nan)
        if self.objective.expensive:
            idx = np.flatnonzero(feasible)
            if idx.size:
                obj[idx] = self.objective([new[i] for i in idx])
        else:
            obj = self.objective(new)
        t2 = time.perf_counter()
        self.constraint_s += t1 - t0
        self.objective_s += t2 - t1
        base = len(self.history)
        names = [name for name, _ in cols]
        vals = [v.tolist() for _, v in cols]
        std_names = [name for name, _ in stds]
        std_vals = [s.tolist() for _, s in stds]
        objl = obj.tolist()
        featl = feasible.tolist()
        viol = violation.tolist()
        for i, a in enumerate(new):
            cand = Candidate(
                arch=a,
                objective=float(objl[i]),
                values={nm: col[i] for nm, col in zip(names, vals, strict=True)},
                feasible=bool(featl[i]),
                violation=float(viol[i]),
                order=base + i,
                std={nm: col[i] for nm, col in zip(std_names, std_vals, strict=True)},
            )
            self._cache[a] = cand
            self.history.append(cand)
