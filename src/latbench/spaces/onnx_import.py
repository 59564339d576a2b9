"""Import an ONNX model into the architecture graph.

Any model a user brings becomes a :class:`~latbench.spaces.graph.Graph`, so features, predictors
and measurement work on it exactly as on search-space architectures. Only the structure is kept:
operators, attributes and shapes; weights (initializers) are dropped, and emitting the imported
graph again draws fresh deterministic weights from a seed.

Supported operators: Conv (square kernels, symmetric padding, no dilation), BatchNormalization
(on NCHW or on 2-D ``(N, F)`` tensors), Relu, Clip (only as ReLU6, i.e. 0..6), Sigmoid,
HardSwish, Add, Sum, Mul (of two tensors, either one broadcasting, or by a zero constant:
``zeros``), AveragePool, MaxPool, GlobalAveragePool, ReduceMean over H and W (``keepdims=0``
becomes global pooling + flatten), Flatten, Reshape to 2-D ``(N, -1)``, Gemm and MatMul on 2-D
inputs (+ Add of a constant bias), Concat on the channel axis, Softmax on axis 1 (before opset
13, where it normalises over every axis from ``axis`` on, only of ``(N, F)`` or ``(N, C, 1, 1)``
tensors), Identity and Dropout (dropped; of a
constant they pass the constant on), Constant (any ``value*`` attribute but sparse and string
ones), and the Reshape / Transpose / Reshape pattern of a channel shuffle. Anything else raises
:class:`~latbench.errors.UnsupportedOperatorError` naming the operator and the node; a node the
graph cannot hold (a broadcasting Add, weights that do not fit the input, pooling padding above
half the kernel, ...) raises :class:`~latbench.errors.ModelError` naming the node.

Inputs must be float32 tensors. Weights stored as external data are never read (only their
shapes are needed); the few small constants whose values matter (Reshape targets, Clip bounds,
axes) are read relative to the model file's folder, whatever the working directory.

Nodes written out of topological order are sorted first (onnxruntime runs such models); a cycle
is refused naming its nodes. Node names are the ONNX node names when they are unique (else the
output tensor names; ``_1``, ... appended to one that a graph input already has), so a model
written by :func:`latbench.spaces.emit_onnx.to_onnx` imports back to the very same graph.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

from latbench._validate import expected_number
from latbench.errors import ArchError, ConfigError, ModelError, UnsupportedOperatorError
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
    def __init__(
        self,
        model: onnx.ModelProto,
        batch: int | None,
        source: str,
        label: str = "<model>",
        base_dir: str = "",
    ) -> None:
        self.model = model
        self.label = label  # the file (or <bytes>, <model>) for messages
        self.base_dir = base_dir  # where external data files are, relative to the model
        g = model.graph
        # constants: initializers (and Constant values) as protos, read only when a value is
        # needed (weights need only their shape: external data is never loaded for them) ...
        self.inits: dict[str, onnx.TensorProto] = {t.name: t for t in g.initializer}
        # ... and the values read so far (or given inline, e.g. Constant value_ints)
        self.consts: dict[str, np.ndarray] = {}
        self.shapes: dict[str, tuple[int, ...] | None] = {}
        for vi in [*g.value_info, *g.input, *g.output]:
            self.shapes[vi.name] = _static_shape(vi)
        self.batch = batch
        self.model_batch: int | None = None  # the file's own (static) batch, if any
        self.val: dict[str, str] = {}  # ONNX tensor -> graph node name
        self.shuffles: dict[str, _Shuffle] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in g.node:
            for t in n.input:
                self.consumers.setdefault(t, []).append(n)
        self.absorbed: set[int] = set()  # id() of Add nodes folded into a MatMul as its bias
        names = [n.name for n in g.node]
        self.unique_names = len(set(names)) == len(names) and all(names)
        # the default domain's opset: Softmax changed meaning at 13, Concat's axis default at 4
        self.opset = next(
            (int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None
        )
        self.b = GraphBuilder(meta={"source": "onnx", "model": source})

    # ---- helpers ----------------------------------------------------------------------
    def _err(
        self,
        node: onnx.NodeProto,
        why: str,
        cls: type[ModelError] = UnsupportedOperatorError,
    ) -> ModelError:
        """An error naming the node: UnsupportedOperatorError, or ModelError for invalid ones."""
        label = node.name or (node.output[0] if node.output else "?")
        return cls(f"ONNX node {label!r} ({node.op_type}): {why}")

    def _fresh(self, base: str) -> str:
        """A graph node name not yet used, starting from ``base``."""
        name, i = base, 1
        while name in self.b:
            name = f"{base}_{i}"
            i += 1
        return name

    def _name(self, node: onnx.NodeProto) -> str:
        # ONNX node and tensor names live apart: a node may be named like a graph input (or
        # like a name made up here), which the graph, one namespace, cannot hold twice
        return self._fresh(node.name if self.unique_names else node.output[0])

    def _axis(self, node: onnx.NodeProto, axis: int, rank: int) -> int:
        """``axis`` of a rank-``rank`` input, in 0..rank-1 (negative axes count from the end)."""
        if not -rank <= axis < rank:
            raise self._err(
                node, f"axis={axis} on a {rank}-D input; expected -{rank}..{rank - 1}", ModelError
            )
        return axis % rank

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

    def _is_const(self, t: str) -> bool:
        return t in self.consts or t in self.inits

    def _const_shape(self, node: onnx.NodeProto, i: int) -> tuple[int, ...] | None:
        """The shape of constant input ``i`` (None if it is absent or not a constant).

        Read from the tensor's ``dims``: no data is loaded, so an external-data weight costs
        nothing and needs no data file.
        """
        if i >= len(node.input) or not node.input[i]:
            return None
        t = node.input[i]
        if t in self.consts:
            return tuple(int(d) for d in self.consts[t].shape)
        if t in self.inits:
            return tuple(int(d) for d in self.inits[t].dims)
        return None

    def _const(self, node: onnx.NodeProto, i: int) -> np.ndarray | None:
        """The value of constant input ``i`` (None if it is absent or not a constant)."""
        if i >= len(node.input) or not node.input[i]:
            return None
        t = node.input[i]
        if t in self.consts:
            return self.consts[t]
        proto = self.inits.get(t)
        if proto is None:
            return None
        try:
            arr = np.asarray(numpy_helper.to_array(proto, base_dir=self.base_dir))
        except Exception as exc:  # noqa: BLE001 - onnx raises ValidationError, OSError, ...
            where = node.name or node.output[0]
            external = {e.key: e.value for e in proto.external_data}
            if proto.data_location == TensorProto.EXTERNAL or external:
                folder = self.base_dir or "."
                raise ModelError(
                    f"ONNX model {self.label}: tensor {t!r} (read by node {where!r}, "
                    f"{node.op_type}) is stored in the external data file "
                    f"{external.get('location', '?')!r}, which cannot be read ({exc}); expected "
                    f"it in {folder!r}, next to the model"
                ) from None
            raise ModelError(
                f"ONNX model {self.label}: tensor {t!r} (read by node {where!r}, "
                f"{node.op_type}) cannot be read: {exc}"
            ) from None
        self.consts[t] = arr
        return arr

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
            ws = self._const_shape(node, 1)
            if ws is None:
                raise self._err(node, "kernel_shape missing and weight not constant")
            ks = list(ws[2:])
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
            if self._is_const(vi.name):
                continue
            elem = vi.type.tensor_type.elem_type if vi.type.HasField("tensor_type") else None
            if elem != TensorProto.FLOAT:
                kind = TensorProto.DataType.Name(elem) if elem else "not a tensor"
                raise ModelError(
                    f"input {vi.name!r} is {kind}; expected a FLOAT (float32) tensor: "
                    "latbench builds, emits and measures float32 models"
                )
            shape = self.shapes.get(vi.name) or _dims_with_batch(vi, self.batch)
            if len(shape) != 4:
                raise ModelError(f"input {vi.name!r} has shape {list(shape)}; expected NCHW (4-D)")
            if self.model_batch is None:
                d0 = vi.type.tensor_type.shape.dim[0]
                self.model_batch = d0.dim_value if d0.HasField("dim_value") else None
            if self.batch is not None:
                shape = (self.batch, *shape[1:])
            try:
                self.val[vi.name] = self.b.input(shape, name=vi.name)
            except ArchError as exc:
                raise ModelError(str(exc)) from None
        if not self.val:
            raise ModelError("the model has no non-constant input")
        if not g.output:
            raise ModelError(f"ONNX model {self.label} has no graph output; expected at least one")
        for node in g.node:
            self._node(node)
        outputs = []
        for vo in g.output:
            if vo.name not in self.val:
                raise ModelError(f"graph output {vo.name!r} {self._output_problem(vo.name)}")
            outputs.append(self.val[vo.name])
        return self.b.build(outputs, prune=False)

    def _output_problem(self, tensor: str) -> str:
        """Why graph output ``tensor`` has no graph node, and what the graph can hold instead.

        Every node type the importer takes computes one feature map (its first output), so an
        output the walk did not produce is a constant or a secondary output (Dropout's mask,
        MaxPool's indices, a training BatchNormalization's running statistics).
        """
        if self._is_const(tensor):
            return "is a constant; expected a feature map computed by the model"
        for n in self.model.graph.node:
            if tensor in n.output:
                i = list(n.output).index(tensor)
                label = n.name or n.output[0]
                return (
                    f"is output {i} of node {label!r} ({n.op_type}); expected the first output "
                    "of a node (the graph keeps one feature map per node)"
                )
        return "is computed by no node; expected a feature map computed by the model"

    def _node(self, node: onnx.NodeProto) -> None:
        try:
            self._import_node(node)
        except ArchError as exc:  # the graph builder refused it: say which ONNX node
            raise self._err(node, str(exc), ModelError) from None

    def _import_node(self, node: onnx.NodeProto) -> None:
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
            elif src not in self.val and self._is_const(src):
                # Identity(weight), as torch.onnx writes for tied or unfolded parameters
                out = node.output[0]
                if src in self.consts:
                    self.consts[out] = self.consts[src]
                else:
                    self.inits[out] = self.inits[src]
            else:
                self._set(node, self._in(node))
            return
        if op == "Constant":
            self._constant(node)
            return
        if op == "Conv":
            ws = self._const_shape(node, 1)
            if ws is None:
                raise self._err(node, "weight is not a constant initializer")
            x = self._in(node)
            xs = b.shape(x)
            k, s, p = self._window(node, "conv")
            groups = int(a.get("group", 1))
            if len(ws) != 4 or list(ws[2:]) != [k, k]:
                raise self._err(
                    node,
                    f"weight shape {list(ws)}; expected (out, in / group, {k}, {k})",
                    ModelError,
                )
            if len(xs) == 4 and ws[1] * groups != xs[1]:
                raise self._err(
                    node,
                    f"weight shape {list(ws)} with group={groups} takes {ws[1] * groups} input "
                    f"channel(s), but the input {list(xs)} has {xs[1]}; expected "
                    f"weight.shape[1] * group == {xs[1]}",
                    ModelError,
                )
            # ONNX shape inference does not look at the bias: one of the wrong length imports
            # as a valid conv (with out_channels bias parameters) that no runtime would run
            bs = self._const_shape(node, 2)
            if bs is not None and bs != (ws[0],):
                raise self._err(
                    node,
                    f"bias B shape {list(bs)}; expected [{ws[0]}] (one per output channel)",
                    ModelError,
                )
            y = b.conv(
                x,
                int(ws[0]),
                k,
                stride=s,
                padding=p,
                groups=groups,
                bias=len(node.input) > 2 and bool(node.input[2]),
                name=name,
            )
        elif op == "BatchNormalization":
            x = self._in(node)
            xs = b.shape(x)
            for i, what in enumerate(("scale", "B", "mean", "var"), start=1):
                cs = self._const_shape(node, i)
                if cs is not None and len(xs) >= 2 and cs != (xs[1],):
                    raise self._err(
                        node,
                        f"{what} shape {list(cs)} on input {list(xs)}; expected [{xs[1]}]",
                        ModelError,
                    )
            y = b.batchnorm(x, eps=_float(a.get("epsilon", 1e-5)), name=name)
        elif op in ("Relu", "Sigmoid", "HardSwish"):
            y = b.act(op.lower(), self._in(node), name=name)
        elif op == "Clip":
            lo_v = self._clip_bound(node, 1, _float(a.get("min", -np.inf)))
            hi_v = self._clip_bound(node, 2, _float(a.get("max", np.inf)))
            if lo_v == 0.0 and hi_v == 6.0:
                y = b.act("relu6", self._in(node), name=name)
            elif lo_v == 0.0 and hi_v == np.inf:
                y = b.act("relu", self._in(node), name=name)
            else:
                raise self._err(node, f"Clip({lo_v}, {hi_v}); only Clip(0, 6) (ReLU6) is supported")
        elif op in ("Add", "Sum"):
            if any(self._is_const(i) for i in node.input):
                raise self._err(node, "adding a constant tensor is not supported")
            y = b.add([self._in(node, i) for i in range(len(node.input))], name=name)
        elif op == "Mul":
            s0, s1 = self._const_shape(node, 0), self._const_shape(node, 1)
            if s0 is not None or s1 is not None:
                i = 1 if s1 is not None else 0
                cs = s1 if s1 is not None else s0
                assert cs is not None
                # only a scalar's value is read (a large constant may be external data)
                c = self._const(node, i) if int(np.prod(cs)) == 1 else None
                if c is not None and float(c.reshape(-1)[0]) == 0.0:
                    y = b.zeros(self._in(node, 1 - i), name=name)
                else:
                    raise self._err(node, "multiplying by a constant other than 0 is not supported")
            else:
                x0, x1 = self._in(node, 0), self._in(node, 1)
                s0, s1 = b.shape(x0), b.shape(x1)
                first_broadcasts = len(s0) == len(s1) and all(
                    d in (e, 1) for d, e in zip(s0, s1, strict=True)
                )
                if s0 != s1 and first_broadcasts:
                    x0, x1 = x1, x0  # Mul(scale, x), as in s * x: the graph's mul broadcasts 2nd
                y = b.mul(x0, x1, name=name)
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
                axes = None if c is None else c.reshape(-1).tolist()
            x = self._in(node)
            xs = b.shape(x)
            if len(xs) != 4 or sorted(int(v) % 4 for v in (axes or [])) != [2, 3]:
                over = "all axes" if axes is None else f"axes {list(axes)}"
                raise self._err(
                    node,
                    f"ReduceMean over {over} of shape {list(xs)}; expected axes [2, 3] (H and W) "
                    "of an NCHW tensor",
                )
            if int(a.get("keepdims", 1)):
                y = b.global_avgpool(x, name=name)
            else:  # x.mean([2, 3]): (N, C), i.e. global pooling then flatten
                gap = b.global_avgpool(x, name=self._fresh(f"{name}/gap"))
                y = b.flatten(gap, name=name)
        elif op == "Flatten":
            x = self._in(node)
            axis = int(a.get("axis", 1))
            if self._axis(node, axis, len(b.shape(x))) != 1:
                raise self._err(node, f"Flatten axis={axis}; expected 1")
            y = b.flatten(x, name=name)
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
            ws = self._const_shape(node, 1)
            if ws is None or len(ws) != 2:
                raise self._err(node, "weight B is not a constant 2-D initializer")
            if (
                int(a.get("transA", 0))
                or _float(a.get("alpha", 1.0)) != 1.0
                or _float(a.get("beta", 1.0)) != 1.0
            ):
                raise self._err(node, "only Gemm with transA=0, alpha=1, beta=1 is supported")
            trans_b = int(a.get("transB", 0))
            in_f, out_f = (ws[1], ws[0]) if trans_b else (ws[0], ws[1])
            x = self._linear_input(node, in_f, f"weight B {list(ws)} (transB={trans_b})")
            has_bias = len(node.input) > 2 and bool(node.input[2])
            cs = self._const_shape(node, 2)
            if cs is not None and int(np.prod(cs)) != 1 and cs not in ((out_f,), (1, out_f)):
                raise self._err(
                    node,
                    f"bias C shape {list(cs)}; expected [{out_f}] (one per output)",
                    ModelError,
                )
            y = b.linear(x, int(out_f), bias=has_bias, name=name)
        elif op == "MatMul":
            ws = self._const_shape(node, 1)
            if ws is None or len(ws) != 2:
                raise self._err(node, "the second input is not a constant 2-D weight")
            x = self._linear_input(node, ws[0], f"weight {list(ws)}")
            bias_add = self._bias_add(node)
            if bias_add is None:
                y = b.linear(x, int(ws[1]), bias=False, name=name)
            else:  # MatMul + Add(bias) is one linear layer, named after the Add
                self.absorbed.add(id(bias_add))
                y = b.linear(x, int(ws[1]), bias=True, name=self._name(bias_add))
                self.val[bias_add.output[0]] = y
        elif op == "Concat":
            parts = [self._in(node, i) for i in range(len(node.input))]
            axis = int(a.get("axis", 1))  # required from opset 4; 1 before
            if self._axis(node, axis, len(b.shape(parts[0]))) != 1:
                raise self._err(node, f"Concat axis={axis}; expected the channel axis 1")
            y = b.concat(parts, name=name)
        elif op == "Softmax":
            x = self._in(node)
            xs = b.shape(x)
            old = self.opset is not None and self.opset < 13
            axis = int(a.get("axis", 1 if old else -1))
            if self._axis(node, axis, len(xs)) != 1:
                raise self._err(node, f"Softmax axis={axis} on shape {list(xs)}; expected axis 1")
            if old and len(xs) == 4 and xs[2] * xs[3] > 1:
                # before opset 13 Softmax normalises over every axis from `axis` on (C, H and
                # W together), not over the channels alone as the graph's softmax does
                raise self._err(
                    node,
                    f"Softmax at opset {self.opset} on shape {list(xs)} normalises over C, H and W "
                    "together; expected a (N, F) or (N, C, 1, 1) input, or opset >= 13",
                )
            y = b.softmax(x, name=name)
        else:
            raise self._err(
                node, f"unsupported operator {op!r}; supported: {', '.join(SUPPORTED_OPS)}"
            )
        self._set(node, y)
        self._check_shape(node, y)

    def _clip_bound(self, node: onnx.NodeProto, i: int, default: float) -> float:
        """Clip's bound input ``i`` (opset 11 on; before, the ``default`` attribute)."""
        if i >= len(node.input) or not node.input[i]:
            return default
        c = self._const(node, i)
        what = ("min", "max")[i - 1]
        if c is None:
            raise self._err(
                node, f"{what} bound {node.input[i]!r} is not a constant; expected Clip(0, 6)"
            )
        if c.size != 1:
            raise self._err(
                node, f"{what} bound of shape {list(c.shape)}; expected a scalar", ModelError
            )
        return float(c.reshape(-1)[0])

    def _constant(self, node: onnx.NodeProto) -> None:
        """A Constant node: its value, whichever ``value*`` attribute holds it."""
        out = node.output[0]
        attrs = {x.name: x for x in node.attribute}
        if "value" in attrs:
            self.inits[out] = attrs["value"].t  # read (from external data too) only if needed
        elif "value_float" in attrs:
            self.consts[out] = np.array(attrs["value_float"].f, np.float32)
        elif "value_floats" in attrs:
            self.consts[out] = np.array(list(attrs["value_floats"].floats), np.float32)
        elif "value_int" in attrs:
            self.consts[out] = np.array(attrs["value_int"].i, np.int64)
        elif "value_ints" in attrs:
            self.consts[out] = np.array(list(attrs["value_ints"].ints), np.int64)
        else:
            raise self._err(
                node,
                f"a Constant with attribute(s) {sorted(attrs) or 'none'} is not supported; "
                "expected value, value_float(s) or value_int(s) (sparse and string constants are "
                "not supported)",
            )

    def _linear_input(self, node: onnx.NodeProto, in_features: int, weight: str) -> str:
        """The (N, features) input of a Gemm / MatMul, checked against the weight."""
        x = self._in(node)
        xs = self.b.shape(x)
        if len(xs) != 2:
            raise self._err(
                node,
                f"input shape {list(xs)}; expected (N, features) (2-D): flatten the feature "
                "map first",
            )
        if xs[1] != in_features:
            raise self._err(
                node,
                f"{weight} takes {in_features} input features, but the input {list(xs)} has "
                f"{xs[1]}",
                ModelError,
            )
        return x

    def _bias_add(self, node: onnx.NodeProto) -> onnx.NodeProto | None:
        """The Add of a constant bias that alone consumes this MatMul's output, if any."""
        cs = self.consumers.get(node.output[0], [])
        if len(cs) != 1 or cs[0].op_type != "Add" or len(cs[0].input) != 2:
            return None
        other = [t for t in cs[0].input if t != node.output[0]]
        if len(other) != 1 or not self._is_const(other[0]):
            return None
        shape = self._const_shape(cs[0], list(cs[0].input).index(other[0]))
        if shape is None or len(shape) != 1:
            return None
        return cs[0]

    def _reshape(self, node: onnx.NodeProto, name: str) -> str | None:
        a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
        target = self._const(node, 1)
        if target is None:
            raise self._err(node, "target shape is not a constant")
        if target.dtype.kind not in "iu":
            raise self._err(
                node, f"target shape of type {target.dtype}; expected int64", ModelError
            )
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
        # (N, -1) flattening; torch.onnx folds x.view(x.size(0), -1) to the constant
        # [batch, -1] of the file's own batch, which is the batch dim at any --batch
        batch_dims = {shape[0], -1} | ({0} if not int(a.get("allowzero", 0)) else set())
        if self.model_batch:
            batch_dims.add(self.model_batch)
        if (
            len(t) == 2
            and t.count(-1) <= 1
            and t[0] in batch_dims
            and (t[1] == -1 or t[1] == int(np.prod(shape[1:])))
        ):
            return self.b.flatten(x, name=name)
        raise self._err(
            node,
            f"Reshape {list(shape)} -> {t}; only (N, -1) flattening and the channel-shuffle "
            "Reshape / Transpose / Reshape pattern are supported",
        )


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
    dims: list[int | str] = [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim
    ]
    if not dims:
        raise ModelError(f"input {vi.name!r} is a scalar (shape []); expected NCHW (4-D)")
    if any(not isinstance(d, int) for d in dims[1:]):
        raise ModelError(f"input {vi.name!r} has dynamic dims {dims}; expected static C, H, W")
    if any(isinstance(d, int) and d < 1 for d in dims[1:]):
        raise ModelError(
            f"input {vi.name!r} has shape {dims} with a zero-size dim; expected C, H, W >= 1"
        )
    return (batch or 1, *(int(d) for d in dims[1:]))


def from_onnx(
    path_or_model: str | os.PathLike[str] | onnx.ModelProto | bytes, batch: int | None = None
) -> Graph:
    """Import an ONNX model (a path, serialised bytes or a ``ModelProto``) into a Graph.

    ``batch`` overrides the batch dimension (a dynamic batch defaults to 1). Runs ONNX shape
    inference (strict: an inconsistent model is refused) and checks every imported node's shape
    against it. A model with external data imports from any working directory: weights are not
    read, and the small constants that are read come from the model's folder.
    """
    # a batch of 2.5 would import as 2 and one of 0 be reported as the input's shape [0, ...],
    # not as the argument the caller got wrong
    if batch is not None and expected_number(batch, integer=True, low=1) is not None:
        raise ConfigError(f"batch={batch!r}; expected an integer >= 1, or None for the model's own")
    batch = None if batch is None else int(batch)
    source = label = "<model>"
    base_dir = ""
    if isinstance(path_or_model, onnx.ModelProto):
        model = path_or_model
    elif isinstance(path_or_model, bytes):
        source = label = "<bytes>"
        model = _parse(path_or_model, label)
    else:
        p = Path(path_or_model)
        source, label, base_dir = p.name, repr(str(p)), str(p.parent)
        if p.is_dir():
            raise ModelError(f"ONNX model {str(p)!r} is a directory; expected a .onnx file")
        if not p.is_file():
            raise ModelError(f"ONNX model {str(p)!r} does not exist; expected a .onnx file")
        model = _parse(p.read_bytes(), str(p))  # external data stays unread ...
        _load_small_external_data(model, base_dir)  # ... but for shapes, axes, bounds
    order = _topological_order(list(model.graph.node), label)
    if order != list(range(len(order))):  # shape inference and the import walk need sorted nodes
        if model is path_or_model:
            model = onnx.ModelProto.FromString(model.SerializeToString())  # the caller's stays
        nodes = [onnx.NodeProto.FromString(n.SerializeToString()) for n in model.graph.node]
        del model.graph.node[:]
        model.graph.node.extend(nodes[i] for i in order)
    # Strict inference refuses an inconsistent model (a Concat of mismatched maps, a Gemm on
    # a 4-D tensor, declared shapes that differ from the computed ones). Its error is raised
    # only after the import: a node the importer cannot take is named more precisely there.
    strict_error = ""
    try:
        inferred = shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as exc:  # noqa: BLE001 - InferenceError, ValidationError, > 2 GB, ...
        strict_error = " ".join(str(exc).split())
        try:
            inferred = shape_inference.infer_shapes(model)
        except Exception:  # noqa: BLE001
            raise ModelError(f"ONNX shape inference failed on {source}: {strict_error}") from None
    graph = _Importer(inferred, batch, source, label, base_dir).run()
    if strict_error:
        raise ModelError(f"ONNX shape inference failed on {source}: {strict_error}")
    return graph


_SMALL = 64  # elements: shape, axes and bound constants; weights are larger and never read


def _load_small_external_data(model: onnx.ModelProto, base_dir: str) -> None:
    """Read the external data of small constants (shape inference needs Reshape targets).

    Weights stay unread: a 2 GB model imports without loading its data. A small tensor whose
    file cannot be read is left as it is: the importer names it if its value is needed.
    """
    from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data

    tensors = [*model.graph.initializer]
    for node in model.graph.node:
        tensors.extend(a.t for a in node.attribute if a.type == onnx.AttributeProto.TENSOR)
    for t in tensors:
        if not uses_external_data(t) or int(np.prod(t.dims)) > _SMALL:
            continue
        try:
            load_external_data_for_tensor(t, base_dir)
        except Exception:  # noqa: BLE001 - reported where (and if) the value is needed
            continue
        t.data_location = TensorProto.DEFAULT
        del t.external_data[:]


def _topological_order(nodes: list[onnx.NodeProto], label: str) -> list[int]:
    """Indices of ``nodes`` in topological order: the file's own where it is one already.

    ONNX asks for sorted nodes, but onnxruntime sorts them itself and runs a model written out
    of order, so the importer does too; a cycle is refused, naming the nodes on it.
    """
    producer = {t: i for i, n in enumerate(nodes) for t in n.output if t}
    deps = [{producer[t] for t in n.input if t in producer} for n in nodes]
    waiting = [len(d) for d in deps]
    readers: list[list[int]] = [[] for _ in nodes]
    for i, d in enumerate(deps):
        for j in d:
            readers[j].append(i)
    ready = [i for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)  # always the earliest ready node: a sorted file keeps its order
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for r in readers[i]:
            waiting[r] -= 1
            if not waiting[r]:
                heapq.heappush(ready, r)
    if len(order) < len(nodes):
        # drop the nodes that only read from a cycle: what stays is on (or between) cycles
        left = {i for i, w in enumerate(waiting) if w}
        changed = True
        while changed:
            changed = False
            for i in sorted(left):
                if not any(r in left for r in readers[i]):
                    left.discard(i)
                    changed = True
        names = [repr(nodes[i].name or nodes[i].output[0]) for i in sorted(left)]
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise ModelError(
            f"ONNX model {label} has a cycle through node(s) {shown}; expected an acyclic graph"
        )
    return order


def _parse(data: bytes, label: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own DecodeError type
        raise ModelError(f"{label} is not an ONNX model: {exc}") from None
    # protobuf parses almost any short byte string (b"" included) as an empty message: a file
    # without a graph of nodes, inputs or outputs is not a model. A graph of no nodes (an
    # identity model, input = output) is one, and imports as from a ModelProto.
    g = model.graph
    if not model.HasField("graph") or not (g.node or g.input or g.output):
        raise ModelError(f"{label} is not an ONNX model (no graph); expected a .onnx model file")
    return model
