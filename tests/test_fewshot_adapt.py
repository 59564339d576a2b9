"""Few-shot adaptation on the real bundled reference latencies (small bases, few draws)."""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fewshot_helpers import HELP_SOURCES, draw_samples, long_sources, meta_base, table_fixture
from latbench import datasets
from latbench.cli import main
from latbench.errors import ArchError, PredictorError
from latbench.predictors import create, encodings, load, save
from latbench.predictors.adapt import AdaptedPredictor, adapt, choose_samples, learn_embed_prior
from latbench.predictors.fewshot import METHODS
from latbench.predictors.metrics import spearman

SOURCES = HELP_SOURCES
TARGET = "help/titanx_1"


table = table_fixture(3000)


@pytest.fixture(scope="module")
def base(table: pd.DataFrame):
    return meta_base(long_sources(table, SOURCES))


def _query(table: pd.DataFrame, device: str) -> tuple[list[str], np.ndarray]:
    q = table.iloc[900:1900]
    y = q[device].to_numpy()
    lo, hi = np.quantile(y, [0.1, 0.9])
    keep = (y >= lo) & (y <= hi)
    return list(q["arch"][keep]), y[keep]


def test_meta_base_is_multi_device(base) -> None:
    assert base.devices_ == sorted(SOURCES)
    emb = base.device_embedding("help/pixel3")
    archs = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"]
    np.testing.assert_allclose(
        base.predict_for_descriptor(archs, emb), base.predict(archs, device="help/pixel3")
    )


def test_adapt_ranks_an_unseen_device(table, base) -> None:
    qa, qy = _query(table, TARGET)
    scores: dict[str, list[float]] = {m: [] for m in ("proxy", "auto")}
    for seed in range(3):
        archs, lat = draw_samples(table, TARGET, 10, seed)
        for m in scores:
            t0 = time.perf_counter()
            p = base.adapt(archs, lat, method=m, device="titanx")
            assert time.perf_counter() - t0 < 10.0
            scores[m].append(spearman(qy, p.predict(qa)))
    assert np.mean(scores["auto"]) > 0.9
    assert np.mean(scores["auto"]) >= np.mean(scores["proxy"]) - 0.01


@pytest.mark.parametrize("method", [*METHODS, "auto"])
def test_every_method_gives_a_fitted_predictor(table, base, method: str) -> None:
    archs, lat = draw_samples(table, TARGET, 8, 1)
    prior = None
    if method in ("embed", "embed+proxy"):
        # embed needs a prior learned on the sources' measurements (the base's data)
        long = table.melt(id_vars=["arch"], value_vars=SOURCES, var_name="device").dropna()
        prior = learn_embed_prior(base, list(long["arch"]), long["value"], list(long["device"]))
    p = adapt(base, archs, lat, method=method, device="new", embed_prior=prior)
    assert isinstance(p, AdaptedPredictor) and p.devices_ == ["new"]
    assert method == "auto" or p.method_ == method
    out = p.predict(archs)
    assert out.shape == (8,) and np.all(out > 0)
    assert p.summary()["samples"] == 8
    assert not hasattr(base, "method_")  # the base is untouched


def test_adapted_predictor_round_trips(tmp_path: Path, table, base) -> None:
    archs, lat = draw_samples(table, TARGET, 10, 2)
    p = base.adapt(archs, lat, method="meta")
    save(p, tmp_path / "a.lbp")
    q = load(tmp_path / "a.lbp")
    assert isinstance(q, AdaptedPredictor)
    qa, _ = _query(table, TARGET)
    np.testing.assert_allclose(q.predict(qa[:50]), p.predict(qa[:50]), rtol=1e-10)
    assert q.method_ == p.method_ and q.sources_ == p.sources_


def test_bad_samples_are_refused(table, base) -> None:
    archs, lat = draw_samples(table, TARGET, 5, 3)
    with pytest.raises(PredictorError, match="at least 3"):
        adapt(base, archs[:2], lat[:2])
    bad = lat.copy()
    bad[1] = 0.0
    with pytest.raises(PredictorError, match=r"latency_ms\[1\]"):
        adapt(base, archs, bad)
    with pytest.raises(PredictorError, match="all 5 latencies equal"):
        adapt(base, archs, np.full(5, 3.0))
    with pytest.raises(ArchError):
        adapt(base, ["0-1-2-3-4-5-6-7-8-0-1-2-3-4-5-6-7-8-0-1-2-3"] * 3, [1.0, 2.0, 3.0])
    with pytest.raises(PredictorError, match="unknown adaptation method"):
        adapt(base, archs, lat, method="magic")
    with pytest.raises(PredictorError, match="not in the base"):
        adapt(base, archs, lat, sources=["help/nope"])


def test_duplicates_are_merged_with_a_warning(table, base, caplog) -> None:
    archs, lat = draw_samples(table, TARGET, 5, 4)
    with caplog.at_level(logging.WARNING, logger="latbench.predictors.adapt"):
        p = adapt(base, [*archs, archs[0]], [*lat, lat[0] * 1.1], method="soft")
    assert p.n_samples_ == 5
    assert "more than once" in caplog.text


def test_single_device_base_falls_back_to_calibration(table, caplog) -> None:
    one = create("meta").fit(list(table["arch"]), table["help/1080ti_1"].to_numpy(), space="nb201")
    archs, lat = draw_samples(table, TARGET, 10, 5)
    with caplog.at_level(logging.WARNING, logger="latbench.predictors.adapt"):
        p = adapt(one, archs, lat, method="proxy")
    assert "knows one device" in caplog.text
    qa, _ = _query(table, TARGET)
    # a monotone calibration keeps the single device's ranking
    assert spearman(one.predict(qa), p.predict(qa)) == pytest.approx(1.0)


def test_choose_samples_spans_the_latency_range(base) -> None:
    picks = choose_samples(base, 10, pool=500)
    assert len(picks) == len(set(picks)) == 10
    pred = base.predict(picks, device="help/1080ti_1")
    pool = base.predict(
        __import__("latbench.spaces", fromlist=["get_space"]).get_space("nb201").sample(500),
        device="help/1080ti_1",
    )
    assert pred.min() <= np.quantile(pool, 0.1) and pred.max() >= np.quantile(pool, 0.9)
    with pytest.raises(PredictorError, match="budget"):
        choose_samples(base, 2)


def test_ranks_like_names_the_base_device_the_target_resembles(table, base) -> None:
    # the TITAN X (not in the base) ranks like the base's batch-1 GPU
    archs, lat = draw_samples(table, TARGET, 10, 2)
    adapted = base.adapt(archs, lat, device="titanx")
    like = adapted.ranks_like(n=len(SOURCES))
    assert like[0].startswith("help/1080ti_1 (") and len(like) == len(SOURCES)
    # each figure is the Spearman of the two predictors over the same random architectures
    pop = encodings.space("nb201").sample(1000, seed=0)
    mine = adapted.predict(pop)
    for item in like:
        dev, rho = item.rsplit(" (", 1)
        assert float(rho.rstrip(")")) == pytest.approx(
            spearman(base.predict(pop, device=dev), mine), abs=5e-4
        )
    assert adapted.summary()["ranks_like"] == like[:3]


def test_cli_adapt_from_samples(tmp_path: Path, table, base, capsys) -> None:
    save(base, tmp_path / "base.lbp")
    archs, lat = draw_samples(table, TARGET, 10, 6)
    csv_path = tmp_path / "phone.csv"
    with csv_path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["space", "arch", "latency_ms"])
        w.writerows(["nb201", a, v] for a, v in zip(archs, lat, strict=True))
    out = tmp_path / "adapted.lbp"
    rc = main(["adapt", str(tmp_path / "base.lbp"), "--samples", str(csv_path), "-o", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "adapted meta to 'phone'" in printed
    assert "ranks most like: help/1080ti_1 (" in printed
    assert "note: with" not in printed
    qa, qy = _query(table, TARGET)
    assert spearman(qy, load(out).predict(qa)) > 0.85

    # from 100 samples on, the command says that fitting on them alone may rank better
    many = tmp_path / "many.csv"
    archs100, lat100 = draw_samples(table, TARGET, 100, 6)
    many.write_text(
        "space,arch,latency_ms\n"
        + "".join(f"nb201,{a},{v}\n" for a, v in zip(archs100, lat100, strict=True))
    )
    assert main(["adapt", str(tmp_path / "base.lbp"), "--samples", str(many), "-o", str(out)]) == 0
    assert "note: with 100 samples, a predictor fitted on them alone" in capsys.readouterr().out

    wrong = tmp_path / "wrong.csv"
    wrong.write_text("space,arch,latency_ms\nfbnet,0-0-0,1.0\n")
    assert main(["adapt", str(tmp_path / "base.lbp"), "--samples", str(wrong), "-o", str(out)]) == 1
    assert "space 'fbnet'" in capsys.readouterr().err
    # a bad latency or architecture is reported with its file and line, and nothing is written
    out.unlink()
    good = "".join(f"nb201,{a},{v}\n" for a, v in zip(archs[:3], lat[:3], strict=True))
    for row, said in [
        ("nb201,|bad~0|,1.0", "wrong.csv:5: nb201: '|bad~0|'"),
        (f"nb201,{archs[4]},0", "wrong.csv:5: latency_ms '0'; expected finite positive"),
        (f"nb201,{archs[4]},nan", "wrong.csv:5: latency_ms 'nan'; expected finite positive"),
    ]:
        wrong.write_text(f"space,arch,latency_ms\n{good}{row}\n")
        rc = main(["adapt", str(tmp_path / "base.lbp"), "--samples", str(wrong), "-o", str(out)])
        assert rc == 2 and said in capsys.readouterr().err and not out.exists()


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


LIVE_FAST = ["--min-runs", "3", "--min-time", "0.05", "--max-time", "0.3"]


def test_cli_adapt_live_on_the_local_device(tmp_path: Path, base, capsys) -> None:
    """End to end on this machine: choose, emit, measure with onnxruntime, adapt."""
    save(base, tmp_path / "base.lbp")
    out = tmp_path / "local.lbp"
    samples = tmp_path / "local.csv"
    db = tmp_path / "store.db"
    args = ["adapt", str(tmp_path / "base.lbp"), "--device", "local", "--budget", "4", *LIVE_FAST]
    rc = main([*args, "--db", str(db), "--save-samples", str(samples), "-o", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    lines = [ln for ln in captured.out.splitlines() if ln.startswith("  [")]
    # each measured architecture is reported as it completes, with the time left until the last
    assert lines[0].startswith("  [1/4]") and "(ETA " in lines[0]
    assert lines[-1].startswith("  [4/4]") and "ETA" not in lines[-1]
    p = load(out)
    assert isinstance(p, AdaptedPredictor)
    assert p.devices_ == ["local"] and p.n_samples_ >= 3
    rows = _csv_rows(samples)
    assert len(rows) >= 3 and {r["device"] for r in rows} == {"local"}
    assert all(float(r["latency_ms"]) > 0 for r in rows)
    # the whole records are in the store, with their raw samples and environment
    with datasets.open(db, readonly=True) as store:
        stored = store.to_pandas()
    assert set(stored["collection"]) == {"adapt/local"} and len(stored) == 4
    assert set(stored["device"]) == {"local"} and set(stored["runtime"]) == {"onnxruntime"}
    ok = stored[stored["status"] == "ok"]
    assert sorted(ok["arch"]) == sorted(r["arch"] for r in rows)
    assert all(len(v) >= 3 for v in ok["samples_ms"]) and ok["env"].map(bool).all()
    by_arch = dict(zip(ok["arch"], ok["latency_ms"], strict=True))
    assert all(float(r["latency_ms"]) == pytest.approx(by_arch[r["arch"]], rel=1e-5) for r in rows)
    # the file is a --samples file as it is
    rc = main(["adapt", str(tmp_path / "base.lbp"), "--samples", str(samples), "-o", str(out)])
    assert rc == 0, capsys.readouterr().err


def test_cli_adapt_live_refuses_a_bad_device_before_touching_anything(
    tmp_path: Path, base, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    save(base, tmp_path / "base.lbp")
    monkeypatch.chdir(tmp_path)
    live = ["adapt", str(tmp_path / "base.lbp"), "--budget", "4", "-o", "out.lbp"]
    assert main([*live, "--device", "nope"]) == 2
    assert "unknown device 'nope'; expected one of: local" in capsys.readouterr().err
    assert main([*live, "--device", "local", "--runtime", "tvm"]) == 2
    assert "--runtime 'tvm'; expected onnxruntime or litert" in capsys.readouterr().err
    # no store, samples file or predictor was created for a run that never started
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.lbp"]


def test_cli_adapt_live_resumes_an_interrupted_run(tmp_path: Path, base, capsys) -> None:
    """A rerun measures only the architectures the samples file does not hold yet."""
    save(base, tmp_path / "base.lbp")
    out = tmp_path / "phone.lbp"
    picks = choose_samples(base, 4, seed=0)
    sidecar = tmp_path / "phone.samples.csv"  # the default next to -o
    with sidecar.open("w", newline="") as fh:  # what an interrupted run left: 2 of 4
        w = csv.writer(fh)
        w.writerow(["space", "arch", "latency_ms", "device"])
        w.writerow(["nb201", picks[0], "1.25", "local"])
        w.writerow(["nb201", picks[1], "2.5", "local"])
        w.writerow(["nb201", picks[2], "9.0", "other_phone"])  # another device's: not used
    base_path = str(tmp_path / "base.lbp")
    args = ["adapt", base_path, "--device", "local", "--budget", "4", *LIVE_FAST]
    args += ["--db", str(tmp_path / "store.db")]
    assert main([*args, "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "resuming: 2 of 4 architectures already measured on local" in printed
    measured = [ln for ln in printed.splitlines() if ln.startswith("  [")]
    assert len(measured) == 2 and picks[2] in measured[0] and picks[3] in measured[1]
    rows = _csv_rows(sidecar)
    local = {r["arch"]: float(r["latency_ms"]) for r in rows if r["device"] == "local"}
    assert set(local) == set(picks) and local[picks[0]] == 1.25  # kept, not measured again
    assert len(rows) == 5
    assert load(out).n_samples_ == 4
    # everything measured: a rerun adapts from the file alone
    assert main([*args, "-o", str(out)]) == 0
    again = capsys.readouterr().out
    assert "4 of 4 architectures already measured" in again and "  [" not in again
    # a bad timing option is refused even when nothing is left to measure
    assert main([*args, "--min-time", "-1", "-o", str(out)]) == 2
    assert "--min-time -1.0; expected a number >= 0" in capsys.readouterr().err

    bad = tmp_path / "bad.csv"
    bad.write_text("arch,ms\nx,1\n")
    assert main([*args, "--save-samples", str(bad), "-o", str(out)]) == 2  # a config error
    assert "expected ['space', 'arch', 'latency_ms', 'device']" in capsys.readouterr().err


def test_a_resumed_samples_file_is_checked_like_a_samples_file(tmp_path: Path) -> None:
    """The rows a live run resumes from get the --samples checks: a bad latency names its line."""
    from latbench.commands.adapt import measured_before
    from latbench.errors import ConfigError

    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"
    path = tmp_path / "local.samples.csv"
    path.write_text(f"space,arch,latency_ms,device\nnb201,{arch},1.5,local\n")
    assert measured_before(str(path), "nb201", "local") == {arch: 1.5}
    path.write_text(f"space,arch,latency_ms,device\nnb201,{arch},1.5,local\nnb201,{arch},0,local\n")
    with pytest.raises(
        ConfigError, match=r"local\.samples\.csv:3: latency_ms '0'; expected finite"
    ):
        measured_before(str(path), "nb201", "local")


def test_exclude_takes_globs_and_short_names_and_refuses_what_matches_nothing(table, base) -> None:
    archs, lat = draw_samples(table, TARGET, 10, 0)
    by_name = adapt(base, archs, lat, method="proxy", exclude=["help/pixel3"])
    short = adapt(base, archs, lat, method="proxy", exclude=["pixel3"])
    assert "help/pixel3" not in by_name.sources_ and by_name.sources_ == short.sources_
    probe = list(table["arch"][1000:1100])
    np.testing.assert_allclose(short.predict(probe), by_name.predict(probe))
    silver = adapt(base, archs, lat, method="proxy", exclude=["help/silver_*"])
    assert not [s for s in silver.sources_ if "silver" in s]
    with pytest.raises(PredictorError, match="exclude: device 'pixel9' matches nothing"):
        adapt(base, archs, lat, exclude=["pixel9"])
    with pytest.raises(PredictorError, match=r"no source device left: exclude \['help/\*'\]"):
        adapt(base, archs, lat, exclude=["help/*"])


def test_item_progress_lines_keep_their_columns_from_one_to_two_digits() -> None:
    """``[9/10]`` and ``[10/10]`` are padded alike, so that the measured values line up."""
    from latbench.commands._progress import ItemProgress

    progress = ItemProgress(10, enabled=False)
    lines = [progress.line(f"{i:.3f} ms") for i in range(10)]
    assert lines[0].startswith("  [1/10]  0.000 ms") and lines[-1] == "  [10/10] 9.000 ms"
    assert len({line.index(" ms") for line in lines}) == 1
    assert ItemProgress(3, enabled=False).line("x") == "  [1/3] x  (ETA 0 s)"
