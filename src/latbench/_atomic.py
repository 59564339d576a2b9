"""Whole-or-nothing file writes, for every layer.

Every file latbench writes for a user (models, predictors, results, tables, reports,
descriptors) goes through :func:`atomic_path`: the content is written to a temporary file in
the destination's folder and renamed over the destination only when complete. A write that
fails midway (disk full, file size limit, an interrupt) leaves no partial file, and a file
already at the destination (a baseline, last week's predictor) exactly as it was.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_text_atomic"]


@contextlib.contextmanager
def atomic_path(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``out`` to write; rename it over ``out`` when the block
    ends without an exception; remove it in every case.

    The temporary name is hidden (a leading dot), unique to this process and call, and ends
    with ``out``'s suffix, so that writers that infer a format or compression from the name
    (pandas: ``.gz``, ``.parquet``) write what ``out`` asks for. An :class:`OSError` that names
    no file (``File too large``) is raised again naming ``out``, with "nothing written"; one
    that names the temporary file, naming ``out`` instead.
    """
    dest = Path(out)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp{dest.suffix}")
    try:
        yield tmp
        os.replace(tmp, dest)
    except OSError as exc:
        if exc.errno is not None and exc.filename is None:
            # a failed write says only "File too large": name the file
            raise OSError(exc.errno, f"{exc.strerror}; nothing written", str(dest)) from exc
        if exc.errno is not None and exc.filename == str(tmp):
            # name the file asked for, not the temporary one
            raise OSError(exc.errno, exc.strerror, str(dest)) from exc
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_text_atomic(out: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``out`` whole or not at all (:func:`atomic_path`)."""
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(out)


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether paths ``a`` and ``b`` name one file, also through ``..`` or a link, and also
    before it exists: an output that is one of a command's inputs would be written over it."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # one of them does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)
