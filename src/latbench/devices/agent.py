"""The on-device agent: measures models on a board with the same harness latbench uses locally.

latbench copies this file, together with the standard-library measurement modules
(:mod:`latbench.profilers.harness`, ``stats``, ``record``, ``env``, ``counters``, ``runtimes``,
``task`` and the tiny ``latbench.errors`` / ``latbench._registry``), into a temporary directory on
the board and starts it once per connection::

    python3 agent.py serve [--cpus 2,3] [--version 0.1.0]

It then reads one JSON request per line on stdin and answers one JSON line on stdout:

* ``{"op": "measure", "model": path, "runtime": ..., "threads": ..., "batch": ..., "settings":
  {...}, "per_op": ..., "counters": ..., "options": {...}, "seed": ..., "device": ...,
  "device_fingerprint": ...}`` -> ``{"ok": true, "measurement": {...}}`` (a
  :class:`~latbench.profilers.record.Measurement` as a dict) or ``{"ok": false, "error": ...,
  "type": ...}``;
* ``{"op": "describe"}`` -> ``{"ok": true, "describe": {...}}`` (environment, runtimes,
  ``vcgencmd get_throttled`` output where the board has it);
* ``{"op": "quit"}`` -> exits.

The first line it prints is ``{"hello": pid, ...}``, so the host knows the process to kill if a
request hangs. Only the standard library and the board's runtime (``onnxruntime``,
``ai_edge_litert`` or ``tflite_runtime``, with numpy) are needed; a board with ``tflite_runtime``
is served by aliasing it as ``ai_edge_litert`` (same ``Interpreter`` API).

``python3 agent.py measure --request '{...}'`` runs one request and exits (for debugging).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import traceback
import types
from typing import Any

PROTOCOL_VERSION = 1

#: record fields sent as packed little-endian float64 (thousands of samples decode in a blink)
PACKED_FIELDS = ("samples_ms", "warmup_ms")


def pack_floats(values: list[float]) -> dict[str, str]:
    """A list of floats as ``{"f64le": base64}`` (exact, and ~4x smaller than JSON text)."""
    raw = struct.pack(f"<{len(values)}d", *values)
    return {"f64le": base64.b64encode(raw).decode("ascii")}


def unpack_floats(obj: Any) -> list[float]:
    """Inverse of :func:`pack_floats`; plain lists pass through.

    Raises ValueError, naming what came, for anything else: text that is not base64, a byte
    count that is no multiple of 8 (a reply cut short), a string or a number in place of the
    list (``list("abc")`` would be three "samples").
    """
    if isinstance(obj, dict) and "f64le" in obj:
        text = obj["f64le"]
        try:
            raw = base64.b64decode(text, validate=True) if isinstance(text, str) else None
        except ValueError:  # binascii.Error
            raw = None
        if raw is None or len(raw) % 8:
            got = f"{len(raw)} bytes" if raw is not None else f"{str(text)[:40]!r}"
            raise ValueError(
                f"packed floats {{'f64le': ...}} hold {got}; expected base64 of a multiple of 8 "
                "bytes (little-endian float64)"
            )
        return list(struct.unpack(f"<{len(raw) // 8}d", raw))
    if not isinstance(obj, (list, tuple)):
        raise ValueError(
            f"samples {str(obj)[:60]!r} ({type(obj).__name__}); expected a list of numbers or "
            "{'f64le': base64}"
        )
    return list(obj)


class TruncatedModel(OSError):
    """The pushed model file is shorter than the host's (a write failed silently)."""


def _bootstrap_path() -> None:
    """Make the shipped ``latbench`` package (next to this file) win over any installed one."""
    here = os.path.dirname(os.path.abspath(__file__))
    if os.path.isdir(os.path.join(here, "latbench")) and sys.path[0] != here:
        sys.path.insert(0, here)


def _alias_tflite_runtime() -> str | None:
    """Serve ``litert`` from ``tflite_runtime`` on boards without ``ai_edge_litert``."""
    try:
        importlib.import_module("ai_edge_litert.interpreter")
        return "ai_edge_litert"
    except ImportError:
        pass
    try:
        interp = importlib.import_module("tflite_runtime.interpreter")
        tfl = importlib.import_module("tflite_runtime")
    except ImportError:
        return None
    pkg = types.ModuleType("ai_edge_litert")
    pkg.__version__ = getattr(tfl, "__version__", "")  # type: ignore[attr-defined]
    pkg.interpreter = interp  # type: ignore[attr-defined]
    sys.modules["ai_edge_litert"] = pkg
    sys.modules["ai_edge_litert.interpreter"] = interp
    return "tflite_runtime"


_DISTRIBUTIONS = {
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "ai_edge_litert": ("ai-edge-litert", "ai-edge-litert-nightly"),
    "tflite_runtime": ("tflite-runtime", "tflite_runtime"),
    "numpy": ("numpy",),
}


def _runtime_versions() -> dict[str, str]:
    """Installed runtime packages and versions, without importing them (imports are slow)."""
    from importlib import metadata, util

    out: dict[str, str] = {}
    for module, dists in _DISTRIBUTIONS.items():
        if util.find_spec(module) is None:
            out[module] = f"unavailable: no module named {module!r}"
            continue
        out[module] = "installed"
        for dist in dists:
            try:
                out[module] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


def _vcgencmd() -> str | None:
    exe = shutil.which("vcgencmd")
    if exe is None:
        return None
    try:
        res = subprocess.run(
            [exe, "get_throttled"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip() or None


def describe() -> dict[str, Any]:
    """The board's environment (``collect_env``), cpuinfo excerpt, runtimes and vcgencmd."""
    from latbench.profilers.env import collect_env

    env = collect_env()
    env.pop("pid", None)
    env["runtimes"] = _runtime_versions()
    versions = env["runtimes"]
    env["litert_package"] = next(
        (m for m in ("ai_edge_litert", "tflite_runtime") if versions[m][:1].isdigit()), None
    )
    env["vcgencmd_get_throttled"] = _vcgencmd()
    return env


def measure(req: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement request with :func:`latbench.profilers.task.run_measurement`."""
    from latbench.profilers.harness import HarnessSettings
    from latbench.profilers.task import MeasureSpec, run_measurement

    expected = req.get("model_bytes")
    if expected is not None:
        size = os.path.getsize(str(req["model"]))
        if size != int(expected):
            raise TruncatedModel(
                f"the model file {req['model']} has {size} bytes, expected {expected} "
                "(the copy was cut short: is the disk full?)"
            )
    if req.get("runtime") == "litert":
        _alias_tflite_runtime()
    spec = MeasureSpec(
        model=req["model"],
        runtime=str(req.get("runtime", "onnxruntime")),
        threads=req.get("threads", 1),
        batch=req.get("batch"),
        settings=HarnessSettings.from_mapping(req.get("settings") or {}),
        per_op=bool(req.get("per_op", False)),
        counters=bool(req.get("counters", False)),
        options=dict(req.get("options") or {}),
        seed=int(req.get("seed", 0)),
        device=str(req.get("device", "remote")),
        device_fingerprint=str(req.get("device_fingerprint", "")),
    )
    d = run_measurement(spec).to_dict()
    for key in PACKED_FIELDS:
        d[key] = pack_floats(d[key])
    return d


def handle(req: dict[str, Any]) -> dict[str, Any]:
    """One request -> one reply (never raises: errors are reported in the reply)."""
    op = req.get("op")
    try:
        if op == "measure":
            try:
                return {"ok": True, "measurement": measure(req)}
            finally:
                if req.get("remove_model"):  # saves the host a round trip per model
                    with contextlib.suppress(OSError):
                        os.remove(str(req["model"]))
        if op == "describe":
            return {"ok": True, "describe": describe()}
        if op == "ping":
            return {"ok": True}
        return {"ok": False, "error": f"unknown op {op!r}; expected measure, describe, ping"}
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the host as data
        return {
            "ok": False,
            "type": type(exc).__name__,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(limit=6),
        }


def serve(stdin: Any, stdout: Any) -> int:
    """The request loop: one JSON line in, one JSON line out, until ``quit`` or EOF."""
    hello = {
        "hello": os.getpid(),
        "protocol": PROTOCOL_VERSION,
        "python": sys.version.split()[0],
        "cwd": os.getcwd(),
    }
    stdout.write(json.dumps(hello) + "\n")
    stdout.flush()
    for line in stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
        except json.JSONDecodeError as exc:
            reply: dict[str, Any] = {"ok": False, "error": f"bad request line: {exc}"}
        else:
            if not isinstance(req, dict):  # req.get would kill the agent with a traceback
                reply = {
                    "ok": False,
                    "error": f"bad request line: {line[:80]!r}; expected a JSON object",
                }
            elif req.get("op") == "quit":
                return 0
            else:
                t0 = time.perf_counter()
                reply = handle(req)
                reply["agent_s"] = time.perf_counter() - t0
        stdout.write(json.dumps(reply, default=str) + "\n")
        stdout.flush()
    return 0


def pin_cpus(cpus: str) -> dict[str, Any] | None:
    """Pin this process to the comma-separated CPU ids ``cpus``; None when done, else the
    ``{"error": ..., "type": "BadCpus", "cpus": [...], "available": [...]}`` reply that says
    which CPUs the board has."""
    try:
        wanted = {int(c) for c in cpus.split(",")}
    except ValueError:
        wanted = set()
    try:
        available = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = list(range(os.cpu_count() or 1))
    problem = ""
    if not wanted:
        problem = "is not a CPU list"
    elif not wanted <= set(available):
        problem = f"names CPU(s) {sorted(wanted - set(available))} the board does not have"
    else:
        try:
            os.sched_setaffinity(0, wanted)
        except (AttributeError, OSError) as exc:
            problem = f"cannot be pinned ({exc})"
    if not problem:
        return None
    return {
        "ok": False,
        "type": "BadCpus",
        "error": f"cpus {cpus!r} {problem}",
        "cpus": sorted(wanted),
        "available": available,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent.py", description="latbench on-device agent")
    parser.add_argument("mode", choices=["serve", "measure", "describe"])
    parser.add_argument("--cpus", default="", help="pin to these CPUs, e.g. 2,3")
    parser.add_argument("--version", default="", help="latbench version of the host")
    parser.add_argument("--request", default="{}", help="JSON request (measure mode)")
    args = parser.parse_args(argv)
    _bootstrap_path()
    if args.cpus:
        bad = pin_cpus(args.cpus)
        if bad is not None:  # a bench.toml error, told to the host as such (not a traceback)
            sys.stdout.write(json.dumps(bad) + "\n")
            sys.stdout.flush()
            return 3
    if args.version:
        import latbench.profilers.env as env_mod

        version = str(args.version)
        env_mod.latbench_version = lambda: version  # no package metadata on the board
        import latbench.profilers.task as task_mod

        task_mod.latbench_version = env_mod.latbench_version
    if args.mode == "serve":
        return serve(sys.stdin, sys.stdout)
    if args.mode == "describe":
        print(json.dumps(handle({"op": "describe"}), default=str))
        return 0
    req = json.loads(args.request)
    req["op"] = "measure"
    print(json.dumps(handle(req), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
