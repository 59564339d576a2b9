"""What the pytest-plugin tests share: short measurement options and a tiny ONNX model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# The in-process pytester runs import the timing worker's modules (multiprocessing's spawn
# context among them) inside pytester's sys.modules snapshot, which drops them after each run;
# a later run then re-imports them and pickling a process fails ("not the same object").
# Importing them here, before any snapshot, keeps one copy for the whole session.
import latbench.devices.local  # noqa: F401

# Short measurements; the inner runs leave out plugins they do not need (hypothesis's alone
# takes seconds to import on a loaded machine).
FAST = [
    "--latbench-min-runs=5",
    "--latbench-min-time=0.05",
    "--latbench-max-time=0.2",
    "-p",
    "no:hypothesispytest",
    "-p",
    "no:benchmark",
]


def tiny_onnx(path: Path) -> Path:
    """A 1x64 @ 64x64 MatMul + Relu: microseconds per inference on onnxruntime."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path
