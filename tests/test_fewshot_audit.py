"""Unusual input to few-shot adaptation: a samples CSV that is not UTF-8, has more values in a
row than its header has columns, or blank lines before a bad row; an output that names one of
the command's inputs; an adapted predictor saved and adapted again; a one-device base whose
samples rank against its device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fewshot_helpers import long_sources, prior_base, table_fixture
from latbench.cli import main
from latbench.commands.adapt import embed_prior, measured_before, read_samples
from latbench.errors import ArchError, ConfigError, PredictorError
from latbench.predictors import create, load, save
from latbench.predictors.adapt import adapt, choose_samples, stored_prior
from latbench.predictors.metrics import spearman
from latbench.spaces import get_space

DEVICES = ["help/1080ti_1", "help/silver_4114", "help/pixel3"]
TARGET = "help/samsung_a50"


table = table_fixture(600)


@pytest.fixture(scope="module")
def base(table: pd.DataFrame) -> Any:
    """A multi-device base with its embed prior stored, as ``predictor fit --devices all``."""
    return prior_base(long_sources(table, DEVICES))


@pytest.fixture(scope="module")
def samples(table: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    rows = table[["arch", TARGET]].dropna().iloc[:10]
    return list(rows["arch"]), rows[TARGET].to_numpy()


def _rows(archs: list[str], lat: np.ndarray) -> list[str]:
    return [f"nb201,{a},{v:.4f}" for a, v in zip(archs, lat, strict=True)]


# ---- samples files ---------------------------------------------------------------------------


def test_a_samples_file_that_is_not_utf8_names_its_line_and_byte(
    tmp_path: Path, base: Any, samples: tuple[list[str], np.ndarray], capsys: Any
) -> None:
    """Was a UnicodeDecodeError traceback from inside the csv module."""
    path = tmp_path / "phone.csv"
    body = "\n".join(["space,arch,latency_ms", *_rows(*samples)[:3]]).encode()
    path.write_bytes(body + b"\nnb201,caf\xe9,3\n")
    base_path = tmp_path / "base.lbp"
    save(base, base_path)
    rc = main(["adapt", str(base_path), "--samples", str(path), "-o", str(tmp_path / "a.lbp")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "phone.csv:5: byte 0xe9 is not UTF-8; expected UTF-8 text" in err
    # the resumed live samples file and --embed-data are read alike
    live = tmp_path / "live.samples.csv"
    live.write_bytes(b"space,arch,latency_ms,device\nnb201,caf\xe9,3,local\n")
    with pytest.raises(ConfigError, match=r"live\.samples\.csv:2: byte 0xe9 is not UTF-8"):
        measured_before(str(live), "nb201", "local")
    sources = tmp_path / "sources.csv"
    sources.write_bytes(b"arch,device,latency_ms\n\xff,a,1\n")
    with pytest.raises(ConfigError, match=r"sources\.csv:2: byte 0xff is not UTF-8"):
        embed_prior(str(sources), base, [])


def test_a_row_with_more_values_than_the_header_is_refused(
    tmp_path: Path, samples: tuple[list[str], np.ndarray]
) -> None:
    """An unquoted decimal comma (10,5803) was read as 10 ms, the 5803 set aside silently."""
    archs, lat = samples
    path = tmp_path / "phone.csv"
    rows = [r.replace(".", ",") for r in _rows(archs, lat)]  # the arch strings hold no "."
    path.write_text("\n".join(["space,arch,latency_ms", *rows]) + "\n")
    with pytest.raises(
        ConfigError,
        match=r"phone\.csv:2: 4 values, but the header has 3 columns \(space, arch, latency_ms\); "
        r"expected one value per column .*decimal comma",
    ):
        read_samples(str(path), "nb201")
    # empty trailing cells (a spreadsheet's empty columns) carry nothing and are read
    path.write_text("\n".join(["space,arch,latency_ms", *(r + ",," for r in _rows(*samples))]))
    got_archs, got = read_samples(str(path), "nb201")
    assert got == pytest.approx(np.round(lat, 4).tolist()) and len(got_archs) == len(archs)
    live = tmp_path / "live.samples.csv"
    live.write_text(f"space,arch,latency_ms,device\nnb201,{archs[0]},10,5,local\n")
    with pytest.raises(ConfigError, match=r"live\.samples\.csv:2: 5 values, but the header has 4"):
        measured_before(str(live), "nb201", "local")


def test_the_line_named_counts_blank_lines(
    tmp_path: Path, samples: tuple[list[str], np.ndarray]
) -> None:
    """Blank lines (which csv skips) shifted the line an error named: 8 for a row on line 16."""
    rows = _rows(*samples)
    rows[6] = rows[6].rsplit(",", 1)[0] + ",-3"
    path = tmp_path / "phone.csv"
    path.write_text("space,arch,latency_ms\n\n\n" + "\n\n".join(rows) + "\n")
    assert path.read_text().splitlines()[15].endswith(",-3")
    with pytest.raises(ConfigError, match=r"phone\.csv:16: latency_ms '-3'; expected finite"):
        read_samples(str(path), "nb201")


# ---- outputs that are inputs -----------------------------------------------------------------


def test_an_output_that_is_one_of_the_inputs_is_refused_before_anything_is_written(
    tmp_path: Path, base: Any, samples: tuple[list[str], np.ndarray], capsys: Any
) -> None:
    """``-o`` naming the samples file replaced the measurements with the predictor."""
    base_path = tmp_path / "base.lbp"
    save(base, base_path)
    path = tmp_path / "phone.csv"
    text = "\n".join(["space,arch,latency_ms", *_rows(*samples)]) + "\n"
    path.write_text(text)
    rc = main(["adapt", str(base_path), "--samples", str(path), "-o", str(path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"-o/--output {str(path)!r} is the file of --samples; expected a new file" in err
    assert path.read_text() == text
    # a link to it is the same file
    link = tmp_path / "link.csv"
    link.symlink_to(path)
    assert main(["adapt", str(base_path), "--samples", str(link), "-o", str(path)]) == 2
    assert "is the file of --samples" in capsys.readouterr().err
    before = base_path.read_bytes()
    assert main(["adapt", str(base_path), "--samples", str(path), "-o", str(base_path)]) == 2
    assert "is the file of the base predictor" in capsys.readouterr().err
    # live: the measurements would be appended to the base's zip; refused before measuring
    live = ["adapt", str(base_path), "--device", "local", "--budget", "3"]
    rc = main([*live, "--save-samples", str(base_path), "-o", str(tmp_path / "new.lbp")])
    err = capsys.readouterr().err
    assert rc == 2 and "--save-samples" in err and "is the file of the base predictor" in err
    assert base_path.read_bytes() == before
    rc = main([*live, "--save-samples", str(tmp_path / "x.lbp"), "-o", str(tmp_path / "x.lbp")])
    assert rc == 2 and "is the -o/--output file" in capsys.readouterr().err


# ---- adapting an adapted predictor -----------------------------------------------------------


def test_a_saved_adapted_predictor_keeps_its_bases_embed_prior(
    tmp_path: Path, base: Any, samples: tuple[list[str], np.ndarray]
) -> None:
    """Adapting an adapted ``.lbp`` file again adapts its base, but the file dropped the
    base's stored embed prior: ``auto`` then ran without ``embed``, unlike the same adaptation
    of the base file or of the adapted predictor in memory."""
    archs, lat = samples
    assert stored_prior(base) is not None
    adapted = adapt(base, archs, lat)
    path = tmp_path / "phone.lbp"
    save(adapted, path)
    loaded = load(path)
    assert stored_prior(loaded) is not None
    np.testing.assert_allclose(loaded.predict(archs), adapted.predict(archs))
    again = adapt(loaded, archs[:6], lat[:6])
    assert again.embed_prior_from_ == "stored" and again.method_.startswith("embed+")
    np.testing.assert_allclose(
        again.predict(archs), adapt(base, archs[:6], lat[:6]).predict(archs), rtol=1e-9
    )
    # and the re-adapted one saves and loads as well
    save(again, tmp_path / "again.lbp")
    np.testing.assert_allclose(load(tmp_path / "again.lbp").predict(archs), again.predict(archs))


# ---- a one-device base -----------------------------------------------------------------------


def test_combo_on_a_one_device_base_keeps_the_devices_ranking(table: pd.DataFrame) -> None:
    """With one source, combo (and the calibration under meta's residual) is documented as a
    monotone calibration; samples that rank against the device made its ridge weight negative
    and reversed the whole ranking (Spearman -1 against the device)."""
    col = table.set_index("arch")["help/pixel3"].dropna()
    one = create("meta").fit(list(col.index), col.to_numpy(), space="nb201")
    archs = list(col.index[:10])
    lat = 100.0 / one.predict(archs)  # the slowest on the device is the fastest here
    query = get_space("nb201").sample(500, seed=1)
    ref = one.predict(query)
    p = adapt(one, archs, lat, method="combo", one_source_ok=True)
    assert p.weights_[0] > 0
    assert spearman(ref, p.predict(query)) == pytest.approx(1.0)
    meta = adapt(one, archs, lat, method="meta", one_source_ok=True)
    assert meta.weights_[0] > 0
    # where the samples agree with the device, combo is its ridge fit as before
    agree = adapt(one, archs, one.predict(archs) * 1.5, method="combo", one_source_ok=True)
    assert agree.weights_[0] > 0


# ---- choosing what to measure ----------------------------------------------------------------


def test_choose_samples_takes_one_string_as_one_architecture(
    base: Any, samples: tuple[list[str], np.ndarray]
) -> None:
    """``candidates="|...|"`` was iterated character by character and refused as ``'|'``."""
    archs, _ = samples
    with pytest.raises(
        PredictorError,
        match=r"1 candidate architecture\(s\) not yet measured; expected at least budget = 3",
    ):
        choose_samples(base, 3, candidates=archs[0])
    picks = choose_samples(base, 3, candidates=archs, measured=archs[0])
    assert len(picks) == 3 and archs[0] not in picks
    # a bad one is named by its argument and position
    with pytest.raises(ArchError, match=r"candidates\[1\]: nb201: 'not-an-arch'"):
        choose_samples(base, 3, candidates=[archs[0], "not-an-arch"])
    with pytest.raises(ArchError, match=r"measured\[0\]: nb201: 'x'"):
        choose_samples(base, 3, measured=["x"])
