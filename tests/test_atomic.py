"""Whole-or-nothing writes (latbench._atomic): what every writer of user files relies on."""

from __future__ import annotations

import errno
from pathlib import Path

import pandas as pd
import pytest

from latbench._atomic import atomic_path, write_text_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "baseline.json"
    out.write_text("old\n")
    with pytest.raises(RuntimeError, match="interrupted"), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert out.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline.json"]


def test_a_complete_write_replaces_the_file(tmp_path: Path) -> None:
    out = tmp_path / "r.txt"
    out.write_text("old\n")
    assert write_text_atomic(out, "new\n") == out
    assert out.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.txt"]


def test_the_temporary_keeps_the_suffix_so_pandas_compresses_alike(tmp_path: Path) -> None:
    out = tmp_path / "p.csv.gz"
    with atomic_path(out) as tmp:
        assert tmp.name.startswith(".p.csv.gz.") and tmp.suffix == ".gz"
        pd.DataFrame({"latency_ms": [1.5]}).to_csv(tmp, index=False)
    assert out.read_bytes()[:2] == b"\x1f\x8b"  # gzip magic
    assert pd.read_csv(out).latency_ms.tolist() == [1.5]


def test_an_error_without_a_file_name_names_the_destination(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    with pytest.raises(OSError) as info, atomic_path(out):
        raise OSError(errno.EFBIG, "File too large")
    assert info.value.filename == str(out) and "nothing written" in str(info.value)
    assert not out.exists()


def test_an_error_naming_the_temporary_names_the_destination(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    with pytest.raises(OSError) as info, atomic_path(out) as tmp:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert info.value.filename == str(out)
