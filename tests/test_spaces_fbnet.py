"""FBNet / HW-NAS-Bench space: string form, sampling in a 9^22 space, building."""

from __future__ import annotations

import random

import pytest

from latbench.errors import ArchError
from latbench.spaces import FBNetSpace, get_space
from latbench.spaces.fbnet import FBNET_BLOCKS, block_params

SPACE = FBNetSpace()
ARCH = "8-1-3-6-5-2-2-1-3-5-0-5-3-7-0-2-7-5-2-6-8-4"


def test_size_and_choices() -> None:
    assert SPACE.size() == 9**22
    assert SPACE.num_positions == 22
    assert len(SPACE.choices) == 9 and SPACE.choices[-1] == "skip"
    assert len(SPACE.layer_plan()) == 22


def test_parse_indices_and_block_names() -> None:
    assert SPACE.ops(ARCH)[:3] == (8, 1, 3)
    named = "-".join(FBNET_BLOCKS[i] for i in SPACE.ops(ARCH))
    assert SPACE.canonical(named) == ARCH
    assert block_params("k5_e6") == (5, 6, 1)
    assert block_params("k3_e1_g2") == (3, 1, 2)
    assert block_params("skip") is None


@pytest.mark.parametrize(
    ("bad", "names"),
    [
        ("9-" + "0-" * 20 + "0", "'9'"),
        ("x-" + "0-" * 20 + "0", "'x'"),
        ("0-0-0", "3 layer(s)"),
    ],
)
def test_malformed_strings(bad: str, names: str) -> None:
    with pytest.raises(ArchError) as info:
        SPACE.ops(bad)
    assert names in str(info.value)
    assert "0-8" in str(info.value) or "22" in str(info.value)


def test_sample_huge_space_is_seeded_and_distinct() -> None:
    a = SPACE.sample(100, seed=3)
    assert a == SPACE.sample(100, seed=3)
    assert len(set(a)) == 100
    assert all(SPACE.canonical(x) == x for x in a)


def test_enumerate_all_refuses_a_huge_space() -> None:
    with pytest.raises(ArchError, match=r"fbnet has 9\.85e\+20 architectures.*at most 1,000,000"):
        SPACE.enumerate_all()
    nb201 = get_space("nb201").enumerate_all()
    assert len(nb201) == 15625 == len(set(nb201))
    with pytest.raises(ArchError, match="at most 100 to enumerate"):
        get_space("nb201").enumerate_all(limit=100)


def test_mutate_and_neighbours() -> None:
    child = SPACE.mutate(ARCH, random.Random(1))
    assert sum(x != y for x, y in zip(SPACE.ops(ARCH), SPACE.ops(child), strict=True)) == 1
    nb = SPACE.neighbours(ARCH)
    assert len(nb) == 22 * 8 and len(set(nb)) == len(nb)


@pytest.mark.parametrize("resolution", [64, 224])
def test_build_shapes(resolution: int) -> None:
    g = SPACE.build(ARCH, resolution=resolution)
    assert g.inputs[0].shape == (1, 3, resolution, resolution)
    assert g[g.outputs[0]].shape == (1, 1000)
    assert g["head_conv"].shape[:2] == (1, 1984)
    assert g["head_conv"].shape[2] == resolution // 32


def test_resolution_is_a_space_option() -> None:
    g = get_space("fbnet", resolution=96).build(ARCH)
    assert g.inputs[0].shape == (1, 3, 96, 96)


def test_all_skip_network_has_no_blocks() -> None:
    g = SPACE.build("-".join(["8"] * 22), resolution=64)
    # skip becomes a 1x1 conv where stride or width changes: 6 of the 7 stage starts
    assert sum(1 for n in g.nodes if n.name.endswith("_skip_conv")) == 6
    assert "channel_shuffle" not in g.op_counts()


def test_grouped_block_has_channel_shuffle() -> None:
    g = SPACE.build("-".join(["1"] * 22), resolution=64)
    assert g.op_counts()["channel_shuffle"] == 22
    assert g["l0_pw1"].attrs["groups"] == 2
