"""The reference model of interleaved runs, and the cache of its calibrated latency.

Reference re-measurement: a fixed small model is timed in short windows between the targets of
an interleaved run (``R A B C D R E F G H R ...``). A load change slows the reference and the
targets next to it alike, so the ratio target/reference of one round cancels most of it; the
median ratio over rounds times the reference's *calibrated* latency gives a latency in
milliseconds that moves much less between invocations than any raw statistic (see
docs/measurement.md for the figures).

The calibrated latency is the reference's own estimate from the first run on a machine (for a
runtime version and thread count), kept in a small JSON cache so later invocations scale by the
same number. Delete the cache entry (or pass ``recalibrate=True`` to ``measure_many``) after the
machine changed or when the first calibration ran under heavy load; the record says where its
``calibrated_ms`` came from.

The model is built with ``onnx.helper`` (no other part of latbench), deterministically: three
3x3 convolutions with 32 channels on a 1x3x32x32 input, the shape and operator mix of a
NAS-Bench-201 cell, about 0.5 ms on one x86 core (a third to a tenth of an NB201 network).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from latbench._atomic import atomic_path

__all__ = [
    "REFERENCE_NAME",
    "calibration_path",
    "load_calibration",
    "reference_model",
    "store_calibration",
]

log = logging.getLogger(__name__)

REFERENCE_NAME = "latbench-reference-conv32"
CALIBRATION_FILE = "reference_calibration.json"


def reference_model(path: str | os.PathLike[str]) -> Path:
    """Write the reference ONNX model to ``path`` (same bytes every time) and return the path."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(20240201)
    nodes, inits = [], []
    prev, cin = "input", 3
    for i in range(3):
        w = (rng.standard_normal((32, cin, 3, 3)) * 0.1).astype(np.float32)
        b = np.zeros(32, np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(
            helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1])
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        prev, cin = f"r{i}", 32
    nodes.append(helper.make_node("GlobalAveragePool", [prev], ["output"]))
    graph = helper.make_graph(
        nodes,
        REFERENCE_NAME,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 32, 1, 1])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="latbench"
    )
    model.ir_version = 8
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(model.SerializeToString())
    return out


def calibration_path(configured: str | os.PathLike[str] | None = None) -> Path:
    """Where calibrations live: ``configured``, else ``$LATBENCH_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/latbench`` (``~/.cache/latbench``), file ``reference_calibration.json``."""
    if configured:
        return Path(configured)
    base = os.environ.get("LATBENCH_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
        base = os.path.join(xdg, "latbench")
    return Path(base) / CALIBRATION_FILE


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable reference calibration file %s: %s", path, exc)
        return {}
    return doc if isinstance(doc, dict) else {}


def load_calibration(path: Path, key: str) -> dict[str, Any] | None:
    """The calibration entry ``key`` (``{"calibrated_ms", "at", "loadavg", ...}``) or None."""
    entry = _read(path).get(key)
    if not isinstance(entry, dict):
        return None
    value = entry.get("calibrated_ms")
    # a hand-edited or damaged entry (NaN, 0, a negative, true) would scale every normalized_ms
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not (math.isfinite(value) and value > 0):
        log.warning(
            "ignoring reference calibration %r in %s: calibrated_ms = %r; expected a finite "
            "latency in ms > 0",
            key,
            path,
            value,
        )
        return None
    return entry


def store_calibration(path: Path, key: str, calibrated_ms: float, **info: Any) -> dict[str, Any]:
    """Store ``calibrated_ms`` under ``key`` (atomic replace) and return the entry.

    A cache that cannot be written is logged and skipped: the measurement still stands, with
    ``calibration`` saying the value came from this run only. So is a ``calibrated_ms`` that is
    not a finite latency > 0 (it is returned, never stored).
    """
    entry = {
        "calibrated_ms": float(calibrated_ms),
        "at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **info,
    }
    if not (math.isfinite(entry["calibrated_ms"]) and entry["calibrated_ms"] > 0):
        # not cached: every later invocation would scale by it (and NaN is not strict JSON)
        log.warning(
            "not storing the reference calibration %r: calibrated_ms = %r; expected a finite "
            "latency in ms > 0",
            key,
            calibrated_ms,
        )
        return entry
    doc = _read(path)
    doc[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
    except OSError as exc:
        log.warning("could not write the reference calibration to %s: %s", path, exc)
    return entry
