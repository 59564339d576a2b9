"""Pareto fronts: against a brute-force definition, with exact ties, infinities and NaNs."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from latbench.nas.pareto import dominates, pareto_front


def _brute(lat: list[float], q: list[float]) -> set[int]:
    """The definition: every point (NaN ones left out) that no other point dominates."""
    pts = list(zip(lat, q, strict=True))
    ok = [i for i, a in enumerate(pts) if not any(np.isnan(a))]
    return {i for i in ok if not any(dominates(pts[j], pts[i]) for j in ok if j != i)}


def _check(lat: list[float], q: list[float]) -> None:
    front = pareto_front(lat, q).tolist()
    assert set(front) == _brute(lat, q)  # the same indices: exact ties all kept
    assert len(front) == len(set(front))
    assert [lat[i] for i in front] == sorted(lat[i] for i in front)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 6)),
        min_size=0,
        max_size=25,
    )
)
def test_front_matches_brute_force_with_ties(points: list[tuple[int, int]]) -> None:
    _check([float(p[0]) for p in points], [float(p[1]) for p in points])


_VALUES = st.sampled_from([-math.inf, math.inf, math.nan, 0.0, 1.0, 2.0, 3.0])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_VALUES, _VALUES), min_size=0, max_size=20))
def test_front_matches_brute_force_with_infinities_and_nans(
    points: list[tuple[float, float]],
) -> None:
    _check([p[0] for p in points], [p[1] for p in points])


def test_ties_and_minus_infinity() -> None:
    # neither of two equal points dominates the other: both are on the front
    assert pareto_front([1.0, 1.0], [3.0, 3.0]).tolist() == [0, 1]
    # -inf is the worst quality, yet the fastest point is dominated by none
    assert pareto_front([1.0, 2.0], [-np.inf, 0.0]).tolist() == [0, 1]
    # ... and a -inf point that is not the fastest is dominated
    assert pareto_front([1.0, 2.0], [0.0, -np.inf]).tolist() == [0]
    # equal latency: the better quality dominates; equal quality: the faster one
    assert pareto_front([1.0, 1.0, 2.0], [2.0, 1.0, 2.0]).tolist() == [0]
    assert pareto_front([2.0, 1.0, 1.0, 0.5], [5.0, 5.0, 5.0, -np.inf]).tolist() == [3, 1, 2]


def test_nan_points_are_left_out() -> None:
    front = pareto_front([1.0, 2.0, np.nan, 3.0], [1.0, np.nan, 5.0, 2.0])
    assert front.tolist() == [0, 3]
    assert pareto_front([], []).tolist() == []
