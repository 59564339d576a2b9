"""Run one architecture graph on the three real runtimes (shared by the emitter tests)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch
from ai_edge_litert.interpreter import Interpreter
from onnx import helper

from latbench.spaces.emit_onnx import to_onnx
from latbench.spaces.emit_tflite import to_tflite
from latbench.spaces.emit_torch import to_torch
from latbench.spaces.graph import Graph


def run_onnx(graph: Graph, x: np.ndarray, seed: int) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(
        to_onnx(graph, seed).SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    return np.asarray(sess.run(["output"], {"input": x})[0])


def run_tflite(graph: Graph, x: np.ndarray, seed: int) -> np.ndarray:
    it = Interpreter(model_content=to_tflite(graph, seed), num_threads=1)
    it.allocate_tensors()
    (inp,) = it.get_input_details()
    (out,) = it.get_output_details()
    it.set_tensor(inp["index"], np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    it.invoke()
    return np.array(it.get_tensor(out["index"]))


def run_torch(graph: Graph, x: np.ndarray, seed: int) -> np.ndarray:
    module = to_torch(graph, seed)
    with torch.no_grad():
        y = module(torch.from_numpy(x))
    assert isinstance(y, torch.Tensor)
    return y.numpy()


def assert_close(a: np.ndarray, ref: np.ndarray, rtol: float = 1e-4, label: str = "") -> None:
    """Equal within ``rtol`` of the output's scale (outputs of random deep nets grow large)."""
    assert a.shape == ref.shape, f"{label}: shape {a.shape} != {ref.shape}"
    assert np.all(np.isfinite(a)), f"{label}: non-finite output"
    scale = max(float(np.abs(ref).max()), 1e-6)
    err = float(np.abs(a - ref).max())
    assert err <= rtol * scale, f"{label}: max abs error {err:.3g} > {rtol} x scale {scale:.3g}"


def onnx_model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    inits: list[onnx.TensorProto] | None = None,
    opset: int = 17,
    name: str = "test",
) -> onnx.ModelProto:
    """A hand-built ONNX model of ``nodes`` (the importer tests' malformed and edge models)."""
    graph = helper.make_graph(nodes, name, inputs, outputs, inits or [])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
