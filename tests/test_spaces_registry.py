"""The search-space registry: listing, lookup by name, errors that list the known names."""

from __future__ import annotations

from typing import Any

import pytest

from latbench.errors import ArchError, UnknownNameError
from latbench.spaces import SPACES, SearchSpace, get_space, list_spaces


def test_builtin_spaces_are_registered() -> None:
    assert {"nb201", "fbnet"} <= set(list_spaces())
    assert list_spaces("nb*") == ["nb201"]


@pytest.mark.parametrize("name", ["nb201", "fbnet"])
def test_every_space_builds_and_describes(name: str) -> None:
    space = get_space(name)
    assert isinstance(space, SearchSpace)
    d = space.describe()
    assert d["name"] == name and d["size"] == space.size() and d["positions"] > 0
    arch = space.sample(1, seed=0)[0]
    g = space.build(arch, resolution=64 if name == "fbnet" else None)
    assert g.macs() > 0 and g.params() > 0
    assert name in SPACES


def test_unknown_space_lists_known_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        get_space("nb301")
    msg = str(info.value)
    assert "nb301" in msg and "nb201" in msg and "fbnet" in msg


@pytest.mark.parametrize(
    ("space", "kw", "needle"),
    [
        ("nb201", {"resolution": 0}, "resolution = 0; expected an integer >= 1"),
        ("nb201", {"resolution": 30}, "resolution = 30; expected a multiple of 4 (e.g. 28 or 32)"),
        ("nb201", {"batch": 0}, "batch = 0; expected an integer >= 1"),
        ("fbnet", {"batch": 1.5}, "batch = 1.5; expected an integer >= 1"),
        ("fbnet", {"resolution": -224}, "resolution = -224"),
    ],
)
def test_build_refuses_an_input_size_no_network_has(
    space: str, kw: dict[str, Any], needle: str
) -> None:
    sp = get_space(space)
    with pytest.raises(ArchError) as info:
        sp.build(sp.sample(1, seed=0)[0], **kw)
    assert needle in str(info.value)


def test_sample_refuses_a_negative_count() -> None:
    with pytest.raises(ArchError, match="cannot sample -3 archs; expected a count >= 0"):
        get_space("nb201").sample(-3)
