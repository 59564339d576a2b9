"""NAS-Bench-201: the 15,625-cell space (Dong & Yang, ICLR 2020).

A cell has 4 nodes; node ``j`` sums an operation applied to every earlier node ``i``; the 6 edges
(1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2) each take one of five operations. The official string is
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.

Macro skeleton (the standard one): 3x3 stem conv to 16 channels + BN, then three stages of
5 cells at 16, 32 and 64 channels separated by ResNet basic reduction blocks (stride 2), then
BN + ReLU, global average pooling and a linear classifier; CIFAR-size input 3x32x32.

``none`` edges contribute nothing; a node all of whose inputs are ``none`` is zero (built as
``0 * x``, as the official ``Zero`` operation does), so cells with a disconnected output are valid
and build. Nodes that no output depends on are pruned.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from importlib import resources

import numpy as np

from latbench.errors import ArchError
from latbench.spaces.base import SPACES, SearchSpace
from latbench.spaces.graph import Graph, GraphBuilder

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (target node, source node) of each of the 6 positions, in string order
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
# ASCII only, one digit (the input node is 0, 1 or 2), matched with fullmatch: "~00", "~٢" (an
# Arabic-Indic digit, which \d matches) and a trailing "\n" ("$" matches before it) are refused
_TOKEN = re.compile(r"([a-z0-9_]+)~([0-9])")


@lru_cache(maxsize=1)
def _official_order() -> np.ndarray:
    """Official NAS-Bench-201 index -> base-5 code (shipped as data, from the benchmark's order)."""
    with resources.files("latbench.spaces.data").joinpath("nb201_order.npy").open("rb") as fh:
        codes = np.load(fh, allow_pickle=False)
    return codes.astype(np.int64)


@lru_cache(maxsize=1)
def _code_to_index() -> np.ndarray:
    order = _official_order()
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return inv


@SPACES.register("nb201")
class NB201Space(SearchSpace):
    """NAS-Bench-201 cell space: 6 edges x 5 operations = 15,625 cells."""

    name = "nb201"
    choices = NB201_OPS
    num_positions = 6
    arch_format = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2| with op in " + ", ".join(NB201_OPS)
    resolution_multiple = 4

    def __init__(
        self,
        channels: Sequence[int] = (16, 32, 64),
        cells_per_stage: int = 5,
        num_classes: int = 10,
    ) -> None:
        self.channels = tuple(int(c) for c in channels)
        self.cells_per_stage = int(cells_per_stage)
        self.num_classes = int(num_classes)

    def ops(self, arch: str) -> tuple[int, ...]:
        if not isinstance(arch, str):
            raise ArchError(
                f"nb201: expected a string, got {arch!r}; expected form: {self.arch_format}"
            )
        groups = arch.strip().split("+")
        if len(groups) != 3:
            raise ArchError(
                f"nb201: {arch!r} has {len(groups)} node group(s) separated by '+'; "
                f"expected 3, in the form {self.arch_format}"
            )
        ops: list[int] = []
        for node, group in enumerate(groups, start=1):
            g = group.strip()
            if not (g.startswith("|") and g.endswith("|")):
                raise ArchError(
                    f"nb201: node group {g!r} must start and end with '|'; "
                    f"expected form: {self.arch_format}"
                )
            tokens = g[1:-1].split("|")
            if len(tokens) != node:
                raise ArchError(
                    f"nb201: node {node} group {g!r} has {len(tokens)} edge(s); expected {node}"
                )
            for src, tok in enumerate(tokens):
                m = _TOKEN.fullmatch(tok)
                if m is None:
                    raise ArchError(
                        f"nb201: bad token {tok!r}; expected op~{src} "
                        f"with op in {', '.join(NB201_OPS)}"
                    )
                op, i = m.group(1), int(m.group(2))
                if op not in NB201_OPS:
                    raise ArchError(
                        f"nb201: unknown operation {op!r} in token {tok!r}; "
                        f"expected one of {', '.join(NB201_OPS)}"
                    )
                if i != src:
                    raise ArchError(
                        f"nb201: token {tok!r} names input node {i}; expected {op}~{src}"
                    )
                ops.append(NB201_OPS.index(op))
        return tuple(ops)

    def from_ops(self, ops: Sequence[int]) -> str:
        t = self._check_ops(ops)
        names = [NB201_OPS[o] for o in t]
        groups = [names[0:1], names[1:3], names[3:6]]
        return "+".join("|" + "|".join(f"{op}~{i}" for i, op in enumerate(g)) + "|" for g in groups)

    # ---- official NAS-Bench-201 index ----------------------------------------------------
    def index(self, arch: str) -> int:
        """The official NAS-Bench-201 index of ``arch``."""
        return int(_code_to_index()[self.encode_int(arch)])

    def from_index(self, index: int) -> str:
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise ArchError(f"nb201: index {index!r}; expected an integer in 0..{self.size() - 1}")
        if not 0 <= int(index) < self.size():
            raise ArchError(f"nb201: index {index} out of range 0..{self.size() - 1}")
        return self.decode_int(int(_official_order()[int(index)]))

    def enumerate(self) -> Iterator[str]:
        """All 15,625 cells in official NAS-Bench-201 index order."""
        for code in _official_order():
            yield self.decode_int(int(code))

    # ---- the model ----------------------------------------------------------------------
    def is_disconnected(self, arch: str) -> bool:
        """True when no path of non-``none`` edges links the cell input to its output."""
        ops = self.ops(arch)
        reach = {0}
        for (dst, src), o in zip(EDGES, ops, strict=True):
            if o != 0 and src in reach:
                reach.add(dst)
        return 3 not in reach

    def build(self, arch: str, batch: int = 1, resolution: int | None = None) -> Graph:
        ops = self.ops(arch)
        batch, res = self.input_size(batch, resolution, 32)
        b = GraphBuilder(
            meta={"space": self.name, "arch": self.from_ops(ops), "batch": batch, "resolution": res}
        )
        x = b.input((batch, 3, res, res))
        c0 = self.channels[0]
        x = b.batchnorm(b.conv(x, c0, 3, name="stem_conv"), name="stem_bn")
        c_prev = c0
        for stage, c in enumerate(self.channels):
            if stage > 0:
                x = self._reduction(b, x, c_prev, c, f"reduce{stage}")
            for cell in range(self.cells_per_stage):
                x = self._cell(b, x, c, ops, f"s{stage}c{cell}")
            c_prev = c
        x = b.relu(b.batchnorm(x, name="last_bn"), name="last_relu")
        x = b.flatten(b.global_avgpool(x, name="gap"), name="flatten")
        x = b.linear(x, self.num_classes, name="classifier")
        return b.build([x])

    @staticmethod
    def _relu_conv_bn(b: GraphBuilder, x: str, c: int, k: int, stride: int, prefix: str) -> str:
        y = b.relu(x, name=f"{prefix}_relu")
        y = b.conv(y, c, k, stride=stride, name=f"{prefix}_conv")
        return b.batchnorm(y, name=f"{prefix}_bn")

    def _reduction(self, b: GraphBuilder, x: str, cin: int, cout: int, prefix: str) -> str:
        a = self._relu_conv_bn(b, x, cout, 3, 2, f"{prefix}_a")
        a = self._relu_conv_bn(b, a, cout, 3, 1, f"{prefix}_b")
        s = b.pool("avgpool", x, 2, 2, 0, name=f"{prefix}_short_pool")
        s = b.conv(s, cout, 1, name=f"{prefix}_short_conv")
        return b.add([a, s], name=f"{prefix}_add")

    def _cell(self, b: GraphBuilder, x: str, c: int, ops: Sequence[int], prefix: str) -> str:
        nodes = [x]
        for dst in (1, 2, 3):
            terms: list[str] = []
            for pos, (d, src) in enumerate(EDGES):
                if d != dst:
                    continue
                op = NB201_OPS[ops[pos]]
                inp = nodes[src]
                tag = f"{prefix}_e{dst}{src}"
                if op == "none":
                    continue
                if op == "skip_connect":
                    terms.append(inp)
                elif op == "nor_conv_1x1":
                    terms.append(self._relu_conv_bn(b, inp, c, 1, 1, tag))
                elif op == "nor_conv_3x3":
                    terms.append(self._relu_conv_bn(b, inp, c, 3, 1, tag))
                else:  # avg_pool_3x3
                    terms.append(b.pool("avgpool", inp, 3, 1, 1, False, name=f"{tag}_pool"))
            if not terms:
                nodes.append(b.zeros(x, name=f"{prefix}_n{dst}_zero"))
            else:
                nodes.append(b.add(terms, name=f"{prefix}_n{dst}") if len(terms) > 1 else terms[0])
        return nodes[3]
