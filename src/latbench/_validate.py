"""Range checks of user-given numbers (bench.toml values, model and strategy settings).

One rule for every layer, so that ``port = '22a'``, ``epochs=0`` and ``lr=-1`` are refused alike
and their messages say what was expected in the same words.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any


def expected_number(
    value: Any,
    *,
    integer: bool = False,
    low: float | None = None,
    high: float | None = None,
    positive: bool = False,
) -> str | None:
    """None when ``value`` is a finite number (an integer with ``integer``) in ``[low, high]``
    (and ``> 0`` with ``positive``); otherwise what was expected, e.g. ``"an integer >= 1"``."""
    kind = "an integer" if integer else "a number"
    if positive:
        want = f"{kind} > 0"
    elif low is not None and high is not None:
        want = f"{kind} in [{low:g}, {high:g}]"
    elif low is not None:
        want = f"{kind} >= {low:g}"
    elif high is not None:
        want = f"{kind} <= {high:g}"
    else:
        want = kind
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy scalars too
        return want
    try:
        value = float(value)
    except OverflowError:  # an int beyond any float
        return want
    if not math.isfinite(value) or (integer and not float(value).is_integer()):
        return want
    if (low is not None and value < low) or (high is not None and value > high):
        return want
    if positive and value <= 0:
        return want
    return None


def out_of_range(
    checks: Iterable[tuple[str, Any, Mapping[str, Any]]],
) -> tuple[str, str] | None:
    """The first of ``(name, value, rule)`` whose value is out of its range (``rule``: the
    keywords of :func:`expected_number`; a None value is not given, so not checked), as
    ``(name, "NAME VALUE; expected WANT")``; None when every value is fine."""
    for name, value, rule in checks:
        if value is None:
            continue
        want = expected_number(value, **rule)
        if want is not None:
            return name, f"{name} {value}; expected {want}"
    return None
