"""Write an architecture graph to a model file: ONNX, TFLite or a torch ``ExportedProgram``.

All three formats carry the same deterministic weights (``init_params(graph, seed)``), so the
files of one architecture and seed compute the same function on every runtime.
"""

from __future__ import annotations

import os
from pathlib import Path

from latbench.errors import ConfigError
from latbench.spaces.graph import Graph, make_input

__all__ = ["FORMATS", "export"]

FORMATS = ("onnx", "tflite", "torch")
SUFFIXES = {"onnx": ".onnx", "tflite": ".tflite", "torch": ".pt2"}


def export(graph: Graph, fmt: str, path: str | os.PathLike[str], seed: int = 0) -> Path:
    """Write ``graph`` as ``fmt`` (``onnx``, ``tflite`` or ``torch``) to ``path``; return the path.

    ``torch`` writes a ``torch.export`` program (``.pt2``, load it with ``torch.export.load``,
    no latbench needed); it traces the module, so it takes seconds rather than milliseconds.
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
    if out.parent and not out.parent.exists():
        raise ConfigError(f"output directory {str(out.parent)!r} does not exist")
    if fmt == "onnx":
        from latbench.spaces.emit_onnx import to_onnx

        out.write_bytes(to_onnx(graph, seed).SerializeToString())
    elif fmt == "tflite":
        from latbench.spaces.emit_tflite import to_tflite

        out.write_bytes(to_tflite(graph, seed))
    else:
        import torch

        from latbench.spaces.emit_torch import to_torch

        module = to_torch(graph, seed)
        example = tuple(torch.from_numpy(x) for x in make_input(graph, seed).values())
        torch.export.save(torch.export.export(module, example), str(out))
    return out
