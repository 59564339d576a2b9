"""Bad and unusual input to the store and to ``latbench dataset`` (other than import)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

import latbench.datasets as lds
from latbench.cli import main
from latbench.datasets import schema as S
from latbench.errors import DatasetError
from latbench.profilers.record import Measurement
from latbench.spaces import NB201Space

NB = NB201Space()


def _row(i: int, device: str = "local", status: str = "ok") -> dict[str, object]:
    m = Measurement(
        status=status,
        error=None if status == "ok" else "boom",
        samples_ms=(1.9, 2.0, 2.1) if status == "ok" else (),
        runtime="onnxruntime",
        runtime_version="1.0",
        threads=1,
        input_shapes={"input": [1, 3, 32, 32]},
        env={"cpu_model": "x"},
        started_at="2026-01-01T00:00:00Z",
    )
    arch = NB.from_index(i)
    return S.row_from_measurement(
        m,
        collection="c",
        space="nb201",
        arch=arch,
        arch_id=NB.arch_id(arch),
        arch_index=i,
        device=device,
    )


def _store(path: Path) -> Path:
    with lds.open(path) as store:
        for r in (_row(1), _row(2, status="failed"), _row(3, device="π-设备/ü")):
            assert store.add(r)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("how", ["copy", "symlink"])
def test_export_over_a_sqlite_file_with_a_csv_name_says_what_the_file_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    db = _store(tmp_path / "s.db")
    out = tmp_path / "backup.csv"
    if how == "copy":
        out.write_bytes(db.read_bytes())
    else:
        out.symlink_to(db)
    before = _sha(db)
    assert main(["dataset", "export", "--db", str(db), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    # the name is a CSV name: the message says the file there is a SQLite database,
    # not that it is "named as a store"
    assert f"-o/--output {str(out)!r} is an existing SQLite database" in err
    assert "export will not overwrite it" in err
    assert "named as a store" not in err
    assert _sha(db) == before
    assert _sha(out) == before  # the file at -o is left as it was


def test_export_named_as_a_store_still_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _store(tmp_path / "s.db")
    before = _sha(db)
    assert main(["dataset", "export", "--db", str(db), "-o", str(db)]) == 2
    assert "is named as a store (SQLite)" in capsys.readouterr().err
    assert _sha(db) == before


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_export_import_round_trip_keeps_every_column(tmp_path: Path, suffix: str) -> None:
    db = _store(tmp_path / "s.db")
    out = tmp_path / f"o{suffix}"
    with lds.open(db, readonly=True) as store:
        assert lds.export_store(store, out) == 3
        before = store.to_pandas().sort_values("arch_index").reset_index(drop=True)
    with lds.open(tmp_path / "t.db") as dst:
        report = lds.import_table(dst, out)
        assert not report.rejected
        after = dst.to_pandas().sort_values("arch_index").reset_index(drop=True)
        records = {m.env["cpu_model"] for m in dst.measurements()}
    assert records == {"x"}
    assert list(before.columns) == list(after.columns)
    for c in before.columns:
        assert before[c].astype(str).tolist() == after[c].astype(str).tolist(), c


def test_a_row_with_corrupt_env_json_is_named_by_its_id(tmp_path: Path) -> None:
    db = _store(tmp_path / "s.db")
    conn = sqlite3.connect(db)
    conn.execute("UPDATE measurements SET env = '{not json' WHERE arch_index = 1")
    conn.commit()
    conn.close()
    with lds.open(db, readonly=True) as store, pytest.raises(DatasetError) as info:
        store.measurements()
    assert "id 1: env '{not json' is not JSON; expected JSON text of an object" in str(info.value)


def test_a_very_long_device_name_does_not_widen_every_line_of_a_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A 5,000-character device name used to pad every printed row to 5,000 characters."""
    import pandas as pd

    from latbench.commands.dataset import MAX_CELL, _print_table

    long = "lab/" + "x" * 4990 + "-end"
    _print_table(pd.DataFrame({"device": [long, "help/pixel3"], "rows": [3, 4]}))
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) < MAX_CELL + 20
    assert any(line.strip().startswith("lab/xxx") and "...x" in line for line in lines)
    assert any("-end" in line for line in lines) and any("help/pixel3" in line for line in lines)
