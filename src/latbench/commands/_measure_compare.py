"""``latbench measure A B [C ...]``: several models compared in interleaved rounds.

Two latencies measured one after the other on a shared machine differ by whatever the machine
did in between: on this project's 2-core build VM two measurements of the same model landed up
to 16 % apart (BENCHMARKS.md, "Comparing two models"). Measured in rounds ``A B, B A, ...``
with the same time budget each, the two models see the same moments, and the ratio of one
round's values compares them under one load. The comparison reports, for every target after
the first, the median of its per-round ratios to the first and a distribution-free 95 %
confidence interval of that median (:func:`latbench.profilers.stats.paired_ratio`); a ratio
whose interval holds 1 is no difference shown.

``latbench measure TARGET --threads 1,2,4`` compares one model's thread counts the same way
(:func:`compare_threads`): each count's ratio to the first, its speedup (the inverse) and its
parallel efficiency (the speedup divided by the ratio of the thread counts). ``--batch 1,8,32``
compares batch sizes (:func:`compare_batches`): each size's ratio to the first, its time per
sample, its throughput and its throughput gain over the first size.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from latbench.commands.measure import _ms, dumps_json
from latbench.devices._config import format_cpu_list
from latbench.profilers import stats
from latbench.profilers.record import Measurement
from latbench.profilers.task import budget_share

#: the confidence level of the ratios' interval
LEVEL = 0.95
#: the width of the ratio column: ``1.008x [0.718, 2.173] +0.8 % no difference shown``
_CELL = 49


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


def compare_threads(
    device: Any,
    model: Any,
    threads: Sequence[int],
    rounds: int,
    statistic: str,
    common: dict[str, Any],
) -> list[Measurement]:
    """Measure ``model`` on ``device`` at each of ``threads`` in ``rounds`` interleaved rounds
    (:meth:`latbench.devices.base.Device.measure_variants`: a whole measure call per count and
    round, every other round backwards)."""
    shared = {k: v for k, v in common.items() if k != "threads"}
    return list(
        device.measure_variants(
            model,
            [{"threads": int(t)} for t in threads],
            rounds=rounds,
            statistic=statistic,
            reference=False,
            **shared,
        )
    )


def compare_batches(
    device: Any,
    models: Sequence[Any],
    batches: Sequence[int],
    rounds: int,
    statistic: str,
    common: dict[str, Any],
) -> list[Measurement]:
    """Measure ``models[i]`` at batch ``batches[i]`` on ``device`` in ``rounds`` interleaved
    rounds (one model file given every size, or a SPACE:ARCH target emitted at each)."""
    shared = {k: v for k, v in common.items() if k != "batch"}
    return list(
        device.measure_variants(
            models[0],
            [{"batch": int(b), "model": m} for b, m in zip(batches, models, strict=True)],
            rounds=rounds,
            statistic=statistic,
            reference=False,
            **shared,
        )
    )


def scaling(
    threads: Sequence[int], ratio: dict[str, Any] | None, i: int
) -> dict[str, float] | None:
    """Speedup (``1 / ratio``, with its interval) and parallel efficiency of thread count
    ``threads[i]`` against ``threads[0]``."""
    if i == 0:
        return {"speedup": 1.0, "efficiency": 1.0}
    if ratio is None:
        return None
    speedup = 1 / ratio["ratio"]
    return {
        "speedup": speedup,
        "speedup_ci_low": 1 / ratio["ci_high"],
        "speedup_ci_high": 1 / ratio["ci_low"],
        "efficiency": speedup * threads[0] / threads[i],
    }


def batch_scaling(
    batches: Sequence[int], ratio: dict[str, Any] | None, i: int, m: Measurement
) -> dict[str, float] | None:
    """Time per sample and throughput of batch ``batches[i]`` (from its record's median), and
    its throughput gain over ``batches[0]`` (the size ratio over the paired latency ratio, with
    its interval)."""
    if not m.ok or not m.median_ms:
        return None
    out = {
        "ms_per_sample": m.median_ms / batches[i],
        "samples_per_s": 1000.0 * batches[i] / m.median_ms,
    }
    if i == 0:
        return {**out, "throughput_gain": 1.0}
    if ratio is None:
        return out
    size = batches[i] / batches[0]
    return {
        **out,
        "throughput_gain": size / ratio["ratio"],
        "throughput_gain_ci_low": size / ratio["ci_high"],
        "throughput_gain_ci_high": size / ratio["ci_low"],
    }


def _n_cpus(n: int) -> str:
    return f"{n} CPU" if n == 1 else f"{n} CPUs"


def _cpus(m: Measurement) -> list[int]:
    cpus = m.env.get("pinned_cpus", m.env.get("affinity"))
    return list(cpus) if isinstance(cpus, list | tuple) else []


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


#: a sweep of one target: the setting swept ("threads" or "batch") and its values
Sweep = tuple[str, Sequence[int]]


def _scale_cells(key: str, values: Sequence[int], r: Any, i: int, m: Measurement) -> str:
    if key == "threads":
        sc = scaling(values, r, i)
        speed = f"{sc['speedup']:.2f}x" if sc else "n/a"
        eff = f"{sc['efficiency']:.0%}" if sc else "n/a"
        cpus = format_cpu_list(set(_cpus(m))) if _cpus(m) else "?"
        return f"{speed:>7} {eff:>10}  {cpus}"
    sc = batch_scaling(values, r, i, m)
    gain = sc.get("throughput_gain") if sc else None
    per = f"{_ms(sc['ms_per_sample'])}" if sc else "n/a"
    rate = f"{sc['samples_per_s']:,.0f}" if sc else "n/a"
    return f"{per:>10} {rate:>10} {f'{gain:.2f}x' if gain else 'n/a':>10}"


def format_comparison(
    targets: Sequence[str],
    records: Sequence[Measurement],
    statistic: str,
    sweep: Sweep | None = None,
) -> str:
    """The human-readable table of a comparison (of one target's thread counts or batch
    sizes, ``sweep``, when given)."""
    first = next((m for m in records if m.ok), records[0])
    rounds = len(first.round_sizes) if first.ok else 0
    key, values = sweep if sweep else ("", [])
    pinned = (
        ""
        if key == "threads"
        else f", pinned cpus {first.env.get('pinned_cpus', first.env.get('affinity', '?'))}"
    )
    lines = [
        f"device    {first.device} ({first.env.get('cpu_model', '?')}{pinned})",
        f"runtime   {' '.join(x for x in (first.runtime, first.runtime_version) if x)}",
        f"rounds    {rounds} interleaved ({_order(len(targets))}, ...), each round's "
        f"{statistic}; ratio to A: median of the per-round ratios, {LEVEL:.0%} CI",
    ]
    head = f"     {'median':>10} {'min':>10}  {'ratio to A [95% CI]':<{_CELL}}"
    if key == "threads":
        lines += [
            f"target    {targets[0]}",
            "speedup   1 / ratio; efficiency: speedup x threads of A / threads",
            "",
            f"     {'threads':>7}{head[4:]} {'speedup':>7} {'efficiency':>10}  pinned cpus",
        ]
    elif key == "batch":
        lines += [
            f"target    {targets[0]}",
            "gain      throughput over A's: (batch / batch of A) / ratio",
            "",
            f"     {'batch':>7}{head[4:]} {'ms/sample':>10} {'samples/s':>10} {'gain':>10}",
        ]
    else:
        lines += ["", f"{head} target"]
    base = records[0]
    for i, (target, m) in enumerate(zip(targets, records, strict=True)):
        if not m.ok:
            where = f"{key} {values[i]}" if key else target
            lines.append(f"  {_label(i)}  FAILED: {m.error}   {where}")
            continue
        r = ratio_to(base, m, statistic) if i else None
        if i == 0:
            cell = "1 (baseline)"
        elif r is None:
            cell = "n/a (A failed)"
        else:
            pct = (r["ratio"] - 1) * 100
            cell = (
                f"{r['ratio']:.3f}x [{r['ci_low']:.3f}, {r['ci_high']:.3f}] {pct:+.1f} % "
                f"{r['shown']}"
            )
        row = f"  {_label(i)}  "
        if key:
            row += f"{values[i]:>7} {_ms(m.median_ms):>10} {_ms(m.min_ms):>10}  {cell:<{_CELL}} "
            row += _scale_cells(key, values, r, i, m)
        else:
            row += f"{_ms(m.median_ms):>10} {_ms(m.min_ms):>10}  {cell:<{_CELL}} {target}"
        lines.append(row)
    if key == "threads":
        crowded = [
            f"{_label(i)} ({values[i]} threads on {_n_cpus(len(_cpus(m)))})"
            for i, m in enumerate(records)
            if m.ok and _cpus(m) and values[i] > len(_cpus(m))
        ]
        if crowded:
            lines.append(
                f"note: {', '.join(crowded)} "
                f"{'runs' if len(crowded) == 1 else 'run'} more threads than "
                "the CPUs pinned for it: the threads share cores, so the figure is what that "
                "setting costs here, not how far the model scales"
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
    targets: Sequence[str],
    records: Sequence[Measurement],
    statistic: str,
    *,
    as_json: bool,
    sweep: Sweep | None = None,
) -> int:
    """Print the comparison (a table, or JSON with every record); 1 when a target failed.
    ``sweep``: the records are one target's thread counts or batch sizes (``targets`` repeats
    it)."""
    key, values = sweep if sweep else ("", [])
    if as_json:
        results = []
        for i, (t, m) in enumerate(zip(targets, records, strict=True)):
            ratio = ratio_to(records[0], m, statistic) if i else None
            result: dict[str, Any] = {"target": t}
            if key:
                result[key] = values[i]
            result |= {
                "summary": m.summary(),
                "verdict": m.verdict(),
                "ratio_to_baseline": ratio,
            }
            if key == "threads":
                result["scaling"] = scaling(values, ratio, i)
            elif key == "batch":
                result["scaling"] = batch_scaling(values, ratio, i, m)
            result["record"] = m.to_dict()
            results.append(result)
        doc = {
            "baseline": f"{targets[0]} --{key} {values[0]}" if key else targets[0],
            "statistic": statistic,
            "rounds": len(records[0].round_sizes) if records[0].ok else 0,
            "results": results,
        }
        print(dumps_json(doc))
    else:
        print(format_comparison(targets, records, statistic, sweep))
    failed = [(i, t, m) for i, (t, m) in enumerate(zip(targets, records, strict=True)) if not m.ok]
    for i, t, m in failed:
        where = f"{t} at {key} {values[i]}" if key else t
        print(f"latbench: error: measurement of {where} failed: {m.error}", file=sys.stderr)
    return 1 if failed else 0
