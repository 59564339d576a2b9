"""Emit an architecture graph as a ``torch.nn.Module``.

The module holds one sub-module per parametrised node (``Conv2d``, ``BatchNorm2d`` or, on a
2-D ``(N, F)`` tensor, ``BatchNorm1d``, ``Linear``)
loaded with the weights of :func:`latbench.spaces.graph.init_params`, and its ``forward`` walks
the graph in topological order. It is returned in eval mode, float32, on the CPU, so its output is
the reference the ONNX and TFLite emitters are checked against.

For the measurement worker, :func:`torch_factory` returns a picklable zero-argument callable that
rebuilds the module in another process from the graph's JSON and the seed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from latbench.errors import ArchError
from latbench.spaces.graph import Graph, Node, init_params

__all__ = ["GraphModule", "to_torch", "torch_factory"]

_UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "relu6": F.relu6,
    "sigmoid": torch.sigmoid,
    "hardswish": F.hardswish,
}


# attributes of a ModuleDict ("keys", "training", "forward", ...), which add_module refuses as keys
_RESERVED_KEYS = frozenset(dir(nn.ModuleDict()))


def _module_key(name: str, taken: set[str]) -> str:
    """A ``ModuleDict`` key for a node name (no dots, not empty, unique, not an attribute)."""
    key = re.sub(r"\W", "_", name) or "node"
    if key[0].isdigit() or key in _RESERVED_KEYS:
        key = "n_" + key
    base, i = key, 1
    while key in taken:
        key = f"{base}_{i}"
        i += 1
    taken.add(key)
    return key


class GraphModule(nn.Module):
    """A module that evaluates a :class:`Graph`; inputs in graph order, NCHW float32."""

    def __init__(self, graph: Graph, seed: int = 0) -> None:
        super().__init__()
        self.graph_json = graph.to_json()
        self._nodes: list[Node] = list(graph.nodes)
        self._outputs: list[str] = list(graph.outputs)
        self._input_names: list[str] = [n.name for n in graph.inputs]
        self.layers = nn.ModuleDict()
        self._keys: dict[str, str] = {}
        params = init_params(graph, seed)
        taken: set[str] = set()
        for n in graph.nodes:
            mod = _make_module(graph, n, params.get(n.name, {}))
            if mod is not None:
                key = _module_key(n.name, taken)
                self._keys[n.name] = key
                self.layers[key] = mod
        self.eval()

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if len(inputs) != len(self._input_names):
            raise ArchError(f"expected {len(self._input_names)} input(s), got {len(inputs)}")
        env: dict[str, torch.Tensor] = dict(zip(self._input_names, inputs, strict=True))
        for n in self._nodes:
            if n.op == "input":
                continue
            xs = [env[i] for i in n.inputs]
            key = self._keys.get(n.name)
            env[n.name] = self.layers[key](xs[0]) if key is not None else _apply(n, xs)
        outs = tuple(env[o] for o in self._outputs)
        return outs[0] if len(outs) == 1 else outs


def _make_module(graph: Graph, n: Node, p: Mapping[str, np.ndarray]) -> nn.Module | None:
    """The parametrised (or pooling) sub-module of node ``n``; None for functional nodes."""
    a = n.attrs
    if n.op == "conv":
        cin = graph[n.inputs[0]].shape[1]
        conv = nn.Conv2d(
            cin,
            int(a["out_channels"]),
            int(a["kernel"]),
            stride=int(a["stride"]),
            padding=int(a["padding"]),
            groups=int(a.get("groups", 1)),
            bias=bool(a.get("bias", False)),
        )
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(p["weight"]))
            if conv.bias is not None:
                conv.bias.copy_(torch.from_numpy(p["bias"]))
        return conv
    if n.op == "batchnorm":
        # (N, C, H, W) after a conv; (N, F) after a linear layer, which BatchNorm2d refuses
        bn_cls = nn.BatchNorm1d if len(n.shape) == 2 else nn.BatchNorm2d
        bn = bn_cls(n.shape[1], eps=float(a.get("eps", 1e-5)))
        with torch.no_grad():
            bn.weight.copy_(torch.from_numpy(p["gamma"]))
            bn.bias.copy_(torch.from_numpy(p["beta"]))
            bn.running_mean.copy_(torch.from_numpy(p["mean"]))  # type: ignore[union-attr]
            bn.running_var.copy_(torch.from_numpy(p["var"]))  # type: ignore[union-attr]
        return bn
    if n.op == "linear":
        fin = graph[n.inputs[0]].shape[1]
        lin = nn.Linear(fin, int(a["out_features"]), bias=bool(a.get("bias", True)))
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(p["weight"]))
            if lin.bias is not None:
                lin.bias.copy_(torch.from_numpy(p["bias"]))
        return lin
    if n.op == "avgpool":
        return nn.AvgPool2d(
            int(a["kernel"]),
            int(a["stride"]),
            int(a.get("padding", 0)),
            count_include_pad=bool(a.get("count_include_pad", False)),
        )
    if n.op == "maxpool":
        return nn.MaxPool2d(int(a["kernel"]), int(a["stride"]), int(a.get("padding", 0)))
    return None


def _apply(n: Node, xs: list[torch.Tensor]) -> torch.Tensor:
    """Evaluate a parameter-free node."""
    op = n.op
    if op in _UNARY:
        return _UNARY[op](xs[0])
    if op == "add":
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y
    if op == "mul":
        return xs[0] * xs[1]
    if op == "zeros":
        return xs[0] * 0.0
    if op == "global_avgpool":
        return xs[0].mean(dim=(2, 3), keepdim=True)
    if op == "flatten":
        return torch.flatten(xs[0], 1)
    if op == "channel_shuffle":
        g = int(n.attrs["groups"])
        b, c, h, w = xs[0].shape
        return xs[0].reshape(b, g, c // g, h, w).transpose(1, 2).reshape(b, c, h, w)
    if op == "concat":
        return torch.cat(xs, dim=1)
    if op == "softmax":
        return torch.softmax(xs[0], dim=1)
    raise ArchError(f"node {n.name!r}: op {op!r} has no torch implementation")


def to_torch(graph: Graph, seed: int = 0) -> GraphModule:
    """The graph as a float32 ``nn.Module`` in eval mode with the weights of ``seed``."""
    return GraphModule(graph, seed)


def _build_from_json(graph_json: str, seed: int) -> nn.Module:
    return GraphModule(Graph.from_json(graph_json), seed)


def torch_factory(graph: Graph, seed: int = 0) -> Callable[[], nn.Module]:
    """A picklable zero-argument callable that builds :func:`to_torch` ``(graph, seed)``.

    It carries only the graph JSON and the seed, so it crosses a process boundary cheaply and the
    worker builds the same weights as the parent would.
    """
    return functools.partial(_build_from_json, graph.to_json(), int(seed))
