"""Emit an architecture graph as an ONNX model, built directly with ``onnx.helper``.

Tracing a ``torch.nn.Module`` through ``torch.onnx.export`` costs 0.2-1.7 s per NAS-Bench-201
cell network; writing the protobuf directly from the graph costs a few milliseconds, which is what
makes measuring thousands of architectures practical (``benchmarks/bench_emit.py``).

Conventions: one graph input per ``input`` node (the first is called ``input``), NCHW float32;
the graph output is called ``output`` (``output_1``, ... for further outputs). Tensor names are
the node names and each ONNX node carries its graph node's name, so
:func:`latbench.spaces.onnx_import.from_onnx` gives back the same graph (same ``graph_id``).
Weights are the float32 arrays of :func:`latbench.spaces.graph.init_params`, stored as
initializers.

Operator mapping: ``conv`` -> Conv, ``batchnorm`` -> BatchNormalization, ``relu6`` -> Clip(0, 6),
``add`` -> Add (two inputs) or Sum, ``zeros`` -> Mul by a zero scalar, ``avgpool`` / ``maxpool``
-> AveragePool / MaxPool, ``global_avgpool`` -> GlobalAveragePool, ``flatten`` -> Flatten,
``linear`` -> Gemm (transB=1), ``channel_shuffle`` -> Reshape / Transpose / Reshape,
``concat`` -> Concat(axis=1), ``softmax`` -> Softmax(axis=1).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto

from latbench.errors import ArchError
from latbench.spaces.graph import Graph, init_params

__all__ = ["DEFAULT_OPSET", "to_onnx"]

DEFAULT_OPSET = 17
_MIN_OPSET = 14  # HardSwish
_IR_VERSION = 8
_UNARY = {"relu": "Relu", "sigmoid": "Sigmoid", "hardswish": "HardSwish"}


def _tensor_names(graph: Graph) -> dict[str, str]:
    """Graph node name -> ONNX tensor name (``input``/``output`` for the graph's ends)."""
    reserved: dict[str, str] = {}
    for i, n in enumerate(graph.inputs):
        reserved[n.name] = "input" if i == 0 else f"input_{i}"
    for i, o in enumerate(graph.outputs):
        if o not in reserved:
            reserved[o] = "output" if i == 0 else f"output_{i}"
    taken = set(reserved.values())
    names: dict[str, str] = {}
    for n in graph.nodes:
        if n.name in reserved:
            names[n.name] = reserved[n.name]
        else:
            t = n.name
            while t in taken:
                t = "t_" + t
            taken.add(t)
            names[n.name] = t
    return names


class _Writer:
    """Appends nodes and initializers straight into a ``GraphProto``.

    ``onnx.helper.make_node`` / ``make_graph`` build each message separately and then copy it into
    the graph; adding the messages in place (``graph.node.add()``) and writing weights as
    ``raw_data`` halves the emission time.
    """

    def __init__(
        self, graph: onnx.GraphProto, tensors: Iterable[str] = (), nodes: Iterable[str] = ()
    ) -> None:
        self.graph = graph
        self._shared: dict[str, str] = {}
        # names in use: the graph's tensors and nodes, so that a weight, a helper tensor or a
        # helper node never takes a name the graph's nodes have (which ONNX would refuse)
        self._tensors = set(tensors)
        self._nodes = set(nodes)

    @staticmethod
    def _fresh(base: str, taken: set[str]) -> str:
        name = base
        while name in taken:
            name = "t_" + name
        taken.add(name)
        return name

    def fresh_tensor(self, base: str) -> str:
        """``base``, or ``t_``-prefixed until no tensor has the name; reserved from now on."""
        return self._fresh(base, self._tensors)

    def fresh_node(self, base: str) -> str:
        """``base``, or ``t_``-prefixed until no node has the name; reserved from now on."""
        return self._fresh(base, self._nodes)

    def node(
        self, op_type: str, inputs: list[str], outputs: list[str], name: str, **attrs: Any
    ) -> None:
        n = self.graph.node.add()
        n.op_type = op_type
        n.name = name
        n.input.extend(inputs)
        n.output.extend(outputs)
        for key in sorted(attrs):
            value = attrs[key]
            a = n.attribute.add()
            a.name = key
            if isinstance(value, list):
                a.type = AttributeProto.INTS
                a.ints.extend(value)
            elif isinstance(value, float):
                a.type = AttributeProto.FLOAT
                a.f = value
            else:
                a.type = AttributeProto.INT
                a.i = int(value)

    def const(self, name: str, arr: np.ndarray) -> str:
        t = self.graph.initializer.add()
        t.name = name = self.fresh_tensor(name)
        t.data_type = TensorProto.FLOAT if arr.dtype == np.float32 else TensorProto.INT64
        t.dims.extend(arr.shape)
        t.raw_data = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
        return name

    def shared_const(self, name: str, arr: np.ndarray) -> str:
        if name not in self._shared:
            self._shared[name] = self.const(name, arr)
        return self._shared[name]


def _value_info(vi: onnx.ValueInfoProto, name: str, shape: tuple[int, ...]) -> None:
    vi.name = name
    tt = vi.type.tensor_type
    tt.elem_type = TensorProto.FLOAT
    for d in shape:
        tt.shape.dim.add().dim_value = int(d)


def to_onnx(graph: Graph, seed: int = 0, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """The graph as an ONNX ``ModelProto`` with the deterministic weights of ``seed``.

    The model passes ``onnx.checker.check_model``; it is not checked here, to keep emission
    cheap (the tests check it).
    """
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, numbers.Integral):
        raise ArchError(f"ONNX opset {opset!r}; expected an integer {_MIN_OPSET}..{newest}")
    if opset < _MIN_OPSET:
        raise ArchError(f"ONNX opset {opset} is too old; expected >= {_MIN_OPSET}")
    if opset > newest:
        raise ArchError(
            f"ONNX opset {opset} is newer than the installed onnx {onnx.__version__} knows; "
            f"expected {_MIN_OPSET}..{newest}"
        )
    params = init_params(graph, seed)
    tn = _tensor_names(graph)
    model = onnx.ModelProto()
    model.ir_version = _IR_VERSION
    model.producer_name = "latbench"
    opset_id = model.opset_import.add()
    opset_id.domain = ""
    opset_id.version = int(opset)
    gp = model.graph
    gp.name = str(graph.meta.get("space", "latbench"))
    w = _Writer(gp, set(tn.values()), {n.name for n in graph.nodes})

    for n in graph.nodes:
        if n.op == "input":
            continue
        a = n.attrs
        ins = [tn[i] for i in n.inputs]
        out = tn[n.name]
        p = params.get(n.name, {})
        op = n.op
        if op == "conv":
            k = int(a["kernel"])
            pad = int(a["padding"])
            cins = [ins[0], w.const(f"{n.name}.weight", p["weight"])]
            if "bias" in p:
                cins.append(w.const(f"{n.name}.bias", p["bias"]))
            w.node(
                "Conv",
                cins,
                [out],
                n.name,
                kernel_shape=[k, k],
                strides=[int(a["stride"])] * 2,
                pads=[pad] * 4,
                group=int(a.get("groups", 1)),
            )
        elif op == "batchnorm":
            names = [w.const(f"{n.name}.{key}", p[key]) for key in ("gamma", "beta", "mean", "var")]
            w.node(
                "BatchNormalization",
                [ins[0], *names],
                [out],
                n.name,
                epsilon=float(a.get("eps", 1e-5)),
            )
        elif op == "relu6":
            lo = w.shared_const("const.zero", np.array(0.0, np.float32))
            hi = w.shared_const("const.six", np.array(6.0, np.float32))
            w.node("Clip", [ins[0], lo, hi], [out], n.name)
        elif op in _UNARY:
            w.node(_UNARY[op], ins, [out], n.name)
        elif op == "add":
            w.node("Add" if len(ins) == 2 else "Sum", ins, [out], n.name)
        elif op == "mul":
            w.node("Mul", ins, [out], n.name)
        elif op == "zeros":
            z = w.shared_const("const.zero", np.array(0.0, np.float32))
            w.node("Mul", [ins[0], z], [out], n.name)
        elif op in ("avgpool", "maxpool"):
            k = int(a["kernel"])
            pad = int(a.get("padding", 0))
            kw: dict[str, Any] = {
                "kernel_shape": [k, k],
                "strides": [int(a["stride"])] * 2,
                "pads": [pad] * 4,
            }
            if op == "avgpool":
                kw["count_include_pad"] = int(bool(a.get("count_include_pad", False)))
            w.node("AveragePool" if op == "avgpool" else "MaxPool", ins, [out], n.name, **kw)
        elif op == "global_avgpool":
            w.node("GlobalAveragePool", ins, [out], n.name)
        elif op == "flatten":
            w.node("Flatten", ins, [out], n.name, axis=1)
        elif op == "linear":
            gins = [ins[0], w.const(f"{n.name}.weight", p["weight"])]
            if "bias" in p:
                gins.append(w.const(f"{n.name}.bias", p["bias"]))
            w.node("Gemm", gins, [out], n.name, transB=1)
        elif op == "channel_shuffle":
            g = int(a["groups"])
            b, c, h, wd = n.shape
            s5 = w.const(f"{n.name}.shape5", np.array([b, g, c // g, h, wd], np.int64))
            s4 = w.const(f"{n.name}.shape4", np.array([b, c, h, wd], np.int64))
            t1, t2 = w.fresh_tensor(f"{out}/grouped"), w.fresh_tensor(f"{out}/transposed")
            w.node("Reshape", [ins[0], s5], [t1], w.fresh_node(f"{n.name}/reshape"))
            w.node(
                "Transpose", [t1], [t2], w.fresh_node(f"{n.name}/transpose"), perm=[0, 2, 1, 3, 4]
            )
            w.node("Reshape", [t2, s4], [out], n.name)
        elif op == "concat":
            w.node("Concat", ins, [out], n.name, axis=1)
        elif op == "softmax":
            w.node("Softmax", ins, [out], n.name, axis=1)
        else:  # pragma: no cover - Graph validates ops against the vocabulary
            raise ArchError(f"node {n.name!r}: op {op!r} has no ONNX mapping")

    # An output that is a graph input (or that is listed twice) needs a node of its own to
    # produce it: an Identity into a fresh name. The outputs' names are kept apart from ``tn``,
    # which still names the input tensors the nodes above read and the input value_info.
    out_names: list[str] = []
    for o in graph.outputs:
        name = tn[o]
        if graph[o].op == "input" or name in out_names:
            alias = w.fresh_tensor(f"{name}_out")
            w.node("Identity", [name], [alias], w.fresh_node(f"{o}/out"))
            name = alias
        out_names.append(name)
    for n in graph.inputs:
        _value_info(gp.input.add(), tn[n.name], n.shape)
    for o, name in zip(graph.outputs, out_names, strict=True):
        _value_info(gp.output.add(), name, graph[o].shape)
    props = {f"latbench.{k}": str(graph.meta[k]) for k in ("space", "arch") if k in graph.meta}
    props["latbench.seed"] = str(int(seed))
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value
    return model
