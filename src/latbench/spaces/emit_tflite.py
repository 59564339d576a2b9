"""Emit an architecture graph as a TFLite (LiteRT) flatbuffer, without TensorFlow.

The model is written directly through the flatbuffer schema module that ``ai-edge-litert``
ships (``ai_edge_litert.schema_py_generated``), so emission takes milliseconds and needs neither
TensorFlow nor a converter. It mirrors what the TFLite converter produces for the same network:

* **NHWC layout.** The model input is ``(N, H, W, C)`` float32 (named ``input``); feature maps
  stay NHWC; a 4-D graph output is transposed back to NCHW so that every emitter's output has
  the graph's shape (a 2-D classifier output needs nothing).
* **BatchNorm folding.** A BatchNorm whose convolution has no other consumer is folded into the
  convolution's weights and bias; any other BatchNorm becomes MUL + ADD by per-channel constants.
* **Activation fusion.** A ReLU / ReLU6 that is the only consumer of a convolution (after
  folding) or of an ADD becomes the op's fused activation.
* **Padding.** TFLite has only SAME and VALID padding. Symmetric padding ``p`` equals SAME when
  SAME would pad ``p`` before and yield the same output size (always for stride 1 and odd
  kernels); otherwise an explicit PAD (PADV2 with the lowest float for max pooling) precedes a
  VALID op. TFLite's average pooling never counts padded cells, which is PyTorch's
  ``count_include_pad=False`` under SAME; after an explicit PAD the result is rescaled by a
  constant map of ``k*k / valid cells`` (or left as is for ``count_include_pad=True``).
* **Depthwise and grouped convolutions.** ``groups == in_channels`` becomes DEPTHWISE_CONV_2D;
  other grouped convolutions use CONV_2D with a grouped filter ``(O, K, K, I / groups)``, which
  the LiteRT CPU kernels support (checked by the equivalence tests).
* ``zeros`` is MUL by a zero constant; ``global_avgpool`` is MEAN over H and W;
  ``channel_shuffle`` is RESHAPE / TRANSPOSE / RESHAPE; ``flatten`` of a map larger than 1x1
  first transposes to NCHW so the feature order matches the other runtimes.

One subgraph; every constant has its own 16-byte-aligned buffer; buffer 0 is the empty sentinel.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from latbench.errors import ArchError, RuntimeNotInstalledError
from latbench.spaces.graph import Graph, Node, init_params

__all__ = ["to_tflite"]

_ALIGN = 16
_FLOAT32 = 0  # TensorType.FLOAT32
_INT32 = 2  # TensorType.INT32


def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError as exc:  # pragma: no cover - the litert extra is part of the dev setup
        raise RuntimeNotInstalledError(
            "TFLite emission needs ai-edge-litert; install it with: pip install 'latbench[litert]'"
        ) from exc
    return schema_py_generated


def _same_matches(size: int, k: int, s: int, p: int) -> bool:
    """True when TFLite SAME padding computes what symmetric padding ``p`` computes."""
    out = (size + 2 * p - k) // s + 1
    out_same = -(-size // s)
    pad_total = max((out_same - 1) * s + k - size, 0)
    return out_same == out and pad_total // 2 == p


def _valid_counts(size: int, k: int, s: int, p: int) -> np.ndarray:
    """Per output position, how many of the ``k`` window cells fall inside the unpadded input."""
    out = (size + 2 * p - k) // s + 1
    start = np.arange(out) * s - p
    return np.minimum(start + k, size) - np.maximum(start, 0)


# A pending flatbuffer object. Tables are lists of (slot, kind, value): kind is a struct format
# character for scalars ("b", "B", "?", "i", "I", "f"), or "table", "tables" (vector of tables),
# "ints" (vector of int32), "str" or "bytes" (16-byte-aligned ubyte vector).
_Field = tuple[int, str, Any]
_Table = list[_Field]


class _FlatWriter:
    """A minimal forward flatbuffer encoder for the TFLite schema.

    The ``flatbuffers`` Python builder spends ~5 function calls per scalar; a network of a few
    hundred tensors and operators then takes tens of milliseconds to pack, several times the
    cost of drawing its weights. This encoder writes front to back instead: each table is
    written with placeholder offsets, its children are queued, written after it (breadth first,
    so every ``uoffset`` points forward as the format requires) and patched in. Every scalar sits
    in a 4-byte slot (valid layout, never wider than 4 bytes here); vtables are deduplicated and
    placed before the tables that use them (negative ``soffset`` is allowed). Slot numbers come
    from ``schema.fbs``; the tests read the result back with the generated reader classes.
    """

    def __init__(self) -> None:
        self.buf = bytearray(8)  # root uoffset + file identifier
        self._vtables: dict[bytes, int] = {}
        self._queue: list[tuple[int, str, Any]] = []

    def _pad(self, align: int, extra: int = 0) -> None:
        rem = (len(self.buf) + extra) % align
        if rem:
            self.buf.extend(bytes(align - rem))

    def _table(self, fields: _Table) -> int:
        nslots = max((f[0] for f in fields), default=-1) + 1
        offsets = [0] * nslots
        for i, (slot, _, _) in enumerate(fields):
            offsets[slot] = 4 + 4 * i
        vt = struct.pack(f"<{nslots + 2}H", 4 + 2 * nslots, 4 + 4 * len(fields), *offsets)
        vt_pos = self._vtables.get(vt)
        if vt_pos is None:
            self._pad(2)
            vt_pos = len(self.buf)
            self.buf.extend(vt)
            self._vtables[vt] = vt_pos
        self._pad(4)
        pos = len(self.buf)
        self.buf.extend(bytes(4 + 4 * len(fields)))
        struct.pack_into("<i", self.buf, pos, pos - vt_pos)
        for i, (_, kind, value) in enumerate(fields):
            at = pos + 4 + 4 * i
            if len(kind) == 1:
                struct.pack_into("<" + kind, self.buf, at, value)
            else:
                self._queue.append((at, kind, value))
        return pos

    def _child(self, kind: str, value: Any) -> int:
        buf = self.buf
        if kind == "table":
            return self._table(value)
        if kind == "ints":
            self._pad(4)
            pos = len(buf)
            buf.extend(struct.pack(f"<I{len(value)}i", len(value), *value))
            return pos
        if kind == "str":
            data = value.encode()
            self._pad(4)
            pos = len(buf)
            buf.extend(struct.pack("<I", len(data)))
            buf.extend(data)
            buf.append(0)
            return pos
        if kind == "bytes":
            self._pad(_ALIGN, 4)  # the payload, after its length, starts 16-byte aligned
            pos = len(buf)
            buf.extend(struct.pack("<I", len(value)))
            buf.extend(value)
            return pos
        if kind == "tables":
            self._pad(4)
            pos = len(buf)
            buf.extend(struct.pack("<I", len(value)))
            buf.extend(bytes(4 * len(value)))
            for i, table in enumerate(value):
                self._queue.append((pos + 4 + 4 * i, "table", table))
            return pos
        raise TypeError(f"unknown flatbuffer field kind {kind!r}")  # pragma: no cover

    def finish(self, root: _Table, identifier: bytes) -> bytes:
        root_pos = self._table(root)
        struct.pack_into("<I4s", self.buf, 0, root_pos, identifier)
        i = 0
        while i < len(self._queue):  # breadth first: children always land after their parents
            at, kind, value = self._queue[i]
            i += 1
            struct.pack_into("<I", self.buf, at, self._child(kind, value) - at)
        return bytes(self.buf)


class _Writer:
    """Collects tensors, buffers, operators and opcodes of the single subgraph."""

    def __init__(self) -> None:
        self.tensors: list[list[Any]] = []  # [name, shape, dtype, buffer]
        self.buffers: list[bytes] = [b""]
        self.operators: list[_Table] = []
        self.opcodes: list[_Table] = []
        self._opcode_index: dict[int, int] = {}

    def tensor(self, name: str, shape: tuple[int, ...] | list[int], dtype: int = _FLOAT32) -> int:
        self.tensors.append([name, [int(d) for d in shape], dtype, 0])
        return len(self.tensors) - 1

    def const(self, name: str, arr: np.ndarray) -> int:
        if arr.dtype == np.float32:
            dtype = _FLOAT32
        elif arr.dtype == np.int32:
            dtype = _INT32
        else:  # pragma: no cover - internal misuse
            raise TypeError(f"unsupported constant dtype {arr.dtype}")
        idx = self.tensor(name, arr.shape, dtype)
        self.buffers.append(np.ascontiguousarray(arr).tobytes())
        self.tensors[idx][3] = len(self.buffers) - 1
        return idx

    def op(
        self,
        code: int,
        inputs: list[int],
        outputs: list[int],
        options_type: int = 0,
        options: _Table | None = None,
    ) -> None:
        if code not in self._opcode_index:
            self._opcode_index[code] = len(self.opcodes)
            # OperatorCode: deprecated_builtin_code (0, int8), version (2), builtin_code (3)
            self.opcodes.append([(0, "b", min(code, 127)), (2, "i", 1), (3, "i", code)])
        # Operator: opcode_index (0), inputs (1), outputs (2), builtin_options_type (3),
        # builtin_options (4)
        table: _Table = [
            (0, "I", self._opcode_index[code]),
            (1, "ints", inputs),
            (2, "ints", outputs),
        ]
        if options_type:
            table.append((3, "B", options_type))
            table.append((4, "table", options or []))
        self.operators.append(table)

    def finish(self, inputs: list[int], outputs: list[int], description: str) -> bytes:
        # Tensor: shape (0), type (1, int8), buffer (2, uint32), name (3)
        tensors = [
            [(0, "ints", shape), (1, "b", dtype), (2, "I", buf), (3, "str", name)]
            for name, shape, dtype, buf in self.tensors
        ]
        # SubGraph: tensors (0), inputs (1), outputs (2), operators (3), name (4)
        subgraph: _Table = [
            (0, "tables", tensors),
            (1, "ints", inputs),
            (2, "ints", outputs),
            (3, "tables", self.operators),
            (4, "str", "main"),
        ]
        # Buffer: data (0); buffer 0 is the empty sentinel
        buffers = [[(0, "bytes", b)] if b else [] for b in self.buffers]
        # Model: version (0), operator_codes (1), subgraphs (2), description (3), buffers (4)
        model: _Table = [
            (0, "I", 3),
            (1, "tables", self.opcodes),
            (2, "tables", [subgraph]),
            (3, "str", description),
            (4, "tables", buffers),
        ]
        return _FlatWriter().finish(model, b"TFL3")


def _nhwc(shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(shape) == 4:
        n, c, h, w = shape
        return (n, h, w, c)
    return shape


class _Emitter:
    """Walks the graph once, folding and fusing as it goes."""

    def __init__(self, graph: Graph, seed: int) -> None:
        self.g = graph
        self.s = _schema()
        self.w = _Writer()
        self.params = init_params(graph, seed)
        self.val: dict[str, int] = {}  # graph node -> TFLite tensor holding its (NHWC) value
        consumers = graph.consumers()
        outputs = set(graph.outputs)
        self.folded_bn: dict[str, str] = {}  # conv -> batchnorm folded into it
        self.fused_act: dict[str, str] = {}  # conv / add -> relu(6) fused into it
        self.absorbed: set[str] = set()
        for n in graph.nodes:
            if n.op not in ("conv", "add"):
                continue
            tail = n.name
            if n.op == "conv":
                cs = consumers[tail]
                if len(cs) == 1 and tail not in outputs and graph[cs[0]].op == "batchnorm":
                    self.folded_bn[n.name] = cs[0]
                    self.absorbed.add(cs[0])
                    tail = cs[0]
            cs = consumers[tail]
            if len(cs) == 1 and tail not in outputs and graph[cs[0]].op in ("relu", "relu6"):
                self.fused_act[n.name] = cs[0]
                self.absorbed.add(cs[0])

    # ---- helpers ----------------------------------------------------------------------
    def _act(self, name: str) -> int:
        act = self.fused_act.get(name)
        if act is None:
            return int(self.s.ActivationFunctionType.NONE)
        if self.g[act].op == "relu":
            return int(self.s.ActivationFunctionType.RELU)
        return int(self.s.ActivationFunctionType.RELU6)

    def _out(self, n: Node, shape: tuple[int, ...] | None = None) -> int:
        """The output tensor of node ``n`` (and of the BN / activation absorbed into it)."""
        names = [n.name, self.folded_bn.get(n.name), self.fused_act.get(n.name)]
        last = [x for x in names if x is not None][-1]
        t = self.w.tensor(last, _nhwc(n.shape) if shape is None else shape)
        for x in names:
            if x is not None:
                self.val[x] = t
        return t

    def _binary(self, code: int, a: int, b: int, out: int, act: int = 0) -> None:
        s = self.s
        kind = s.BuiltinOptions.AddOptions if code == s.BuiltinOperator.ADD else None
        kind = s.BuiltinOptions.MulOptions if kind is None else kind
        # AddOptions / MulOptions: fused_activation_function (0)
        self.w.op(code, [a, b], [out], kind, [(0, "b", act)])

    def _reshape(self, x: int, shape: tuple[int, ...], name: str, out: int | None = None) -> int:
        s = self.s
        if out is None:
            out = self.w.tensor(name, shape)
        shp = self.w.const(f"{name}/shape", np.array(shape, np.int32))
        opt: _Table = [(0, "ints", [int(d) for d in shape])]  # ReshapeOptions: new_shape (0)
        self.w.op(s.BuiltinOperator.RESHAPE, [x, shp], [out], s.BuiltinOptions.ReshapeOptions, opt)
        return out

    def _transpose(self, x: int, perm: list[int], shape: tuple[int, ...], name: str) -> int:
        s = self.s
        out = self.w.tensor(name, shape)
        p = self.w.const(f"{name}/perm", np.array(perm, np.int32))
        self.w.op(
            s.BuiltinOperator.TRANSPOSE,
            [x, p],
            [out],
            s.BuiltinOptions.TransposeOptions,
            [],
        )
        return out

    def _pad(self, x: int, in_shape: tuple[int, ...], p: int, name: str, value: float = 0.0) -> int:
        """Explicit symmetric spatial padding of an NHWC tensor (PAD, or PADV2 with ``value``)."""
        s = self.s
        n, h, w, c = in_shape
        out = self.w.tensor(name, (n, h + 2 * p, w + 2 * p, c))
        pads = self.w.const(
            f"{name}/paddings", np.array([[0, 0], [p, p], [p, p], [0, 0]], np.int32)
        )
        if value == 0.0:
            self.w.op(
                s.BuiltinOperator.PAD,
                [x, pads],
                [out],
                s.BuiltinOptions.PadOptions,
                [],
            )
        else:
            v = self.w.const(f"{name}/value", np.array([value], np.float32))
            self.w.op(
                s.BuiltinOperator.PADV2,
                [x, pads, v],
                [out],
                s.BuiltinOptions.PadV2Options,
                [],
            )
        return out

    def _padding_mode(
        self, n: Node, x: int, k: int, stride: int, p: int, pad_value: float = 0.0
    ) -> tuple[int, int, bool]:
        """(input tensor, SAME/VALID, explicit pad added) for a windowed op on input ``x``."""
        s = self.s
        _, _, h, w = self.g[n.inputs[0]].shape
        if p == 0:
            return x, int(s.Padding.VALID), False
        if _same_matches(h, k, stride, p) and _same_matches(w, k, stride, p):
            return x, int(s.Padding.SAME), False
        xp = self._pad(x, _nhwc(self.g[n.inputs[0]].shape), p, f"{n.name}/pad", pad_value)
        return xp, int(s.Padding.VALID), True

    # ---- per op -------------------------------------------------------------------------
    def conv(self, n: Node) -> None:
        s, a = self.s, n.attrs
        p = self.params[n.name]
        cin = self.g[n.inputs[0]].shape[1]
        cout = int(a["out_channels"])
        k, stride, groups = int(a["kernel"]), int(a["stride"]), int(a.get("groups", 1))
        wt = p["weight"]
        bias = p.get("bias", np.zeros(cout, np.float32))
        bn = self.folded_bn.get(n.name)
        if bn is not None:
            q = self.params[bn]
            scale = q["gamma"] / np.sqrt(q["var"] + np.float32(self.g[bn].attrs.get("eps", 1e-5)))
            wt = wt * scale[:, None, None, None]
            bias = (bias - q["mean"]) * scale + q["beta"]
        x, padding, _ = self._padding_mode(n, self.val[n.inputs[0]], k, stride, int(a["padding"]))
        bias_t = self.w.const(f"{n.name}/bias", bias.astype(np.float32))
        out = self._out(n)
        if groups == cin and groups > 1:
            filt = np.ascontiguousarray(wt.reshape(cout, k, k).transpose(1, 2, 0)[None])
            f_t = self.w.const(f"{n.name}/filter", filt)
            # DepthwiseConv2DOptions: padding (0), stride_w (1), stride_h (2),
            # depth_multiplier (3), fused_activation_function (4), dilations (5, 6)
            opt: _Table = [
                (0, "b", padding),
                (1, "i", stride),
                (2, "i", stride),
                (3, "i", cout // cin),
                (4, "b", self._act(n.name)),
                (5, "i", 1),
                (6, "i", 1),
            ]
            self.w.op(
                s.BuiltinOperator.DEPTHWISE_CONV_2D,
                [x, f_t, bias_t],
                [out],
                s.BuiltinOptions.DepthwiseConv2DOptions,
                opt,
            )
        else:
            f_t = self.w.const(f"{n.name}/filter", np.ascontiguousarray(wt.transpose(0, 2, 3, 1)))
            # Conv2DOptions: padding (0), stride_w (1), stride_h (2),
            # fused_activation_function (3), dilations (4, 5)
            opt = [
                (0, "b", padding),
                (1, "i", stride),
                (2, "i", stride),
                (3, "b", self._act(n.name)),
                (4, "i", 1),
                (5, "i", 1),
            ]
            self.w.op(
                s.BuiltinOperator.CONV_2D,
                [x, f_t, bias_t],
                [out],
                s.BuiltinOptions.Conv2DOptions,
                opt,
            )

    def batchnorm(self, n: Node) -> None:
        q = self.params[n.name]
        scale = q["gamma"] / np.sqrt(q["var"] + np.float32(n.attrs.get("eps", 1e-5)))
        shift = q["beta"] - q["mean"] * scale
        sc = self.w.const(f"{n.name}/scale", scale.astype(np.float32))
        sh = self.w.const(f"{n.name}/shift", shift.astype(np.float32))
        mid = self.w.tensor(f"{n.name}/scaled", _nhwc(n.shape))
        self._binary(self.s.BuiltinOperator.MUL, self.val[n.inputs[0]], sc, mid)
        self._binary(self.s.BuiltinOperator.ADD, mid, sh, self._out(n))

    def pool(self, n: Node) -> None:
        s, a = self.s, n.attrs
        k, stride, p = int(a["kernel"]), int(a["stride"]), int(a.get("padding", 0))
        is_avg = n.op == "avgpool"
        include_pad = bool(a.get("count_include_pad", False))
        lowest = float(np.finfo(np.float32).min)
        x = self.val[n.inputs[0]]
        if is_avg and include_pad and p > 0:  # SAME would exclude the padded cells
            x, padding, explicit = (
                self._pad(x, _nhwc(self.g[n.inputs[0]].shape), p, f"{n.name}/pad"),
                int(s.Padding.VALID),
                True,
            )
        else:
            x, padding, explicit = self._padding_mode(n, x, k, stride, p, 0.0 if is_avg else lowest)
        rescale = is_avg and explicit and not include_pad
        # Pool2DOptions: padding (0), stride_w (1), stride_h (2), filter_width (3),
        # filter_height (4)
        opt: _Table = [
            (0, "b", padding),
            (1, "i", stride),
            (2, "i", stride),
            (3, "i", k),
            (4, "i", k),
        ]
        out = self.w.tensor(f"{n.name}/unscaled", _nhwc(n.shape)) if rescale else self._out(n)
        code = s.BuiltinOperator.AVERAGE_POOL_2D if is_avg else s.BuiltinOperator.MAX_POOL_2D
        self.w.op(code, [x], [out], s.BuiltinOptions.Pool2DOptions, opt)
        if rescale:
            _, _, h, w = self.g[n.inputs[0]].shape
            ch, cw = _valid_counts(h, k, stride, p), _valid_counts(w, k, stride, p)
            factor = (k * k) / np.outer(ch, cw)
            f = self.w.const(f"{n.name}/count", factor.astype(np.float32)[None, :, :, None])
            self._binary(s.BuiltinOperator.MUL, out, f, self._out(n))

    def emit(self) -> bytes:
        s, w = self.s, self.w
        inputs: list[int] = []
        for n in self.g.nodes:
            if n.name in self.absorbed:
                continue
            op = n.op
            if op == "input":
                if len(n.shape) != 4:
                    raise ArchError(f"input {n.name!r} has shape {n.shape}; expected NCHW (4-D)")
                t = w.tensor("input" if not inputs else f"input_{len(inputs)}", _nhwc(n.shape))
                self.val[n.name] = t
                inputs.append(t)
            elif op == "conv":
                self.conv(n)
            elif op == "batchnorm":
                self.batchnorm(n)
            elif op in ("relu", "relu6", "sigmoid", "hardswish"):
                code = {
                    "relu": s.BuiltinOperator.RELU,
                    "relu6": s.BuiltinOperator.RELU6,
                    "sigmoid": s.BuiltinOperator.LOGISTIC,
                    "hardswish": s.BuiltinOperator.HARD_SWISH,
                }[op]
                w.op(code, [self.val[n.inputs[0]]], [self._out(n)])
            elif op == "add":
                ins = [self.val[i] for i in n.inputs]
                acc = ins[0]
                for j, x in enumerate(ins[1:], start=1):
                    last = j == len(ins) - 1
                    out = self._out(n) if last else w.tensor(f"{n.name}/partial{j}", _nhwc(n.shape))
                    self._binary(
                        s.BuiltinOperator.ADD, acc, x, out, self._act(n.name) if last else 0
                    )
                    acc = out
            elif op == "mul":
                self._binary(
                    s.BuiltinOperator.MUL,
                    self.val[n.inputs[0]],
                    self.val[n.inputs[1]],
                    self._out(n),
                )
            elif op == "zeros":
                z = w.const(f"{n.name}/zero", np.zeros(1, np.float32))
                self._binary(s.BuiltinOperator.MUL, self.val[n.inputs[0]], z, self._out(n))
            elif op in ("avgpool", "maxpool"):
                self.pool(n)
            elif op == "global_avgpool":
                axes = w.const(f"{n.name}/axes", np.array([1, 2], np.int32))
                opt: _Table = [(0, "?", True)]  # ReducerOptions: keep_dims (0)
                w.op(
                    s.BuiltinOperator.MEAN,
                    [self.val[n.inputs[0]], axes],
                    [self._out(n)],
                    s.BuiltinOptions.ReducerOptions,
                    opt,
                )
            elif op == "flatten":
                src = self.g[n.inputs[0]].shape
                x = self.val[n.inputs[0]]
                if len(src) == 4 and src[2] * src[3] > 1:
                    x = self._transpose(x, [0, 3, 1, 2], src, f"{n.name}/nchw")
                if len(src) == 2:
                    self.val[n.name] = x
                else:
                    self._reshape(x, n.shape, n.name, self._out(n))
            elif op == "linear":
                p = self.params[n.name]
                fout = int(n.attrs["out_features"])
                wt = w.const(f"{n.name}/weight", p["weight"])
                b = w.const(f"{n.name}/bias", p.get("bias", np.zeros(fout, np.float32)))
                opt = [(0, "b", 0)]  # FullyConnectedOptions: fused_activation_function (0)
                w.op(
                    s.BuiltinOperator.FULLY_CONNECTED,
                    [self.val[n.inputs[0]], wt, b],
                    [self._out(n)],
                    s.BuiltinOptions.FullyConnectedOptions,
                    opt,
                )
            elif op == "channel_shuffle":
                g = int(n.attrs["groups"])
                b_, c, h, wd = n.shape
                x = self._reshape(
                    self.val[n.inputs[0]], (b_, h, wd, g, c // g), f"{n.name}/grouped"
                )
                x = self._transpose(
                    x, [0, 1, 2, 4, 3], (b_, h, wd, c // g, g), f"{n.name}/transposed"
                )
                self._reshape(x, (b_, h, wd, c), n.name, self._out(n))
            elif op == "concat":
                # ConcatenationOptions: axis (0), fused_activation_function (1)
                opt = [(0, "i", 3 if len(n.shape) == 4 else 1), (1, "b", 0)]
                w.op(
                    s.BuiltinOperator.CONCATENATION,
                    [self.val[i] for i in n.inputs],
                    [self._out(n)],
                    s.BuiltinOptions.ConcatenationOptions,
                    opt,
                )
            elif op == "softmax":
                opt = [(0, "f", 1.0)]  # SoftmaxOptions: beta (0)
                w.op(
                    s.BuiltinOperator.SOFTMAX,
                    [self.val[n.inputs[0]]],
                    [self._out(n)],
                    s.BuiltinOptions.SoftmaxOptions,
                    opt,
                )
            else:  # pragma: no cover - Graph validates ops against the vocabulary
                raise ArchError(f"node {n.name!r}: op {op!r} has no TFLite mapping")

        outputs: list[int] = []
        for i, o in enumerate(self.g.outputs):
            name = "output" if i == 0 else f"output_{i}"
            shape = self.g[o].shape
            if len(shape) == 4:
                t = self._transpose(self.val[o], [0, 3, 1, 2], shape, name)
            else:
                t = self.val[o]
                w.tensors[t][0] = name
            outputs.append(t)
        desc = f"latbench {self.g.meta.get('space', '')} {self.g.meta.get('arch', '')}".strip()
        return w.finish(inputs, outputs, desc)


def to_tflite(graph: Graph, seed: int = 0) -> bytes:
    """The graph as a float32 TFLite flatbuffer (NHWC input) with the weights of ``seed``."""
    return _Emitter(graph, seed).emit()
