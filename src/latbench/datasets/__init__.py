"""Datasets: the embedded measurement store, collection, reference data, import and export.

One row per measurement (schema in :mod:`latbench.datasets.schema`, documented in
``docs/datasets.md``). Typical use::

    import latbench.datasets as lds

    store = lds.open("latbench.db")           # SQLite, created if missing
    df = store.to_pandas(space="nb201")       # every schema column
    ref = lds.load_reference("nb201")         # bundled public table, long format
    any_df = lds.read_table("export.parquet") # store, parquet, CSV or minimal long CSV
"""

from __future__ import annotations

import os

from latbench.datasets.io import (
    ImportReport,
    export_store,
    import_reference,
    import_table,
    read_table,
)
from latbench.datasets.reference import (
    REFERENCE_TABLES,
    list_reference,
    load_reference,
    load_wide,
    reference_devices,
    reference_dir,
)
from latbench.datasets.schema import COLUMN_NAMES, KEY_COLUMNS, LONG_COLUMNS, SCHEMA_VERSION
from latbench.datasets.store import APPLICATION_ID, Store, open_store


def open(path: str | os.PathLike[str], *, readonly: bool = False, create: bool = True) -> Store:
    """Open the store at ``path`` (created when missing unless ``create=False``)."""
    return open_store(path, readonly=readonly, create=create)


__all__ = [
    "APPLICATION_ID",
    "COLUMN_NAMES",
    "KEY_COLUMNS",
    "LONG_COLUMNS",
    "REFERENCE_TABLES",
    "SCHEMA_VERSION",
    "ImportReport",
    "Store",
    "export_store",
    "import_reference",
    "import_table",
    "list_reference",
    "load_reference",
    "load_wide",
    "open",
    "open_store",
    "read_table",
    "reference_devices",
    "reference_dir",
]
