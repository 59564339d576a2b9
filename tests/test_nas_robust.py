"""``latbench search`` robustness: verification checked up front and never losing the search,
verification in each runtime's format, --table-only with a large budget, a result.json that
reproduces its search, --sigmas without an uncertainty, Pareto ties and -inf, the budget plot.

Real CLI runs with real predictors fitted on the bundled reference, and the real ``local``
device (measurements on this machine).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latbench import predictors
from latbench.cli import main
from latbench.datasets.reference import load_reference
from latbench.errors import MeasurementError
from latbench.nas import latency_constraint, make_objective, run_search
from latbench.nas.pareto import dominates
from latbench.nas.plots import plot_pareto
from latbench.spaces import get_space

SPACE = get_space("nb201")


def _fit(path: Path, model: str = "ridge", **params: Any) -> Path:
    df = load_reference("nb201")
    d = df[df.device == "help/pixel3"].iloc[:300]
    p = predictors.create(model, **params)
    # as `latbench predictor fit --reference nb201 --device help/pixel3` fits it
    p.fit(d.arch.tolist(), d.latency_ms.to_numpy(), space="nb201", devices=list(d.device))
    predictors.save(p, path)
    return path


@pytest.fixture(scope="module")
def lbp(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("lbp")
    return {
        "ridge": _fit(d / "pixel3.lbp"),
        # an ensemble of two cheap members: a predictor with an uncertainty
        "ens": _fit(d / "ens.lbp", "ensemble", members=[("ridge", {}), ("flops", {})]),
    }


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _brute(lat: list[float], q: list[float]) -> set[int]:
    """Every point no other point dominates (NaN points left out): the definition."""
    pts = [(a, b) for a, b in zip(lat, q, strict=True)]
    ok = [i for i, p in enumerate(pts) if not (math.isnan(p[0]) or math.isnan(p[1]))]
    return {i for i in ok if not any(dominates(pts[j], pts[i]) for j in ok if j != i)}


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


# ---- 1. verification options checked before the search; a failed verification keeps it ----
@pytest.mark.parametrize(
    ("extra", "want"),
    [
        (["--verify-device", "nope"], "--verify-device: unknown device 'nope'"),
        (["--verify-runtime", "torchh"], "--verify-runtime: unknown runtime 'torchh'"),
        (["--verify-threads", "0"], "--verify-threads 0; expected an integer >= 1"),
        (["--verify-min-time", "0"], "--verify-min-time 0.0; expected a number > 0"),
    ],
)
def test_verify_options_are_checked_before_the_search(
    capsys: pytest.CaptureFixture[str],
    lbp: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    want: str,
) -> None:
    import latbench.nas.search as nas_search

    searched: list[int] = []
    real = nas_search.run_search
    monkeypatch.setattr(
        nas_search, "run_search", lambda *a, **k: searched.append(1) or real(*a, **k)
    )
    out = tmp_path / "r.json"
    rc, text, err = run(
        capsys, "search", "--predictor", str(lbp["ridge"]), "--budget-ms", "10",
        "--evaluations", "3000", "--verify", "1", "-q", "--no-plot", "-o", str(out), *extra,
    )  # fmt: skip
    assert rc == 2 and want in err and "expected" in err, err
    assert searched == [] and text == "" and not out.exists()


def test_verify_options_without_verify_are_named_in_a_warning(
    capsys: pytest.CaptureFixture[str],
    lbp: dict[str, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rc, _, _ = run(
        capsys, "search", "--predictor", str(lbp["ridge"]), "--budget-ms", "10",
        "--evaluations", "50", "-q", "--no-plot", "-o", str(tmp_path / "r.json"),
        "--verify-threads", "2", "--verify-runtime", "litert",
    )  # fmt: skip
    assert rc == 0
    assert "--verify-runtime, --verify-threads given without --verify N" in caplog.text


def test_a_runtime_the_device_cannot_run_is_refused_before_the_search(
    capsys: pytest.CaptureFixture[str], lbp: dict[str, Path], tmp_path: Path
) -> None:
    cfg = tmp_path / "bench.toml"
    cfg.write_text('[devices.phone]\ntransport = "adb"\nserial = "none-such"\n')
    out = tmp_path / "r.json"
    rc, text, err = run(
        capsys, "--config", str(cfg), "search", "--predictor", str(lbp["ridge"]),
        "--budget-ms", "10", "--evaluations", "50", "--verify", "1", "--verify-device", "phone",
        "--verify-runtime", "onnxruntime", "-q", "--no-plot", "-o", str(out),
    )  # fmt: skip
    assert rc == 2 and not out.exists() and text == ""
    assert "--verify-runtime onnxruntime: device 'phone' (adb) runs litert" in err
    assert "expected --verify-runtime litert" in err


def test_a_verification_error_keeps_the_search_result(
    capsys: pytest.CaptureFixture[str],
    lbp: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first candidate is measured for real; the second raises (as a worker that cannot be
    started would): the search and the first row are in result.json, the error names it."""
    from latbench.devices.local import LocalDevice

    real = LocalDevice.measure
    calls: list[int] = []

    def measure(self: LocalDevice, model: Any, **kw: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise MeasurementError("the worker could not be started")
        return real(self, model, **kw)

    monkeypatch.setattr(LocalDevice, "measure", measure)
    out = tmp_path / "result.json"
    rc, text, err = run(
        capsys, "search", "--predictor", str(lbp["ridge"]), "--budget-ms", "10",
        "--evaluations", "100", "--top", "3", "--verify", "3", "--verify-min-time", "0.05",
        "-q", "-o", str(out),
    )  # fmt: skip
    assert rc == 1
    assert "--verify: the worker could not be started" in err
    assert f"the search result was kept in {out}" in err
    doc = json.loads(out.read_text())
    assert len(doc["best"]) == 3 and doc["evaluations"] == 100 and doc["history"]
    assert [r["arch"] for r in doc["verification"]] == [doc["best"][0]["arch"]]
    assert doc["verification"][0]["status"] == "ok"
    assert doc["verification_error"] == "the worker could not be started"
    assert out.with_suffix(".png").is_file() and "Pareto front" in text


def test_verifying_another_devices_predictor_is_named_before_and_after(
    capsys: pytest.CaptureFixture[str],
    lbp: dict[str, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A help/pixel3 predictor verified on this machine: "2 of 2 met the budget" is true of
    this machine, but the predictions are another device's. A warning before the search names
    both devices; after it, the measured/predicted scale is said in the report and the JSON."""
    out = tmp_path / "r.json"
    with caplog.at_level(logging.WARNING, logger="latbench.commands.search"):
        rc, text, err = run(
            capsys, "search", "--predictor", str(lbp["ridge"]), "--budget-ms", "10",
            "--evaluations", "50", "--top", "2", "--verify", "2", "--verify-min-time", "0.05",
            "-q", "--no-plot", "-o", str(out),
        )  # fmt: skip
    assert rc == 0, err
    warned = [r.getMessage() for r in caplog.records if "--verify measures on" in r.getMessage()]
    assert len(warned) == 1, caplog.text
    assert "'local'" in warned[0] and "predicts 'help/pixel3'" in warned[0]
    assert "latbench adapt BASE.lbp --device local" in warned[0]
    doc = json.loads(out.read_text())
    ratios = [r["measured_ms"] / r["predicted_ms"] for r in doc["verification"]]
    # an NB201 cell runs in well under a millisecond here, pixel3 predicts several
    assert max(ratios) < 0.5, ratios
    note = doc["verification_note"]
    assert note.startswith("measured latencies are ") and "x below the predictions" in note
    assert "does not predict 'local'" in note and f"note: {note}" in text


def test_the_device_and_scale_checks_stay_quiet_for_the_devices_own_predictor() -> None:
    from types import SimpleNamespace

    from latbench.commands.search import _verify_device_mismatch, _verify_scale_note

    plan: Any = SimpleNamespace(device=SimpleNamespace(name="local"))
    args: Any = SimpleNamespace(predictor=["p.lbp"])

    def lat(device: str | None) -> Any:
        return SimpleNamespace(kind="latency", info={"device": device})

    assert _verify_device_mismatch(args, plan, [lat("local")]) == ""
    # fitted without a device name: it predicts whichever device it is given
    assert _verify_device_mismatch(args, plan, [lat("default")]) == ""
    assert _verify_device_mismatch(args, plan, []) == ""
    said = _verify_device_mismatch(args, plan, [lat("pi4")])
    assert "predicts 'pi4'" in said and "on 'local'" in said

    def rows(*pairs: tuple[float, float]) -> list[dict[str, Any]]:
        return [{"predicted_ms": p, "measured_ms": m} for p, m in pairs]

    # within 2x either way (a predictor of the device is 10-20 % off): no note
    assert _verify_scale_note(rows((10, 8), (10, 19)), plan) == ""
    assert _verify_scale_note(rows((10, 5.0)), plan) == ""
    # failed rows carry no measured_ms and are left out; none measured: no note
    assert _verify_scale_note([{"predicted_ms": 5.0, "status": "failed"}], plan) == ""
    # the median decides: one wild row among three does not
    assert _verify_scale_note(rows((10, 10), (10, 11), (10, 90)), plan) == ""
    above = _verify_scale_note(rows((1, 3), (1, 3.2)), plan)
    assert above.startswith("measured latencies are 3.1x above the predictions (median over 2)")
    below = _verify_scale_note(rows((10, 1), (10, 1), (10, 2)), plan)
    assert below.startswith("measured latencies are 10.0x below")


# ---- 2. the candidates are exported in the verify runtime's format ------------------------
@pytest.mark.parametrize("how", ["bench.toml [measure] runtime = litert", "--verify-runtime torch"])
def test_verify_exports_for_the_runtime(
    capsys: pytest.CaptureFixture[str], lbp: dict[str, Path], tmp_path: Path, how: str
) -> None:
    runtime = "litert" if "litert" in how else "torch"
    if runtime == "litert":
        cfg = tmp_path / "bench.toml"
        cfg.write_text('[measure]\nruntime = "litert"\n')
        pre, post = ["--config", str(cfg)], []
    else:
        pre, post = [], ["--verify-runtime", "torch"]
    out = tmp_path / "r.json"
    rc, text, err = run(
        capsys, *pre, "search", "--predictor", str(lbp["ridge"]), "--budget-ms", "10",
        "--evaluations", "50", "--top", "1", "--verify", "1", "--verify-min-time", "0.05",
        "-q", "--no-plot", "-o", str(out), *post,
    )  # fmt: skip
    assert rc == 0, err
    doc = json.loads(out.read_text())
    fmt = {"litert": "tflite", "torch": "torch"}[runtime]
    assert doc["verify"]["runtime"] == runtime and doc["verify"]["format"] == fmt
    v = doc["verification"][0]
    assert v["status"] == "ok" and v["runtime"] == runtime and v["measured_ms"] > 0, v
    assert "verification on local" in text


def test_an_adb_phone_is_verified_with_litert(tmp_path: Path) -> None:
    """The verification plan of an adb phone: litert and TFLite files (no phone is touched:
    opening the device does not connect)."""
    import argparse
    import contextlib

    from latbench.commands.search import _verify_plan

    cfg = tmp_path / "bench.toml"
    cfg.write_text('[devices.phone]\ntransport = "adb"\nserial = "none-such"\n')
    args = argparse.Namespace(
        config=str(cfg), verify_device="phone", verify_runtime=None, verify_threads=1,
        verify_min_time=0.1,
    )  # fmt: skip
    with contextlib.ExitStack() as stack:
        plan = _verify_plan(args, stack)
        assert (plan.runtime, plan.fmt, plan.device.kind) == ("litert", "tflite", "adb")


# ---- 3. --table-only with a budget that covers the table ---------------------------------
def test_table_only_with_a_large_budget_searches_the_table(
    capsys: pytest.CaptureFixture[str], lbp: dict[str, Path], tmp_path: Path
) -> None:
    archs = SPACE.sample(40, seed=5)
    table = tmp_path / "acc.csv"
    table.write_text("arch,accuracy\n" + "".join(f"{a},{i}\n" for i, a in enumerate(archs)))
    out = tmp_path / "r.json"
    for strategy in ("random", "exhaustive"):
        rc, _, err = run(
            capsys, "search", "--predictor", str(lbp["ridge"]), "--budget-ms", "30",
            "--objective", str(table), "--table-only", "--strategy", strategy,
            "--evaluations", "20000", "-q", "--no-plot", "-o", str(out),
        )  # fmt: skip
        assert rc == 0, err
        doc = json.loads(out.read_text())
        assert doc["evaluations"] == 40 and doc["strategy"]["name"] == "exhaustive"
        assert {c["arch"] for c in doc["history"]} == {SPACE.canonical(a) for a in archs}
    # a budget none of the table's architectures meets says so of the table, not the space
    rc, _, err = run(
        capsys, "search", "--predictor", str(lbp["ridge"]), "--budget-ms", "0.0001",
        "--objective", str(table), "--table-only", "--strategy", "random",
        "--evaluations", "20000", "-q", "--no-plot", "-o", str(out),
    )  # fmt: skip
    assert rc == 1 and "none of the 40 candidate nb201 architectures" in err


# ---- 6. result.json reproduces its search ------------------------------------------------
def test_result_records_a_command_that_reruns_and_the_predictor_files(
    capsys: pytest.CaptureFixture[str],
    lbp: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.lbp").write_bytes(lbp["ridge"].read_bytes())
    rc, _, err = run(
        capsys, "search", "--predictor", "p.lbp", "--budget-ms", "10", "--evaluations", "80",
        "--strategy-params", '{"population": 16}', "--seed", "4", "-q", "--no-plot",
        "--no-history", "-o", "c1.json",
    )  # fmt: skip
    assert rc == 0, err
    doc = json.loads((tmp_path / "c1.json").read_text())
    assert doc["constraints"][0]["device"] == "help/pixel3"
    assert doc["constraints"][0]["predictor"] == "p"
    assert doc["constraints"][0]["name"] == "latency_ms[p]"
    (rec,) = doc["predictors"]
    assert rec["path"] == "p.lbp" and rec["abs_path"] == str(tmp_path / "p.lbp")
    assert rec["sha256"] == hashlib.sha256((tmp_path / "p.lbp").read_bytes()).hexdigest()
    assert rec["devices"] == ["help/pixel3"] and rec["model"] == "ridge"
    assert doc["cwd"] == str(tmp_path)
    # the recorded command, split as a shell splits it, runs the same search again
    words = shlex.split(doc["command"])
    assert words[:2] == ["latbench", "search"]
    assert '--strategy-params={"population": 16}' in words
    words = [w if not w.startswith("--output=") else "--output=c2.json" for w in words]
    rc, _, err = run(capsys, *words[1:])
    assert rc == 0, err
    again = json.loads((tmp_path / "c2.json").read_text())
    assert [c["arch"] for c in again["best"]] == [c["arch"] for c in doc["best"]]
    assert again["strategy"] == doc["strategy"] and again["seed"] == 4


# ---- 7. --sigmas with a predictor without an uncertainty ---------------------------------
def test_sigmas_without_an_uncertainty_warns_and_is_recorded_as_not_applied(
    capsys: pytest.CaptureFixture[str],
    lbp: dict[str, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    out = tmp_path / "s.json"
    with caplog.at_level(logging.WARNING, logger="latbench"):
        rc, _, err = run(
            capsys, "search", "--predictor", str(lbp["ridge"]), "--budget-ms", "10",
            "--sigmas", "3", "--evaluations", "100", "-q", "--no-plot", "-o", str(out),
        )  # fmt: skip
    assert rc == 0, err
    assert any(
        "has no uncertainty" in r.getMessage() and "no effect" in r.getMessage()
        for r in caplog.records
    )
    con = json.loads(out.read_text())["constraints"][0]
    assert con["sigmas"] == 3.0 and con["sigmas_applied"] is False
    # an ensemble has an uncertainty: the margin is added, and recorded as such
    caplog.clear()
    rc, _, err = run(
        capsys, "search", "--predictor", str(lbp["ens"]), "--budget-ms", "10",
        "--sigmas", "2", "--evaluations", "100", "-q", "--no-plot", "-o", str(out),
    )  # fmt: skip
    assert rc == 0, err
    doc = json.loads(out.read_text())
    assert doc["constraints"][0]["sigmas_applied"] is True
    assert not any("has no uncertainty" in r.getMessage() for r in caplog.records)
    best = doc["best"][0]
    mean, std = predictors.load(lbp["ens"]).predict_with_uncertainty([best["arch"]])
    assert std is not None
    assert best["latency_ms[ens]"] == pytest.approx(float(mean[0] + 2 * std[0]))


# ---- 8. the front of a real search keeps ties; -inf objectives in JSON -------------------
def test_search_front_is_every_non_dominated_candidate(
    capsys: pytest.CaptureFixture[str], lbp: dict[str, Path], tmp_path: Path
) -> None:
    """NB201 has many twins (equal parameters and predicted latency): all are on the front."""
    out = tmp_path / "r.json"
    rc, _, err = run(
        capsys, "search", "--predictor", str(lbp["ridge"]), "--budget-ms", "10",
        "--strategy", "random", "--evaluations", "500", "--seed", "3", "-q", "--no-plot",
        "-o", str(out),
    )  # fmt: skip
    assert rc == 0, err
    doc = json.loads(out.read_text())
    hist = doc["history"]
    want = _brute([h["latency_ms[pixel3]"] for h in hist], [_num(h["objective"]) for h in hist])
    got = {h["order"] for h in doc["pareto"]}
    assert got == {hist[i]["order"] for i in want}
    lat = [h["latency_ms[pixel3]"] for h in doc["pareto"]]
    assert lat == sorted(lat)


def test_minus_infinity_objectives_are_written_apart_from_not_computed(
    capsys: pytest.CaptureFixture[str], lbp: dict[str, Path], tmp_path: Path
) -> None:
    p = predictors.load(lbp["ridge"])
    # 30 architectures with one fastest (ridge clamps its fastest predictions to one floor)
    for seed in range(100):
        archs = SPACE.sample(30, seed=seed)
        lat = p.predict(archs)
        if np.sum(lat == lat.min()) == 1:
            break
    fastest = int(np.argmin(lat))
    # the fastest architecture and two others score -inf (a degenerate network): the fastest is
    # still non-dominated (nothing is as fast), the other two are dominated
    minf = {fastest, (fastest + 1) % 30, (fastest + 2) % 30}
    rows = [f"{a},{'-inf' if i in minf else i}\n" for i, a in enumerate(archs)]
    table = tmp_path / "acc.csv"
    table.write_text("arch,accuracy\n" + "".join(rows))
    out = tmp_path / "r.json"
    rc, _, err = run(
        capsys, "search", "--predictor", str(lbp["ridge"]), "--budget-ms", "1e6",
        "--objective", str(table), "--table-only", "--strategy", "exhaustive", "-q",
        "--no-plot", "-o", str(out),
    )  # fmt: skip
    assert rc == 0, err
    text = out.read_text()
    doc = json.loads(text)  # strict JSON: no -Infinity token
    assert "Infinity" not in text
    by_arch = {h["arch"]: h for h in doc["history"]}
    for i, a in enumerate(archs):
        obj = by_arch[SPACE.canonical(a)]["objective"]
        assert obj == ("-inf" if i in minf else float(i))
    front = {h["arch"] for h in doc["pareto"]}
    assert SPACE.canonical(archs[fastest]) in front
    hist = doc["history"]
    want = _brute([h["latency_ms[pixel3]"] for h in hist], [float(h["objective"]) for h in hist])
    assert front == {hist[i]["arch"] for i in want}


# ---- minor: the plot's budget line is the budget, the margin's limit apart -----------------
def test_budget_margin_plot_names_the_budget_and_the_search_limit(
    lbp: dict[str, Path], tmp_path: Path
) -> None:
    from latbench.nas.plots import budget_lines

    p = predictors.load(lbp["ridge"])
    con = latency_constraint(p, 9.0, SPACE, label="p")
    con.info["budget_ms"] = 10.0  # what `latbench search --budget-ms 10 --budget-margin 10` sets
    res = run_search(SPACE, make_objective("params", SPACE), [con], "random", evaluations=60)
    assert budget_lines(res) == [
        (10.0, "--", "budget 10"),
        (9.0, ":", "search limit 9 (margin 10 %)"),
    ]
    assert plot_pareto(res, tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    plain = latency_constraint(p, 9.0, SPACE, label="p")
    res = run_search(SPACE, make_objective("params", SPACE), [plain], "random", evaluations=60)
    assert budget_lines(res) == [(9.0, "--", "budget 9")]
