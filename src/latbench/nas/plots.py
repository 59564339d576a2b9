"""The Pareto plot of a search: every evaluated candidate, the front, budgets and the picks."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from latbench._atomic import atomic_path

if TYPE_CHECKING:
    from latbench.nas.search import SearchResult

__all__ = ["budget_lines", "plot_pareto"]


def budget_lines(result: SearchResult) -> list[tuple[float, str, str]]:
    """``(x, linestyle, label)`` of the budget lines of the plot: the budget as given (dashed),
    and, when a margin (``--budget-margin``, ``--margin-from``) held the search under a lower
    limit, that limit (dotted), each labelled with its own value."""
    limit = result.x_limit
    if limit is None:
        return []
    info = next((c for c in result.constraints if c.get("name") == result.x_name), {})
    given = info.get("budget_ms")
    budget = float(given) if isinstance(given, int | float) and given > 0 else float(limit)
    lines = [(budget, "--", f"budget {budget:g}")]
    if not math.isclose(budget, limit):
        margin = 100 * (1 - limit / budget)
        lines.append((float(limit), ":", f"search limit {limit:.4g} (margin {margin:.3g} %)"))
    return lines


def plot_pareto(result: SearchResult, path: str | os.PathLike[str]) -> Path:
    """Write a PNG of latency (x, first latency constraint) against the objective (y).

    Grey: evaluated candidates that break a constraint; blue: feasible ones; the orange step line
    is the Pareto front, the dashed line the latency budget (and, with a budget margin, a dotted
    line the lower limit the search was held to), stars the returned architectures.
    Uses the Agg backend, so it works without a display.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result.evaluated
    x_name = result.x_name or "evaluation"

    def xval(r: Any) -> float:
        # without a latency constraint the x axis is the evaluation order
        return float(r.values.get(x_name, float(r.order)))

    x = np.array([xval(r) for r in rows], dtype=np.float64)
    y = np.array([r.objective for r in rows], dtype=np.float64)
    feas = np.array([r.feasible for r in rows], dtype=bool)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    ax.scatter(x[~feas], y[~feas], s=6, c="0.75", label="breaks a constraint", lw=0)
    ax.scatter(x[feas], y[feas], s=8, c="tab:blue", label="feasible", lw=0)
    front = result.pareto
    if front:
        fx = [xval(r) for r in front]
        fy = [r.objective for r in front]
        ax.step(fx, fy, where="post", c="tab:orange", lw=1.5, label="Pareto front")
        ax.scatter(fx, fy, s=14, c="tab:orange", zorder=3)
    for x_at, style, label in budget_lines(result):
        ax.axvline(x_at, ls=style, c="tab:red", lw=1, label=label)
    if result.best:
        ax.scatter(
            [xval(r) for r in result.best],
            [r.objective for r in result.best],
            marker="*",
            s=90,
            c="tab:green",
            zorder=4,
            label="returned",
        )
    ax.set_xlabel(x_name)
    ax.set_ylabel(result.objective_name)
    ax.set_title(
        f"{result.space} · {result.strategy} · {result.evaluations} evaluations · "
        f"seed {result.seed}"
    )
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    try:
        with atomic_path(out) as tmp:  # an interrupted write leaves no half image
            fig.savefig(tmp)
    finally:
        plt.close(fig)
    return out
