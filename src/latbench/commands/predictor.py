"""``latbench predictor``: fit, predict with, evaluate and compare latency predictors.

latbench predictor fit (--data FILE | --reference nb201) --device DEV --model NAME -o P.lbp
latbench predictor predict P.lbp (--archs FILE | --space nb201 --all | --sample N) -o out.csv
latbench predictor evaluate P.lbp --data FILE [--device DEV]
latbench predictor compare --reference nb201 --device DEV --models flops,ridge,gbm,gcn
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from latbench._atomic import atomic_path, same_file
from latbench._progress import Progress
from latbench.commands._archfile import read_archs
from latbench.errors import (
    ArchError,
    ConfigError,
    DatasetError,
    LatbenchError,
    PredictorError,
    reraised,
)
from latbench.predictors import PREDICTORS, create, load, save
from latbench.predictors.base import DEFAULT_DEVICE, GRAPH_SPACE
from latbench.predictors.encodings import space as get_space
from latbench.predictors.metrics import evaluate, top_k_for

log = logging.getLogger(__name__)


def read_data(path: str, device: str | None = None) -> pd.DataFrame:
    """A long table (space, arch, device, latency_ms) from any dataset file (store, CSV, Parquet,
    wide reference tables), read by :func:`latbench.datasets.read_table`; ``device`` names the
    device of a file without a device column (one device's samples)."""
    from latbench.datasets import read_table

    if Path(path).is_dir():
        raise DatasetError(f"data file {path!r} is a directory; expected a dataset file")
    if not Path(path).is_file():
        raise DatasetError(f"data file {path!r} does not exist")
    df: pd.DataFrame = read_table(path, device=device)
    if df.empty:
        raise DatasetError(
            f"{path} holds no measured rows; expected rows of space, arch, device, latency_ms"
        )
    return df


def _data(args: argparse.Namespace) -> pd.DataFrame:
    if getattr(args, "data", None) and getattr(args, "reference", None):
        raise ConfigError(
            f"--data {args.data} and --reference {args.reference}: expected one source of data"
        )
    if getattr(args, "data", None):
        dev = getattr(args, "device", None)
        one = dev if dev and dev != "all" and "," not in dev else None
        return read_data(args.data, one)
    if getattr(args, "reference", None):
        from latbench.datasets import load_reference

        return load_reference(args.reference)
    raise ConfigError("give --data FILE or --reference nb201|fbnet")


def _source(args: argparse.Namespace) -> str:
    """How the data of ``args`` is named in a message: the file, or the reference table."""
    data = getattr(args, "data", None)
    return str(data) if data else f"reference {getattr(args, 'reference', None)}"


def check_measured(df: pd.DataFrame, source: str) -> None:
    """Refuse a table with a latency that is missing, not finite, or not positive, naming the
    first such row by its architecture and device.

    Checked once, before any model is fitted or scored: the models and the metrics refuse
    such values too, but name them by their index in a training or test split, and only after
    the fits before them have run (a ``compare`` of several models).
    """
    y = pd.to_numeric(df.latency_ms, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(y) | (y <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        row = df.iloc[i]
        value = row.latency_ms
        if isinstance(value, int | float | np.number) and not isinstance(value, bool):
            value = float(value)  # nan, not np.float64(nan)
        raise DatasetError(
            f"{source}: latency_ms = {value!r} for {row.arch} on {row.device}; "
            f"expected finite positive milliseconds ({int(bad.sum())} such row(s); drop "
            "unmeasured rows first)"
        )


def check_archs(df: pd.DataFrame, space: str, source: str) -> None:
    """Refuse a row whose architecture is no architecture of ``space``, naming the data file.

    The predictor refuses it too, but names neither the file nor how many rows hold it, and a
    data file of many devices would be searched by hand for it. A predictor of graphs
    (``space="graph"``) builds each row's graph from the row's own space instead.
    """
    if space == GRAPH_SPACE:
        return
    sp = get_space(space)
    archs = df.arch.astype(str)
    for arch in dict.fromkeys(archs):
        try:
            sp.canonical(arch)
        except ArchError as exc:
            n = int((archs == arch).sum())
            raise ArchError(f"{source}: {exc} ({n} row(s) of that architecture)") from None


def _select(df: pd.DataFrame, device: str | None, *, one: str | None = None) -> pd.DataFrame:
    """The rows of ``device``: a name, a short name (``pixel3``), a glob (``'help/*'``), a
    comma-separated list of those, or ``all``. ``one`` names the command that scores a single
    device: several matches are then an error, not one table of mixed devices."""
    from latbench.predictors.monotonicity import select_devices

    devices = sorted(df.device.astype(str).unique())
    if device is None:
        if len(devices) != 1:
            raise ConfigError(
                f"the data holds {len(devices)} devices; pass --device one of: {', '.join(devices)}"
            )
        return df
    patterns = [d.strip() for d in device.split(",") if d.strip()]
    if not patterns:
        raise ConfigError(f"--device {device!r}: expected a device name, a glob or 'all'")
    sel: list[str] = []
    missing: list[str] = []
    for pattern in patterns:
        try:
            sel += [d for d in select_devices(devices, [pattern]) if d not in sel]
        except PredictorError:
            missing.append(pattern)
    if missing:
        raise ConfigError(
            f"device(s) {missing} not in the data; expected some of: {', '.join(devices)}"
        )
    if one is not None and len(sel) > 1:
        raise ConfigError(
            f"--device {device!r} matches {len(sel)} devices ({_listed(sel)}); {one} scores one "
            "device at a time: pass one name"
        )
    return df[df.device.astype(str).isin(sel)]


def _listed(names: list[str], most: int = 6) -> str:
    """``a, b, c`` or ``a, ..., f, ... (40 in all)``."""
    more = f", ... ({len(names)} in all)" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def _params(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        out = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--params {text!r} is not JSON: {exc}") from None
    if not isinstance(out, dict):
        raise ConfigError(f"--params {text!r}; expected a JSON object")
    return out


def check_seed(seed: Any, option: str = "--seed") -> None:
    """Refuse a seed numpy cannot take (a negative one) with a message naming it."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"{option} {seed!r}; expected a non-negative integer")


def _train_rows(df: Any, train_size: int, seed: int) -> Any:
    """The rows of ``train_size`` random architectures (every device's rows of each; 0: all).

    Architectures, not rows: with several devices, 900 random rows of a long table would
    give each device a few dozen, different ones, and a device measured on few architectures
    none at all; the BRP-NAS protocol trains on 900 architectures and tests on the rest. On
    one device the architectures are those of ``predictor compare``'s split with the same seed.
    """
    if not train_size:
        return df
    check_seed(seed)
    archs = df.arch.unique()
    if train_size > len(archs):
        devices = sorted(df.device.astype(str).unique())
        raise ConfigError(
            f"--train-size {train_size}: the data holds {len(archs)} architectures of "
            f"{_listed(devices)}; expected 1 to {len(archs)} (0: all of them)"
        )
    if train_size == len(archs):
        return df
    # the split of ``predictor compare`` and the benchmarks: the same seed, the same archs
    keep = set(archs[np.random.default_rng(seed).permutation(len(archs))[:train_size]])
    out = df[df.arch.isin(keep)]
    lost = sorted(set(df.device.astype(str)) - set(out.device.astype(str)))
    if lost:
        log.warning(
            "--train-size %d: no architecture drawn was measured on %s; %s left out",
            train_size,
            ", ".join(lost),
            "it is" if len(lost) == 1 else "they are",
        )
    return out


def _fit_cmd(args: argparse.Namespace) -> int:
    if getattr(args, "data", None) and same_file(args.output, args.data):
        # the predictor written over its training data would lose the measurements
        raise ConfigError(
            f"-o/--output {args.output!r} is the --data file; expected a new file for the "
            "predictor (it would be written over the measurements it is fitted on)"
        )
    df = _select(_data(args), args.device)
    check_measured(df, _source(args))
    spaces = df.space.unique()
    if len(spaces) != 1:
        raise ConfigError(f"the data mixes spaces {sorted(spaces)}; expected one")
    if args.train_size < 0:
        raise ConfigError(f"--train-size {args.train_size}; expected N >= 1 architectures (0: all)")
    check_seed(args.seed)
    df = _train_rows(df, args.train_size, args.seed)
    p = create(args.model, **_params(args.params))
    multi = df.device.nunique() > 1
    t0 = time.perf_counter()
    archs: list[Any] = df.arch.tolist()
    lat = df.latency_ms.to_numpy()
    devices = df.device.astype(str).tolist()
    space_name = str(spaces[0])
    prior_note = ""
    if args.graphs:
        archs, space_name = _as_graphs(p, args.model, df), GRAPH_SPACE
        p.fit(archs, lat, space=space_name, devices=devices)
        fit_s = time.perf_counter() - t0
        prior_note = f" (on the graphs of {spaces[0]} architectures: predicts any model graph)"
    elif multi and p.multi_device:
        # the few-shot base, with the embed prior learned from the same rows, so that
        # `latbench adapt` uses it by default
        from latbench.predictors.adapt import fit_base, stored_prior

        fit_base(
            p,
            archs,
            lat,
            space=space_name,
            devices=devices,
            embed_prior=not args.no_embed_prior,
        )
        prior = stored_prior(p)
        prior_s = 0.0 if prior is None else prior.fit_seconds
        if prior is not None:
            prior_note = f"; embed prior for adaptation in {prior_s:.1f} s"
        fit_s = time.perf_counter() - t0 - prior_s
    else:
        # one device's rows: the model keeps the data's name for it (not "default")
        p.fit(archs, lat, space=space_name, devices=devices)
        fit_s = time.perf_counter() - t0
    save(p, args.output)
    print(
        f"fitted {args.model} on {len(df)} rows of {df.arch.nunique()} architectures "
        f"({', '.join(p.devices_)}) in "
        f"{fit_s:.1f} s{prior_note} -> {args.output}"
    )
    return 0


def _graph_models() -> list[str]:
    """The registered models that read graphs (an ensemble does when its members do)."""
    out = []
    for name in PREDICTORS.names():
        flag = getattr(PREDICTORS.get(name), "accepts_graphs", False)
        if flag is True:
            out.append(name)
    return out


def _input_size(shape: Any) -> tuple[int | None, int | None]:
    """``(batch, resolution)`` of a store row's ``input_shape`` (JSON ``{name: [N, C, H, W]}``),
    ``(None, None)`` where the row has none (a reference table: the space's own size)."""
    if not isinstance(shape, str) or not shape.strip():
        return None, None
    try:
        dims = next(iter(json.loads(shape).values()))
        return int(dims[0]), int(dims[2])
    except (ValueError, TypeError, IndexError, StopIteration, AttributeError):
        return None, None


def _as_graphs(p: Any, model: str, df: pd.DataFrame) -> list[Any]:
    """``fit --graphs``: the rows' architectures as the graphs that were measured
    (:func:`_row_graphs`), for a model that reads graphs."""
    if not p.accepts_graphs:
        raise ConfigError(
            f"--graphs: {model} reads search-space architectures, not graphs; expected one of "
            f"{', '.join(_graph_models())}"
        )
    return _row_graphs(df)


def _row_graphs(df: pd.DataFrame) -> list[Any]:
    """The graph each row's latency belongs to: its architecture of its space, at the batch and
    resolution of its ``input_shape`` (a store collected with ``--resolution``), else the
    space's defaults; each distinct one built once."""
    shapes = df["input_shape"] if "input_shape" in df.columns else [None] * len(df)
    keys = [
        (sp, a, *_input_size(shape))
        for sp, a, shape in zip(df.space.astype(str), df.arch.astype(str), shapes, strict=True)
    ]
    built = {
        k: get_space(k[0]).build(k[1], batch=k[2] or 1, resolution=k[3])
        for k in dict.fromkeys(keys)
    }
    return [built[k] for k in keys]


def _predict_onnx(args: argparse.Namespace, p: Any) -> int:
    """``predict --onnx FILE ...``: a row per model, and a warning per model beyond what the
    predictor was trained on."""
    from latbench.spaces.onnx_import import from_onnx

    others = [o for o, v in (("--archs", args.archs), ("--all", args.all),
                             ("--sample", args.sample), ("--space", args.space))
              if v not in (None, False)]  # fmt: skip
    if others:
        raise ConfigError(f"--onnx and {' and '.join(others)}: expected models or architectures")
    if p.space_ != GRAPH_SPACE:
        raise ConfigError(
            f"--onnx: {args.predictor} predicts {p.space_} architectures, not model graphs; "
            f"expected a predictor fitted on graphs (latbench predictor fit ... --model kernel "
            f"--graphs; models that read graphs: {', '.join(_graph_models())})"
        )
    for path in args.onnx:
        if args.output != "-" and same_file(args.output, path):
            raise ConfigError(
                f"-o/--output {args.output!r} is the --onnx file {path!r}; expected a new file "
                "for the predictions (it would be written over the model)"
            )
    graphs = []
    for path in args.onnx:
        try:
            graphs.append(from_onnx(path))
        except LatbenchError as exc:
            # which of the --onnx files, where the import's message does not say
            raise (exc if path in str(exc) else reraised(exc, f"{path}: {exc}")) from None
    device = resolve_device(p, args.device)
    if args.per_kernel:
        out = _kernel_rows(p, args.predictor, {"model": list(args.onnx)}, graphs)
    else:
        mean, std = p.predict_with_uncertainty(graphs, device=device)
        out = pd.DataFrame({"model": list(args.onnx), "predicted_latency_ms": mean})
        if std is not None:
            out["uncertainty_ms"] = std
    for path, g in zip(args.onnx, graphs, strict=True):
        note = p.coverage_note(g)
        if note:
            log.warning(
                "%s: beyond what %s was trained on: %s; its prediction is an extrapolation",
                path,
                args.predictor,
                note,
            )
    write_table(out, args.output)
    what = f" ({len(out)} kernels)" if args.per_kernel else ""
    print(f"predicted {len(graphs)} model(s){what} -> {args.output}", file=sys.stderr)
    return 0


def _kernel_rows(p: Any, label: str, keys: dict[str, list[Any]], inputs: list[Any]) -> pd.DataFrame:
    """``--per-kernel``: a row per fused kernel of each input (``keys``: the columns naming the
    input, ``model`` or ``space, arch``), its features and predicted latency; the kernels of an
    input sum to its prediction."""
    from latbench.predictors import encodings as enc
    from latbench.predictors.kernel import KernelPredictor

    if not isinstance(p, KernelPredictor):
        raise ConfigError(
            f"--per-kernel: {label} is a {p.name} predictor; the breakdown by kernel needs a "
            "kernel predictor (--model kernel)"
        )
    space = p.space_
    rows = []
    for i, x in enumerate(inputs):
        kernels = enc.arch_kernels(space, x)
        times = p.predict_kernels(list(kernels))
        for j, (k, t) in enumerate(zip(kernels, times, strict=True)):
            row = {c: v[i] for c, v in keys.items()}
            row.update(kernel_index=j, type=k["type"], nodes=" ".join(k["nodes"]))
            row.update({f: k[f] for f in enc.KERNEL_NUMERIC})
            row["predicted_latency_ms"] = float(t)
            rows.append(row)
    return pd.DataFrame(rows)


def _predict_cmd(args: argparse.Namespace) -> int:
    table_format(args.output)
    if args.output != "-":
        # the table written over the predictor (or the --archs list) would lose it
        for flag, path in (("predictor", args.predictor), ("--archs", args.archs)):
            if path and same_file(args.output, path):
                raise ConfigError(
                    f"-o/--output {args.output!r} is the {flag} file; expected a new file for "
                    "the predictions (it would be written over that file)"
                )
    p = load(args.predictor)
    if args.onnx:
        return _predict_onnx(args, p)
    if p.space_ == GRAPH_SPACE and not args.space:
        from latbench.spaces import SPACES

        raise ConfigError(
            f"{args.predictor} predicts graphs (it was fitted with space 'graph'); pass "
            f"--onnx FILE for a model, or --space {' or '.join(SPACES.names())} to predict "
            "that space's architectures through their graphs"
        )
    if args.space and p.space_ != GRAPH_SPACE and args.space != p.space_:
        raise ConfigError(
            f"--space {args.space}, but {args.predictor} predicts architectures of space "
            f"{p.space_!r}"
        )
    given = [
        o
        for o, v in (("--archs", args.archs), ("--all", args.all), ("--sample", args.sample))
        if v not in (None, False)
    ]
    if len(given) > 1:
        raise ConfigError(f"{' and '.join(given)}: expected one of --archs, --all, --sample")
    space = args.space or p.space_
    if args.all:
        archs = get_space(space).enumerate_all()
    elif args.sample is not None:
        if args.sample < 1:
            raise ConfigError(f"--sample {args.sample}; expected an integer >= 1")
        archs = get_space(space).sample(args.sample, seed=args.seed)
    elif args.archs:
        archs = read_archs(args.archs, get_space(space))
    else:
        raise ConfigError("give --archs FILE, --all, --sample N or --onnx FILE")
    device = resolve_device(p, args.device)
    inputs = _inputs(p, pd.DataFrame({"space": space, "arch": archs}))
    if args.per_kernel:
        keys = {"space": [space] * len(archs), "arch": list(archs)}
        out = _kernel_rows(p, args.predictor, keys, inputs)
        write_table(out, args.output)
        print(
            f"predicted {len(archs)} architectures ({len(out)} kernels) -> {args.output}",
            file=sys.stderr,
        )
        return 0
    mean, std = p.predict_with_uncertainty(inputs, device=device)
    out = pd.DataFrame({"space": space, "arch": archs, "predicted_latency_ms": mean})
    if std is not None:
        out["uncertainty_ms"] = std
    write_table(out, args.output)
    print(f"predicted {len(archs)} architectures -> {args.output}", file=sys.stderr)
    return 0


def _inputs(p: Any, df: pd.DataFrame) -> list[Any]:
    """What ``p`` predicts for the rows of ``df`` (``space``, ``arch``): the architecture
    strings, or for a predictor fitted on graphs (``space="graph"``) the graphs the rows were
    measured on (:func:`_row_graphs`), as ``fit --graphs`` built them."""
    if p.space_ != GRAPH_SPACE:
        return df.arch.tolist()
    return _row_graphs(df)


#: compression suffixes pandas infers from a CSV or JSON name
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip")
#: table formats latbench does not write: a name ending so would get CSV under a name that
#: says otherwise (commas in a .tsv, a text file a spreadsheet cannot open as .xlsx)
_OTHER_FORMATS = frozenset(
    [
        ".tsv",
        ".tab",
        ".xlsx",
        ".xls",
        ".ods",
        ".feather",
        ".arrow",
        ".h5",
        ".hdf5",
        ".pkl",
        ".pickle",
        ".orc",
        ".avro",
        ".jsonl",
        ".ndjson",
        ".lbp",
    ]
)


def table_format(output: str) -> str:
    """``csv``, ``json`` or ``parquet``: the format :func:`write_table` gives ``output``, by its
    name. Checked before the predictions are computed, so that a name the table cannot honour
    (``.tsv``, ``.xlsx``, a compressed ``.parquet.gz``) is refused rather than written as CSV."""
    if output == "-":
        return "csv"
    name = Path(output).name.lower()
    compressed = next((c for c in _COMPRESSED if name.endswith(c)), "")
    base = Path(name[: len(name) - len(compressed)]).suffix
    expected = "a name ending in .csv, .csv.gz, .json, .parquet or .pq (or - for stdout)"
    if base in (".parquet", ".pq"):
        if compressed:
            raise ConfigError(
                f"-o/--output {output!r}: a parquet table compresses itself, and {compressed} "
                f"is no suffix it can be written with; expected {expected}"
            )
        return "parquet"
    if base == ".json":
        return "json"
    if base in _OTHER_FORMATS:
        raise ConfigError(
            f"-o/--output {output!r}: latbench does not write {base} tables (it would write CSV "
            f"under that name); expected {expected}"
        )
    return "csv"


def write_table(df: pd.DataFrame, output: str) -> None:
    """``df`` to ``output`` in the format its name says (:func:`table_format`): ``.parquet``,
    ``.json`` (a list of records), CSV otherwise; ``.gz``, ``.bz2``, ... compress CSV and JSON;
    ``-`` is CSV on stdout."""
    fmt = table_format(output)
    if output == "-":
        df.to_csv(sys.stdout, index=False)
        return
    with atomic_path(output) as tmp:
        if fmt == "parquet":
            df.to_parquet(tmp, index=False)
        elif fmt == "json":
            df.to_json(tmp, orient="records", indent=1)
        else:
            df.to_csv(tmp, index=False)


def resolve_device(p: Any, device: str | None, option: str = "--device") -> str | None:
    """The predictor's name for ``device``: itself when the predictor knows it, else the one
    device its short name or glob matches (``pixel3`` -> ``help/pixel3``); ``option`` names
    the option in the message."""
    from latbench.predictors.monotonicity import select_devices

    known = list(getattr(p, "devices_", []) or [])
    if device is None or device in known or not known or known == [DEFAULT_DEVICE]:
        return device  # a model fitted without a device name serves any
    try:
        hits = select_devices(known, [device])
    except PredictorError:
        if len(known) == 1:
            return device  # the predictor's own error names the one device it knows
        raise ConfigError(
            f"{option} {device!r} matches none of the predictor's {len(known)} devices; "
            f"expected one of {_listed(known)}"
        ) from None
    if len(hits) > 1:
        raise ConfigError(
            f"{option} {device!r} matches {len(hits)} devices ({_listed(hits)}); pass one"
        )
    return hits[0]


def _evaluate_cmd(args: argparse.Namespace) -> int:
    p = load(args.predictor)
    df = _data(args)
    spaces = sorted(df.space.astype(str).unique())
    if p.space_ != GRAPH_SPACE and spaces != [p.space_]:
        raise ConfigError(
            f"{args.data} holds architectures of space(s) {', '.join(spaces)}; "
            f"{args.predictor} predicts space {p.space_!r}"
        )
    device = args.device
    if device is None and len(p.devices_) == 1 and p.devices_[0] in set(df.device):
        device = p.devices_[0]
    if device is None and len(p.devices_) > 1:
        return _evaluate_each_device(p, df, _source(args))
    if device is not None and len(p.devices_) > 1:
        sub = _select(df, device)
        if sub.device.nunique() > 1:  # a glob or list: a row per device, as without --device
            return _evaluate_each_device(p, sub, _source(args))
    df = _select(df, device, one="predictor evaluate")
    check_measured(df, _source(args))
    check_archs(df, p.space_, _source(args))
    # the rows' device (the data's name for a short name or glob) must be one the predictor
    # knows: scoring one device's predictions against another's measurements is no score of
    # the predictor (a model fitted without a device name, "default", serves any)
    measured_on = str(df.device.iloc[0])
    device = resolve_device(p, measured_on)
    if device not in p.devices_ and p.devices_ != [DEFAULT_DEVICE]:
        raise PredictorError(
            f"{_source(args)} holds measurements of {measured_on}; {args.predictor} was fitted on "
            f"{_listed(list(p.devices_))}: expected rows of "
            f"{'that device' if len(p.devices_) == 1 else 'one of them'} (--device picks a "
            "device's rows of a table of several; latbench adapt fits a new device)"
        )
    pred = p.predict(_inputs(p, df), device=device)
    y = df.latency_ms.to_numpy(dtype=np.float64)
    m = _scores(y, pred, k=top_k_for(len(df)))
    print(
        f"{args.predictor} ({p.name}, {device}) on {_source(args)}: {len(df)} measured "
        f"row(s) of {measured_on}"
    )
    for k, v in m.items():
        print(f"{k:10s} {'n/a' if np.isnan(v) else f'{v:.4f}'}")
    why = _unranked(y)
    if why:
        print(f"n/a: {why}")
    return 0


def _unranked(y: np.ndarray) -> str | None:
    """Why measurements ``y`` have no order to score a ranking against, or None."""
    if len(y) < 2:
        return (
            f"{len(y)} measured row; the rank metrics (spearman, kendall, top-k) need at least "
            "2 rows with different latencies"
        )
    if np.all(y == y[0]):
        return (
            f"every measured latency is {float(y[0]):g} ms; the rank metrics (spearman, kendall, "
            "top-k) need at least 2 different latencies"
        )
    return None


def _scores(y: np.ndarray, pred: Any, k: int) -> dict[str, float]:
    """:func:`~latbench.predictors.metrics.evaluate`, with the rank metrics NaN (shown n/a)
    where the measurements have no order: the metrics call that 0.0 (Spearman, Kendall) and 1.0
    (the top 1 of 1 row), which read as a predictor that ranks nothing, or perfectly, and would
    drag a mean over devices, when the data cannot tell."""
    m = _in_percent(evaluate(y, pred, k=k))
    if _unranked(y):
        for key in ("spearman", "kendall", f"top{k}"):
            m[key] = float("nan")
    return m


def _in_percent(m: dict[str, float]) -> dict[str, float]:
    """The metrics as the commands print them: the shares within +-5 / +-10 % in percent, named
    so (``acc10_pct``), as ``mape_pct`` is; a bare 0.68 beside ``mape_pct 8.2`` reads as 0.68 %."""
    return {
        (f"{k}_pct" if k in ("acc5", "acc10") else k): (100.0 * v if k in ("acc5", "acc10") else v)
        for k, v in m.items()
    }


def _evaluate_each_device(p: Any, df: Any, source: str) -> int:
    """A multi-device predictor on data of several devices: a row per device both know."""
    shared = [d for d in sorted(set(df.device.astype(str))) if d in set(p.devices_)]
    if not shared:
        raise ConfigError(
            f"{p.name} knows devices {', '.join(p.devices_)}; the data holds "
            f"{', '.join(sorted(set(df.device.astype(str))))}: expected a device in both "
            "(or --device DEV to score one of the predictor's devices on the data's rows)"
        )
    check_measured(df[df.device.astype(str).isin(shared)], source)
    check_archs(df[df.device.astype(str).isin(shared)], p.space_, source)
    rows = []
    ys = {dev: df[df.device == dev].latency_ms.to_numpy(dtype=np.float64) for dev in shared}
    # one k for every device, so that the top-k column and its mean cover them all; a device
    # whose rows have no order (one row, one latency) has no top-k and does not set k: its one
    # row would make every device's k 1
    ranked = [len(y) for y in ys.values() if not _unranked(y)]
    k = top_k_for(min(ranked or [len(y) for y in ys.values()]))
    unranked: list[str] = []
    for dev in shared:
        sub = df[df.device == dev]
        pred = p.predict(_inputs(p, sub), device=dev)
        m = _scores(ys[dev], pred, k=k)
        if _unranked(ys[dev]):
            unranked.append(dev)
        rows.append({"device": dev, "n": len(sub), **m})
    table = pd.DataFrame(rows)
    skipped = sorted(set(df.device.astype(str)) - set(shared))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="n/a"))
    if len(rows) > 1:
        # a metric that is n/a for a device is left out of its mean (pandas skips NaN)
        means = table.drop(columns=["device", "n"]).mean()
        print(
            f"mean over {len(rows)} devices: "
            + ", ".join(f"{k} {'n/a' if np.isnan(v) else f'{v:.4f}'}" for k, v in means.items())
        )
    if unranked:
        print(
            f"n/a: the rows of {', '.join(unranked)} have no order to rank (fewer than 2 "
            "rows, or one latency)"
            + ("; their rank metrics are left out of the mean" if len(rows) > 1 else "")
        )
    if skipped:
        print(f"not scored (the predictor was not fitted on them): {', '.join(skipped)}")
    return 0


def _scatter_panel(
    ax: Any, model: str, y: np.ndarray, pred: np.ndarray, scores: dict[str, float]
) -> None:
    """Predicted against measured, log-log (latencies span several decades: on linear axes
    the fast architectures, the ones a search wants, are one blob at the origin), with the
    +-10 % band; a prediction <= 0 (a linear model's) has no place on it and is counted."""
    ok = (pred > 0) & np.isfinite(pred)
    ax.scatter(y[ok], pred[ok], s=2, alpha=0.4, lw=0)
    lo = float(min(y.min(), pred[ok].min() if ok.any() else y.min())) * 0.8
    hi = float(max(y.max(), pred[ok].max() if ok.any() else y.max())) * 1.25
    line = np.array([lo, hi])
    ax.plot(line, line, "-", color="#24292f", lw=0.8)
    ax.plot(line, line * 1.1, "--", color="#8c959f", lw=0.7)
    ax.plot(line, line / 1.1, "--", color="#8c959f", lw=0.7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    title = f"{model}: Spearman {scores['spearman']:.3f}, ±10 % {scores['acc10_pct']:.1f} %"
    if not ok.all():
        title += f"\n{int((~ok).sum())} prediction(s) <= 0 not drawn"
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.grid(which="both", alpha=0.3)


def _compare_cmd(args: argparse.Namespace) -> int:
    df = _select(_data(args), args.device, one="predictor compare")
    check_measured(df, _source(args))
    args.device = str(df.device.iloc[0])  # the data's name for a short name or glob
    space = str(df.space.iloc[0])
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise ConfigError(
            f"--models {args.models!r} names no model; expected a comma-separated list of "
            f"{', '.join(PREDICTORS.names())}"
        )
    for m in models:
        PREDICTORS.get(m)
    if df.arch.duplicated().any():
        # an architecture in both the training and the test split would leak: one row each
        n_dup = int(df.arch.duplicated().sum())
        log.warning(
            "%d repeated measurement(s) of an architecture in the data; using the geometric "
            "mean of each (the splits are of distinct architectures)",
            n_dup,
        )
        df = (
            df.assign(_log=np.log(df.latency_ms.to_numpy()))
            .groupby("arch", sort=False)["_log"]
            .mean()
            .pipe(np.exp)
            .rename("latency_ms")
            .reset_index()
        )
    archs = df.arch.tolist()
    y = df.latency_ms.to_numpy()
    if not 2 <= args.train_size <= len(archs) - 2:
        raise ConfigError(
            f"--train-size {args.train_size}: the data holds {len(archs)} architectures of "
            f"{args.device}; expected 2 to {len(archs) - 2}, leaving the rest to test "
            f"(e.g. {int(0.7 * len(archs))}, 70 %)"
        )
    if args.seeds < 1:
        raise ConfigError(f"--seeds {args.seeds}; expected at least 1")
    rows = []
    scatter: dict[str, tuple[np.ndarray, np.ndarray, dict[str, float]]] = {}
    # a bar on a terminal; in a log a line after the first fit, every 30 s and at the end
    bar = Progress(
        True, args.seeds * len(models), f"compare {args.device}", unit="fit", leave=False
    )
    try:
        for seed in range(args.seeds):
            perm = np.random.default_rng(seed).permutation(len(archs))
            tr, te = perm[: args.train_size], perm[args.train_size :]
            for m in models:
                bar.status({"model": m, "seed": seed})
                t0 = time.perf_counter()
                p = create(m).fit([archs[i] for i in tr], y[tr], space=space)
                fit_s = time.perf_counter() - t0
                pred = p.predict([archs[i] for i in te])
                scores = _in_percent(evaluate(y[te], pred, k=top_k_for(len(te))))
                rows.append({"model": m, "seed": seed, "fit_s": fit_s, **scores})
                if seed == 0:
                    scatter[m] = (y[te], pred, scores)
                bar.update({"model": m, "seed": seed})
    finally:
        bar.close()
    res = pd.DataFrame(rows)
    table = res.drop(columns="seed").groupby("model", sort=False).mean()
    if args.seeds > 1:  # the seed-to-seed spread of the ranking metric
        rho = res.groupby("model", sort=False)["spearman"]
        table["spearman_min"] = rho.min()
        table["spearman_max"] = rho.max()
    if args.csv:
        with atomic_path(args.csv) as tmp:
            res.to_csv(tmp, index=False)
    print(
        f"{args.device}: {args.train_size} training architectures, {len(archs) - args.train_size} "
        f"test, {args.seeds} seed(s); means over seeds"
    )
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(models), figsize=(3.4 * len(models), 3.6), squeeze=False)
        for ax, m in zip(axes[0], models, strict=True):
            _scatter_panel(ax, m, *scatter[m])
        fig.suptitle(
            f"{args.device}: {len(archs) - args.train_size} test architectures (seed 0)",
            fontsize=9,
        )
        fig.tight_layout()
        try:
            with atomic_path(args.plot) as tmp:  # an interrupted write leaves no half image
                fig.savefig(tmp, dpi=120)
        finally:
            plt.close(fig)
        print(f"scatter plot -> {args.plot}")
    if args.csv:
        print(f"per-seed rows -> {args.csv}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("predictor", help="fit, apply, evaluate and compare latency predictors")
    ps = p.add_subparsers(dest="predictor_command", metavar="ACTION", required=True)

    f = ps.add_parser("fit", help="fit a predictor and save it (.lbp)")
    f.add_argument("--data", help="long table (space, arch, device, latency_ms), CSV or Parquet")
    f.add_argument("--reference", choices=["nb201", "fbnet"], help="a bundled reference table")
    f.add_argument(
        "--device",
        "--devices",
        dest="device",
        help="device(s) to fit on: a name, a glob ('help/*'), a comma-separated list of "
        "those, or 'all' (several devices: a multi-device model)",
    )
    f.add_argument("--model", default="default", help=f"one of {', '.join(PREDICTORS.names())}")
    f.add_argument("--params", help="JSON object of model settings, e.g. '{\"epochs\": 50}'")
    f.add_argument(
        "--train-size",
        type=int,
        default=0,
        help="fit on N random architectures, with every selected device's rows of them (0: all)",
    )
    f.add_argument("--seed", type=int, default=0)
    f.add_argument(
        "--no-embed-prior",
        action="store_true",
        help="multi-device fits: do not learn and store the embed prior that latbench adapt "
        "uses by default",
    )
    f.add_argument(
        "--graphs",
        action="store_true",
        help="fit on the architectures' graphs (flops, kernel, gcn): the predictor then "
        "predicts any model graph, ONNX files included (predict --onnx)",
    )
    f.add_argument("-o", "--output", required=True, help="predictor file to write (.lbp)")
    f.set_defaults(handler=_fit_cmd)

    pr = ps.add_parser("predict", help="predict latencies with a saved predictor")
    pr.add_argument("predictor")
    pr.add_argument("--archs", help="architectures: a text file (one a line) or CSV with 'arch'")
    pr.add_argument("--space", help="space of the architectures (default: the predictor's)")
    pr.add_argument("--all", action="store_true", help="every architecture of --space")
    pr.add_argument(
        "--sample", type=int, metavar="N", help="N random architectures of --space (seeded)"
    )
    pr.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    pr.add_argument(
        "--onnx",
        action="append",
        metavar="FILE",
        help="an ONNX model to predict (repeat for several), with a predictor fitted on graphs "
        "(fit --graphs)",
    )
    pr.add_argument(
        "--per-kernel",
        action="store_true",
        help="a kernel predictor: a row per fused kernel (type, nodes, sizes, predicted ms) "
        "instead of a row per model, as nn-Meter breaks a prediction down",
    )
    pr.add_argument(
        "--device", help="device of a multi-device predictor (a name, short name or glob of one)"
    )
    pr.add_argument(
        "-o",
        "--output",
        required=True,
        help="table to write: .csv, .csv.gz, .parquet or .json (by the name); - is stdout",
    )
    pr.set_defaults(handler=_predict_cmd, stdout_options=("output",))

    from latbench.commands import _profile_fit

    _profile_fit.add_parser(ps)

    e = ps.add_parser("evaluate", help="metrics of a saved predictor on measured data")
    e.add_argument("predictor")
    e.add_argument("--data", required=True, help="measured rows (any format datasets reads)")
    e.add_argument(
        "--device",
        help="score this device's rows (a glob or list: each matching device, for a "
        "multi-device predictor); without it a multi-device predictor scores each device of "
        "the data it was fitted on, a row each, and their mean",
    )
    e.set_defaults(handler=_evaluate_cmd)

    c = ps.add_parser("compare", help="BRP-NAS protocol: N train, rest test, several seeds")
    c.add_argument("--data", help="long table (space, arch, device, latency_ms), CSV or Parquet")
    c.add_argument("--reference", choices=["nb201", "fbnet"], help="a bundled reference table")
    c.add_argument(
        "--device",
        required=True,
        help="the device to compare on (a name, or a glob that matches one)",
    )
    c.add_argument(
        "--models",
        default="flops,ridge,gbm,gcn",
        help=f"comma list of {', '.join(PREDICTORS.names())} (default: flops,ridge,gbm,gcn)",
    )
    c.add_argument(
        "--train-size", type=int, default=900, help="training architectures (default 900)"
    )
    c.add_argument(
        "--seeds", type=int, default=3, help="random splits 0..N-1, the same for every model (3)"
    )
    c.add_argument("--plot", help="write a predicted-vs-measured scatter plot (PNG)")
    c.add_argument("--csv", help="write every (model, seed) row of metrics to this CSV")
    c.set_defaults(handler=_compare_cmd)
