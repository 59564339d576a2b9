"""NAS-Bench-201: string form, official index, enumeration, sampling, mutation, building."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from latbench.errors import ArchError
from latbench.spaces import NB201Space

DATA = Path(__file__).parent / "data" / "nb201_index_sample.csv"
SPACE = NB201Space()
ARCH = SPACE.from_ops([3, 3, 4, 1, 3, 1])  # official index 1


def _official_rows() -> list[tuple[int, str]]:
    with DATA.open() as fh:
        return [(int(r["nb201_index"]), r["arch"]) for r in csv.DictReader(fh)]


def test_size_and_shape_of_the_space() -> None:
    assert SPACE.size() == 15_625
    assert SPACE.num_positions == 6
    assert SPACE.choices == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert isinstance(SPACE, NB201Space)


def test_index_mapping_matches_the_official_table() -> None:
    rows = _official_rows()
    assert len(rows) > 250 and rows[0][0] == 0 and rows[-1][0] == 15_624
    for index, arch in rows:
        assert SPACE.from_index(index) == arch
        assert SPACE.index(arch) == index


def test_enumerate_is_complete_distinct_and_in_official_order() -> None:
    archs = list(SPACE.enumerate())
    assert len(archs) == 15_625
    assert len(set(archs)) == 15_625
    for index, arch in _official_rows():
        assert archs[index] == arch


def test_parse_and_print_round_trip() -> None:
    ops = SPACE.ops(ARCH)
    assert ops == (3, 3, 4, 1, 3, 1)
    assert SPACE.from_ops(ops) == ARCH
    assert SPACE.canonical("  " + ARCH + " ") == ARCH
    assert SPACE.decode_int(SPACE.encode_int(ARCH)) == ARCH


@pytest.mark.parametrize(
    ("bad", "names"),
    [
        ("|nor_conv_3x4~0|+|none~0|none~1|+|none~0|none~1|none~2|", "nor_conv_3x4"),
        ("|nor_conv_3x3~1|+|none~0|none~1|+|none~0|none~1|none~2|", "nor_conv_3x3~1"),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "conv"),
        ("|none-0|+|none~0|none~1|+|none~0|none~1|none~2|", "none-0"),
        ("|none~0|+|none~0|none~1|", "2 node group"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "1 edge"),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "must start and end"),
    ],
)
def test_malformed_strings_name_the_bad_token(bad: str, names: str) -> None:
    with pytest.raises(ArchError) as info:
        SPACE.ops(bad)
    msg = str(info.value)
    assert names in msg
    assert "~" in msg  # every message shows the expected op~i form


def test_wrong_type_and_out_of_range() -> None:
    with pytest.raises(ArchError, match="expected a string"):
        SPACE.ops(42)  # type: ignore[arg-type]
    with pytest.raises(ArchError, match="out of range"):
        SPACE.from_index(15_625)
    with pytest.raises(ArchError, match="expected 6 choices"):
        SPACE.from_ops([0, 1])
    with pytest.raises(ArchError, match="out of range"):
        SPACE.from_ops([0, 0, 0, 0, 0, 5])


def test_sample_is_seeded_distinct_and_valid() -> None:
    a = SPACE.sample(50, seed=7)
    assert a == SPACE.sample(50, seed=7)
    assert a != SPACE.sample(50, seed=8)
    assert len(set(a)) == 50
    assert all(SPACE.canonical(x) == x for x in a)
    with pytest.raises(
        ArchError, match="cannot sample 15626 distinct archs; expected at most 15,625"
    ):
        SPACE.sample(15_626)


def test_mutate_changes_exactly_one_position() -> None:
    rng = random.Random(0)
    for _ in range(50):
        child = SPACE.mutate(ARCH, rng)
        diff = [
            i
            for i, (x, y) in enumerate(zip(SPACE.ops(ARCH), SPACE.ops(child), strict=True))
            if x != y
        ]
        assert len(diff) == 1


def test_neighbours() -> None:
    nb = SPACE.neighbours(ARCH)
    assert len(nb) == 6 * 4
    assert len(set(nb)) == 24 and ARCH not in nb
    for n in nb:
        assert sum(x != y for x, y in zip(SPACE.ops(ARCH), SPACE.ops(n), strict=True)) == 1


def test_arch_id_is_stable_and_distinct() -> None:
    assert SPACE.arch_id(ARCH) == SPACE.arch_id(" " + ARCH)
    assert len({SPACE.arch_id(a) for a in SPACE.sample(200, seed=1)}) == 200


def test_build_standard_skeleton() -> None:
    g = SPACE.build(ARCH)
    assert g.inputs[0].shape == (1, 3, 32, 32)
    assert g[g.outputs[0]].shape == (1, 10)
    assert g.meta["arch"] == ARCH
    # stem 16 ch at 32x32, 64 ch at 8x8 before pooling
    assert g["stem_conv"].shape == (1, 16, 32, 32)
    assert g["gap"].shape == (1, 64, 1, 1)
    # 3x3 convs on 3 of 6 edges x 15 cells + stem + 2 reductions x (2 + 1 shortcut)
    assert g.op_counts()["conv"] == 3 * 15 + 1 + 2 * 3


def test_disconnected_cell_builds_to_zeros() -> None:
    arch = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|avg_pool_3x3~2|"
    assert SPACE.is_disconnected(arch)
    g = SPACE.build(arch)
    assert g.op_counts()["zeros"] == 15
    assert g[g.outputs[0]].shape == (1, 10)
    # the cell's conv edge feeds nothing any output depends on, so it is pruned
    assert not any(n.name.startswith("s0c0_e10") for n in g.nodes)


def test_all_none_cell_and_batch_resolution_options() -> None:
    g = SPACE.build("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", batch=4, resolution=64)
    assert g.inputs[0].shape == (4, 3, 64, 64)
    assert g[g.outputs[0]].shape == (4, 10)
    assert g.meta["batch"] == 4 and g.meta["resolution"] == 64


def test_bigger_cost_for_heavier_ops() -> None:
    light = SPACE.build(
        "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
    )
    heavy = SPACE.build(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )
    assert heavy.macs() > 10 * light.macs()
    assert heavy.params() > light.params()
