"""The architecture graph: a DAG of operators with attributes and tensor shapes.

Every architecture latbench handles, from a search space or imported from an ONNX file, becomes a
:class:`Graph`. Emitters turn it into ONNX, TFLite or torch models; predictors read features from
it; its :meth:`Graph.graph_id` is the stable identity of the computation.

Shapes are NCHW (``(N, C, H, W)`` for feature maps, ``(N, F)`` after ``flatten``). The operator
vocabulary is deliberately small, so that every emitter supports every operator:

=================  ======================================================  =====================
op                 attrs                                                    inputs
=================  ======================================================  =====================
``input``          (shape only)                                             none
``conv``           out_channels, kernel, stride, padding, groups, bias      1
``batchnorm``      eps                                                      1 (4-D, or 2-D (N, F))
``relu``           --                                                       1
``relu6``          --                                                       1
``sigmoid``        --                                                       1
``hardswish``      --                                                       1
``add``            --                                                       >= 2 (same shape)
``mul``            --                                                       2 (the 2nd broadcasts)
``zeros``          --                                                       1 (output = 0 * x)
``avgpool``        kernel, stride, padding, count_include_pad               1 (padding <= k // 2)
``maxpool``        kernel, stride, padding                                  1 (padding <= k // 2)
``global_avgpool`` --                                                       1 -> (N, C, 1, 1)
``flatten``        --                                                       1 -> (N, C*H*W)
``linear``         out_features, bias                                       1 (N, F)
``channel_shuffle`` groups                                                  1
``concat``         --                                                       >= 2 (channel axis 1)
``softmax``        --                                                       1 (N, F)
=================  ======================================================  =====================

The builder refuses what no runtime computes (with an :class:`~latbench.errors.ArchError` naming
the op, the node and the values): inputs of the wrong rank, concatenations whose batch or spatial
sizes differ, adds of different shapes, pooling padding above ``kernel // 2`` (onnxruntime
requires padding < kernel, torch padding <= kernel / 2), windows larger than the padded input,
group counts that do not divide the channels.

Weights are not part of the graph: :func:`init_params` draws them deterministically from a seed,
one independent stream per node, so every emitter produces the same numbers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latbench.errors import ArchError

GRAPH_FORMAT_VERSION = 1

ELEMENTWISE_UNARY = frozenset({"relu", "relu6", "sigmoid", "hardswish"})
OPS = frozenset(
    {
        "input",
        "conv",
        "batchnorm",
        "add",
        "mul",
        "zeros",
        "avgpool",
        "maxpool",
        "global_avgpool",
        "flatten",
        "linear",
        "channel_shuffle",
        "concat",
        "softmax",
    }
    | ELEMENTWISE_UNARY
)

BYTES_PER_ELEMENT = 4  # float32


@dataclass(frozen=True)
class Node:
    """One operator of the graph; ``shape`` is the shape of its (single) output."""

    name: str
    op: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op": self.op,
            "inputs": list(self.inputs),
            "shape": list(self.shape),
            "attrs": dict(sorted(self.attrs.items())),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Node:
        return cls(
            name=str(d["name"]),
            op=str(d["op"]),
            inputs=tuple(str(x) for x in d["inputs"]),
            shape=tuple(int(x) for x in d["shape"]),
            attrs=dict(d.get("attrs", {})),
        )


def _numel(shape: Iterable[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


class Graph:
    """A DAG of :class:`Node` in topological order with named outputs."""

    def __init__(
        self,
        nodes: Iterable[Node],
        outputs: Iterable[str],
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self.nodes: list[Node] = list(nodes)
        self.outputs: list[str] = list(outputs)
        self.meta: dict[str, Any] = dict(meta or {})
        self._by_name = {n.name: n for n in self.nodes}
        self._validate()

    # ---- structure ------------------------------------------------------------------
    def _validate(self) -> None:
        seen: set[str] = set()
        for n in self.nodes:
            if n.op not in OPS:
                raise ArchError(
                    f"node {n.name!r}: unknown op {n.op!r}; expected one of {sorted(OPS)}"
                )
            if n.name in seen:
                raise ArchError(f"duplicate node name {n.name!r}")
            for i in n.inputs:
                if i not in seen:
                    raise ArchError(f"node {n.name!r} reads {i!r}, which is not defined before it")
            seen.add(n.name)
        if not self.outputs:
            raise ArchError("the graph has no output; expected at least one")
        for o in self.outputs:
            if o not in seen:
                raise ArchError(f"graph output {o!r} is not a node")

    def __getitem__(self, name: str) -> Node:
        return self._by_name[name]

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def inputs(self) -> list[Node]:
        return [n for n in self.nodes if n.op == "input"]

    def consumers(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                out[i].append(n.name)
        return out

    def pruned(self) -> Graph:
        """The graph without nodes that no output depends on (inputs are kept)."""
        live: set[str] = set(self.outputs)
        for n in reversed(self.nodes):
            if n.name in live:
                live.update(n.inputs)
        keep = [n for n in self.nodes if n.name in live or n.op == "input"]
        return Graph(keep, self.outputs, self.meta)

    # ---- cost model -------------------------------------------------------------------
    def node_macs(self, node: Node | str) -> int:
        """Multiply-accumulates of one node (element operations for non-MAC operators)."""
        n = self._by_name[node] if isinstance(node, str) else node
        out = _numel(n.shape)
        if n.op == "conv":
            cin = self._by_name[n.inputs[0]].shape[1]
            k = int(n.attrs["kernel"])
            return out * (cin // int(n.attrs.get("groups", 1))) * k * k
        if n.op == "linear":
            fin = self._by_name[n.inputs[0]].shape[1]
            return out * fin
        if n.op in ("avgpool", "maxpool"):
            k = int(n.attrs["kernel"])
            return out * k * k
        if n.op == "global_avgpool":
            return _numel(self._by_name[n.inputs[0]].shape)
        if n.op in ("add", "concat"):
            return out * max(len(n.inputs) - 1, 1)
        if n.op in ("input", "flatten", "channel_shuffle"):
            return 0
        return out  # batchnorm, activations, mul, zeros, softmax

    def node_params(self, node: Node | str) -> int:
        n = self._by_name[node] if isinstance(node, str) else node
        if n.op == "conv":
            cin = self._by_name[n.inputs[0]].shape[1]
            k = int(n.attrs["kernel"])
            cout = int(n.attrs["out_channels"])
            w = cout * (cin // int(n.attrs.get("groups", 1))) * k * k
            return w + (cout if n.attrs.get("bias", False) else 0)
        if n.op == "linear":
            fin = self._by_name[n.inputs[0]].shape[1]
            fout = int(n.attrs["out_features"])
            return fin * fout + (fout if n.attrs.get("bias", True) else 0)
        if n.op == "batchnorm":
            return 2 * n.shape[1]
        return 0

    def macs(self) -> int:
        return sum(self.node_macs(n) for n in self.nodes)

    def flops(self) -> int:
        """FLOPs counted as 2 x MACs (one multiply and one add)."""
        return 2 * self.macs()

    def params(self) -> int:
        return sum(self.node_params(n) for n in self.nodes)

    def activation_bytes(self) -> int:
        """Sum of all node outputs (float32): the memory traffic of writing every activation."""
        return sum(_numel(n.shape) for n in self.nodes) * BYTES_PER_ELEMENT

    def peak_activation_bytes(self) -> int:
        """Peak of live activations in topological order (a tensor dies after its last read)."""
        last_use: dict[str, int] = {}
        for i, n in enumerate(self.nodes):
            for src in n.inputs:
                last_use[src] = i
        for o in self.outputs:
            last_use[o] = len(self.nodes)
        live: dict[str, int] = {}
        peak = 0
        for i, n in enumerate(self.nodes):
            live[n.name] = _numel(n.shape) * BYTES_PER_ELEMENT
            peak = max(peak, sum(live.values()))
            for src in {*n.inputs, n.name}:
                if last_use.get(src, -1) <= i and src not in self.outputs:
                    live.pop(src, None)
        return peak

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.nodes:
            counts[n.op] = counts.get(n.op, 0) + 1
        return dict(sorted(counts.items()))

    # ---- identity and serialisation ------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": GRAPH_FORMAT_VERSION,
            "nodes": [n.to_dict() for n in self.nodes],
            "outputs": list(self.outputs),
            "meta": self.meta,
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Graph:
        if not isinstance(d, Mapping):
            raise ArchError(
                f"a latbench graph is a JSON object; got {type(d).__name__}, expected "
                "{format_version, nodes, outputs, meta}"
            )
        version = d.get("format_version", 0)
        if version != GRAPH_FORMAT_VERSION:
            raise ArchError(
                f"graph format version {version!r} is not supported; "
                f"expected {GRAPH_FORMAT_VERSION}"
            )
        try:
            nodes = [Node.from_dict(n) for n in d["nodes"]]
            outputs = [str(o) for o in d["outputs"]]
            meta = d.get("meta")
            return cls(nodes, outputs, None if meta is None else dict(meta))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, ArchError):
                raise
            what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ArchError(
                f"malformed latbench graph ({what}); expected nodes of "
                "{name, op, inputs, shape, attrs} and a list of outputs"
            ) from None

    @classmethod
    def from_json(cls, text: str) -> Graph:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ArchError(f"not a latbench graph JSON document: {exc}") from None
        return cls.from_dict(d)

    def graph_id(self) -> str:
        """A stable hash of the computation (structure, shapes, attributes; not ``meta``)."""
        payload = json.dumps(
            {"nodes": [n.to_dict() for n in self.nodes], "outputs": self.outputs},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def summary(self) -> dict[str, Any]:
        return {
            "graph_id": self.graph_id(),
            "nodes": len(self.nodes),
            "input_shape": list(self.inputs[0].shape) if self.inputs else [],
            "output_shape": [list(self[o].shape) for o in self.outputs],
            "macs": self.macs(),
            "flops": self.flops(),
            "params": self.params(),
            "activation_bytes": self.activation_bytes(),
            "peak_activation_bytes": self.peak_activation_bytes(),
            "ops": self.op_counts(),
            **{k: v for k, v in self.meta.items() if isinstance(v, str | int | float)},
        }


class GraphBuilder:
    """Builds a :class:`Graph` with shape inference; each method returns the new node's name."""

    def __init__(self, meta: Mapping[str, Any] | None = None) -> None:
        self._nodes: list[Node] = []
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._counter: dict[str, int] = {}
        self.meta = dict(meta or {})

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shapes[name]

    def __contains__(self, name: object) -> bool:
        """Whether a node of this name was added."""
        return name in self._shapes

    # ---- validation: every graph the builder returns is one every emitter and runtime runs
    @staticmethod
    def _label(op: str, name: str | None) -> str:
        return f"{op} {name!r}" if name else op

    def _rank(self, op: str, name: str | None, x: str, ranks: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of input ``x``, refused unless its rank is one of ``ranks``."""
        s = self._shapes[x]
        if len(s) not in ranks:
            names = {4: "NCHW (4-D)", 2: "(N, features) (2-D)"}
            want = " or ".join(names.get(r, f"{r}-D") for r in ranks)
            raise ArchError(
                f"{self._label(op, name)}: input {x!r} has shape {list(s)}; expected {want}"
            )
        return s

    def _window(
        self,
        op: str,
        name: str | None,
        size: tuple[int, int],
        kernel: int,
        stride: int,
        padding: int,
    ) -> tuple[int, int]:
        """Output (H, W) of a square window; refuses sizes no runtime computes."""
        where = self._label(op, name)
        if kernel < 1 or stride < 1 or padding < 0:
            raise ArchError(
                f"{where}: kernel {kernel}, stride {stride}, padding {padding}; expected "
                "kernel >= 1, stride >= 1 and padding >= 0"
            )
        if op in ("avgpool", "maxpool") and 2 * padding > kernel:
            # onnxruntime needs padding < kernel, torch padding <= kernel / 2 (the tighter rule)
            raise ArchError(
                f"{where}: padding {padding} with kernel {kernel}; expected padding <= "
                f"kernel // 2 = {kernel // 2} (a pooling window must not be mostly padding)"
            )
        out = tuple((d + 2 * padding - kernel) // stride + 1 for d in size)
        if min(out) < 1:
            raise ArchError(
                f"{where}: kernel {kernel} with padding {padding} does not fit the "
                f"{size[0]}x{size[1]} input (output {out[0]}x{out[1]}); expected an output >= 1x1"
            )
        return out[0], out[1]

    def _add(
        self, op: str, inputs: Iterable[str], shape: Iterable[int], name: str | None, **attrs: Any
    ) -> str:
        if name is None:
            i = self._counter.get(op, 0)
            self._counter[op] = i + 1
            name = f"{op}_{i}"
        node = Node(name, op, tuple(inputs), tuple(int(s) for s in shape), attrs)
        self._nodes.append(node)
        self._shapes[name] = node.shape
        return name

    def input(self, shape: Iterable[int], name: str = "input") -> str:
        dims = tuple(int(s) for s in shape)
        if not dims or min(dims) < 1:
            raise ArchError(f"input {name!r} has shape {list(dims)}; expected every dim >= 1")
        return self._add("input", (), dims, name)

    def conv(
        self,
        x: str,
        out_channels: int,
        kernel: int,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        bias: bool = False,
        name: str | None = None,
    ) -> str:
        n, c, h, w = self._rank("conv", name, x, (4,))
        if padding is None:
            padding = kernel // 2
        if groups < 1 or out_channels < 1 or c % groups or out_channels % groups:
            raise ArchError(
                f"{self._label('conv', name)}: groups={groups} must divide in={c} and "
                f"out={out_channels}"
            )
        ho, wo = self._window("conv", name, (h, w), kernel, stride, padding)
        return self._add(
            "conv",
            [x],
            (n, out_channels, ho, wo),
            name,
            out_channels=out_channels,
            kernel=kernel,
            stride=stride,
            padding=padding,
            groups=groups,
            bias=bias,
        )

    def batchnorm(self, x: str, eps: float = 1e-5, name: str | None = None) -> str:
        # (N, C, H, W) after a conv, or (N, F) after a linear layer (BatchNorm1d)
        shape = self._rank("batchnorm", name, x, (4, 2))
        return self._add("batchnorm", [x], shape, name, eps=eps)

    def act(self, op: str, x: str, name: str | None = None) -> str:
        if op not in ELEMENTWISE_UNARY:
            raise ArchError(
                f"unknown activation {op!r}; expected one of {sorted(ELEMENTWISE_UNARY)}"
            )
        return self._add(op, [x], self._shapes[x], name)

    def relu(self, x: str, name: str | None = None) -> str:
        return self.act("relu", x, name)

    def add(self, xs: Iterable[str], name: str | None = None) -> str:
        xs = list(xs)
        if not xs:
            raise ArchError(f"{self._label('add', name)}: no inputs; expected at least one")
        shapes = [self._shapes[x] for x in xs]
        if len(set(shapes)) != 1:
            raise ArchError(
                f"{self._label('add', name)} of different shapes "
                f"{', '.join(str(list(s)) for s in shapes)}; expected equal shapes "
                "(a broadcasting add is not supported)"
            )
        if len(xs) == 1:
            return xs[0]
        return self._add("add", xs, self._shapes[xs[0]], name)

    def mul(self, a: str, b: str, name: str | None = None) -> str:
        sa, sb = self._shapes[a], self._shapes[b]
        if len(sa) != len(sb) or any(db not in (da, 1) for da, db in zip(sa, sb, strict=True)):
            raise ArchError(
                f"{self._label('mul', name)} of shapes {list(sa)} and {list(sb)}; expected the "
                "second to equal the first or to broadcast to it (size-1 dims)"
            )
        return self._add("mul", [a, b], sa, name)

    def zeros(self, like: str, name: str | None = None) -> str:
        return self._add("zeros", [like], self._shapes[like], name)

    def pool(
        self,
        op: str,
        x: str,
        kernel: int,
        stride: int,
        padding: int = 0,
        count_include_pad: bool = False,
        name: str | None = None,
    ) -> str:
        if op not in ("avgpool", "maxpool"):
            raise ArchError(f"unknown pooling {op!r}; expected 'avgpool' or 'maxpool'")
        n, c, h, w = self._rank(op, name, x, (4,))
        ho, wo = self._window(op, name, (h, w), kernel, stride, padding)
        attrs: dict[str, Any] = {"kernel": kernel, "stride": stride, "padding": padding}
        if op == "avgpool":
            attrs["count_include_pad"] = count_include_pad
        return self._add(op, [x], (n, c, ho, wo), name, **attrs)

    def global_avgpool(self, x: str, name: str | None = None) -> str:
        n, c, _, _ = self._rank("global_avgpool", name, x, (4,))
        return self._add("global_avgpool", [x], (n, c, 1, 1), name)

    def flatten(self, x: str, name: str | None = None) -> str:
        s = self._rank("flatten", name, x, (4, 2))
        return self._add("flatten", [x], (s[0], _numel(s[1:])), name)

    def linear(self, x: str, out_features: int, bias: bool = True, name: str | None = None) -> str:
        n, _ = self._rank("linear", name, x, (2,))
        if out_features < 1:
            raise ArchError(
                f"{self._label('linear', name)}: out_features {out_features}; expected >= 1"
            )
        return self._add(
            "linear", [x], (n, out_features), name, out_features=out_features, bias=bias
        )

    def channel_shuffle(self, x: str, groups: int, name: str | None = None) -> str:
        s = self._rank("channel_shuffle", name, x, (4,))
        if groups < 1 or s[1] % groups:
            raise ArchError(
                f"{self._label('channel_shuffle', name)}: groups={groups} must divide the "
                f"{s[1]} channels"
            )
        return self._add("channel_shuffle", [x], s, name, groups=groups)

    def concat(self, xs: Iterable[str], name: str | None = None) -> str:
        xs = list(xs)
        if not xs:
            raise ArchError(f"{self._label('concat', name)}: no inputs; expected at least one")
        shapes = [self._rank("concat", name, x, (4, 2)) for x in xs]
        s0 = shapes[0]
        if any(len(s) != len(s0) or s[0] != s0[0] or s[2:] != s0[2:] for s in shapes):
            raise ArchError(
                f"{self._label('concat', name)} of shapes "
                f"{', '.join(str(list(s)) for s in shapes)}; expected equal shapes except on "
                "the channel axis 1"
            )
        c = sum(s[1] for s in shapes)
        return self._add("concat", xs, (s0[0], c, *s0[2:]), name)

    def softmax(self, x: str, name: str | None = None) -> str:
        return self._add("softmax", [x], self._rank("softmax", name, x, (4, 2)), name)

    def build(self, outputs: Iterable[str], prune: bool = True) -> Graph:
        g = Graph(self._nodes, outputs, self.meta)
        return g.pruned() if prune else g


# ---- deterministic weights ------------------------------------------------------------------


def _node_rng(bits: np.random.PCG64, seed: int, name: str) -> np.random.PCG64:
    """Re-seed ``bits`` to the stream of node ``name``: a PCG64 state hashed from seed and name.

    Setting the state of one bit generator costs ~4 us, a fresh ``default_rng`` ~25 us (it runs
    a SeedSequence); with ~80 parametrised nodes per network that is a tenth of emission time.
    """
    h = hashlib.blake2b(f"{int(seed)}/{name}".encode(), digest_size=32).digest()
    bits.state = {
        "bit_generator": "PCG64",
        "state": {
            "state": int.from_bytes(h[:16], "little"),
            "inc": int.from_bytes(h[16:], "little") | 1,
        },
        "has_uint32": 0,
        "uinteger": 0,
    }
    return bits


def _uniform(
    rng: np.random.PCG64, shape: tuple[int, ...] | int, low: float, high: float
) -> np.ndarray:
    """Float32 uniform draws in [low, high) from the generator's raw 64-bit output.

    Drawing weights dominates emission time; filling raw words in bulk and mapping each 32-bit
    half to a float in [1, 2) through its mantissa bits is twice as fast as
    ``rng.random(dtype=float32)`` and just as deterministic.
    """
    n = int(np.prod(shape))
    bits = np.asarray(rng.random_raw((n + 1) // 2)).view(np.uint32)[:n]
    bits >>= np.uint32(9)
    bits |= np.uint32(0x3F800000)
    x = bits.view(np.float32).reshape(shape)
    span = np.float32(high - low)
    x *= span
    x += np.float32(low) - span
    return x


def init_params(graph: Graph, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Deterministic float32 weights for every parametrised node.

    One random stream per parametrised node (seeded by ``seed`` and the node name), so a node's
    weights do not depend on the rest of the graph. Convolutions and linear layers get He-uniform
    weights (variance 2 / fan_in; uniform float32 draws are ~3x cheaper than normal ones, and
    drawing weights dominates emission time); batch norms get random affine parameters *and*
    random running statistics, so that folding BatchNorm into the convolution (as the TFLite
    emitter does) is exercised by the equivalence tests.

    Returns ``{node: {"weight": OIHW, "bias": O}}`` for convs, ``{"gamma", "beta", "mean",
    "var"}`` for batch norms and ``{"weight": (out, in), "bias": (out,)}`` for linear layers.
    """
    params: dict[str, dict[str, np.ndarray]] = {}
    bitgen = np.random.PCG64(0)  # re-seeded per node
    for n in graph.nodes:
        if n.op == "conv":
            rng = _node_rng(bitgen, seed, n.name)
            cin = graph[n.inputs[0]].shape[1]
            k = int(n.attrs["kernel"])
            g = int(n.attrs.get("groups", 1))
            cout = int(n.attrs["out_channels"])
            bound = float(np.sqrt(6.0 / ((cin // g) * k * k)))
            p = {"weight": _uniform(rng, (cout, cin // g, k, k), -bound, bound)}
            if n.attrs.get("bias", False):
                p["bias"] = _uniform(rng, cout, -0.2, 0.2)
            params[n.name] = p
        elif n.op == "batchnorm":
            rng = _node_rng(bitgen, seed, n.name)
            c = n.shape[1]
            u = _uniform(rng, (4, c), 0.0, 1.0)  # one draw: 4 small draws cost 4x the calls
            params[n.name] = {
                "gamma": u[0] + np.float32(0.5),
                "beta": u[1] * np.float32(0.4) - np.float32(0.2),
                "mean": u[2] * np.float32(0.4) - np.float32(0.2),
                "var": u[3] + np.float32(0.5),
            }
        elif n.op == "linear":
            rng = _node_rng(bitgen, seed, n.name)
            fin = graph[n.inputs[0]].shape[1]
            fout = int(n.attrs["out_features"])
            bound = float(np.sqrt(3.0 / fin))
            p = {"weight": _uniform(rng, (fout, fin), -bound, bound)}
            if n.attrs.get("bias", True):
                p["bias"] = _uniform(rng, fout, -0.2, 0.2)
            params[n.name] = p
    return params


def make_input(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded standard-normal float32 inputs for every graph input (NCHW)."""
    rng = np.random.default_rng(seed)
    return {n.name: rng.standard_normal(n.shape).astype(np.float32) for n in graph.inputs}
