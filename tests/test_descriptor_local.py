"""Device descriptors: real micro-kernels on onnxruntime, on this machine's local device."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from latbench.cli import main
from latbench.devices.descriptor import (
    MICRO_KERNELS,
    Descriptor,
    default_path,
    kernel_onnx,
    reference_archs,
)
from latbench.errors import ConfigError, DatasetError
from latbench.profilers.harness import HarnessSettings


@pytest.mark.parametrize("k", MICRO_KERNELS, ids=lambda k: k.name)
def test_micro_kernel_runs_on_onnxruntime(tmp_path: Path, k) -> None:
    path = kernel_onnx(k, tmp_path / f"{k.name}.onnx")
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = np.ones([int(d) for d in inp.shape], dtype=np.float32)
    (y,) = sess.run(None, {inp.name: x})
    assert np.isfinite(y).all() and y.size > 0


def test_reference_archs_are_fixed_and_spread() -> None:
    a = reference_archs("nb201", 5)
    assert a == reference_archs("nb201", 5) and len(set(a)) == 5
    assert len(reference_archs("fbnet", 3)) == 3


def test_descriptor_round_trip_and_version(tmp_path: Path) -> None:
    d = Descriptor(device="x", kernels_ms={"matmul_64": 0.5}, space="nb201", reference_ms={"a": 1})
    p = d.save(tmp_path / "d.json")
    assert Descriptor.load(p) == d
    assert np.isnan(d.vector()[0]) and d.vector()[
        MICRO_KERNELS.index(next(k for k in MICRO_KERNELS if k.name == "matmul_64"))
    ] == pytest.approx(np.log(0.5))
    doc = json.loads(p.read_text())
    assert doc["settings"] == {} and doc["threads"] is None  # not given: none recorded
    for key, bad in (("settings", "fast"), ("threads", 1.5)):
        p.write_text(json.dumps({**doc, key: bad}))
        with pytest.raises(DatasetError, match="descriptor settings"):
            Descriptor.load(p)
    doc["version"] = 99
    p.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match="version 99"):
        Descriptor.load(p)
    assert default_path(tmp_path / "latbench.db", "my phone").name == "my_phone.json"


def test_cli_devices_describe_local(tmp_path: Path, capsys) -> None:
    out = tmp_path / "local.json"
    samples = tmp_path / "refs.csv"
    rc = main(
        [
            "devices",
            "describe",
            "local",
            "--space",
            "nb201",
            "--refs",
            "2",
            "--min-runs",
            "3",
            "--max-time",
            "0.1",
            "-o",
            str(out),
            "--samples-csv",
            str(samples),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    d = Descriptor.load(out)
    assert set(d.kernels_ms) == {k.name for k in MICRO_KERNELS}
    assert all(v > 0 for v in d.kernels_ms.values()) and len(d.reference_ms) == 2
    # a bigger matmul takes longer than a small one on any real CPU
    assert d.kernels_ms["matmul_256"] > d.kernels_ms["matmul_64"]
    assert samples.read_text().startswith("space,arch,latency_ms\nnb201,")
    # the timing settings and the thread count the items were measured with are recorded
    assert d.settings["max_time_s"] == 0.1 and d.settings["min_runs"] == 3 and d.threads == 1
    assert json.loads(out.read_text())["settings"] == d.settings


def test_cli_devices_describe_resumes_an_interrupted_run(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after four items keeps them; the rerun measures only the other eleven."""
    from latbench.devices.local import LocalDevice

    out = tmp_path / "local.json"
    partial = tmp_path / "local.json.partial"
    cmd = ["devices", "describe", "local", "--space", "nb201", "--refs", "2"]
    cmd += ["--min-runs", "3", "--max-time", "0.05", "-o", str(out)]
    real = LocalDevice.measure
    calls: list[str] = []
    stop_at = [5]

    def measure(self, model, **kwargs):  # the real measurement, with a Ctrl-C at the fifth
        calls.append(str(model))
        if len(calls) == stop_at[0]:
            raise KeyboardInterrupt
        return real(self, model, **kwargs)

    monkeypatch.setattr(LocalDevice, "measure", measure)
    assert main(cmd) == 130
    assert not out.exists() and partial.is_file()
    kept = Descriptor.load(partial)
    assert len(kept.kernels_ms) == 4 and not kept.reference_ms
    printed = capsys.readouterr().out
    assert "[1/15]" in printed and "(ETA " in printed
    calls.clear()
    stop_at[0] = 0
    assert main(cmd) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "resuming from" in printed and "4 of 15 measured" in printed
    assert len(calls) == 11 and "[11/11]" in printed
    d = Descriptor.load(out)
    assert len(d.kernels_ms) == len(MICRO_KERNELS) and len(d.reference_ms) == 2
    assert all(d.kernels_ms[k] == v for k, v in kept.kernels_ms.items())  # not measured again
    assert not partial.exists()
    # a corrupt partial file is redone, not a reason to stop
    partial.write_text("{not json")
    calls.clear()
    assert main([*cmd[:3], "--no-kernels", *cmd[3:]]) == 0
    assert len(calls) == 2 and not partial.exists()
    # a partial run of another space is not continued: everything is measured
    other = Descriptor(device="local", fingerprint=d.fingerprint, space="fbnet")
    other.reference_ms = dict(d.reference_ms)
    other.save(partial)
    calls.clear()
    assert main([*cmd[:3], "--no-kernels", *cmd[3:]]) == 0
    assert len(calls) == 2 and "[2/2]" in capsys.readouterr().out and not partial.exists()
    with pytest.raises(DatasetError, match="not valid JSON"):
        partial.write_text("[1")
        Descriptor.load(partial)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--max-time", "-1"], "--max-time -1.0; expected a number > 0"),
        (["--refs", "0"], "--refs 0; expected >= 1"),
        (["--space", "nb999"], "unknown space 'nb999'"),
    ],
)
def test_cli_devices_describe_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    out = tmp_path / "d.json"
    rc = main(["devices", "describe", "local", "-o", str(out), *extra])
    assert rc == 2 and needle in capsys.readouterr().err
    assert not out.exists()


def test_describe_options_without_describe_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """`latbench devices local --space nb201` would list the device and ignore --space."""
    assert main(["devices", "local", "--space", "nb201"]) == 2
    assert "--space: only `latbench devices describe NAME` reads it" in capsys.readouterr().err
    assert main(["devices", "--refs", "3", "--no-kernels"]) == 2
    assert "--refs, --no-kernels: only `latbench devices describe NAME` reads them" in (
        capsys.readouterr().err
    )


def test_cli_devices_describe_samples_csv_needs_space_before_measuring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --space there are no reference archs to write: refused before the kernels."""
    from latbench.devices.local import LocalDevice

    calls: list[Any] = []
    monkeypatch.setattr(LocalDevice, "measure", lambda self, model, **kw: calls.append(model))
    out, samples = tmp_path / "d.json", tmp_path / "s.csv"
    rc = main(["devices", "describe", "local", "-o", str(out), "--samples-csv", str(samples)])
    err = capsys.readouterr().err
    assert rc == 2 and calls == []
    assert "--samples-csv" in err and "expected --space SPACE too" in err
    assert not out.exists() and not samples.exists()
    assert not (tmp_path / "d.json.partial").exists()


def test_cli_devices_describe_refuses_to_resume_with_other_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partial run of --max-time 0.05 is not continued with --max-time 0.2 (it would mix
    items timed both ways): refused, the partial kept; the same settings resume it."""
    from latbench.devices.local import LocalDevice

    toml = tmp_path / "bench.toml"
    toml.write_text(f"[store]\npath = {json.dumps(str(tmp_path / 's.db'))}\n")
    out = tmp_path / "local.json"
    partial = tmp_path / "local.json.partial"
    base = ["--config", str(toml), "devices", "describe", "local", "--no-kernels"]
    base += ["--space", "nb201", "--refs", "3", "--min-runs", "3", "-o", str(out)]
    real = LocalDevice.measure
    calls: list[str] = []
    stop_at = [2]

    @functools.wraps(real)  # keeps measure's signature (its threads default) visible
    def measure(self: LocalDevice, model: Any, **kwargs: Any) -> Any:
        calls.append(str(model))
        if len(calls) == stop_at[0]:
            raise KeyboardInterrupt
        return real(self, model, **kwargs)

    monkeypatch.setattr(LocalDevice, "measure", measure)
    assert main([*base, "--max-time", "0.05"]) == 130
    kept = Descriptor.load(partial)
    assert len(kept.reference_ms) == 1 and kept.settings["max_time_s"] == 0.05
    assert kept.threads == 1
    capsys.readouterr()

    calls.clear()
    stop_at[0] = 0
    assert main([*base, "--max-time", "0.2"]) == 2
    err = capsys.readouterr().err
    assert calls == []  # nothing measured
    assert "max_time_s 0.05 (this run: 0.2)" in err and "would mix" in err
    assert "--max-time 0.05" in err and f"delete {str(partial)!r}" in err
    assert Descriptor.load(partial) == kept and not out.exists()
    # another thread count is refused the same way (Python API)
    from latbench.devices.descriptor import describe

    with (
        LocalDevice("local") as dev,
        pytest.raises(ConfigError, match=r"threads 1 \(this run: 2\)"),
    ):
        describe(
            dev, space="nb201", n_reference=3, kernels=(), threads=2, resume=kept,
            settings=HarnessSettings(**kept.settings),
        )  # fmt: skip
    assert calls == []

    # the settings it was made with: resumed, the two missing archs measured
    assert main([*base, "--max-time", "0.05"]) == 0, capsys.readouterr().err
    assert "resuming from" in capsys.readouterr().out and len(calls) == 2
    d = Descriptor.load(out)
    assert len(d.reference_ms) == 3 and d.settings == kept.settings and not partial.exists()

    # a partial of an older latbench (no settings recorded) is not continued: measured anew
    old = Descriptor(device="local", fingerprint=d.fingerprint, space="nb201")
    old.reference_ms = dict(list(d.reference_ms.items())[:1])
    old.save(partial)
    calls.clear()
    assert main([*base, "--max-time", "0.05"]) == 0
    assert len(calls) == 3 and not partial.exists()
