"""CSV files as people save them: a UTF-8 byte-order mark (Excel's "CSV UTF-8"), spaces after
the commas of the header (``arch, latency_ms``) and around values. Every small CSV a command
reads (samples, architectures, objective tables, margins) goes through :func:`open_csv` and
:class:`Reader`, so that one file is read alike by all of them."""

from __future__ import annotations

import csv
import os
from typing import IO, Any

#: ``utf-8-sig`` reads plain UTF-8 as well, and drops a leading byte-order mark
ENCODING = "utf-8-sig"


def open_csv(path: str | os.PathLike[str], mode: str = "r") -> IO[str]:
    """``path`` opened for :mod:`csv` (no newline translation; a BOM dropped when reading)."""
    return open(path, mode, newline="", encoding=ENCODING if "r" in mode else "utf-8")


class Reader(csv.DictReader):  # type: ignore[type-arg]
    """A :class:`csv.DictReader` whose column names and values are stripped of spaces."""

    @property  # type: ignore[override]
    def fieldnames(self) -> list[str] | None:
        names = csv.DictReader.fieldnames.fget(self)  # type: ignore[attr-defined,union-attr,misc]
        if names is None:
            return None
        stripped = [str(n).strip() for n in names]
        self._fieldnames = stripped
        return stripped

    @fieldnames.setter
    def fieldnames(self, value: Any) -> None:
        self._fieldnames = value

    def __next__(self) -> dict[str, Any]:
        row = super().__next__()
        return {k: v.strip() if isinstance(v, str) else v for k, v in row.items()}
