"""HTML building blocks of the report: sections, embedded plots, tables, the page.

The page is one self-contained file: CSS inline, every plot a PNG embedded as a ``data:`` URI
(rendered with matplotlib's Agg canvas, no pyplot global state), no script and no external URL,
so it opens offline, attaches to an issue or a paper's artefact and never changes after the fact.
"""

from __future__ import annotations

import base64
import html
import io
import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "Section",
    "df_table",
    "esc",
    "figure_img",
    "format_number",
    "new_figure",
    "plot_text",
    "render_page",
]

PLOT_DPI = 100


@dataclass(frozen=True)
class Section:
    """One part of the report: an anchor id, a title, and an HTML body (or why it is skipped)."""

    id: str
    title: str
    body: str = ""
    skipped: str | None = None  # the visible reason when the data is absent
    plots: int = 0  # embedded figures in ``body``
    summary: dict[str, Any] = field(default_factory=dict)  # key figures, for callers and tests

    @classmethod
    def skip(cls, id: str, title: str, reason: str) -> Section:
        return cls(id=id, title=title, skipped=reason)

    def to_html(self) -> str:
        head = f'<h2><a href="#{esc(self.id)}">{esc(self.title)}</a></h2>'
        if self.skipped is not None:
            return (
                f'<section id="{esc(self.id)}" class="skipped">{head}'
                f'<p class="note">Skipped: {esc(self.skipped)}</p></section>'
            )
        return f'<section id="{esc(self.id)}">{head}{self.body}</section>'


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def plot_text(value: Any) -> str:
    """``value`` as a matplotlib label that shows as written.

    Matplotlib reads text between two ``$`` as mathtext: a device, predictor or objective named
    with a ``$`` would be drawn as a formula, and one mathtext cannot parse (``$$``) fails the
    whole figure. Escaped (``\\$``), every dollar sign is drawn as itself.
    """
    return str(value).replace("$", r"\$")


def new_figure(width_in: float, height_in: float) -> Figure:
    """A matplotlib figure on an Agg canvas (no pyplot: no global state, no GUI backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_img(fig: Figure, alt: str) -> str:
    """``fig`` as an ``<img>`` with the PNG inline (base64), sized to its pixels."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PLOT_DPI)
    width, height = (round(float(v)) for v in fig.get_size_inches() * PLOT_DPI)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (
        f'<figure><img class="plot" alt="{esc(alt)}" width="{width}" height="{height}" '
        f'src="data:image/png;base64,{data}"><figcaption>{esc(alt)}</figcaption></figure>'
    )


def format_number(value: float, digits: int) -> str:
    """``value`` to ``digits`` significant digits, never in exponent form from 1,000 on.

    The format is chosen from the value *after* rounding, so 999.7 at 3 digits is ``1,000``
    (not ``1e+03``) and 9999.6 at 4 is ``10,000``; from 1,000 on, thousands are separated
    (``1,234``) and the integer part is always whole (``12,346`` at 4 digits). Below 1,000 it is
    ``:g`` (``0.7535``, ``1.5e-05``).
    """
    if not math.isfinite(value):
        return "–"
    digits = max(1, int(digits))
    rounded = float(f"{value:.{digits}g}")
    if abs(rounded) < 1000:
        return f"{value:.{digits}g}"
    integer_digits = len(str(int(abs(rounded))))
    text = f"{value:,.{max(0, digits - integer_digits)}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")  # as ``:g`` drops trailing zeros
    return text


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, float):
        return format_number(value, digits)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_):
        return f"{int(value):,}"  # counts: separated as the floats are
    if value is None:
        return "–"
    return esc(value)


def df_table(df: pd.DataFrame, *, digits: int = 4, max_rows: int = 60) -> str:
    """A DataFrame as a plain HTML table (numbers right-aligned, NaN as a dash)."""
    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    rows: list[str] = []
    for rec in df.head(max_rows).itertuples(index=False):
        cells = []
        for v in rec:
            num = isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_)
            cls = ' class="num"' if num else ""
            cells.append(f"<td{cls}>{_cell(v, digits)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = (
        f'<p class="note">{len(df) - max_rows} more row(s) not shown.</p>'
        if len(df) > max_rows
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def bullet_list(items: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1f24;
background:#fafbfc;line-height:1.45}
header{background:#24292f;color:#fff;padding:1.2em 2em}header h1{margin:0 0 .3em 0}
header dl{display:grid;grid-template-columns:max-content auto;gap:.1em 1em;margin:0;
font-size:.9em;color:#d0d7de}header dt{font-weight:600}header dd{margin:0}
nav{padding:.6em 2em;background:#eaeef2;font-size:.95em}nav a{margin-right:1.2em}
main{padding:0 2em 2em 2em;max-width:1200px}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.4em 1.2em 1em;
margin:1.2em 0}section.skipped{background:#f6f8fa;color:#57606a}
h2 a{color:inherit;text-decoration:none}
figure{margin:.6em 0}img.plot{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption{font-size:.85em;color:#57606a}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}
th,td{border:1px solid #d0d7de;padding:.2em .6em;text-align:left}td.num{text-align:right;
font-variant-numeric:tabular-nums}th{background:#f6f8fa}
.note{color:#57606a;font-size:.9em}.bad{color:#cf222e;font-weight:600}.good{color:#1a7f37}
footer{padding:1em 2em;color:#57606a;font-size:.85em}
"""


def render_page(title: str, sections: Sequence[Section], meta: Sequence[tuple[str, str]]) -> str:
    """The whole HTML document: header with ``meta`` (label, value) pairs, contents, sections."""
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in meta)
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    body = "\n".join(s.to_html() for s in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>\n"
        f"<body><header><h1>{esc(title)}</h1><dl>{dl}</dl></header>"
        f"<nav>{nav}</nav><main>\n{body}\n</main>"
        "<footer>Made by latbench. Every plot is embedded in this file; it needs no network."
        "</footer></body></html>\n"
    )
