"""Encodings of architectures for predictors: one-hot, rich tabular features, graphs, kernels.

* :func:`onehot` -- one indicator per (position, choice) of a search space, built from the op
  index matrix in one vectorised step (all 15,625 NAS-Bench-201 cells in milliseconds).
* :func:`graph_stats` -- MACs, parameters and activation bytes of each architecture's full
  network. NAS-Bench-201 and FBNet have exact vectorised formulas (checked against
  :meth:`Graph.macs` in the tests); other spaces build each graph once (cached).
* :func:`canonical_cells` -- the effective cell (edges on no input-output path pruned) in its
  isomorphism-canonical form (NAS-Bench-201 twins merged): what a runtime that prunes
  actually executes.
* :func:`rich_features` -- one-hot + operation counts + counts of *live* operations (those that
  reach the cell output; pruned ones cost nothing) + log MACs / params / memory: what the
  tabular models read.
* :func:`graph_encoding` -- ``(adjacency, node_features)`` of any :class:`Graph`, imported ONNX
  models included: node features are the operator type (one-hot) and log-scaled channels,
  kernel, stride, resolution, FLOPs and parameters.
* :func:`cell_encoding` -- the cell-level DAG that BRP-NAS feeds its GCN for a search-space
  architecture: in NAS-Bench-201 the macro skeleton is fixed, so the 8-node cell graph (input,
  6 edge operations, output) determines the network; FBNet is a chain of its 22 blocks.
* :func:`kernel_features` -- nn-Meter style fused kernels (conv+bn+relu, ...) with their
  type, input size, channels, kernel, stride, FLOPs and parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from latbench.errors import ArchError, PredictorError
from latbench.spaces import Graph, get_space
from latbench.spaces.base import SearchSpace
from latbench.spaces.graph import ELEMENTWISE_UNARY, OPS, Node

GRAPH_SPACE = "graph"


@lru_cache(maxsize=16)
def space(name: str) -> SearchSpace:
    """The search space ``name`` with default options (cached: spaces are stateless)."""
    return get_space(name)


# ---- parsing ------------------------------------------------------------------------------------
_NB201_IDX = {
    op: i
    for i, op in enumerate(("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"))
}
_NB201_SRC = ("0", "0", "1", "0", "1", "2")


def _fast_nb201(arch: str) -> tuple[int, ...] | None:
    toks = arch.split("|")
    # canonical: '', t, '+', t, t, '+', t, t, t, ''
    if len(toks) != 10 or toks[2] != "+" or toks[5] != "+" or toks[0] or toks[9]:
        return None
    out = []
    for tok, src in zip(
        (toks[1], toks[3], toks[4], toks[6], toks[7], toks[8]), _NB201_SRC, strict=True
    ):
        op, _, s = tok.partition("~")
        i = _NB201_IDX.get(op)
        if i is None or s != src:
            return None
        out.append(i)
    return tuple(out)


def _fast_fbnet(arch: str) -> tuple[int, ...] | None:
    toks = arch.split("-")
    if len(toks) != 22 or not all(len(t) == 1 and "0" <= t <= "8" for t in toks):
        return None
    return tuple(int(t) for t in toks)


_FAST = {"nb201": _fast_nb201, "fbnet": _fast_fbnet}


@lru_cache(maxsize=262_144)
def _parse(space_name: str, arch: str) -> tuple[str, tuple[int, ...]]:
    fast = _FAST.get(space_name)
    ops = fast(arch) if fast is not None else None
    if ops is not None:
        return arch, ops
    sp = space(space_name)
    try:
        ops = sp.ops(arch)
    except ArchError as exc:
        raise ArchError(f"{exc} (expected an architecture of space {space_name!r})") from None
    return sp.from_ops(ops), ops


def canonical_archs(space_name: str, archs: Sequence[Any]) -> list[Any]:
    """Validate ``archs`` for ``space_name``: canonical strings, or Graphs for ``"graph"``."""
    if isinstance(archs, str | Graph):
        raise PredictorError(
            f"expected a sequence of architectures, got a single {type(archs).__name__}"
        )
    if not hasattr(archs, "__iter__"):
        raise PredictorError(
            f"archs = {archs!r:.80}; expected a sequence of architectures (a list of strings "
            "of the space, or of Graphs)"
        )
    if space_name == GRAPH_SPACE:
        for i, a in enumerate(archs):
            if not isinstance(a, Graph):
                raise PredictorError(
                    f"archs[{i}] is {type(a).__name__}; this predictor was fitted on graphs "
                    "(space 'graph'), expected latbench.spaces.Graph objects"
                )
        return list(archs)
    out = []
    for i, a in enumerate(archs):
        if not isinstance(a, str):
            raise ArchError(
                f"archs[{i}] is a {type(a).__name__}; expected a {space_name} architecture string"
            )
        out.append(_parse(space_name, a)[0])
    return out


class CellList(list[str]):
    """Canonical architecture strings that carry their op matrix (no re-parsing needed)."""

    def __init__(self, space_name: str, archs: list[str], ops: np.ndarray) -> None:
        super().__init__(archs)
        self.space_name = space_name
        self.ops = ops


def op_matrix(space_name: str, archs: Sequence[str]) -> np.ndarray:
    """``(N, positions)`` int matrix of choice indices."""
    if (
        isinstance(archs, CellList)
        and archs.space_name == space_name
        and len(archs) == len(archs.ops)
    ):
        return archs.ops
    sp = space(space_name)
    if not archs:
        return np.zeros((0, sp.num_positions), dtype=np.int64)
    return np.array([_parse(space_name, a)[1] for a in archs], dtype=np.int64)


def onehot(space_name: str, archs: Sequence[str]) -> np.ndarray:
    """``(N, positions * choices)`` float one-hot: column ``p * choices + c`` is position p = c."""
    sp = space(space_name)
    ops = op_matrix(space_name, archs)
    nc = len(sp.choices)
    out = np.zeros((len(ops), sp.num_positions * nc), dtype=np.float64)
    cols = np.arange(sp.num_positions)[None, :] * nc + ops
    out[np.arange(len(ops))[:, None], cols] = 1.0
    return out


# ---- graph statistics ---------------------------------------------------------------------------
STAT_NAMES = ("macs", "params", "activation_bytes")


def _stats(g: Graph) -> tuple[float, float, float]:
    return float(g.macs()), float(g.params()), float(g.activation_bytes())


@lru_cache(maxsize=65_536)
def _built_stats(space_name: str, arch: str) -> tuple[float, float, float]:
    return _stats(space(space_name).build(arch))


def _nb201_live(ops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(edge_live (N,6), node_live (N,4))`` of NAS-Bench-201 cells: what pruning keeps."""
    nz = ops != 0
    n = len(ops)
    node = np.zeros((n, 4), dtype=bool)
    node[:, 3] = True
    # edges: 0:(1,0) 1:(2,0) 2:(2,1) 3:(3,0) 4:(3,1) 5:(3,2)
    node[:, 2] = nz[:, 5]
    node[:, 1] = nz[:, 4] | (nz[:, 2] & node[:, 2])
    node[:, 0] = True
    dst = np.array([1, 2, 2, 3, 3, 3])
    edge = nz & node[:, dst]
    return edge, node


def _nb201_reach(ops: np.ndarray) -> np.ndarray:
    """``(N, 4)``: which cell nodes a path from the cell input reaches (node 0 is the input)."""
    nz = ops != 0
    reach = np.zeros((len(ops), 4), dtype=bool)
    reach[:, 0] = True
    reach[:, 1] = nz[:, 0]
    reach[:, 2] = nz[:, 1] | (nz[:, 2] & reach[:, 1])
    reach[:, 3] = nz[:, 3] | (nz[:, 4] & reach[:, 1]) | (nz[:, 5] & reach[:, 2])
    return reach


@lru_cache(maxsize=1)
def _nb201_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-stage (c, hw) and the fixed (non-cell) part of the stats, from one real build."""
    sp = space("nb201")
    assert hasattr(sp, "channels") and hasattr(sp, "cells_per_stage")
    chans = np.array(sp.channels, dtype=np.float64)
    hws = np.array([32 // (2**s) for s in range(len(chans))], dtype=np.float64) ** 2
    ref = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    total = np.array(_stats(sp.build(ref)))
    cells = _nb201_cell_stats(np.zeros((1, 6), dtype=np.int64), chans, hws, sp.cells_per_stage)[0]
    return chans, hws, total - cells


def _nb201_cell_stats(
    ops: np.ndarray, chans: np.ndarray, hws: np.ndarray, cells_per_stage: int
) -> np.ndarray:
    """Stats contributed by all cells (exact replica of NB201Space.build + pruning)."""
    edge, node = _nb201_live(ops)
    nz = ops != 0
    dst = np.array([1, 2, 2, 3, 3, 3])
    terms = np.stack([nz[:, dst == j].sum(axis=1) for j in (1, 2, 3)], axis=1)  # (N,3)
    live = node[:, 1:]
    out = np.zeros((len(ops), 3))
    for c, hw in zip(chans, hws, strict=True):
        e = c * hw
        macs = np.zeros(len(ops))
        params = np.zeros(len(ops))
        act = np.zeros(len(ops))
        for k, op in ((1, 2), (3, 3)):  # relu + conv + bn
            m = (edge & (ops == op)).sum(axis=1)
            macs += m * (e + e * c * k * k + e)
            params += m * (c * c * k * k + 2 * c)
            act += m * 3 * e
        m = (edge & (ops == 4)).sum(axis=1)
        macs += m * e * 9
        act += m * e
        zero = live & (terms == 0)
        add = live & (terms > 1)
        macs += zero.sum(axis=1) * e + ((terms - 1) * add).sum(axis=1) * e
        act += (zero.sum(axis=1) + add.sum(axis=1)) * e
        out += cells_per_stage * np.stack([macs, params, act * 4], axis=1)
    return out


@lru_cache(maxsize=1)
def _fbnet_tables() -> tuple[np.ndarray, np.ndarray]:
    """``(table (22, 9, 3), fixed (3,))``: FBNet stats are additive over layers."""
    sp = space("fbnet")
    nl, nc = sp.num_positions, len(sp.choices)
    table = np.zeros((nl, nc, 3))
    fixed = np.zeros(3)
    for c in range(nc):
        g = sp.build(sp.from_ops([c] * nl))
        per = np.zeros((nl, 3))
        rest = np.zeros(3)
        for n in g.nodes:
            v = np.array([g.node_macs(n), g.node_params(n), float(np.prod(n.shape)) * 4])
            head = n.name.split("_", 1)[0]
            if head[:1] == "l" and head[1:].isdigit():
                per[int(head[1:])] += v
            else:
                rest += v
        table[:, c] = per
        fixed = rest
    return table, fixed


def graph_stats(space_name: str, archs: Sequence[Any]) -> np.ndarray:
    """``(N, 3)``: MACs, parameters, activation bytes of each architecture's network."""
    if space_name == GRAPH_SPACE:
        return np.array([_stats(g) for g in archs], dtype=np.float64).reshape(-1, 3)
    if space_name == "nb201":
        chans, hws, fixed = _nb201_tables()
        ops = op_matrix(space_name, archs)
        return fixed[None, :] + _nb201_cell_stats(ops, chans, hws, 5)
    if space_name == "fbnet":
        table, fixed = _fbnet_tables()
        ops = op_matrix(space_name, archs)
        return fixed[None, :] + table[np.arange(22)[None, :], ops].sum(axis=1)
    return np.array([_built_stats(space_name, a) for a in archs], dtype=np.float64).reshape(-1, 3)


#: NB201 edge permutation of swapping cell nodes 1 and 2 (valid when edge 2, 1 -> 2, is none)
_NB201_SWAP = np.array([1, 0, 2, 3, 5, 4])
_NB201_NAMES = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def _nb201_canonical_ops(ops: np.ndarray) -> np.ndarray:
    """The isomorphism-canonical op matrix: of a cell and its twin, the smaller op code.

    With edge 2 (node 1 -> node 2) = ``none``, nodes 1 and 2 play the same role: swapping them
    (edges 0 <-> 1 and 4 <-> 5) gives the same network, a NAS-Bench-201 "twin".
    """
    swapped = ops[:, _NB201_SWAP]
    weights = 5 ** np.arange(ops.shape[1])[::-1]
    pick = (ops[:, 2] == 0) & (swapped @ weights < ops @ weights)
    out: np.ndarray = np.where(pick[:, None], swapped, ops)
    return out


def _nb201_pruned_ops(ops: np.ndarray) -> np.ndarray:
    """Every edge that lies on no input -> output path set to ``none`` (it cannot matter)."""
    edge, _ = _nb201_live(ops)
    reach = _nb201_reach(ops)
    src = np.array([0, 0, 1, 0, 1, 2])
    out: np.ndarray = np.where(edge & reach[:, src], ops, 0)
    return out


def _nb201_strings(ops: np.ndarray) -> list[str]:
    n = _NB201_NAMES
    return [
        f"|{n[a]}~0|+|{n[b]}~0|{n[c]}~1|+|{n[d]}~0|{n[e]}~1|{n[f]}~2|"
        for a, b, c, d, e, f in ops.tolist()
    ]


def canonical_cells(space_name: str, archs: Sequence[str], *, prune: bool = True) -> list[str]:
    """The effective, isomorphism-canonical cell of each architecture.

    NAS-Bench-201 cells hold redundancy a latency model should not have to learn: an edge
    whose source the input does not reach, or that reaches no path to the output, carries
    nothing (``prune=True`` sets it to ``none``, as an exporter that removes dead branches
    does), and a cell with edge 2 = ``none`` has an isomorphic twin (nodes 1 and 2 swapped)
    that is the same network. Both map to one canonical string, so features of it are equal for
    cells that compute the same thing, and a linear model on them can express "this edge does
    not count". ``prune=False`` only merges twins (for runtimes that execute dead branches, as
    PyTorch does: the HELP GPU and CPU columns). Other spaces are returned canonicalised only.
    """
    if space_name != "nb201":
        return canonical_archs(space_name, archs)
    ops = op_matrix(space_name, archs)
    if prune:
        ops = _nb201_pruned_ops(ops)
    ops = _nb201_canonical_ops(ops)
    return CellList(space_name, _nb201_strings(ops), ops)


def rich_features(space_name: str, archs: Sequence[str]) -> np.ndarray:
    """One-hot + op counts + live-op counts (NB201) + log(MACs, params, memory)."""
    sp = space(space_name)
    ops = op_matrix(space_name, archs)
    nc = len(sp.choices)
    parts = [onehot(space_name, archs)]
    counts = np.stack([(ops == c).sum(axis=1) for c in range(nc)], axis=1).astype(np.float64)
    parts.append(counts)
    if space_name == "nb201":
        edge, node = _nb201_live(ops)
        live = np.stack([(edge & (ops == c)).sum(axis=1) for c in range(nc)], axis=1)
        parts.append(live.astype(np.float64))
        parts.append(node[:, 1:3].astype(np.float64))
    parts.append(np.log(graph_stats(space_name, archs) + 1.0))
    return np.concatenate(parts, axis=1)


def pair_features(
    space_name: str, archs: Sequence[str], rich: np.ndarray | None = None
) -> np.ndarray:
    """:func:`rich_features` + pairwise interactions of positions + cell-topology flags.

    Latency is close to a sum of operator costs, but not quite: two convolutions on edges that
    feed the same node are summed in one ``add``, a pooling edge next to a convolution changes
    what the runtime fuses, and pruning depends on which *combination* of edges carries data.
    A linear model on the indicator of every pair of (position, choice) captures these
    second-order effects exactly; with ridge regularisation chosen by cross-validation it stays
    at the one-hot model where the data do not support more. NAS-Bench-201 also gets the live
    one-hot (an edge's op, or ``none`` when pruning removes it) and ``is_disconnected`` (no path
    from input to output: the cell outputs zeros). Spaces with many positions (FBNet: 22 x 9
    choices) keep only adjacent-position pairs, so the width stays in the thousands.
    ``rich`` is :func:`rich_features` of the same ``archs`` when already computed.
    """
    sp = space(space_name)
    ops = op_matrix(space_name, archs)
    nc, npos = len(sp.choices), sp.num_positions
    n = len(ops)
    base = rich_features(space_name, archs) if rich is None else rich
    if space_name == "nb201":
        pairs = [(a, b) for a in range(npos) for b in range(a + 1, npos)]
        extra = npos * nc + 1
    else:
        pairs = [(a, a + 1) for a in range(npos - 1)]
        extra = 0
    out = np.zeros((n, base.shape[1] + extra + len(pairs) * nc * nc))
    out[:, : base.shape[1]] = base
    rows = np.arange(n)
    col = base.shape[1]
    if space_name == "nb201":
        # an edge carries data when it reaches the output and its source is fed by the input
        live_ops = _nb201_pruned_ops(ops)
        out[rows[:, None], col + np.arange(npos)[None, :] * nc + live_ops] = 1.0
        col += npos * nc
        # no path input -> output: the cell outputs zeros
        out[:, col] = ~_nb201_reach(ops)[:, 3]
        col += 1
    a_idx = np.array([a for a, _ in pairs], dtype=np.int64)
    b_idx = np.array([b for _, b in pairs], dtype=np.int64)
    # one indicator per (choice at a, choice at b) combination, for every pair (a, b)
    codes = ops[:, a_idx] * nc + ops[:, b_idx] + (np.arange(len(pairs)) * nc * nc)[None, :]
    out[rows[:, None], col + codes] = 1.0
    return out


# ---- graph encodings --------------------------------------------------------------------------
GRAPH_OPS: tuple[str, ...] = tuple(sorted(OPS))
#: node feature columns of :func:`graph_encoding` after the op one-hot
GRAPH_NUMERIC = ("log_channels", "kernel", "stride", "log_resolution", "log_flops", "log_params")
GRAPH_FEATURES = len(GRAPH_OPS) + len(GRAPH_NUMERIC)


def graph_encoding(graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    """``(adjacency (n, n), node_features (n, F))`` of a full architecture graph.

    ``adjacency[i, j] = 1`` when node j reads node i (edges follow the data flow). Node features:
    the operator type one-hot over :data:`GRAPH_OPS`, then log2 of the output channels, the
    kernel size, the stride, log2 of the output resolution, log10 of FLOPs and of parameters.
    """
    nodes = graph.nodes
    index = {n.name: i for i, n in enumerate(nodes)}
    n = len(nodes)
    adj = np.zeros((n, n), dtype=np.float32)
    feats = np.zeros((n, GRAPH_FEATURES), dtype=np.float32)
    k0 = len(GRAPH_OPS)
    for j, node in enumerate(nodes):
        for src in node.inputs:
            adj[index[src], j] = 1.0
        feats[j, GRAPH_OPS.index(node.op)] = 1.0
        shape = node.shape
        ch = shape[1] if len(shape) > 1 else 1
        res = shape[2] if len(shape) > 2 else 1
        feats[j, k0 + 0] = np.log2(ch + 1.0)
        feats[j, k0 + 1] = float(node.attrs.get("kernel", 0))
        feats[j, k0 + 2] = float(node.attrs.get("stride", 0))
        feats[j, k0 + 3] = np.log2(res + 1.0)
        feats[j, k0 + 4] = np.log10(2.0 * graph.node_macs(node) + 1.0)
        feats[j, k0 + 5] = np.log10(graph.node_params(node) + 1.0)
    return adj, feats


def cell_feature_size(space_name: str) -> int:
    """Node-feature width of :func:`cell_encoding` for ``space_name``."""
    if space_name == GRAPH_SPACE:
        return GRAPH_FEATURES
    sp = space(space_name)
    extra = 3 if space_name == "fbnet" else 0
    return len(sp.choices) + 2 + extra


def cell_encoding(space_name: str, archs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Batched ``(adjacency (N, n, n), node_features (N, n, F))`` for a GCN.

    NAS-Bench-201: the 8-node cell DAG of BRP-NAS (input, the 6 edge operations as nodes,
    output), features = one-hot over (choices..., input, output). FBNet: the chain input ->
    22 blocks -> output, features = block one-hot + (input, output) + layer channels, stride and
    resolution (log-scaled). Other spaces: a chain over positions. ``space="graph"``: the full
    :func:`graph_encoding` of each graph, zero-padded to the largest.
    """
    if space_name == GRAPH_SPACE:
        encs = [graph_encoding(g) for g in archs]
        nmax = max((a.shape[0] for a, _ in encs), default=1)
        adj = np.zeros((len(encs), nmax, nmax), dtype=np.float32)
        x = np.zeros((len(encs), nmax, GRAPH_FEATURES), dtype=np.float32)
        for i, (a, f) in enumerate(encs):
            adj[i, : a.shape[0], : a.shape[0]] = a
            x[i, : f.shape[0]] = f
        return adj, x
    sp = space(space_name)
    ops = op_matrix(space_name, archs)
    nc = len(sp.choices)
    n_arch, npos = ops.shape
    nn = npos + 2
    feat = cell_feature_size(space_name)
    x = np.zeros((n_arch, nn, feat), dtype=np.float32)
    rows = np.arange(n_arch)[:, None]
    x[rows, np.arange(1, npos + 1)[None, :], ops] = 1.0
    x[:, 0, nc] = 1.0
    x[:, -1, nc + 1] = 1.0
    adj = np.zeros((nn, nn), dtype=np.float32)
    if space_name == "nb201":
        # node ids: 0 input, 1..6 edge ops, 7 output; cell node k is produced by its edges
        edges = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
        for e, (dst, src) in enumerate(edges):
            if src == 0:
                adj[0, e + 1] = 1.0
            else:
                for e2, (d2, _) in enumerate(edges):
                    if d2 == src:
                        adj[e2 + 1, e + 1] = 1.0
            if dst == 3:
                adj[e + 1, nn - 1] = 1.0
        adj_b = np.broadcast_to(adj, (n_arch, nn, nn)).copy()
        # a 'none' edge carries nothing: drop its connections (BRP-NAS prunes such nodes)
        none = ops == 0
        adj_b[:, 1 : npos + 1, :] *= (~none)[:, :, None]
        adj_b[:, :, 1 : npos + 1] *= (~none)[:, None, :]
        return adj_b, x
    for i in range(nn - 1):
        adj[i, i + 1] = 1.0
    if space_name == "fbnet":
        assert hasattr(sp, "layer_plan") and hasattr(sp, "resolution")
        plan = sp.layer_plan()
        res = float(sp.resolution) / 2
        for p, (c, s) in enumerate(plan):
            res = res / s
            x[:, p + 1, nc + 2] = np.log2(c) / 8.0
            x[:, p + 1, nc + 3] = float(s)
            x[:, p + 1, nc + 4] = np.log2(res) / 8.0
    return np.broadcast_to(adj, (n_arch, nn, nn)).copy(), x


# ---- nn-Meter style kernels ---------------------------------------------------------------------
KERNEL_NUMERIC = ("hw", "cin", "cout", "kernel", "stride", "flops", "params")


def _is_depthwise(graph: Graph, node: Node) -> bool:
    groups = int(node.attrs.get("groups", 1))
    cin = graph[node.inputs[0]].shape[1]
    return groups > 1 and groups == cin


def kernel_features(graph: Graph) -> list[dict[str, Any]]:
    """Split ``graph`` into fused kernels, nn-Meter style, with per-kernel features.

    Fusion rules (what mobile runtimes do): ``conv`` or ``linear`` absorbs a following
    ``batchnorm`` and then a following activation when each is the single consumer of the
    previous one; ``add`` absorbs a following activation the same way. A conv with
    ``groups == in_channels`` is a ``dwconv``. Each kernel is a dict with ``type`` (for example
    ``conv-bn-relu``, ``dwconv-bn``, ``avgpool``, ``add-relu``, ``fc``), the numeric features
    :data:`KERNEL_NUMERIC` (``hw`` = input height, ``flops`` = 2 x MACs summed over the fused
    nodes) and ``nodes``: the names of the graph nodes it covers (to match per-operator
    profiles). ``input`` and ``flatten`` nodes produce no kernel.
    """
    consumers = graph.consumers()
    used: set[str] = set()
    kernels: list[dict[str, Any]] = []
    for node in graph.nodes:
        if node.name in used or node.op in ("input", "flatten"):
            continue
        group = [node]
        base = node.op
        if node.op == "conv":
            base = "dwconv" if _is_depthwise(graph, node) else "conv"
        elif node.op == "linear":
            base = "fc"
        parts = [base]
        if node.op in ("conv", "linear", "add"):
            cur = node
            for want in (("batchnorm",), tuple(ELEMENTWISE_UNARY)):
                nxt = consumers.get(cur.name, [])
                if node.op == "add" and want == ("batchnorm",):
                    continue
                if len(nxt) == 1 and graph[nxt[0]].op in want and cur.name not in graph.outputs:
                    cur = graph[nxt[0]]
                    group.append(cur)
                    parts.append("bn" if cur.op == "batchnorm" else cur.op)
        used.update(n.name for n in group)
        src = graph[node.inputs[0]] if node.inputs else node
        src_shape = src.shape
        hw = src_shape[2] if len(src_shape) > 2 else 1
        cin = src_shape[1] if len(src_shape) > 1 else 1
        last = group[-1].shape
        cout = last[1] if len(last) > 1 else 1
        kernels.append(
            {
                "type": "-".join(parts),
                "hw": float(hw),
                "cin": float(cin),
                "cout": float(cout),
                "kernel": float(node.attrs.get("kernel", 1)),
                "stride": float(node.attrs.get("stride", 1)),
                "flops": float(sum(2 * graph.node_macs(n) for n in group)),
                "params": float(sum(graph.node_params(n) for n in group)),
                "nodes": [n.name for n in group],
            }
        )
    return kernels


def kernel_matrix(kernels: Sequence[dict[str, Any]]) -> np.ndarray:
    """``(K, len(KERNEL_NUMERIC))`` numeric features of kernels, in :data:`KERNEL_NUMERIC` order."""
    return np.array(
        [[float(k[f]) for f in KERNEL_NUMERIC] for k in kernels], dtype=np.float64
    ).reshape(-1, len(KERNEL_NUMERIC))


@lru_cache(maxsize=32_768)
def _space_kernels(space_name: str, arch: str) -> tuple[dict[str, Any], ...]:
    return tuple(kernel_features(space(space_name).build(arch)))


def arch_kernels(space_name: str, arch: Any) -> Sequence[dict[str, Any]]:
    """:func:`kernel_features` of a space architecture (cached) or of a Graph."""
    if isinstance(arch, Graph):
        return kernel_features(arch)
    return _space_kernels(space_name, arch)


# ---- what a graph predictor was trained on ------------------------------------------------
def kernel_coverage(kernels: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What ``kernels`` span: their ``types`` and the largest value of each numeric feature
    (``max``, :data:`KERNEL_NUMERIC`), the JSON stored with a predictor fitted on graphs so that
    a prediction for a model beyond it can say so."""
    k = kernel_matrix(kernels)
    top = k.max(axis=0) if len(k) else np.zeros(len(KERNEL_NUMERIC))
    return {
        "types": sorted({str(x["type"]) for x in kernels}),
        "max": {f: float(v) for f, v in zip(KERNEL_NUMERIC, top.tolist(), strict=True)},
    }


def graph_coverage(graphs: Sequence[Graph]) -> dict[str, Any]:
    """:func:`kernel_coverage` of every kernel of ``graphs`` (the training set of a predictor
    fitted with ``space="graph"``)."""
    return kernel_coverage([k for g in graphs for k in kernel_features(g)])


#: the features a coverage note compares (flops and params grow with the others)
COVERAGE_FEATURES = ("hw", "cin", "cout", "kernel", "stride")


def coverage_note(coverage: dict[str, Any], graph: Graph) -> str:
    """Why a prediction for ``graph`` extrapolates beyond ``coverage`` (kernel types the
    training graphs never held, or kernels larger than any of theirs), or ``""``."""
    kernels = kernel_features(graph)
    seen = set(coverage.get("types", []))
    parts = []
    unseen = sorted({str(k["type"]) for k in kernels} - seen)
    if unseen:
        n = sum(1 for k in kernels if k["type"] in unseen)
        parts.append(f"{n} kernel(s) of type(s) never seen in training ({', '.join(unseen)})")
    top = coverage.get("max", {})
    k = kernel_matrix(kernels)
    for i, f in enumerate(KERNEL_NUMERIC):
        if f not in COVERAGE_FEATURES or f not in top or not len(k):
            continue
        hi = float(k[:, i].max())
        if hi > float(top[f]):
            parts.append(f"{f} up to {hi:g} (trained up to {float(top[f]):g})")
    return "; ".join(parts)
