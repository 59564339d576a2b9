"""Latency-aware search: rank architectures by predicted latency and search under budgets.

* :mod:`latbench.nas.objectives`: objectives (user table, params/FLOPs, zero-cost proxies) and
  constraints (predicted latency per device, parameters, FLOPs, peak activation memory);
* :mod:`latbench.nas.proxies`: synflow, NASWOT and ZiCo on the CPU, cached on disk;
* :mod:`latbench.nas.strategies`: exhaustive, random, regularized evolution, REINFORCE;
* :mod:`latbench.nas.search`: the driver (:func:`run_search`) and its :class:`SearchResult`;
* :mod:`latbench.nas.pareto`, :mod:`latbench.nas.plots`, :mod:`latbench.nas.rank`.

``latbench.nas`` imports only ``latbench.predictors`` and ``latbench.spaces``; measuring the
returned architectures on a device happens in ``latbench search --verify``. See docs/search.md.
"""

from __future__ import annotations

from latbench.nas.evaluate import Candidate, Evaluator
from latbench.nas.objectives import (
    Constraint,
    GraphStats,
    Objective,
    TableObjective,
    error_margin,
    latency_constraint,
    load_table,
    make_objective,
    metric_constraint,
    trust_region,
)
from latbench.nas.pareto import pareto_front
from latbench.nas.rank import rank_archs
from latbench.nas.search import SearchResult, run_search
from latbench.nas.strategies import STRATEGIES, Strategy, create_strategy

__all__ = [
    "STRATEGIES",
    "Candidate",
    "Constraint",
    "Evaluator",
    "GraphStats",
    "Objective",
    "SearchResult",
    "Strategy",
    "TableObjective",
    "create_strategy",
    "error_margin",
    "latency_constraint",
    "load_table",
    "make_objective",
    "metric_constraint",
    "pareto_front",
    "rank_archs",
    "run_search",
    "trust_region",
]
