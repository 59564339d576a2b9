"""``latbench predictor fit-kernels``: an nn-Meter style kernel predictor of a device, trained
from per-operator profiles measured on it.

    latbench predictor fit-kernels --device local --space nb201 --sample 30 -o local-k.lbp
    latbench predictor fit-kernels --device local --space fbnet --resolution 96 --sample 20 \\
        --graphs -o local-fb.lbp           # predicts any model graph (predict --onnx)

Each of ``--sample`` random architectures of ``--space`` is emitted as ONNX, measured on
``--device`` with the runtime's per-operator profiler, and its profile matched to the fused
kernels of its graph (``kernels_from_profile``); one random forest per kernel type is fitted on
every kernel seen (``KernelPredictor.fit_kernels``). The profiles go to ``--profiles`` (default
``OUTPUT.profiles.jsonl``) as each is measured: a rerun with the same file measures only the
architectures not in it yet, so an interrupted run resumes.

The profiled kernels of a model do not sum to its end-to-end latency (the profiler costs time
per operator; the runtime's work between operators is in no kernel): the predictor is
calibrated to it (``KernelPredictor.calibrate``: latency = scale x kernel sum + a time per
kernel, least squares over the profiled models), and the command prints the ratio and the
in-sample Spearman and MAPE against the measured model latencies.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from latbench._atomic import same_file
from latbench.commands._progress import ItemProgress
from latbench.errors import ConfigError, MeasurementError

log = logging.getLogger(__name__)

#: the runtimes whose local profile names the graph's nodes (what kernels_from_profile needs)
PROFILE_RUNTIMES = ("onnxruntime",)


def add_parser(ps: Any) -> None:
    k = ps.add_parser(
        "fit-kernels",
        help="fit a kernel predictor from per-operator profiles measured on a device",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    k.add_argument("--device", default="local", help="device to profile on (default local)")
    k.add_argument("--space", default="nb201", help="search space to sample (default nb201)")
    k.add_argument("--sample", type=int, default=30, help="architectures to profile (30)")
    k.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    k.add_argument("--resolution", type=int, default=None, help="input resolution")
    k.add_argument("--threads", type=int, default=1, help="runtime threads (default 1)")
    k.add_argument("--runtime", default="onnxruntime", help="runtime (onnxruntime)")
    k.add_argument(
        "--graphs",
        action="store_true",
        help="fit for graphs (the predictor then predicts any model, predict --onnx); default: "
        "the space's architectures",
    )
    k.add_argument("--min-runs", type=int, default=None, help="harness minimum runs")
    k.add_argument("--min-time", type=float, default=None, help="harness minimum seconds")
    k.add_argument("--max-time", type=float, default=None, help="harness maximum seconds")
    k.add_argument(
        "--profiles",
        default=None,
        help="JSON-lines file the profiles are appended to as each is measured (default "
        "OUTPUT.profiles.jsonl); a rerun measures only what is not in it yet",
    )
    k.add_argument("-o", "--output", required=True, help="predictor file to write (.lbp)")
    k.set_defaults(handler=run)


def profiles_path(args: argparse.Namespace) -> Path:
    return Path(args.profiles) if args.profiles else Path(f"{args.output}.profiles.jsonl")


def _key(args: argparse.Namespace) -> dict[str, Any]:
    """What a stored profile must match to be reused."""
    return {
        "space": args.space,
        "device": args.device,
        "runtime": args.runtime,
        "threads": args.threads,
        "resolution": args.resolution,
    }


def read_profiles(path: Path, key: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{arch: record}`` of the profiles in ``path`` measured under ``key`` (a line cut short by
    an interrupted write is skipped: its architecture is measured again)."""
    out: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return out
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                if not line.endswith("\n"):
                    continue  # the last line of an interrupted append (the first, too)
                raise ConfigError(
                    f"--profiles {str(path)!r} line {n} is not JSON; expected the profiles "
                    "file of an earlier fit-kernels (or a new file name)"
                ) from None
            if not isinstance(rec, dict) or not isinstance(rec.get("per_op"), list):
                raise ConfigError(
                    f"--profiles {str(path)!r} line {n}: expected a record with 'arch', "
                    "'latency_ms' and 'per_op'"
                )
            if all(rec.get(k) == v for k, v in key.items()):
                out[str(rec["arch"])] = rec
    return out


def _append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _profile(
    args: argparse.Namespace,
    todo: list[str],
    graphs: dict[str, Any],
    cfg: Any,
    settings: Any,
    key: dict[str, Any],
    path: Path,
    done: dict[str, dict[str, Any]],
    failed: list[str],
    progress: ItemProgress,
) -> None:
    """Measure ``todo`` with the per-operator profiler, appending each profile to ``path`` (and
    ``done``) as it completes; an architecture that fails on the device goes to ``failed``
    (left out; a rerun measures it again, as it is not in the file)."""
    from latbench.devices import get_device
    from latbench.spaces import export

    with (
        tempfile.TemporaryDirectory(prefix="latbench-kernels-") as tmp,
        get_device(args.device, cfg) as dev,
    ):
        for i, arch in enumerate(todo):
            model = export(graphs[arch], "onnx", os.path.join(tmp, f"m{i}.onnx"), seed=0)
            m = dev.measure(
                str(model), runtime=args.runtime, threads=args.threads, settings=settings,
                per_op=True,
            )  # fmt: skip
            os.unlink(model)
            if not m.ok:
                log.warning("%s failed on %s: %s; left out", arch, args.device, m.error)
                failed.append(arch)
                progress.step()
                continue
            if not m.per_op:
                why = m.runtime_settings.get("per_op_unavailable", "no per-operator rows")
                raise MeasurementError(
                    f"{args.device} ({args.runtime}) gave no per-operator profile: {why}; "
                    "expected a device and runtime that profile operators (local onnxruntime)"
                )
            rec = {**key, "arch": arch, "latency_ms": m.latency_ms, "per_op": m.per_op}
            _append(path, rec)
            done[arch] = rec
            progress.line(f"{m.latency_ms:8.3f} ms  {len(m.per_op)} operators  {arch}")


def run(args: argparse.Namespace) -> int:
    from latbench.commands.measure import harness_settings, measure_sources
    from latbench.commands.predictor import check_seed
    from latbench.config import load_config
    from latbench.predictors import save
    from latbench.predictors.encodings import kernel_features
    from latbench.predictors.kernel import (
        KernelPredictor,
        fit_calibration,
        kernels_from_profile,
    )
    from latbench.predictors.metrics import mape, spearman
    from latbench.spaces import get_space

    check_seed(args.seed)
    if args.sample < 2:
        raise ConfigError(f"--sample {args.sample}; expected at least 2 architectures")
    if args.runtime not in PROFILE_RUNTIMES:
        raise ConfigError(
            f"--runtime {args.runtime!r}: its profile does not name the graph's nodes; expected "
            f"{' or '.join(PROFILE_RUNTIMES)}"
        )
    if args.resolution is not None and not args.graphs:
        raise ConfigError(
            f"--resolution {args.resolution} without --graphs: a predictor of {args.space} "
            "architectures is asked about them at the space's own resolution; expected "
            "--graphs (the predictor then predicts graphs of any resolution)"
        )
    path = profiles_path(args)
    if same_file(args.output, path):
        raise ConfigError(
            f"-o/--output {args.output!r} is the --profiles file; expected a file of its own"
        )
    space = get_space(args.space)
    cfg = load_config(args.config)
    cfg.device(args.device)  # an unknown device fails before anything is measured
    settings = harness_settings(
        args, cfg.measure_for(args.device), sources=measure_sources(cfg, args.device)
    )
    archs = space.sample(args.sample, seed=args.seed)
    graphs = {a: space.build(a, resolution=args.resolution) for a in archs}
    key = _key(args)
    done = read_profiles(path, key)
    todo = [a for a in archs if a not in done]
    failed: list[str] = []
    if len(todo) < len(archs):
        print(
            f"resuming: {len(archs) - len(todo)} of {len(archs)} profiles already in {path}",
            file=sys.stderr,
        )
    if todo:
        print(f"profiling {len(todo)} architectures on {args.device} (-> {path}):", file=sys.stderr)
        progress = ItemProgress(len(todo), file=sys.stderr)
        try:
            _profile(args, todo, graphs, cfg, settings, key, path, done, failed, progress)
        except KeyboardInterrupt:
            print(
                f"latbench predictor fit-kernels: {len(done)} profiles kept in {path}; run the "
                "same command again to go on",
                file=sys.stderr,
            )
            raise
    archs = [a for a in archs if a in done]
    if len(archs) < 2:
        raise MeasurementError(
            f"{len(archs)} of {args.sample} architectures profiled on {args.device} "
            f"({len(failed)} failed, see the warnings); expected at least 2 to fit on"
        )
    if failed:
        print(
            f"{len(failed)} of {args.sample} architectures failed and are left out (a rerun "
            "measures them again)",
            file=sys.stderr,
        )
    kernels, times, ratios, kernel_lists = [], [], [], []
    for arch in archs:
        rec = done[arch]
        kernel_lists.append(kernel_features(graphs[arch]))
        rows = kernels_from_profile(graphs[arch], rec["per_op"])
        kernels += [k for k, _ in rows]
        times += [t for _, t in rows]
        ratios.append(sum(t for _, t in rows) / float(rec["latency_ms"]))
    if not kernels:
        raise MeasurementError(f"no kernel of the {len(archs)} profiles matched its graph")
    t0 = time.perf_counter()
    target = "graph" if args.graphs else space.name
    p = KernelPredictor().fit_kernels(kernels, times, space=target, device=args.device)
    inputs = [graphs[a] for a in archs] if args.graphs else archs
    lat = np.array([float(done[a]["latency_ms"]) for a in archs])
    scale, per_kernel = fit_calibration(p.predict(inputs), [len(k) for k in kernel_lists], lat)
    p.calibrate(scale, per_kernel)
    fit_s = time.perf_counter() - t0
    save(p, args.output)
    pred = p.predict(inputs)
    ratios.sort()
    print(
        f"fitted kernel on {len(kernels)} kernels of {len(archs)} profiled architectures "
        f"({len(p.types_) - 1} kernel types) on {args.device} in {fit_s:.1f} s -> {args.output}"
    )
    print(
        f"  profiled kernels / measured latency: median {ratios[len(ratios) // 2]:.2f} "
        f"({ratios[0]:.2f}-{ratios[-1]:.2f}); calibrated to end-to-end latency: "
        f"{scale:.3f} x kernel time {per_kernel * 1e3:+.1f} us per kernel"
    )
    print(
        f"  in sample ({len(archs)} models): Spearman {spearman(lat, pred):.3f}, MAPE "
        f"{mape(lat, pred):.1f} % of the kernel sums against the measured latencies"
    )
    return 0
