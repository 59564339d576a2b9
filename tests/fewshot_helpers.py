"""Shared fixtures' bodies for the few-shot tests: the reference table and a small meta base."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from latbench.datasets import load_reference
from latbench.predictors import create

#: source devices of the ``adapt`` and ``bayes`` tests: the HELP meta-train GPUs, CPUs, phones
HELP_SOURCES = [
    "help/1080ti_1",
    "help/1080ti_32",
    "help/silver_4114",
    "help/silver_4210r",
    "help/samsung_a50",
    "help/pixel3",
]

#: source devices of the ``embed`` tests: GPUs, CPUs, a phone and the pruning accelerators
EMBED_SOURCES = [
    "help/1080ti_1",
    "help/1080ti_32",
    "help/silver_4114",
    "help/samsung_a50",
    "nnmeter/adreno640gpu_tflite21",
    "oneproxy/eagle_cpu_855",
    "oneproxy/eagle_gpu_855",
    "oneproxy/eagle_dsp_855",
]


def wide_reference(max_index: int) -> pd.DataFrame:
    """NB201 reference rows with ``nb201_index < max_index``, one column per device."""
    df = load_reference("nb201")
    df = df[df["nb201_index"] < max_index]
    w = df.pivot_table(index=["nb201_index", "arch"], columns="device", values="latency_ms")
    return w.reset_index().sort_values("nb201_index").reset_index(drop=True)


def long_sources(table: pd.DataFrame, sources: Sequence[str]) -> pd.DataFrame:
    """``table``'s ``sources`` columns in long format (arch, device, ms), unmeasured cells out."""
    out = table.melt(id_vars=["arch"], value_vars=list(sources), var_name="device", value_name="ms")
    return out.dropna()


def draw_samples(
    table: pd.DataFrame, device: str, k: int, seed: int
) -> tuple[list[str], np.ndarray]:
    """K architectures drawn from the first 900 rows of ``table``, and a copy of their ms."""
    pick = np.random.default_rng(seed).choice(900, size=k, replace=False)
    return list(table["arch"].iloc[pick]), table[device].to_numpy()[pick].copy()


def meta_base(long: pd.DataFrame) -> Any:
    """The multi-device ``meta`` base fitted on a long table of source devices."""
    return create("meta").fit(
        long["arch"].tolist(), long["ms"].to_numpy(), space="nb201", devices=list(long["device"])
    )


def prior_base(long: pd.DataFrame) -> Any:
    """The ``meta`` base with its ``embed`` prior stored, as ``predictor fit --devices all``."""
    from latbench.predictors.adapt import fit_base

    return fit_base(
        "meta", long["arch"].tolist(), long["ms"].to_numpy(), space="nb201", devices=long["device"]
    )


def table_fixture(max_index: int) -> Any:
    """A module-scoped ``table`` fixture: :func:`wide_reference` of ``max_index`` rows.

    Assign it in a test module as ``table = table_fixture(N)``.
    """

    @pytest.fixture(scope="module")
    def table() -> pd.DataFrame:
        return wide_reference(max_index)

    return table


def long_fixture(sources: Sequence[str]) -> Any:
    """A module-scoped ``long`` fixture: the ``table`` fixture's ``sources`` in long format."""

    @pytest.fixture(scope="module")
    def long(table: pd.DataFrame) -> pd.DataFrame:
        return long_sources(table, sources)

    return long


#: devices of the monotonicity and proxy-adaptation tests: GPUs, Xeons and a phone
MONOTONICITY_DEVICES = [
    "help/1080ti_1",
    "help/titanx_1",
    "help/gold_6240",
    "help/silver_4210r",
    "help/pixel3",
]


def monotonicity_table_fixture() -> Any:
    """A module-scoped ``table`` fixture: the first 1,500 NB201 architectures on
    :data:`MONOTONICITY_DEVICES`, wide (``monotonicity.wide_table``: indexed by arch)."""
    from latbench.predictors import monotonicity as mono

    @pytest.fixture(scope="module")
    def table() -> pd.DataFrame:
        df = load_reference("nb201")
        df = df[(df["nb201_index"] < 1500) & df["device"].isin(MONOTONICITY_DEVICES)]
        return mono.wide_table(df)

    return table
