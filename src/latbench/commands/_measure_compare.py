"""``latbench measure A B [C ...]``: several models compared in interleaved rounds.

Two latencies measured one after the other on a shared machine differ by whatever the machine
did in between: on this project's 2-core build VM two measurements of the same model landed up
to 16 % apart (BENCHMARKS.md, "Comparing two models"). Measured in rounds ``A B, B A, ...``
with the same time budget each, the two models see the same moments, and the ratio of one
round's values compares them under one load. The comparison reports, for every target after
the first, the median of its per-round ratios to the first and a distribution-free 95 %
confidence interval of that median (:func:`latbench.profilers.stats.paired_ratio`); a ratio
whose interval holds 1 is no difference shown.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from latbench.commands.measure import _ms, dumps_json
from latbench.profilers import stats
from latbench.profilers.record import Measurement
from latbench.profilers.task import budget_share

#: the confidence level of the ratios' interval
LEVEL = 0.95


def compare(
    device: Any, models: Sequence[Any], rounds: int, statistic: str, common: dict[str, Any]
) -> list[Measurement]:
    """Measure ``models`` on ``device`` in ``rounds`` interleaved rounds.

    The rounds come in two halves: the first with the models loaded in the order given, the
    second with them loaded in reverse order, each model's halves merged into one record. On
    this machine the second of two models loaded into one worker ran about 0.8 % faster than
    the first, the same file twice included (BENCHMARKS.md, "Comparing two models"): in one
    half that favours one side of a ratio and in the other half the other side, so the
    median of the per-round ratios is not pulled by it. No reference model (the first target
    is the comparison's own reference) and no confirmation rounds (they would run for some
    models alone, and their samples would have no partner in the other models' rounds).
    """
    from latbench.devices.base import merge_rounds

    models = list(models)
    second = rounds // 2

    def half(order: list[Any], n: int) -> list[Measurement]:
        # each half gets its share of the time budget, so that the comparison takes what one
        # interleaved run of all the rounds would
        kw = {"statistic": statistic, "reference": False, "confirm_tolerance": 0.0, **common}
        if common.get("settings") is not None and n < rounds:
            kw["settings"] = budget_share(common["settings"], n / rounds)
        return list(device.measure_many(order, interleave=n, **kw))

    halves = [half(models, rounds - second)]
    if second:
        halves.append(half(models[::-1], second)[::-1])
    out = []
    for parts in zip(*halves, strict=True):
        failed = next((m for m in parts if not m.ok), None)
        if failed is not None:
            out.append(failed)
            continue
        merged = merge_rounds(parts)
        out.append(merged.with_(harness={**merged.harness, "interleaved": rounds}))
    return out


def ratio_to(baseline: Measurement, other: Measurement, statistic: str) -> dict[str, Any] | None:
    """``other / baseline`` round by round (:func:`~latbench.profilers.stats.paired_ratio`) and
    what it shows, or None when either record has no rounds to pair."""
    if not (baseline.ok and other.ok and baseline.round_sizes and other.round_sizes):
        return None
    a = stats.round_values(baseline.samples_ms, baseline.round_sizes, statistic)
    b = stats.round_values(other.samples_ms, other.round_sizes, statistic)
    r = stats.paired_ratio(a, b, LEVEL)
    if r["ci_low"] > 1:
        shown = "slower"
    elif r["ci_high"] < 1:
        shown = "faster"
    else:
        shown = "no difference shown"
    return {**r, "level": LEVEL, "shown": shown}


def _order(n: int) -> str:
    """``A B, B A`` for two targets: the order of the first two rounds."""
    labels = [_label(i) for i in range(n)]
    return f"{' '.join(labels)}, {' '.join(reversed(labels))}"


def _label(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"#{i + 1}"


def format_comparison(
    targets: Sequence[str], records: Sequence[Measurement], statistic: str
) -> str:
    """The human-readable table of a comparison."""
    first = next((m for m in records if m.ok), records[0])
    rounds = len(first.round_sizes) if first.ok else 0
    lines = [
        f"device    {first.device} ({first.env.get('cpu_model', '?')}, pinned cpus "
        f"{first.env.get('pinned_cpus', first.env.get('affinity', '?'))})",
        f"runtime   {' '.join(x for x in (first.runtime, first.runtime_version) if x)}",
        f"rounds    {rounds} interleaved ({_order(len(targets))}, ...), each round's "
        f"{statistic}; ratio to A: median of the per-round ratios, {LEVEL:.0%} CI",
        "",
        f"     {'median':>10} {'min':>10}  {'ratio to A [95% CI]':<40} target",
    ]
    base = records[0]
    for i, (target, m) in enumerate(zip(targets, records, strict=True)):
        if not m.ok:
            lines.append(f"  {_label(i)}  FAILED: {m.error}   {target}")
            continue
        if i == 0:
            cell = "1 (baseline)"
        else:
            r = ratio_to(base, m, statistic)
            if r is None:
                cell = "n/a (A failed)"
            else:
                pct = (r["ratio"] - 1) * 100
                cell = (
                    f"{r['ratio']:.3f}x [{r['ci_low']:.3f}, {r['ci_high']:.3f}] {pct:+.1f} % "
                    f"{r['shown']}"
                )
        lines.append(
            f"  {_label(i)}  {_ms(m.median_ms):>10} {_ms(m.min_ms):>10}  {cell:<40} {target}"
        )
    unstable = [
        _label(i)
        for i, m in enumerate(records)
        if m.ok and m.verdict().get("judged", True) and not m.verdict()["stable"]
    ]
    if unstable:
        lines.append(
            f"note: the samples of {', '.join(unstable)} are unstable (`latbench measure` of one "
            "target says why); the paired ratios still compare like with like, round by round"
        )
    return "\n".join(lines)


def print_comparison(
    targets: Sequence[str], records: Sequence[Measurement], statistic: str, *, as_json: bool
) -> int:
    """Print the comparison (a table, or JSON with every record); 1 when a target failed."""
    if as_json:
        doc = {
            "baseline": targets[0],
            "statistic": statistic,
            "rounds": len(records[0].round_sizes) if records[0].ok else 0,
            "results": [
                {
                    "target": t,
                    "summary": m.summary(),
                    "verdict": m.verdict(),
                    "ratio_to_baseline": ratio_to(records[0], m, statistic) if i else None,
                    "record": m.to_dict(),
                }
                for i, (t, m) in enumerate(zip(targets, records, strict=True))
            ],
        }
        print(dumps_json(doc))
    else:
        print(format_comparison(targets, records, statistic))
    failed = [(t, m) for t, m in zip(targets, records, strict=True) if not m.ok]
    for t, m in failed:
        print(f"latbench: error: measurement of {t} failed: {m.error}", file=sys.stderr)
    return 1 if failed else 0
