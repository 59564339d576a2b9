"""CSV files as people save them: a UTF-8 byte-order mark (Excel's "CSV UTF-8"), spaces after
the commas of the header (``arch, latency_ms``) and around values. Every small CSV a command
reads (samples, architectures, objective tables, margins) goes through :func:`read_csv` (or
:func:`open_csv` and :class:`Reader`) and :func:`rows`, so that one file is read alike by all
of them: a file that is not UTF-8 is named by its line and byte, a row is named by the line
of the file it is on, and a row with more values than the header is refused."""

from __future__ import annotations

import codecs
import contextlib
import csv
import os
from collections.abc import Iterator
from typing import IO, Any

from latbench.errors import ConfigError

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


@contextlib.contextmanager
def read_csv(path: str | os.PathLike[str], what: str = "") -> Iterator[Reader]:
    """A :class:`Reader` of the CSV file ``path``; a file that is not UTF-8 (Excel's "CSV"
    saves Latin-1 on some systems) is a :class:`~latbench.errors.ConfigError` naming its line
    and byte, not a ``UnicodeDecodeError`` from wherever the decoder stopped. ``what`` (an
    option such as ``--margin-from``) leads the message."""
    try:
        with open_csv(path) as fh:
            yield Reader(fh)
    except UnicodeDecodeError:
        raise ConfigError(not_utf8_message(path, what)) from None


def not_utf8_message(path: str | os.PathLike[str], what: str = "") -> str:
    """Where ``path`` stops being UTF-8: its line and the byte there."""
    lead = f"{what} " if what else ""
    with open(path, "rb") as fh:
        data = fh.read()
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = start + exc.start
        line = data.count(b"\n", 0, at) + 1
        return (
            f"{lead}{os.fspath(path)}:{line}: byte 0x{data[at]:02x} is not UTF-8; expected UTF-8 "
            "text (re-save the file as UTF-8, e.g. iconv -f latin1 -t utf-8)"
        )
    return f"{lead}{os.fspath(path)}: not UTF-8 text; expected UTF-8"


def rows(
    path: str | os.PathLike[str], reader: Reader, what: str = ""
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The rows of ``reader`` with the line of the file each one is on.

    The line is the reader's own count, so that blank lines (which :mod:`csv` skips) and quoted
    line breaks do not shift the line named in an error. A row with more values than the
    header has columns is refused: :mod:`csv` would set the extra ones aside, so that an
    unquoted decimal comma (``10,5``) would be read as 10 without a word. Empty trailing cells
    (``a,b,,``) are allowed.
    """
    lead = f"{what} " if what else ""
    names = reader.fieldnames or []
    for row in reader:
        extra = row.get(None)  # type: ignore[call-overload]
        if extra and any(str(v).strip() for v in extra):
            raise ConfigError(
                f"{lead}{os.fspath(path)}:{reader.line_num}: {len(names) + len(extra)} values, "
                f"but the header has {len(names)} columns ({', '.join(names)}); expected one "
                "value per column (quote a value that holds a comma: an unquoted decimal comma, "
                "10,5, is two values)"
            )
        row.pop(None, None)  # type: ignore[call-overload]
        yield reader.line_num, row
