"""Pareto fronts: against a brute-force definition, with ties and NaNs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from latbench.nas.pareto import dominates, pareto_front


def _brute(lat: list[float], q: list[float]) -> set[int]:
    pts = list(zip(lat, q, strict=True))
    out = set()
    for i, a in enumerate(pts):
        if any(np.isnan(a)):
            continue
        if not any(dominates(b, a) for j, b in enumerate(pts) if j != i and not any(np.isnan(b))):
            out.add(i)
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 6)),
        min_size=0,
        max_size=25,
    )
)
def test_front_matches_brute_force_up_to_duplicates(points: list[tuple[int, int]]) -> None:
    lat = [float(p[0]) for p in points]
    q = [float(p[1]) for p in points]
    front = pareto_front(lat, q).tolist()
    expected = _brute(lat, q)
    # exact duplicates of a front point are kept once (the first in latency order)
    assert {(lat[i], q[i]) for i in front} == {(lat[i], q[i]) for i in expected}
    assert len(front) == len({(lat[i], q[i]) for i in front})
    assert [lat[i] for i in front] == sorted(lat[i] for i in front)


def test_nan_points_are_left_out() -> None:
    front = pareto_front([1.0, 2.0, np.nan, 3.0], [1.0, np.nan, 5.0, 2.0])
    assert front.tolist() == [0, 3]
    assert pareto_front([], []).tolist() == []
