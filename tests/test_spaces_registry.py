"""The search-space registry: listing, lookup by name, errors that list the known names."""

from __future__ import annotations

import pytest

from latbench.errors import UnknownNameError
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
