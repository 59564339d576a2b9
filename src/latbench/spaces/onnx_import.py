"""Import an ONNX model into the architecture graph.

Any model a user brings becomes a :class:`~latbench.spaces.graph.Graph`, so features, predictors
and measurement work on it exactly as on search-space architectures. Only the structure is kept:
operators, attributes and shapes; weights (initializers) are dropped, and emitting the imported
graph again draws fresh deterministic weights from a seed.

Supported operators: Conv (square kernels, symmetric padding, no dilation), BatchNormalization,
Relu, Clip (only as ReLU6, i.e. 0..6), Sigmoid, HardSwish, Add, Sum, Mul (of two tensors, or by a
zero constant: ``zeros``), AveragePool, MaxPool, GlobalAveragePool, ReduceMean over H and W,
Flatten, Reshape to 2-D ``(N, -1)``, Gemm and MatMul (+ Add of a constant bias), Concat on the
channel axis, Softmax on the last axis, Identity and Dropout (dropped), and the
Reshape / Transpose / Reshape pattern of a channel shuffle. Anything else raises
:class:`~latbench.errors.UnsupportedOperatorError` naming the operator and the node.

Node names are the ONNX node names when they are unique (else the output tensor names), so a
model written by :func:`latbench.spaces.emit_onnx.to_onnx` imports back to the very same graph.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from latbench.errors import ModelError, UnsupportedOperatorError
from latbench.spaces.graph import Graph, GraphBuilder

__all__ = ["SUPPORTED_OPS", "from_onnx"]

SUPPORTED_OPS = (
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Clip",
    "Concat",
    "Conv",
    "Dropout",
    "Flatten",
    "Gemm",
    "GlobalAveragePool",
    "HardSwish",
    "Identity",
    "MatMul",
    "MaxPool",
    "Mul",
    "ReduceMean",
    "Relu",
    "Reshape",
    "Sigmoid",
    "Softmax",
    "Sum",
    "Transpose",
)


def _float(v: float) -> float:
    """ONNX keeps float attributes as float32; give back the short decimal (1e-05)."""
    return float(f"{float(v):.7g}")


@dataclass
class _Shuffle:
    """A tensor midway through the Reshape / Transpose / Reshape channel-shuffle pattern."""

    source: str  # graph node being shuffled
    groups: int
    transposed: bool = False


class _Importer:
    def __init__(self, model: onnx.ModelProto, batch: int | None, source: str) -> None:
        self.model = model
        g = model.graph
        self.consts: dict[str, np.ndarray] = {
            t.name: numpy_helper.to_array(t) for t in g.initializer
        }
        self.shapes: dict[str, tuple[int, ...] | None] = {}
        for vi in [*g.value_info, *g.input, *g.output]:
            self.shapes[vi.name] = _static_shape(vi)
        self.batch = batch
        self.val: dict[str, str] = {}  # ONNX tensor -> graph node name
        self.shuffles: dict[str, _Shuffle] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in g.node:
            for t in n.input:
                self.consumers.setdefault(t, []).append(n)
        self.absorbed: set[int] = set()  # id() of Add nodes folded into a MatMul as its bias
        names = [n.name for n in g.node]
        self.unique_names = len(set(names)) == len(names) and all(names)
        self.b = GraphBuilder(meta={"source": "onnx", "model": source})

    # ---- helpers ----------------------------------------------------------------------
    def _err(self, node: onnx.NodeProto, why: str) -> UnsupportedOperatorError:
        label = node.name or (node.output[0] if node.output else "?")
        return UnsupportedOperatorError(f"ONNX node {label!r} ({node.op_type}): {why}")

    def _name(self, node: onnx.NodeProto) -> str:
        return node.name if self.unique_names else node.output[0]

    def _in(self, node: onnx.NodeProto, i: int = 0) -> str:
        t = node.input[i]
        if t in self.shuffles:
            raise self._err(
                node, "reads a partial channel-shuffle reshape (pattern not recognised)"
            )
        if t not in self.val:
            raise self._err(
                node, f"input {t!r} is a constant or unknown tensor; expected a feature map"
            )
        return self.val[t]

    def _const(self, node: onnx.NodeProto, i: int) -> np.ndarray | None:
        if i >= len(node.input) or not node.input[i]:
            return None
        return self.consts.get(node.input[i])

    def _set(self, node: onnx.NodeProto, graph_node: str) -> None:
        self.val[node.output[0]] = graph_node

    def _check_shape(self, node: onnx.NodeProto, graph_node: str) -> None:
        expected = self.shapes.get(node.output[0])
        got = self.b.shape(graph_node)
        if expected is not None and tuple(expected[1:]) != tuple(got[1:]):
            raise self._err(
                node, f"output shape {list(got)} differs from the model's {list(expected)}"
            )

    def _window(self, node: onnx.NodeProto, kind: str) -> tuple[int, int, int]:
        """(kernel, stride, padding) of a square, symmetrically padded 2-D window."""
        a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
        ks = list(a.get("kernel_shape", []))
        if not ks:
            w = self._const(node, 1)
            if w is None:
                raise self._err(node, "kernel_shape missing and weight not constant")
            ks = list(w.shape[2:])
        if len(ks) != 2 or ks[0] != ks[1]:
            raise self._err(node, f"{kind} kernel {ks}; expected a square 2-D kernel")
        strides = list(a.get("strides", [1, 1]))
        if len(set(strides)) != 1:
            raise self._err(node, f"strides {strides}; expected equal strides")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise self._err(node, f"dilations {list(a['dilations'])}; expected 1")
        if int(a.get("ceil_mode", 0)):
            raise self._err(node, "ceil_mode=1 is not supported")
        auto_pad = a.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
        k, s = int(ks[0]), int(strides[0])
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            if s != 1 or k % 2 == 0:
                raise self._err(
                    node, f"auto_pad={auto_pad} with stride {s}, kernel {k} is asymmetric"
                )
            return k, s, k // 2
        if auto_pad == "VALID":
            return k, s, 0
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if len(set(pads)) != 1:
            raise self._err(node, f"pads {pads}; expected symmetric padding")
        return k, s, int(pads[0])

    # ---- the walk -----------------------------------------------------------------------
    def run(self) -> Graph:
        g = self.model.graph
        for vi in g.input:
            if vi.name in self.consts:
                continue
            shape = self.shapes.get(vi.name) or _dims_with_batch(vi, self.batch)
            if len(shape) != 4:
                raise ModelError(f"input {vi.name!r} has shape {list(shape)}; expected NCHW (4-D)")
            if self.batch is not None:
                shape = (self.batch, *shape[1:])
            self.val[vi.name] = self.b.input(shape, name=vi.name)
        if not self.val:
            raise ModelError("the model has no non-constant input")
        for node in g.node:
            self._node(node)
        outputs = []
        for vo in g.output:
            if vo.name not in self.val:
                raise ModelError(f"graph output {vo.name!r} is not computed by a supported node")
            outputs.append(self.val[vo.name])
        return self.b.build(outputs, prune=False)

    def _node(self, node: onnx.NodeProto) -> None:
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise self._err(node, f"custom domain {node.domain!r} is not supported")
        a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
        name = self._name(node)
        b = self.b
        if id(node) in self.absorbed:
            return
        if op in ("Identity", "Dropout"):
            src = node.input[0]
            if src in self.shuffles:
                self.shuffles[node.output[0]] = self.shuffles[src]
            else:
                self._set(node, self._in(node))
            return
        if op == "Constant":
            self.consts[node.output[0]] = numpy_helper.to_array(a["value"])
            return
        if op == "Conv":
            w = self._const(node, 1)
            if w is None:
                raise self._err(node, "weight is not a constant initializer")
            k, s, p = self._window(node, "conv")
            y = b.conv(
                self._in(node),
                int(w.shape[0]),
                k,
                stride=s,
                padding=p,
                groups=int(a.get("group", 1)),
                bias=len(node.input) > 2 and bool(node.input[2]),
                name=name,
            )
        elif op == "BatchNormalization":
            y = b.batchnorm(self._in(node), eps=_float(a.get("epsilon", 1e-5)), name=name)
        elif op in ("Relu", "Sigmoid", "HardSwish"):
            y = b.act(op.lower(), self._in(node), name=name)
        elif op == "Clip":
            lo = self._const(node, 1)
            hi = self._const(node, 2)
            lo_v = float(lo) if lo is not None else float(a.get("min", -np.inf))
            hi_v = float(hi) if hi is not None else float(a.get("max", np.inf))
            if lo_v == 0.0 and hi_v == 6.0:
                y = b.act("relu6", self._in(node), name=name)
            elif lo_v == 0.0 and hi_v == np.inf:
                y = b.act("relu", self._in(node), name=name)
            else:
                raise self._err(node, f"Clip({lo_v}, {hi_v}); only Clip(0, 6) (ReLU6) is supported")
        elif op in ("Add", "Sum"):
            if any(i in self.consts for i in node.input):
                raise self._err(node, "adding a constant tensor is not supported")
            y = b.add([self._in(node, i) for i in range(len(node.input))], name=name)
        elif op == "Mul":
            c0, c1 = self._const(node, 0), self._const(node, 1)
            if c0 is not None or c1 is not None:
                c = c1 if c1 is not None else c0
                assert c is not None
                if c.size == 1 and float(c.reshape(-1)[0]) == 0.0:
                    y = b.zeros(self._in(node, 0 if c1 is not None else 1), name=name)
                else:
                    raise self._err(node, "multiplying by a constant other than 0 is not supported")
            else:
                y = b.mul(self._in(node, 0), self._in(node, 1), name=name)
        elif op in ("AveragePool", "MaxPool"):
            k, s, p = self._window(node, "pool")
            if op == "AveragePool":
                y = b.pool(
                    "avgpool",
                    self._in(node),
                    k,
                    s,
                    p,
                    bool(a.get("count_include_pad", 0)),
                    name=name,
                )
            else:
                if len(node.output) > 1 and node.output[1]:
                    raise self._err(node, "the Indices output is not supported")
                y = b.pool("maxpool", self._in(node), k, s, p, name=name)
        elif op == "GlobalAveragePool":
            y = b.global_avgpool(self._in(node), name=name)
        elif op == "ReduceMean":
            axes = a.get("axes")
            if axes is None:
                c = self._const(node, 1)
                axes = None if c is None else c.tolist()
            if sorted(int(x) % 4 for x in (axes or [])) != [2, 3] or not int(a.get("keepdims", 1)):
                raise self._err(
                    node, f"ReduceMean over axes {axes}; only axes [2, 3] with keepdims"
                )
            y = b.global_avgpool(self._in(node), name=name)
        elif op == "Flatten":
            if int(a.get("axis", 1)) != 1:
                raise self._err(node, f"Flatten axis={a.get('axis')}; expected 1")
            y = b.flatten(self._in(node), name=name)
        elif op == "Reshape":
            y_opt = self._reshape(node, name)
            if y_opt is None:
                return
            y = y_opt
        elif op == "Transpose":
            src = node.input[0]
            sh = self.shuffles.get(src)
            if sh is None or sh.transposed or list(a.get("perm", [])) != [0, 2, 1, 3, 4]:
                raise self._err(
                    node, f"Transpose perm={list(a.get('perm', []))} outside a channel shuffle"
                )
            self.shuffles[node.output[0]] = _Shuffle(sh.source, sh.groups, transposed=True)
            return
        elif op == "Gemm":
            w = self._const(node, 1)
            if w is None or w.ndim != 2:
                raise self._err(node, "weight B is not a constant 2-D initializer")
            if (
                int(a.get("transA", 0))
                or _float(a.get("alpha", 1.0)) != 1.0
                or _float(a.get("beta", 1.0)) != 1.0
            ):
                raise self._err(node, "only Gemm with transA=0, alpha=1, beta=1 is supported")
            out_f = int(w.shape[0] if int(a.get("transB", 0)) else w.shape[1])
            has_bias = len(node.input) > 2 and bool(node.input[2])
            y = b.linear(self._in(node), out_f, bias=has_bias, name=name)
        elif op == "MatMul":
            w = self._const(node, 1)
            if w is None or w.ndim != 2:
                raise self._err(node, "the second input is not a constant 2-D weight")
            x = self._in(node)
            if len(b.shape(x)) != 2:
                raise self._err(node, f"input shape {list(b.shape(x))}; expected (N, features)")
            bias_add = self._bias_add(node)
            if bias_add is None:
                y = b.linear(x, int(w.shape[1]), bias=False, name=name)
            else:  # MatMul + Add(bias) is one linear layer, named after the Add
                self.absorbed.add(id(bias_add))
                y = b.linear(x, int(w.shape[1]), bias=True, name=self._name(bias_add))
                self.val[bias_add.output[0]] = y
        elif op == "Concat":
            if int(a.get("axis", 1)) % 4 != 1:
                raise self._err(node, f"Concat axis={a.get('axis')}; expected the channel axis 1")
            y = b.concat([self._in(node, i) for i in range(len(node.input))], name=name)
        elif op == "Softmax":
            x = self._in(node)
            axis = int(a.get("axis", -1))
            if axis % len(b.shape(x)) != 1:
                raise self._err(
                    node, f"Softmax axis={axis} on shape {list(b.shape(x))}; expected axis 1"
                )
            y = b.softmax(x, name=name)
        else:
            raise self._err(
                node, f"unsupported operator {op!r}; supported: {', '.join(SUPPORTED_OPS)}"
            )
        self._set(node, y)
        self._check_shape(node, y)

    def _bias_add(self, node: onnx.NodeProto) -> onnx.NodeProto | None:
        """The Add of a constant bias that alone consumes this MatMul's output, if any."""
        cs = self.consumers.get(node.output[0], [])
        if len(cs) != 1 or cs[0].op_type != "Add" or len(cs[0].input) != 2:
            return None
        other = [t for t in cs[0].input if t != node.output[0]]
        if len(other) != 1 or other[0] not in self.consts or self.consts[other[0]].ndim != 1:
            return None
        return cs[0]

    def _reshape(self, node: onnx.NodeProto, name: str) -> str | None:
        target = self._const(node, 1)
        if target is None:
            raise self._err(node, "target shape is not a constant")
        t = [int(v) for v in target.reshape(-1)]
        src = node.input[0]
        if src in self.shuffles:
            sh = self.shuffles.pop(src)
            if not sh.transposed or len(t) != 4:
                raise self._err(node, f"reshape to {t} inside a channel shuffle")
            y = self.b.channel_shuffle(sh.source, sh.groups, name=name)
            return y
        x = self._in(node)
        shape = self.b.shape(x)
        if len(t) == 5 and len(shape) == 4 and t[2] * t[1] == shape[1] and t[3:] == list(shape[2:]):
            self.shuffles[node.output[0]] = _Shuffle(x, int(t[1]))
            return None
        if (
            len(t) == 2
            and t[0] in (shape[0], 0, -1)
            and (t[1] == -1 or t[1] == int(np.prod(shape[1:])))
        ):
            return self.b.flatten(x, name=name)
        raise self._err(node, f"Reshape {list(shape)} -> {t}; only (N, -1) flattening is supported")


def _static_shape(vi: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return None
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
    if any(d <= 0 for d in dims[1:]):
        return None
    return tuple(dims) if dims and dims[0] > 0 else (1, *dims[1:]) if dims else None


def _dims_with_batch(vi: onnx.ValueInfoProto, batch: int | None) -> tuple[int, ...]:
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        raise ModelError(f"input {vi.name!r} has no known rank; expected NCHW (4-D)")
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tt.shape.dim]
    if not dims:
        raise ModelError(f"input {vi.name!r} is a scalar (shape []); expected NCHW (4-D)")
    if any(d <= 0 for d in dims[1:]):
        raise ModelError(f"input {vi.name!r} has dynamic dims {dims}; expected static C, H, W")
    return (batch or 1, *dims[1:])


def from_onnx(
    path_or_model: str | os.PathLike[str] | onnx.ModelProto | bytes, batch: int | None = None
) -> Graph:
    """Import an ONNX model (a path, serialised bytes or a ``ModelProto``) into a Graph.

    ``batch`` overrides the batch dimension (a dynamic batch defaults to 1). Runs ONNX shape
    inference and checks every imported node's shape against it.
    """
    source = "<model>"
    if isinstance(path_or_model, onnx.ModelProto):
        model = path_or_model
    elif isinstance(path_or_model, bytes):
        model = _parse(path_or_model, "<bytes>")
    else:
        p = Path(path_or_model)
        source = p.name
        if not p.is_file():
            raise ModelError(f"ONNX model {str(p)!r} does not exist; expected a .onnx file")
        model = _parse(p.read_bytes(), str(p))
    try:
        inferred = shape_inference.infer_shapes(model)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        raise ModelError(f"ONNX shape inference failed on {source}: {exc}") from None
    return _Importer(inferred, batch, source).run()


def _parse(data: bytes, label: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own DecodeError type
        raise ModelError(f"{label} is not an ONNX model: {exc}") from None
    if not model.graph.node:
        raise ModelError(f"{label} is not an ONNX model (no graph nodes)")
    return model
