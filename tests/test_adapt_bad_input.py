"""Bad input to few-shot adaptation, proxy analysis and descriptors: a latbench error that names
the value, never a traceback or a silent wrong result; a live run whose device fails keeps what
it measured."""

from __future__ import annotations

import csv
import json
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from latbench.cli import main
from latbench.commands.adapt import embed_prior, measured_before, read_samples
from latbench.datasets import load_reference
from latbench.devices.descriptor import Descriptor, describe
from latbench.devices.remote import failed_record
from latbench.errors import (
    ArchError,
    ConfigError,
    DatasetError,
    MeasurementError,
    PredictorError,
    UnknownNameError,
)
from latbench.predictors import create, save
from latbench.predictors.adapt import adapt
from latbench.profilers.record import Measurement

DEVICES = ["help/1080ti_1", "help/silver_4114", "help/pixel3"]
TARGET = "help/samsung_a50"
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    df = load_reference("nb201")
    df = df[(df["nb201_index"] < 400) & df["device"].isin([*DEVICES, TARGET])]
    return df.pivot_table(index="arch", columns="device", values="latency_ms")


@pytest.fixture(scope="module")
def base(table: pd.DataFrame) -> Any:
    long = table[DEVICES].stack().rename("ms").reset_index()
    return create("meta").fit(
        long["arch"].tolist(), long["ms"].to_numpy(), space="nb201", devices=list(long["device"])
    )


@pytest.fixture(scope="module")
def samples(table: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    col = table[TARGET].dropna().iloc[:10]
    return list(col.index), col.to_numpy()


# ---- samples files ---------------------------------------------------------------------------


def test_a_samples_row_with_missing_cells_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "phone.csv"
    path.write_text(f"space,arch,latency_ms\nnb201,{ARCH},1.5\nnb201,{ARCH}\n")
    with pytest.raises(ConfigError, match=r"phone\.csv:3: no latency_ms cell"):
        read_samples(str(path), "nb201")
    resumed = tmp_path / "phone.samples.csv"
    resumed.write_text(f"space,arch,latency_ms,device\nnb201,{ARCH},1.5\n")
    with pytest.raises(ConfigError, match=r"phone\.samples\.csv:2: no device cell"):
        measured_before(str(resumed), "nb201", "local")


def test_a_samples_file_of_two_devices_is_refused(tmp_path: Path) -> None:
    """A live samples file shared by two runs holds two devices' rows: fitted together they
    would be one device that does not exist."""
    other = ARCH.replace("skip_connect~0", "nor_conv_1x1~0")
    path = tmp_path / "shared.csv"
    rows = f"nb201,{ARCH},1.5,local\nnb201,{other},3.0,local\nnb201,{ARCH},20,pixel7\n"
    path.write_text("space,arch,latency_ms,device\n" + rows)
    with pytest.raises(ConfigError, match=r"rows of 2 devices, local \(from line 2\), pixel7 "):
        read_samples(str(path), "nb201")
    path.write_text("space,arch,latency_ms,device\n" + rows.replace("pixel7", "local"))
    assert read_samples(str(path), "nb201")[1] == [1.5, 3.0, 20.0]


def test_embed_data_rows_are_checked_and_named_by_line(tmp_path: Path) -> None:
    fake_base = types.SimpleNamespace(space_="nb201", devices_=["a", "b"])
    path = tmp_path / "sources.csv"
    for row, said in [
        (f"{ARCH},a,-1", r"sources\.csv:3: latency_ms '-1'; expected finite positive"),
        (f"{ARCH},a,nan", r"sources\.csv:3: latency_ms 'nan'; expected finite positive"),
        (f"{ARCH},a", r"sources\.csv:3: no latency_ms cell"),
    ]:
        path.write_text(f"arch,device,latency_ms\n{ARCH},b,2.0\n{row}\n")
        with pytest.raises(ConfigError, match=said):
            embed_prior(str(path), fake_base, [])
    path.write_text(f"arch,device,latency_ms\n{ARCH},b,2.0\nnot-an-arch,a,1.0\n")
    with pytest.raises(ArchError, match=r"sources\.csv:3: nb201: 'not-an-arch'"):
        embed_prior(str(path), fake_base, [])


# ---- Python adapt ----------------------------------------------------------------------------


def test_the_adapted_predictor_does_not_follow_later_changes_of_its_base(
    table: pd.DataFrame, samples: tuple[list[str], np.ndarray]
) -> None:
    long = table[DEVICES].stack().rename("ms").reset_index()
    base = create("meta").fit(
        long["arch"].tolist(), long["ms"].to_numpy(), space="nb201", devices=list(long["device"])
    )
    archs, lat = samples
    adapted = base.adapt(archs, lat, method="soft")
    probe = list(table.index[200:260])
    before = adapted.predict(probe)
    # the caller refits its base on another device: the adapted copy is not touched
    other = table[TARGET].dropna()
    base.fit(list(other.index), other.to_numpy(), space="nb201", devices=[TARGET] * len(other))
    np.testing.assert_array_equal(adapted.predict(probe), before)
    assert adapted.base_ is not base and adapted.base_.devices_ == sorted(DEVICES)


def test_unordered_or_mapped_samples_are_refused(
    base: Any, samples: tuple[list[str], np.ndarray]
) -> None:
    archs, lat = samples
    with pytest.raises(PredictorError, match="archs is a set, which has no order"):
        adapt(base, set(archs), lat)
    with pytest.raises(PredictorError, match=r"latency_ms is a mapping; .*list\(d.values\(\)\)"):
        adapt(base, archs, dict(zip(archs, lat, strict=True)))


def test_a_bad_descriptor_entry_is_named_as_the_descriptors(
    base: Any, samples: tuple[list[str], np.ndarray]
) -> None:
    archs, lat = samples
    with pytest.raises(
        PredictorError, match=r"descriptor\['.*'\] = -2.0; expected finite positive"
    ):
        adapt(base, archs, lat, descriptor={ARCH: -2.0})
    with pytest.raises(PredictorError, match=r"descriptor\['.*'\] = nan"):
        adapt(base, archs, lat, descriptor={ARCH: float("nan")})
    with pytest.raises(ArchError, match=r"descriptor: nb201: 'garbage'"):
        adapt(base, archs, lat, descriptor={"garbage": 1.0})
    with pytest.raises(
        PredictorError, match=r"descriptor is a list; expected \{arch: latency_ms\}"
    ):
        adapt(base, archs, lat, descriptor=[(ARCH, 1.0)])  # type: ignore[arg-type]


def test_bad_settings_and_equal_latencies_are_named(
    base: Any, samples: tuple[list[str], np.ndarray]
) -> None:
    archs, lat = samples
    with pytest.raises(PredictorError, match="population = 'x'; expected an integer of at least"):
        adapt(base, archs, lat, population="x")  # type: ignore[arg-type]
    with pytest.raises(PredictorError, match="all 10 latencies equal 20 ms; expected"):
        adapt(base, archs, [20.0] * len(archs))


# ---- monotonicity ----------------------------------------------------------------------------


def test_monotonicity_refuses_devices_that_name_nothing(capsys: pytest.CaptureFixture) -> None:
    for given in ([","], []):
        assert main(["monotonicity", "--reference", "nb201", "--devices", *given]) == 2
        err = capsys.readouterr().err
        assert "names no device; expected device names or globs" in err


def test_monotonicity_names_the_option_of_a_device_that_matches_nothing(
    capsys: pytest.CaptureFixture,
) -> None:
    fbnet = ["monotonicity", "--reference", "fbnet"]
    assert main([*fbnet, "--devices", "titanx_1,nope"]) == 2
    assert "--devices: device 'nope' matches nothing; expected one of" in capsys.readouterr().err
    assert main([*fbnet, "--devices", "help/*", "--target", "eagle_i7"]) == 2
    assert "--target: device 'eagle_i7' matches nothing" in capsys.readouterr().err


def test_proxy_analysis_refuses_bad_counts_and_unordered_samples(table: pd.DataFrame) -> None:
    from latbench.predictors import monotonicity as mono

    wide = table[DEVICES]
    for k in (-1, 2.5, "3"):
        with pytest.raises(PredictorError, match=r"k = .*; expected an integer >= 1"):
            mono.draw_target_samples(wide, "help/pixel3", k)  # type: ignore[arg-type]
    with pytest.raises(PredictorError, match=r"k = -1; expected an integer >= 1"):
        mono.proxy_adaptation(wide, "nb201", "help/silver_4114", "help/pixel3", k=-1)
    archs, lat = mono.draw_target_samples(wide, "help/pixel3", 10)
    with pytest.raises(PredictorError, match="archs is a set, which has no order"):
        mono.best_proxies(wide, set(archs), lat)
    with pytest.raises(PredictorError, match="threshold = 'high'; expected a number"):
        mono.best_proxies(wide, archs, lat, threshold="high")  # type: ignore[arg-type]


# ---- descriptors -----------------------------------------------------------------------------


def _descriptor_doc(**over: Any) -> str:
    doc: dict[str, Any] = {
        "device": "phone",
        "version": 1,
        "space": "nb201",
        "kernels_ms": {"matmul_64": 0.5},
        "reference_ms": {ARCH: 1.5},
    }
    doc.update(over)
    return json.dumps(doc)


def test_a_descriptor_file_with_bad_fields_is_refused_with_the_field_named() -> None:
    assert Descriptor.from_json(_descriptor_doc()).reference_ms == {ARCH: 1.5}
    for over, said in [
        ({"reference_ms": "fast"}, "reference_ms = 'fast'; expected an object"),
        ({"reference_ms": {ARCH: "abc"}}, r"reference_ms\['.*'\] = 'abc'; expected finite"),
        ({"reference_ms": {ARCH: -1.0}}, r"reference_ms\['.*'\] = -1.0"),
        ({"kernels_ms": {"matmul_64": 0}}, r"kernels_ms\['matmul_64'\] = 0"),
        ({"kernels_ms": {"matmul_64": True}}, r"kernels_ms\['matmul_64'\] = True"),
        ({"space": 3}, "space = 3; expected a JSON string"),
        ({"unfinished": "x"}, "unfinished = 'x'; expected a JSON array"),
    ]:
        with pytest.raises(DatasetError, match=said):
            Descriptor.from_json(_descriptor_doc(**over))


class _CountingDevice:
    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    def describe(self) -> dict[str, Any]:
        return {}

    def measure(self, model: Any, **kwargs: Any) -> Measurement:
        self.calls += 1
        return Measurement(samples_ms=(1.0, 1.1, 1.2), runtime="onnxruntime", device=self.name)


def test_describe_checks_the_space_before_measuring_anything() -> None:
    dev = _CountingDevice()
    with pytest.raises(UnknownNameError, match="unknown space 'nosuch'"):
        describe(dev, space="nosuch")
    with pytest.raises(MeasurementError, match="reference architectures n = 0"):
        describe(dev, space="nb201", n_reference=0)
    assert dev.calls == 0


# ---- live adaptation on a device that fails mid-way -----------------------------------------


class _FlakyDevice:
    """Measures the first ``ok`` models, then fails every one with failure ``kind``."""

    name = "local"

    def __init__(self, ok: int, kind: str) -> None:
        self.ok, self.kind, self.calls = ok, kind, 0

    def __enter__(self) -> _FlakyDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def measure(self, model: Any, *, runtime: str, threads: int, settings: Any) -> Measurement:
        self.calls += 1
        if self.calls <= self.ok:
            ms = 1.0 + self.calls
            return Measurement(samples_ms=(ms, ms, ms), runtime=runtime, device=self.name)
        return failed_record(
            "the phone disconnected",
            self.kind,
            device=self.name,
            fingerprint="",
            model=str(model),
            runtime=runtime,
            threads=threads,
            batch=1,
            settings=settings,
        )


def _live(tmp_path: Path, budget: int) -> list[str]:
    return [
        "adapt", str(tmp_path / "base.lbp"), "--device", "local", "--budget", str(budget),
        "--db", str(tmp_path / "store.db"), "-o", str(tmp_path / "phone.lbp"),
    ]  # fmt: skip


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _use(monkeypatch: pytest.MonkeyPatch, dev: _FlakyDevice) -> None:
    monkeypatch.setattr("latbench.devices.get_device", lambda name, config=None: dev)


def test_a_device_that_fails_mid_way_stops_and_keeps_what_it_measured(
    tmp_path: Path, base: Any, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    save(base, tmp_path / "base.lbp")
    samples = tmp_path / "phone.samples.csv"
    dropped = _FlakyDevice(ok=2, kind="transport")
    _use(monkeypatch, dropped)
    assert main(_live(tmp_path, 5)) == 1
    err = capsys.readouterr().err
    assert "device 'local' failed while measuring" in err and "the phone disconnected" in err
    assert "2 of 5 architectures measured on local are kept in" in err
    assert "run the same command again to measure only the rest" in err
    # the dropped link was tried once more, then the run stopped instead of timing out on
    # every architecture left
    assert dropped.calls == 4
    assert len(_rows(samples)) == 2 and not (tmp_path / "phone.lbp").exists()
    # the device is back: the rerun measures only the three missing
    back = _FlakyDevice(ok=100, kind="transport")
    _use(monkeypatch, back)
    assert main(_live(tmp_path, 5)) == 0
    assert "resuming: 2 of 5 architectures already measured on local" in capsys.readouterr().out
    assert back.calls == 3 and len(_rows(samples)) == 5


def test_architectures_that_fail_are_skipped_and_too_few_left_is_a_clear_error(
    tmp_path: Path, base: Any, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    save(base, tmp_path / "base.lbp")
    dev = _FlakyDevice(ok=2, kind="model")
    _use(monkeypatch, dev)
    assert main(_live(tmp_path, 5)) == 1
    err = capsys.readouterr().err
    assert dev.calls == 5  # a model's failure is its own: the others are still measured
    assert "2 of 5 architectures measured on 'local' (the others failed" in err
    assert "expected at least 3 to adapt from. The measured ones are kept in" in err
    (tmp_path / "phone.samples.csv").unlink()
    _use(monkeypatch, _FlakyDevice(ok=4, kind="model"))
    assert main(_live(tmp_path, 5)) == 0
    out = capsys.readouterr().out
    assert "measured 4 of 5 architectures on local: 1 failed" in out
    assert "from 4 samples" in out


def test_a_measurement_is_in_the_samples_file_even_when_the_store_cannot_be_written(
    tmp_path: Path, base: Any, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from latbench.commands import adapt as adapt_cmd

    monkeypatch.chdir(tmp_path)
    save(base, tmp_path / "base.lbp")
    _use(monkeypatch, _FlakyDevice(ok=100, kind="model"))
    real_init = adapt_cmd._Recorder.__init__

    def init(self: Any, *args: Any) -> None:
        real_init(self, *args)

        def full(row: Any) -> bool:
            raise OSError(28, "No space left on device")

        self._store.add = full

    monkeypatch.setattr(adapt_cmd._Recorder, "__init__", init)
    assert main(_live(tmp_path, 4)) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert len(_rows(tmp_path / "phone.samples.csv")) == 1
