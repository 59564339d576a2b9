"""Access to the bundled reference latency tables (long format), for fitting and ``compare``.

Uses :func:`latbench.datasets.load_reference` when the datasets package provides it; until then
(or in a source checkout without it) reads the wide CSV tables directly: the bundled copy under
``latbench/datasets/reference/`` or a directory named by ``$LATBENCH_REFERENCE_DIR``.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from latbench.errors import DatasetError

_FILES = {"nb201": "nb201_latency_ms.csv.gz", "fbnet": "fbnet_latency_ms.csv.gz"}


def _candidates(name: str) -> list[Path]:
    out = []
    env = os.environ.get("LATBENCH_REFERENCE_DIR")
    if env:
        out.append(Path(env) / _FILES[name])
    try:
        ref = resources.files("latbench.datasets").joinpath("reference", _FILES[name])
        out.append(Path(str(ref)))
    except (ModuleNotFoundError, TypeError):
        pass
    return out


def wide_to_long(df: pd.DataFrame, space: str) -> pd.DataFrame:
    """Wide table (index, arch, one column per device) -> long (space, arch, device, latency_ms)."""
    key = f"{space}_index"
    dev_cols = [c for c in df.columns if c not in (key, "arch")]
    long = df.melt(
        id_vars=[c for c in (key, "arch") if c in df.columns],
        value_vars=dev_cols,
        var_name="device",
        value_name="latency_ms",
    )
    long = long.dropna(subset=["latency_ms"])
    long.insert(0, "space", space)
    return long.reset_index(drop=True)


def load_reference(name: str) -> pd.DataFrame:
    """Long table ``space, arch, device, latency_ms`` (plus the index column) of ``name``."""
    if name not in _FILES:
        raise DatasetError(f"unknown reference dataset {name!r}; expected one of {sorted(_FILES)}")
    try:
        from latbench import datasets

        loader: Any = getattr(datasets, "load_reference", None)
    except ImportError:  # pragma: no cover
        loader = None
    if loader is not None:
        df: pd.DataFrame = loader(name)
        return df
    for path in _candidates(name):
        if path.is_file():
            return wide_to_long(pd.read_csv(path), name)
    raise DatasetError(
        f"reference dataset {name!r} not found (looked in {[str(p) for p in _candidates(name)]}); "
        "set LATBENCH_REFERENCE_DIR to the directory holding " + _FILES[name]
    )
