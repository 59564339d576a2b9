"""Bundled reference data: public latency tables of NAS-Bench-201 and FBNet on real devices.

The tables ship inside the package (``latbench/datasets/reference/``) with their licences and
attribution (``ATTRIBUTION.md``). On disk they are *wide*: one row per architecture (its index
and string), one column per device configuration named ``source/device``; an empty cell means
"not measured". :func:`load_reference` turns them into the long format every latbench reader
takes: ``space, arch, device, latency_ms``, plus the index column (``nb201_index`` /
``fbnet_index``) and ``batch``.

Batch: HELP's GPU columns (1080ti, 2080ti, titanx, titanxp, titan_rtx) carry the batch size as
a suffix (``help/1080ti_32``); it is parsed into ``batch`` while the device name keeps the
suffix, because each batch size is a separate device configuration in the few-shot protocol
(HELP's naming). Every other column is batch 1: the digits ending ``help/gold_6240`` and
``help/silver_4114`` are Xeon model numbers, ``help/essential_ph_1`` is a phone, and
``oneproxy/eagle_jetson_16`` is fp16, not batch 16.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from latbench.errors import UnknownNameError


@dataclass(frozen=True)
class ReferenceTable:
    """One bundled table: its file, search space, and provenance."""

    name: str
    space: str
    file: str
    index_column: str
    description: str
    sources: tuple[str, ...]
    licenses: tuple[str, ...]


REFERENCE_TABLES: dict[str, ReferenceTable] = {
    "nb201": ReferenceTable(
        name="nb201",
        space="nb201",
        file="nb201_latency_ms.csv.gz",
        index_column="nb201_index",
        description="NAS-Bench-201: all 15,625 cells on 36 device configurations",
        sources=("HELP (MIT)", "OneProxy (MIT)", "nn-Meter (MIT)", "BRP-NAS LatBench (Apache-2.0)"),
        licenses=("HELP.LICENSE", "OneProxy.LICENSE", "nn-Meter.LICENSE", "brp-nas.LICENSE"),
    ),
    "fbnet": ReferenceTable(
        name="fbnet",
        space="fbnet",
        file="fbnet_latency_ms.csv.gz",
        index_column="fbnet_index",
        description="FBNet: 5,000 architectures on 21 device configurations (HELP)",
        sources=("HELP (MIT)",),
        licenses=("HELP.LICENSE",),
    ),
}

# The GPUs of HELP, whose columns end in the batch size (see ATTRIBUTION.md).
HELP_GPUS = ("1080ti", "2080ti", "titanx", "titanxp", "titan_rtx")
_BATCH_SUFFIX = re.compile(rf"^help/(?:{'|'.join(HELP_GPUS)})_(\d+)$")


def reference_dir() -> Path:
    """The directory of the bundled tables, licences and attribution."""
    return Path(str(resources.files("latbench.datasets").joinpath("reference")))


def _table(name: str) -> ReferenceTable:
    try:
        return REFERENCE_TABLES[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown reference dataset {name!r}; expected one of: "
            + ", ".join(sorted(REFERENCE_TABLES))
        ) from None


def batch_of(device: str) -> int:
    """The batch size of a reference device column (``help/1080ti_256`` -> 256; 1 for every
    column other than HELP's GPUs: ``help/gold_6240`` is a CPU at batch 1)."""
    m = _BATCH_SUFFIX.match(device)
    return int(m.group(1)) if m else 1


@functools.lru_cache(maxsize=4)
def _wide(name: str) -> pd.DataFrame:
    t = _table(name)
    return pd.read_csv(reference_dir() / t.file)


def load_wide(name: str) -> pd.DataFrame:
    """The table as shipped: index, arch, one column per device (NaN = not measured)."""
    return _wide(name).copy()


def reference_devices(name: str) -> list[str]:
    """The device configuration names of a reference table, in file order."""
    t = _table(name)
    return [c for c in _wide(name).columns if c not in (t.index_column, "arch")]


def load_reference(name: str) -> pd.DataFrame:
    """The long-format table: ``space, arch, device, latency_ms, <index>, batch``.

    One row per measured cell (empty cells are left out), sorted by device then index.
    ``latency_ms`` is in milliseconds as published; see ``ATTRIBUTION.md`` for the quirks
    (whole-ms phone columns, sub-0.1 ms disconnected cells).
    """
    t = _table(name)
    wide = _wide(name)
    devices = reference_devices(name)
    # Column-major ravel of the device block = the order of ``melt`` (device, then file row);
    # done in numpy, because a pandas melt of the 36 x 15,625 block costs a second.
    values = wide[devices].to_numpy(dtype="float64").ravel(order="F")
    keep = np.flatnonzero(~np.isnan(values))
    rows = keep % len(wide)
    dev = np.repeat(np.arange(len(devices)), len(wide))[keep]
    batches = np.array([batch_of(d) for d in devices], dtype="int64")
    # Strings are gathered with ``take`` on pandas string arrays (Arrow-backed: C speed), not
    # rebuilt from 371k Python objects.
    text = pd.Series([t.space, *devices], dtype=str)
    out = pd.DataFrame(
        {
            "space": text.take(np.zeros(len(keep), dtype="int64")).reset_index(drop=True),
            "arch": wide["arch"].astype(str).take(rows).reset_index(drop=True),
            "device": text.take(dev + 1).reset_index(drop=True),
            "latency_ms": values[keep],
            t.index_column: wide[t.index_column].to_numpy(dtype="int64")[rows],
            "batch": batches[dev],
        }
    )
    return out


def list_reference() -> pd.DataFrame:
    """One row per bundled table: name, space, architectures, devices, rows, sources."""
    rows = []
    for t in REFERENCE_TABLES.values():
        wide = _wide(t.name)
        devices = reference_devices(t.name)
        rows.append(
            {
                "name": t.name,
                "space": t.space,
                "archs": len(wide),
                "devices": len(devices),
                "rows": int(wide[devices].notna().to_numpy().sum()),
                "description": t.description,
                "sources": ", ".join(t.sources),
            }
        )
    return pd.DataFrame(rows)
