"""The Arrow CSV reader of ``import``/``read_table`` gives what the pandas reader gives.

Plain ``.csv``/``.tsv`` files are read by Arrow's multi-threaded reader
(``io._read_csv_arrow``); compressed files, and files Arrow refuses (ragged rows, invalid
UTF-8), go to the pandas reader. Each file below is read both ways (the second by switching
the Arrow reader off) and the tables, the imported rows and the rejected rows must
be the same.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import latbench.datasets as lds
from latbench.datasets import io as lio
from latbench.errors import DatasetError
from latbench.spaces import NB201Space

NB = NB201Space()
A = [NB.from_index(i) for i in range(6)]


def _cells(series: pd.Series, strip: bool = False) -> list[Any]:
    out: list[Any] = []
    for v in series.tolist():
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            out.append(None)
        elif isinstance(v, np.generic):
            out.append(v.item())
        else:
            out.append(v.strip() if strip and isinstance(v, str) else v)
    return out


def _kind(series: pd.Series) -> str:
    if pd.api.types.is_float_dtype(series):
        return "float"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    return "text"


def _both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[pd.DataFrame, pd.DataFrame]:
    used: list[bool] = []
    real = lio._read_csv_arrow

    def spy(*args: Any) -> pd.DataFrame | None:
        df = real(*args)
        used.append(df is not None)
        return df

    with monkeypatch.context() as m:
        m.setattr(lio, "_read_csv_arrow", spy)
        fast, _ = lio._read_file(path)
    assert used == [True], "the Arrow reader did not read this file"
    with monkeypatch.context() as m:
        m.setattr(lio, "_read_csv_arrow", lambda *a: None)
        slow, _ = lio._read_file(path)
    return fast, slow


def _same(fast: pd.DataFrame, slow: pd.DataFrame) -> None:
    assert list(fast.columns) == list(slow.columns)
    assert len(fast) == len(slow)
    for c in fast.columns:
        assert _kind(fast[c]) == _kind(slow[c]), (c, fast[c].dtype, slow[c].dtype)
        # text in a number column ("2.5 " beside "abc") is named by the import either way; the
        # Arrow reader strips it, pandas only its leading blanks
        loose = c not in lio._TEXT_COLUMNS
        assert _cells(fast[c], loose) == _cells(slow[c], loose), c


MESSY = (
    "space, arch ,device,latency_ms,batch,threads,status,runtime,mean_ms,note,nb201_index\n"
    f"nb201, {A[0]} ,lab/pi4,1.5,1,4,ok,onnxruntime, 1.25 ,x,0\n"
    f'nb201,{A[1]},"lab/pi, 4",2.5 ,NA,,ok, ,nan,,1\n'
    f"nb201,{A[2]},lab/pi4,abc,2.5,1,ok,litert,inf,NA,2\n"
    f"nb201,{A[3]},lab/pi4,,1,1,failed,,, y ,3\n"
    f"nb201,{A[4]},   ,3e-1,9223372036854775808,1,ok,,-1,z,4\n"
    f"nb201,not-an-arch,lab/pi4,1.0,1,1e30,ok,,,,5\n"
    f'nb201,{A[5]},"  quoted  ",0.5,1,1,ok,"",NULL,"",6\n'
    f"nb201,{A[5]},lab/pi4,0.5,1,1,weird,,#N/A,ünïcode,7\n"
    "\n"
    f"nb201,{A[0]},lab/pi4,1.5,1,4,ok,onnxruntime,1.25,x,0\n"
)


@pytest.mark.parametrize("sep", [",", "\t"])
def test_a_messy_table_reads_and_imports_the_same_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sep: str
) -> None:
    text = MESSY if sep == "," else MESSY.replace(",", "\t").replace('"lab/pi\t 4"', "lab/pi 4")
    path = tmp_path / ("m.csv" if sep == "," else "m.tsv")
    path.write_text(text, encoding="utf-8")
    fast, slow = _both(path, monkeypatch)
    _same(fast, slow)
    assert fast["arch"].tolist()[0] == A[0] and fast["device"].tolist()[1] == (
        "lab/pi, 4" if sep == "," else "lab/pi 4"
    )
    reports = []
    for arrow in (True, False):
        with monkeypatch.context() as m:
            if not arrow:
                m.setattr(lio, "_read_csv_arrow", lambda *a: None)
            with lds.open(tmp_path / f"s{arrow}{sep == ','}.db") as store:
                rep = lds.import_table(store, path, collection="c")
                rows = store.to_pandas(status=None).drop(columns=["measured_at"])
        reports.append((rep.imported, rep.duplicates, rep.rejected, rows))
    (i1, d1, r1, rows1), (i2, d2, r2, rows2) = reports
    assert (i1, d1, r1) == (i2, d2, r2)
    assert i1 >= 3 and r1  # good rows stored, bad ones named
    _same(rows1, rows2)


def test_the_reference_table_as_csv_reads_the_same_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = lds.load_reference("nb201")
    part = ref[ref["device"].isin(["help/pixel3", "nnmeter/cortexA76cpu_tflite21"])]
    with lds.open(tmp_path / "r.db") as store:
        lds.import_table(store, part, collection="ref")
        lds.export_store(store, tmp_path / "r.csv")
    fast, slow = _both(tmp_path / "r.csv", monkeypatch)
    _same(fast, slow)
    assert len(fast) == len(part)


def test_files_arrow_refuses_go_to_the_pandas_reader(tmp_path: Path) -> None:
    ragged = tmp_path / "ragged.csv"  # a short row: pandas fills it with missing values
    ragged.write_text(f"space,arch,device,latency_ms\nnb201,{A[0]},d,1.0\nnb201,{A[1]},d\n")
    assert lio._read_csv_arrow(ragged, ",", ["space", "arch", "device", "latency_ms"]) is None
    df = lds.read_table(ragged)
    assert df["arch"].tolist() == A[:2] and math.isnan(df["latency_ms"].tolist()[1])
    multiline = tmp_path / "nl.csv"
    multiline.write_text(f'space,arch,device,latency_ms\nnb201,{A[0]},"d\nx",1.0\n')
    assert lds.read_table(multiline)["device"].tolist() == ["d\nx"]
    gz = tmp_path / "g.csv.gz"
    pd.DataFrame({"space": ["nb201"], "arch": [A[0]], "device": ["d"], "latency_ms": [1.0]}).to_csv(
        gz, index=False
    )
    assert lio._read_csv_arrow(gz, ",", ["space", "arch", "device", "latency_ms"]) is None
    assert lds.read_table(gz)["latency_ms"].tolist() == [1.0]


def test_a_latency_typo_is_named_on_its_line_by_the_arrow_reader(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(f"space,arch,device,latency_ms\nnb201,{A[0]},d,1.0\nnb201,{A[1]},d,1,5\n")
    with pytest.raises(DatasetError):  # ragged: pandas reads it and says where
        lds.read_table(path)
    path.write_text(f"space,arch,device,latency_ms\nnb201,{A[0]},d,1.0\nnb201,{A[1]},d,l.5\n")
    with pytest.raises(DatasetError, match=r"line 3: latency_ms 'l\.5'; expected a number"):
        lds.read_table(path)
