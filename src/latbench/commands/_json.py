"""Strict JSON for every ``--json`` output and result file: non-finite floats become null.

``json.dumps`` writes ``NaN`` and ``-Infinity`` by default, which ``JSON.parse``, ``jq --strict``
and ``json.loads(..., parse_constant=...)`` reject; a device pair sharing no architectures (a
NaN correlation) or a disconnected cell (a -inf objective) must not make a file unreadable.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, +-inf) replaced by None, recursively (numpy
    scalars and arrays as the Python values they stand for): JSON has no NaN, and
    ``json.dumps``'s ``default`` never sees floats."""
    if hasattr(obj, "tolist") and type(obj).__module__ == "numpy":
        obj = obj.tolist()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def _default(obj: Any) -> Any:
    return str(obj)


def dumps(doc: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """Strict JSON of ``doc``: non-finite floats as null, values JSON has no type for as
    strings."""
    return json.dumps(
        finite(doc), indent=indent, sort_keys=sort_keys, default=_default, allow_nan=False
    )
