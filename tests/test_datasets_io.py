"""Import, export and read_table: formats, validation with line numbers, schema versions."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import latbench.datasets as lds
from latbench.datasets import schema as S
from latbench.errors import DatasetError, SchemaVersionError
from latbench.spaces import NB201Space

NB = NB201Space()
A0, A1, A2 = NB.from_index(0), NB.from_index(1), NB.from_index(2)


def _minimal_csv(path: Path) -> Path:
    path.write_text(
        "space,arch,device,latency_ms\n"
        f"nb201,{A0},pi4,3.5\n"  # line 2
        "nb201,|nor_conv_3x3~0|+|oops~0|,pi4,2.0\n"  # line 3: unknown arch
        f"nb201,{A1},pi4,0\n"  # line 4: non-positive latency
        f"nb201,{A1},pi4,-2\n"  # line 5
        f"nb201,{A2},,4.0\n"  # line 6: no device
        f"nb201,{A2},pi4,4.25\n"  # line 7
        f"imagenet,{A2},pi4,1.0\n"  # line 8: unknown space
    )
    return path


def test_import_rejects_bad_rows_with_line_numbers_and_imports_the_rest(tmp_path: Path) -> None:
    src = _minimal_csv(tmp_path / "lab.csv")
    with lds.open(tmp_path / "s.db") as store:
        report = lds.import_table(store, src)
        df = store.to_pandas()
    assert report.imported == 2 and report.read == 7
    lines = [where for where, _ in report.rejected]
    assert lines == ["line 3", "line 4", "line 5", "line 6", "line 8"]
    reasons = dict(report.rejected)
    assert "oops" in reasons["line 3"]
    assert "expected a positive" in reasons["line 4"]
    assert "device is empty" in reasons["line 6"]
    assert "imagenet" in reasons["line 8"]
    assert "2 imported" in report.summary() and "5 rejected" in report.summary()
    assert sorted(df["latency_ms"]) == [3.5, 4.25]
    assert set(df["collection"]) == {"lab"}
    assert df.loc[df["arch"] == A0, "arch_index"].item() == 0  # index filled in
    assert set(df["arch_id"]) == {NB.arch_id(A0), NB.arch_id(A2)}


def test_import_twice_adds_nothing(tmp_path: Path) -> None:
    src = _minimal_csv(tmp_path / "lab.csv")
    with lds.open(tmp_path / "s.db") as store:
        lds.import_table(store, src)
        again = lds.import_table(store, src)
        assert again.imported == 0 and again.duplicates == 2
        assert store.count() == 2


def test_non_canonical_arch_is_canonicalised(tmp_path: Path) -> None:
    messy = " " + A1.replace("|+|", "| + |") + " "
    df = pd.DataFrame({"space": ["nb201"], "arch": [messy], "device": ["d"], "latency_ms": [1.0]})
    with lds.open(tmp_path / "s.db") as store:
        report = lds.import_table(store, df)
        assert report.imported == 1, report.rejected
        assert store.to_pandas()["arch"].item() == A1


def test_parquet_export_import_round_trip_keeps_every_column(tmp_path: Path) -> None:
    src = _minimal_csv(tmp_path / "lab.csv")
    with lds.open(tmp_path / "a.db") as store:
        lds.import_table(store, src)
        n = lds.export_store(store, tmp_path / "out.parquet")
        original = store.to_pandas()
    assert n == 2
    meta = pq.read_schema(tmp_path / "out.parquet").metadata
    assert meta[b"latbench.schema_version"] == str(S.SCHEMA_VERSION).encode()
    with lds.open(tmp_path / "b.db") as other:
        report = lds.import_table(other, tmp_path / "out.parquet")
        assert report.imported == 2 and not report.rejected
        copy = other.to_pandas()
    cols = [c for c in S.COLUMN_NAMES if c not in ("latbench_version",)]
    pd.testing.assert_frame_equal(original[cols], copy[cols])


def test_csv_gz_export_with_filters_and_read_table(tmp_path: Path) -> None:
    ref = lds.load_reference("fbnet")
    part = ref[ref["device"].isin(["help/pixel3", "help/gold_6240"])].head(300)
    with lds.open(tmp_path / "s.db") as store:
        assert lds.import_table(store, part, collection="fb").imported == 300
        n = lds.export_store(store, tmp_path / "pix.csv.gz", device="help/pix*")
    with gzip.open(tmp_path / "pix.csv.gz", "rt") as fh:
        assert fh.readline().strip().split(",") == list(S.COLUMN_NAMES)
    df = lds.read_table(tmp_path / "pix.csv.gz")
    assert len(df) == n == (part["device"] == "help/pixel3").sum()
    assert list(df.columns)[: len(S.COLUMN_NAMES)] == list(S.COLUMN_NAMES)


def test_read_table_accepts_the_minimal_long_format(tmp_path: Path) -> None:
    p = tmp_path / "long.csv"
    p.write_text(f"space,arch,device,latency_ms\nnb201,{A0},x,1.5\n")
    df = lds.read_table(p)
    assert df[list(S.LONG_COLUMNS)].iloc[0].tolist() == ["nb201", A0, "x", 1.5]
    assert df["batch"].item() == 1 and df["status"].item() == "ok"
    assert df["schema_version"].item() == S.SCHEMA_VERSION


def test_read_table_of_a_store_and_a_dataframe(tmp_path: Path) -> None:
    with lds.open(tmp_path / "s.db") as store:
        lds.import_table(store, _minimal_csv(tmp_path / "lab.csv"))
        assert len(lds.read_table(store)) == 2
    assert len(lds.read_table(tmp_path / "s.db")) == 2
    df = pd.DataFrame({"space": ["nb201"], "arch": [A0], "device": ["x"], "latency_ms": [2.0]})
    assert lds.read_table(df)["latency_ms"].item() == 2.0


def test_read_table_needs_the_long_columns(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("arch,latency_ms\nx,1\n")
    with pytest.raises(DatasetError, match=r"missing column\(s\) \['space', 'device'\]"):
        lds.read_table(p)


def test_wide_table_import(tmp_path: Path) -> None:
    wide = lds.load_wide("nb201").head(10)[["nb201_index", "arch", "help/pixel3", "help/1080ti_32"]]
    p = tmp_path / "wide.csv"
    wide.to_csv(p, index=False)
    with lds.open(tmp_path / "s.db") as store:
        report = lds.import_table(store, p)
        df = store.to_pandas()
    assert report.imported == 20 and not report.rejected
    assert set(df["space"]) == {"nb201"}
    assert set(df.loc[df["device"] == "help/1080ti_32", "batch"]) == {32}


def test_a_predictions_file_is_not_read_as_measurements(tmp_path: Path) -> None:
    # `latbench predictor predict -o out.csv` writes space,arch,predicted_latency_ms: read as a
    # wide table it would pass for a device named "predicted_latency_ms"
    p = tmp_path / "out.csv"
    p.write_text(f"space,arch,predicted_latency_ms,uncertainty_ms\nnb201,{A0},1.5,0.1\n")
    with pytest.raises(DatasetError, match=r"'predicted_latency_ms'.*holds predictions"):
        lds.read_table(p)


def test_newer_schema_files_are_refused(tmp_path: Path) -> None:
    newer = S.SCHEMA_VERSION + 1
    csv = tmp_path / "new.csv"
    csv.write_text(f"space,arch,device,latency_ms,schema_version\nnb201,{A0},x,1,{newer}\n")
    with pytest.raises(SchemaVersionError, match="upgrade latbench"):
        lds.read_table(csv)
    table = pa.table({"space": ["nb201"], "arch": [A0], "device": ["x"], "latency_ms": [1.0]})
    table = table.replace_schema_metadata({b"latbench.schema_version": str(newer).encode()})
    pq.write_table(table, tmp_path / "new.parquet")
    with lds.open(tmp_path / "s.db") as store, pytest.raises(SchemaVersionError):
        lds.import_table(store, tmp_path / "new.parquet")


def test_import_reference_fbnet_and_counts(tmp_path: Path) -> None:
    with lds.open(tmp_path / "s.db") as store:
        report = lds.import_reference(store, "fbnet")
        assert report.imported == 105000 and not report.rejected
        assert store.count(collection="reference/fbnet", device="help/pixel3") == 5000
        assert store.count(status="ok") == 105000


def test_export_unknown_format_is_a_clear_error(tmp_path: Path) -> None:
    from latbench.errors import ConfigError

    with lds.open(tmp_path / "s.db") as store, pytest.raises(ConfigError, match="--format"):
        lds.export_store(store, tmp_path / "out.xlsx")
