"""Same architecture + seed + input => onnxruntime, LiteRT and torch agree.

Real runtimes on real emitted models: 12 NB201 cells (including a disconnected one and the
all-skip one) and 4 FBNet networks at resolution 64, each with its own weight seed. The broader
sweep over 100 architectures is marked slow.
"""

from __future__ import annotations

import pytest

from emit_helpers import assert_close, run_onnx, run_tflite, run_torch
from latbench.spaces import FBNetSpace, NB201Space, get_space, make_input

NB201 = NB201Space()
FBNET = FBNetSpace()

DISCONNECTED = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|avg_pool_3x3~2|"
ALL_SKIP = NB201.from_ops([1] * 6)
ALL_NONE = NB201.from_ops([0] * 6)

NB201_CASES = [DISCONNECTED, ALL_SKIP, *NB201.sample(10, seed=2024)]
# block 1 and 5 are the grouped (g2) blocks with a channel shuffle; 8 is skip
FBNET_CASES = ["1-5-8-0-2-3-4-6-7-1-5-8-0-2-3-4-6-7-1-5-8-0", *FBNET.sample(3, seed=2024)]


def _check(graph_space: str, arch: str, seed: int, resolution: int | None, batch: int = 1) -> None:
    space = get_space(graph_space)
    graph = space.build(arch, batch=batch, resolution=resolution)
    x = make_input(graph, seed)["input"]
    ref = run_torch(graph, x, seed)
    assert_close(run_onnx(graph, x, seed), ref, label=f"onnxruntime {arch}")
    assert_close(run_tflite(graph, x, seed), ref, label=f"litert {arch}")


def test_disconnected_cell_is_what_we_think() -> None:
    assert NB201.is_disconnected(DISCONNECTED)
    assert not NB201.is_disconnected(ALL_SKIP)


@pytest.mark.parametrize("arch", NB201_CASES)
def test_nb201_three_runtimes_agree(arch: str) -> None:
    _check("nb201", arch, seed=NB201_CASES.index(arch), resolution=None)


@pytest.mark.parametrize("arch", FBNET_CASES)
def test_fbnet_three_runtimes_agree(arch: str) -> None:
    _check("fbnet", arch, seed=3 + FBNET_CASES.index(arch), resolution=64)


def test_batch_and_resolution_options_agree() -> None:
    _check("nb201", NB201_CASES[3], seed=11, resolution=40, batch=2)


def test_all_none_cell_agrees() -> None:
    # every cell outputs zeros: the output is the classifier bias, the same on every runtime
    _check("nb201", ALL_NONE, seed=5, resolution=None)


@pytest.mark.slow
@pytest.mark.parametrize("i", range(100))
def test_sweep_100_archs(i: int) -> None:
    if i % 5 == 4:
        _check("fbnet", FBNET.sample(20, seed=99)[i // 5], seed=i, resolution=64)
    else:
        _check("nb201", NB201.sample(100, seed=99)[i], seed=i, resolution=None)
