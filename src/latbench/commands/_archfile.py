"""The ``--archs FILE`` of ``collect``, ``rank`` and ``predictor predict``: one reader for all."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from latbench._csvfile import ENCODING, Reader, not_utf8_message
from latbench._csvfile import rows as csv_rows
from latbench.errors import ArchError, ConfigError


def read_archs(path: str | Path, space: Any = None, *, option: str = "--archs") -> list[str]:
    """The architectures of ``path``: a CSV with an ``arch`` column (a ``.csv`` name or an
    ``arch`` header), or one per line with ``#`` comments and blank lines ignored.

    With ``space`` (a search space) each one is checked and returned canonical, and a bad one
    is reported with its file and line, as is a row whose ``space`` column names another
    space (an architecture may be written ``SPACE:ARCH``, as ``latbench measure`` takes it);
    without it (imported graphs) they are returned as written.
    """
    p = Path(path)
    if p.is_dir():
        raise ConfigError(
            f"{option} {str(path)!r} is a directory; expected a file of architectures"
        )
    if not p.is_file():
        raise ConfigError(
            f"{option} {str(path)!r} does not exist; expected a file of architectures"
        )
    try:
        text = p.read_text(encoding=ENCODING)
    except UnicodeDecodeError:
        raise ConfigError(
            f"{not_utf8_message(p, option)} (architectures one per line or a CSV with an "
            "'arch' column)"
        ) from None
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    if not first:
        raise ConfigError(
            f"{option} {str(path)!r} is empty; expected architectures one per line or a CSV "
            "with an 'arch' column"
        )
    rows: list[tuple[int, str]]
    spaces: dict[int, str] = {}
    if p.suffix.lower() == ".csv" or "arch" in [c.strip() for c in first.split(",")]:
        reader = Reader(io.StringIO(text))
        if "arch" not in (reader.fieldnames or []):
            raise ConfigError(
                f"{path}: columns {list(reader.fieldnames or [])}; expected an 'arch' column"
            )
        rows = []
        for line, r in csv_rows(path, reader, option):
            arch = (r["arch"] or "").strip()
            if arch:
                rows.append((line, arch))
                spaces[line] = (r.get("space") or "").strip()
    else:
        rows = [(n, ln.split("#", 1)[0].strip()) for n, ln in enumerate(lines, start=1)]
        rows = [(n, a) for n, a in rows if a]
    if not rows:
        raise ConfigError(f"{option} {str(path)!r} holds no architecture")
    if space is None:
        return [a for _, a in rows]
    out = []
    prefix = f"{space.name}:"
    for lineno, arch in rows:
        named = spaces.get(lineno, "")
        if arch.startswith(prefix):  # SPACE:ARCH, as `latbench measure` takes it
            arch = arch[len(prefix) :]
        if named and named != space.name:
            raise ArchError(
                f"{path} line {lineno}: space {named!r}; expected {space.name!r} ({option} "
                f"here takes {space.name} architectures)"
            )
        try:
            out.append(space.canonical(arch))
        except ArchError as exc:
            raise ArchError(f"{path} line {lineno}: {exc}") from None
    return out
