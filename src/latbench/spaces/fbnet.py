"""FBNet / HW-NAS-Bench space (Wu et al., CVPR 2019; Li et al., ICLR 2021).

22 searchable layers, each one of 9 blocks. A block ``kK_eE[_g2]`` is an inverted residual:
1x1 expansion conv (``groups`` g) + BN + ReLU, a channel shuffle when g = 2, a KxK depthwise conv
(carrying the layer's stride) + BN + ReLU, a 1x1 projection conv (groups g) + BN, and a residual
add when the stride is 1 and the channel count is unchanged. ``skip`` is the identity; where the
layer changes the stride or the channel count it becomes a 1x1 conv + BN + ReLU with that stride,
as in FBNet's reference implementation.

Macro skeleton of FBNet for ImageNet: 3x3 stem conv, stride 2, 16 channels; layers
(channels x count, first stride) 16x1 s1, 24x4 s2, 32x4 s2, 64x4 s2, 112x4 s1, 184x4 s2,
352x1 s1; then 1x1 conv to 1984 channels, global pooling and a linear classifier. The input
resolution (default 224) is a parameter; the architecture string is 22 block indices joined by
``-`` (the order of :data:`FBNET_BLOCKS`).
"""

from __future__ import annotations

from collections.abc import Sequence

from latbench.errors import ArchError
from latbench.spaces.base import SPACES, SearchSpace
from latbench.spaces.graph import Graph, GraphBuilder

FBNET_BLOCKS = (
    "k3_e1",
    "k3_e1_g2",
    "k3_e3",
    "k3_e6",
    "k5_e1",
    "k5_e1_g2",
    "k5_e3",
    "k5_e6",
    "skip",
)
# (channels, layers, stride of the first layer)
FBNET_STAGES = (
    (16, 1, 1),
    (24, 4, 2),
    (32, 4, 2),
    (64, 4, 2),
    (112, 4, 1),
    (184, 4, 2),
    (352, 1, 1),
)


def block_params(block: str) -> tuple[int, int, int] | None:
    """(kernel, expansion, groups) of a block name, or None for ``skip``."""
    if block == "skip":
        return None
    parts = block.split("_")
    kernel = int(parts[0][1:])
    expansion = int(parts[1][1:])
    groups = int(parts[2][1:]) if len(parts) > 2 else 1
    return kernel, expansion, groups


@SPACES.register("fbnet")
class FBNetSpace(SearchSpace):
    """FBNet / HW-NAS-Bench space: 22 layers x 9 blocks (9^22 architectures)."""

    name = "fbnet"
    choices = FBNET_BLOCKS
    num_positions = 22
    arch_format = (
        "22 block indices 0-8 joined by '-' (0="
        + ", ".join(f"{i}={b}" for i, b in enumerate(FBNET_BLOCKS)).split("0=", 1)[1]
        + ")"
    )

    def __init__(
        self,
        resolution: int = 224,
        num_classes: int = 1000,
        stem_channels: int = 16,
        head_channels: int = 1984,
    ) -> None:
        self.resolution = int(resolution)
        self.num_classes = int(num_classes)
        self.stem_channels = int(stem_channels)
        self.head_channels = int(head_channels)

    def layer_plan(self) -> list[tuple[int, int]]:
        """(out_channels, stride) of each of the 22 searchable layers."""
        plan = []
        for c, n, s in FBNET_STAGES:
            for i in range(n):
                plan.append((c, s if i == 0 else 1))
        return plan

    def ops(self, arch: str) -> tuple[int, ...]:
        if not isinstance(arch, str):
            raise ArchError(f"fbnet: expected a string, got {arch!r}; expected {self.arch_format}")
        tokens = arch.strip().split("-")
        if len(tokens) != self.num_positions:
            raise ArchError(
                f"fbnet: {arch!r} has {len(tokens)} layer(s); expected {self.num_positions}: "
                f"{self.arch_format}"
            )
        out = []
        for pos, tok in enumerate(tokens):
            t = tok.strip()
            if t in FBNET_BLOCKS:
                out.append(FBNET_BLOCKS.index(t))
                continue
            # one ASCII digit: str.isdigit() (and int()) would take "٣" or "03" too
            if len(t) != 1 or t not in "0123456789"[: len(FBNET_BLOCKS)]:
                raise ArchError(
                    f"fbnet: bad token {tok!r} at layer {pos}; expected an index 0-8 or a block "
                    f"name ({', '.join(FBNET_BLOCKS)})"
                )
            out.append(int(t))
        return tuple(out)

    def from_ops(self, ops: Sequence[int]) -> str:
        return "-".join(str(o) for o in self._check_ops(ops))

    def build(self, arch: str, batch: int = 1, resolution: int | None = None) -> Graph:
        ops = self.ops(arch)
        batch, res = self.input_size(batch, resolution, self.resolution)
        b = GraphBuilder(
            meta={"space": self.name, "arch": self.from_ops(ops), "batch": batch, "resolution": res}
        )
        x = b.input((batch, 3, res, res))
        x = b.relu(
            b.batchnorm(b.conv(x, self.stem_channels, 3, 2, name="stem_conv"), name="stem_bn")
        )
        cin = self.stem_channels
        for layer, ((cout, stride), o) in enumerate(zip(self.layer_plan(), ops, strict=True)):
            x = self._block(b, x, cin, cout, stride, FBNET_BLOCKS[o], f"l{layer}")
            cin = cout
        x = b.conv(x, self.head_channels, 1, name="head_conv")
        x = b.relu(b.batchnorm(x, name="head_bn"), name="head_relu")
        x = b.flatten(b.global_avgpool(x, name="gap"), name="flatten")
        x = b.linear(x, self.num_classes, name="classifier")
        return b.build([x])

    @staticmethod
    def _block(
        b: GraphBuilder, x: str, cin: int, cout: int, stride: int, block: str, prefix: str
    ) -> str:
        spec = block_params(block)
        if spec is None:
            if stride == 1 and cin == cout:
                return x
            y = b.conv(x, cout, 1, stride=stride, name=f"{prefix}_skip_conv")
            return b.relu(b.batchnorm(y, name=f"{prefix}_skip_bn"), name=f"{prefix}_skip_relu")
        k, e, g = spec
        mid = cin * e
        y = b.conv(x, mid, 1, groups=g, name=f"{prefix}_pw1")
        y = b.relu(b.batchnorm(y, name=f"{prefix}_pw1_bn"), name=f"{prefix}_pw1_relu")
        if g > 1:
            y = b.channel_shuffle(y, g, name=f"{prefix}_shuffle")
        y = b.conv(y, mid, k, stride=stride, groups=mid, name=f"{prefix}_dw")
        y = b.relu(b.batchnorm(y, name=f"{prefix}_dw_bn"), name=f"{prefix}_dw_relu")
        y = b.conv(y, cout, 1, groups=g, name=f"{prefix}_pw2")
        y = b.batchnorm(y, name=f"{prefix}_pw2_bn")
        if stride == 1 and cin == cout:
            y = b.add([y, x], name=f"{prefix}_add")
        return y
