"""Device descriptors: real micro-kernels on onnxruntime, on this machine's local device."""

from __future__ import annotations

import json
from pathlib import Path

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
from latbench.errors import DatasetError


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
