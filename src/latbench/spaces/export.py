"""Write an architecture graph to a model file: ONNX, TFLite or a torch ``ExportedProgram``.

All three formats carry the same deterministic weights (``init_params(graph, seed)``), so the
files of one architecture and seed compute the same function on every runtime.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from latbench._atomic import atomic_path
from latbench.errors import ConfigError
from latbench.spaces.graph import Graph, make_input

__all__ = ["FORMATS", "export"]

FORMATS = ("onnx", "tflite", "torch")
SUFFIXES = {"onnx": ".onnx", "tflite": ".tflite", "torch": ".pt2"}


def export(graph: Graph, fmt: str, path: str | os.PathLike[str], seed: int = 0) -> Path:
    """Write ``graph`` as ``fmt`` (``onnx``, ``tflite`` or ``torch``) to ``path``; return the path.

    ``torch`` writes a ``torch.export`` program (``.pt2``, load it with ``torch.export.load``,
    no latbench needed); it traces the module, so it takes seconds rather than milliseconds.
    The file is written to a temporary name in the same folder and renamed into place, so a
    failed write leaves neither a truncated model nor a clobbered previous file.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    out = Path(path)
    # the runtimes tell a model file's format by its suffix: an ONNX model named m.tflite, or a
    # torch.export program named m.pt (TorchScript's suffix), could be written but not measured
    suffix = out.suffix.lower()
    owner = {**{v: k for k, v in SUFFIXES.items()}, ".pt": "TorchScript"}.get(suffix)
    if owner is not None and suffix != SUFFIXES[fmt]:
        raise ConfigError(
            f"{str(out)!r}: the suffix {suffix} is that of {owner} models, but the format is "
            f"{fmt}; expected a name ending in {SUFFIXES[fmt]}"
        )
    if not out.parent.is_dir():
        what = "is not a directory" if out.parent.exists() else "does not exist"
        raise ConfigError(
            f"output directory {str(out.parent)!r} {what}; expected an existing directory for "
            f"{str(out)!r}"
        )
    if out.is_dir():
        raise ConfigError(f"output {str(out)!r} is a directory; expected a file name")
    if fmt == "onnx":
        from latbench.spaces.emit_onnx import to_onnx

        data = to_onnx(graph, seed).SerializeToString()
        _write_atomic(out, lambda f: f.write(data))
    elif fmt == "tflite":
        from latbench.spaces.emit_tflite import to_tflite

        flatbuffer = to_tflite(graph, seed)
        _write_atomic(out, lambda f: f.write(flatbuffer))
    else:
        import torch

        from latbench.spaces.emit_torch import to_torch

        module = to_torch(graph, seed)
        example = tuple(torch.from_numpy(x) for x in make_input(graph, seed).values())
        program = torch.export.export(module, example)
        _write_atomic(out, lambda f: torch.export.save(program, f))
    return out


def _write_atomic(out: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``out`` through a temporary file in its folder, then rename it into place.

    A failed write (disk full, file size limit, interrupt) leaves no partial model and keeps a
    file already at ``out`` untouched: ``os.replace`` swaps the complete file in atomically.
    """
    with atomic_path(out) as tmp, tmp.open("xb") as f:
        write(f)
