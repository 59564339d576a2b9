"""``latbench predictor fit-kernels``: a kernel predictor from per-operator profiles measured
for real on this CPU (onnxruntime's profiler), resumable; the kernel predictor's calibration.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_helpers import cli
from latbench.errors import PredictorError
from latbench.predictors import load, save
from latbench.predictors.encodings import arch_kernels
from latbench.predictors.kernel import KernelPredictor, fit_calibration
from latbench.spaces import get_space

FAST = ["--min-runs", "5", "--min-time", "0.05", "--max-time", "0.2"]


def test_fit_kernels_profiles_this_cpu_resumes_and_predicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "k.lbp"
    argv = ["predictor", "fit-kernels", "--sample", "4", "--seed", "3", *FAST, "-o", str(out)]
    rc, text, err = cli(capsys, *argv)
    assert rc == 0, err
    assert "profiling 4 architectures on local" in err and "[4/4]" in err
    assert "fitted kernel on " in text and "of 4 profiled architectures" in text
    assert "calibrated to end-to-end latency" in text and "in sample (4 models)" in text
    profiles = tmp_path / "k.lbp.profiles.jsonl"
    recs = [json.loads(line) for line in profiles.read_text().splitlines()]
    assert len(recs) == 4 and {r["device"] for r in recs} == {"local"}
    assert all(r["latency_ms"] > 0 and r["per_op"] and "time_ms" in r["per_op"][0] for r in recs)
    model = load(out)
    assert isinstance(model, KernelPredictor) and model.mode_ == "kernels"
    assert model.space_ == "nb201" and model.devices_ == ["local"] and model.scale_ > 0
    archs = [r["arch"] for r in recs]
    pred = model.predict(archs)
    lat = np.array([r["latency_ms"] for r in recs])
    assert np.all(pred > 0) and np.all(np.abs(pred / lat - 1) < 1.0)  # end-to-end ms
    # a rerun measures nothing again; an interrupted last line is measured again
    rc, _, err = cli(capsys, *argv)
    assert rc == 0 and "resuming: 4 of 4 profiles already in" in err and "profiling" not in err
    lines = profiles.read_text().splitlines(keepends=True)
    profiles.write_text("".join(lines[:3]) + lines[3][:40])
    rc, _, err = cli(capsys, *argv)
    assert rc == 0 and "resuming: 3 of 4" in err and "profiling 1 architectures" in err
    assert len(profiles.read_text().splitlines()) == 4
    # interrupted during the very first append: that line is measured again too
    from latbench.commands._profile_fit import read_profiles

    first = tmp_path / "first.jsonl"
    first.write_text(lines[0][:40])
    assert read_profiles(first, {}) == {}


def test_fit_kernels_refuses_what_it_cannot_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["predictor", "fit-kernels", "--sample", "3", "-o", str(tmp_path / "k.lbp")]
    cases = [
        (["--runtime", "litert"], "its profile does not name the graph's nodes"),
        (["--resolution", "64"], "--resolution 64 without --graphs"),
        (["--sample", "1"], "--sample 1; expected at least 2"),
        (["--device", "nope"], "unknown device 'nope'"),
        (["--profiles", str(tmp_path / "k.lbp")], "is the --profiles file"),
        # checked before anything is measured
        (["--profiles", str(tmp_path)], "is a directory; expected a file to write"),
        (["--profiles", str(tmp_path / "no" / "p.jsonl")], "does not exist; create it first"),
    ]
    for extra, want in cases:
        rc, _, err = cli(capsys, *base, *extra)
        assert rc == 2 and want in err, (extra, err)
    bad = tmp_path / "p.jsonl"
    bad.write_text("not json\n{}\n")
    rc, _, err = cli(capsys, *base, "--profiles", str(bad))
    assert rc == 2 and "line 1 is not JSON" in err
    assert not (tmp_path / "k.lbp").exists()


def test_calibration_maps_kernel_times_and_is_saved(tmp_path: Path) -> None:
    nb = get_space("nb201")
    archs = nb.sample(12, seed=5)
    kernels = [k for a in archs for k in arch_kernels("nb201", a)]
    times = [0.01 + k["flops"] / 1e9 for k in kernels]
    p = KernelPredictor(n_estimators=10).fit_kernels(kernels, times, space="nb201")
    raw = p.predict(archs)
    p.calibrate(0.8, -0.001)
    n = np.array([len(arch_kernels("nb201", a)) for a in archs])
    assert p.predict(archs) == pytest.approx(0.8 * raw - 0.001 * n)
    per = p.predict_kernels(list(arch_kernels("nb201", archs[0])))
    assert per.sum() == pytest.approx(p.predict(archs[:1])[0]) and (per >= 0).all()
    save(p, tmp_path / "c.lbp")
    back = load(tmp_path / "c.lbp")
    assert back.scale_ == 0.8 and back.per_kernel_ms_ == -0.001
    assert back.predict(archs) == pytest.approx(p.predict(archs))
    for bad in ((0.0, 0.0), (float("nan"), 0.0), (1.0, float("inf"))):
        with pytest.raises(PredictorError, match="expected a finite number"):
            p.calibrate(*bad)
    # a predictor fitted on model latencies predicts them: nothing to calibrate
    model_level = KernelPredictor().fit(archs, [1.0 + i for i in range(12)], space="nb201")
    with pytest.raises(PredictorError, match="applies to a predictor trained on profiled"):
        model_level.calibrate(0.8)
    # latency = 1.05 x kernel sum - 3 us per kernel, recovered; too few models: a ratio
    s = np.array([1.0, 2.0, 3.0, 1.5, 2.5])
    k = np.array([40, 90, 160, 70, 120])
    y = 1.05 * s - 0.003 * k
    assert fit_calibration(s, k, y) == pytest.approx((1.05, -0.003))
    assert fit_calibration(s[:2], k[:2], y[:2]) == (
        pytest.approx(float(np.median(y[:2] / s[:2]))),
        0.0,
    )
    assert pd.notna(fit_calibration(s, [5] * 5, y)[0])  # one kernel count: the ratio alone


def test_an_architecture_that_fails_is_left_out_and_measured_by_a_rerun(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One failure on the device (a worker that died) does not end a long run: that
    architecture is left out with a warning, the rest are fitted, a rerun measures it."""
    from latbench.devices.local import LocalDevice
    from latbench.profilers.record import Measurement

    real = LocalDevice.measure
    calls: list[int] = []

    def flaky(self: LocalDevice, model: object, **kw: object) -> Measurement:
        calls.append(1)
        if len(calls) == 2:
            return Measurement.failed("worker died (SIGKILL)", runtime="onnxruntime")
        return real(self, model, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(LocalDevice, "measure", flaky)
    out = tmp_path / "k.lbp"
    argv = ["predictor", "fit-kernels", "--sample", "3", "--seed", "4", *FAST, "-o", str(out)]
    rc, text, err = cli(capsys, *argv)
    assert rc == 0, err
    assert "failed on local: worker died (SIGKILL); left out" in caplog.text
    assert "1 of 3 architectures failed and are left out" in err
    assert "of 2 profiled architectures" in text and out.exists()
    rc, text, err = cli(capsys, *argv)
    assert rc == 0 and "resuming: 2 of 3" in err and "of 3 profiled architectures" in text
