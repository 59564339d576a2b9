"""The HTML report: one self-contained page of plots and tables about a latency store.

>>> from latbench.report import build_report
>>> build_report("report.html", measurements=df, reference=ref)   # doctest: +SKIP

Sections (each skipped with a visible note when its data is absent): latency distributions,
predicted vs measured, the monotonicity heat map (this machine among the reference devices), the
Pareto front of a search, and the measurement stability of each device. Every section groups the
store's rows alike (:func:`group_labels`: device, runtime and whatever else varies), and the
stability verdict of a row is its record's own (:func:`row_verdict`). See ``docs/report.md``.
"""

from __future__ import annotations

from latbench.report.build import (
    build_report,
    load_predictions,
    load_search,
    predictions_from_predictor,
    render_report,
    report_from_files,
)
from latbench.report.html import Section
from latbench.report.sections import (
    distributions_section,
    group_labels,
    monotonicity_section,
    pareto_points,
    pareto_section,
    predictions_section,
    row_verdict,
    stability_section,
)

__all__ = [
    "Section",
    "build_report",
    "distributions_section",
    "group_labels",
    "load_predictions",
    "load_search",
    "monotonicity_section",
    "pareto_points",
    "pareto_section",
    "predictions_from_predictor",
    "predictions_section",
    "render_report",
    "report_from_files",
    "row_verdict",
    "stability_section",
]
