"""Bad and unusual input to ``latbench monotonicity`` and ``latbench devices describe``.

Real parts throughout: the bundled NAS-Bench-201 reference latencies, scipy for the
reference values of the correlations, and the local device measuring with onnxruntime.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from latbench.cli import main
from latbench.datasets import load_reference
from latbench.devices.descriptor import Descriptor
from latbench.errors import PredictorError
from latbench.predictors import monotonicity as mono

DEVICES = ["help/pixel3", "help/gold_6240", "help/titanx_1"]


@pytest.fixture(scope="module")
def wide() -> pd.DataFrame:
    """60 architectures every one of DEVICES measured, one column per device."""
    ref = load_reference("nb201")
    ref = ref[ref.device.isin(DEVICES)]
    w = ref.pivot_table(index="arch", columns="device", values="latency_ms", aggfunc="median")
    return w[DEVICES].dropna().iloc[:60]


def _long(w: pd.DataFrame, *, keep_nan: bool = False) -> pd.DataFrame:
    """The long table of ``w``; a NaN cell (not measured) has no row unless ``keep_nan``."""
    out = w.rename_axis("arch").reset_index().melt("arch", var_name="device")
    out = out.rename(columns={"value": "latency_ms"})
    out.insert(0, "space", "nb201")
    return out if keep_nan else out.dropna(subset=["latency_ms"])


def _csv(tmp_path: Path, w: pd.DataFrame, name: str = "lat.csv", keep_nan: bool = False) -> str:
    path = tmp_path / name
    _long(w, keep_nan=keep_nan).to_csv(path, index=False)
    return str(path)


# --------------------------------------------------------------------------- monotonicity


def test_matrices_are_symmetric_with_unit_diagonal_and_match_scipy(wide: pd.DataFrame) -> None:
    part = wide.copy()
    part.iloc[:25, 0] = np.nan  # pixel3 measured 35 of the 60: pairs on their shared rows
    sp, kd = mono.rank_correlations(part)
    assert kd is not None
    for m in (sp.to_numpy(), kd.to_numpy()):
        np.testing.assert_array_equal(m, m.T)
        np.testing.assert_array_equal(np.diag(m), 1.0)
    for a in DEVICES:
        for b in DEVICES:
            if a == b:
                continue
            rows = part[a].notna() & part[b].notna()
            x, y = part.loc[rows, a], part.loc[rows, b]
            assert sp.loc[a, b] == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
            assert kd.loc[a, b] == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)


@pytest.mark.parametrize("bad", [-2.0, 0.0, float("nan")])
def test_a_latency_that_is_no_measurement_is_refused_naming_it(
    tmp_path: Path, wide: pd.DataFrame, capsys: pytest.CaptureFixture[str], bad: float
) -> None:
    """A negative or zero latency took a place in the ranking and changed every correlation
    of its device (pixel3 & gold_6240: 0.728 -> 0.666), exit 0."""
    w = wide.copy()
    arch = w.index[3]
    w.loc[arch, "help/pixel3"] = bad
    data = _csv(tmp_path, w, keep_nan=True)
    assert main(["monotonicity", "--data", data]) == 1
    err = capsys.readouterr().err
    assert f"latency_ms = {bad!r} for {arch} on help/pixel3" in err
    assert "expected finite positive milliseconds" in err


def test_kendall_is_undefined_where_spearman_is_for_a_constant_device(
    wide: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    """A device with one latency for every architecture: Spearman NaN ("-"), Kendall 0.000."""
    w = wide.copy()
    w["help/titanx_1"] = 1.0
    with caplog.at_level(logging.WARNING, logger="latbench.predictors.monotonicity"):
        sp, kd = mono.rank_correlations(w)
    assert kd is not None
    assert np.isnan(sp.loc["help/titanx_1", "help/pixel3"])
    assert np.isnan(kd.loc["help/titanx_1", "help/pixel3"])
    assert np.isnan(kd.loc["help/pixel3", "help/titanx_1"])
    assert kd.loc["help/pixel3", "help/gold_6240"] == pytest.approx(
        stats.kendalltau(w["help/pixel3"], w["help/gold_6240"]).statistic
    )
    assert "help/titanx_1 (1 ms)" in caplog.text and "one latency for every" in caplog.text


def test_devices_that_share_too_few_architectures_are_named(
    tmp_path: Path,
    wide: pd.DataFrame,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Barely overlapping devices: a '-' in the matrix and nothing said; a single
    architecture: a matrix of dashes only, exit 0."""
    w = wide.copy()
    w.iloc[:27, 0] = np.nan  # pixel3 measured the last 33 ...
    w.iloc[30:, 1] = np.nan  # ... gold_6240 the first 30: 3 shared
    with caplog.at_level(logging.WARNING, logger="latbench.predictors.monotonicity"):
        assert main(["monotonicity", "--data", _csv(tmp_path, w)]) == 0
    assert "1 of the 3 device pairs have no rank correlation (shown as '-')" in caplog.text
    assert "fewer than 10 measured architectures: help/gold_6240 & help/pixel3 (3)" in caplog.text
    sp = mono.rank_correlations(w, with_kendall=False)[0]
    assert np.isnan(sp.loc["help/pixel3", "help/gold_6240"])
    assert np.isfinite(sp.loc["help/pixel3", "help/titanx_1"])  # the other pairs are there

    one = _csv(tmp_path, wide.iloc[:1], "one.csv")
    assert main(["monotonicity", "--data", one]) == 1
    err = capsys.readouterr().err
    assert "no pair of the 3 devices has a defined rank correlation" in err
    assert "help/gold_6240 & help/pixel3 (1)" in err
    assert "expected devices that share at least 10 measured architectures" in err
    with pytest.raises(PredictorError, match="no pair of the 3 devices"):
        mono.rank_correlations(wide.iloc[:1])


def test_devices_selecting_one_device_names_the_option(capsys: pytest.CaptureFixture) -> None:
    """Was: 'got 1 device(s); a monotonicity matrix needs at least 2' (exit 1)."""
    rc = main(["monotonicity", "--reference", "nb201", "--devices", "help/pixel3", "pixel3"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--devices help/pixel3 pixel3 selects 1 device (help/pixel3)" in err
    assert "expected at least 2 distinct devices" in err


def test_a_table_of_one_device_names_the_file(
    tmp_path: Path, wide: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: "got 1 device(s); a monotonicity matrix needs at least 2", the file unnamed."""
    data = _csv(tmp_path, wide[["help/pixel3"]], "pixel3.csv")
    assert main(["monotonicity", "--data", data]) == 1
    err = capsys.readouterr().err
    assert f"{data} holds 1 device (help/pixel3); expected at least 2 devices" in err


def test_a_device_measured_at_two_batch_sizes_is_not_averaged(
    tmp_path: Path, wide: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: the median of gold_6240's batch-1 and batch-32 rows as one column: its Spearman
    with pixel3 fell from 0.728 to 0.106, with nothing said."""
    long = _long(wide).assign(batch=1)
    b32 = long[long.device == "help/gold_6240"].assign(batch=32)
    b32["latency_ms"] = np.random.default_rng(0).permutation(b32["latency_ms"].to_numpy()) * 20
    with caplog.at_level(logging.WARNING, logger="latbench.predictors.monotonicity"):
        table = mono.wide_table(pd.concat([long, b32]))
    assert sorted(table.columns) == [
        "help/gold_6240 · b1",
        "help/gold_6240 · b32",
        "help/pixel3",
        "help/titanx_1",
    ]
    sp = mono.rank_correlations(table, with_kendall=False)[0]
    want = stats.spearmanr(wide["help/pixel3"], wide["help/gold_6240"]).statistic
    assert sp.loc["help/pixel3", "help/gold_6240 · b1"] == pytest.approx(want)
    assert "help/gold_6240 (batch): help/gold_6240 · b1, help/gold_6240 · b32" in caplog.text
    assert list(mono.wide_table(long).columns) == sorted(DEVICES)  # one batch: plain names


def test_all_among_other_devices_selects_every_device(wide: pd.DataFrame) -> None:
    """Was: "device 'all' matches nothing" (``all`` worked only alone)."""
    names = list(wide.columns)
    assert mono.select_devices(names, ["all", "help/pixel3"]) == names
    assert mono.select_devices(names, ["pixel3", "all"]) == names


def test_a_target_left_out_by_devices_is_said_so(capsys: pytest.CaptureFixture) -> None:
    """Was: "--target: device 'pixel3' matches nothing", of a device the data holds."""
    cmd = ["monotonicity", "--reference", "nb201", "--devices", "nnmeter/*", "--target", "pixel3"]
    assert main(cmd) == 2
    err = capsys.readouterr().err
    assert "--target 'pixel3' is in the data but not among the devices --devices nnmeter/*" in err
    assert "add it to --devices" in err


def test_a_perfect_proxy_reaches_threshold_one(wide: pd.DataFrame) -> None:
    """Was: "adaptation needed: the best proxy help/gold_6240 reaches Spearman 1.000 < 1.0"
    (scipy's Spearman of a perfect ranking is 0.9999999999999999)."""
    archs = list(wide.index[:10])
    lat = wide.loc[archs, "help/gold_6240"].to_numpy() * 1.3
    rep = mono.best_proxies(wide, archs, lat, threshold=1.0)
    assert rep.best == "help/gold_6240" and rep.one_proxy_enough
    assert "one proxy is enough: help/gold_6240" in rep.verdict()
    assert "Spearman 1.000 >= 1.0" in rep.verdict()
    below = mono.best_proxies(wide, archs, lat, threshold=0.9)
    assert below.one_proxy_enough


def test_the_verdict_prints_the_spearman_it_compared() -> None:
    """0.8996 against 0.9 printed as "0.900 < 0.9"."""
    rep = mono.ProxyReport("t", 10, 0.9, [("help/pixel3", 0.8996, 0.7)], shared={"help/pixel3": 10})
    assert not rep.one_proxy_enough
    assert "Spearman 0.8996 < 0.9" in rep.verdict()
    ok = mono.ProxyReport("t", 10, 0.9, [("help/pixel3", 0.9004, 0.7)], shared={"help/pixel3": 10})
    assert ok.one_proxy_enough and "Spearman 0.900 >= 0.9" in ok.verdict()


def test_a_k_too_large_to_score_names_k(
    tmp_path: Path, wide: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: "target 'help/gold_6240' has 60 measured architectures; expected at least 65"."""
    data = _csv(tmp_path, wide)
    assert main(["monotonicity", "--data", data, "--target", "gold_6240", "--k", "55"]) == 1
    err = capsys.readouterr().err
    assert "k = 55: target 'help/gold_6240' has 60 measured architectures" in err
    assert "expected at least k + 10 = 65" in err and "k <= 50" in err


def test_k_and_seed_without_target_are_refused_not_ignored(
    tmp_path: Path, wide: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    """--samples uses every row of its file: "--k 5" and "--seed 3" were ignored, exit 0."""
    data = _csv(tmp_path, wide)
    samples = tmp_path / "s.csv"
    rows = wide.iloc[:10]
    pd.DataFrame(
        {"space": "nb201", "arch": rows.index, "latency_ms": rows["help/gold_6240"] * 1.3}
    ).to_csv(samples, index=False)
    for extra in (["--k", "5"], ["--seed", "3"]):
        assert main(["monotonicity", "--data", data, "--samples", str(samples), *extra]) == 2
        err = capsys.readouterr().err
        assert f"{' '.join(extra)}: only --target draws samples" in err
        assert f"--samples {samples} uses every row of its file" in err
    assert main(["monotonicity", "--data", data, "--k", "5", "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "--k 5, --seed 1: only --target draws samples" in err
    assert "expected --target DEVICE with them" in err


# --------------------------------------------------------------------------- describe


def _config(tmp_path: Path, store: Path) -> str:
    toml = tmp_path / "bench.toml"
    toml.write_text(f"[store]\npath = {json.dumps(str(store))}\n")
    return str(toml)


def test_describe_refuses_a_default_path_that_is_a_directory_before_measuring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: every item measured, then "[Errno 21] Is a directory: '.../local.json'"."""
    store = tmp_path / "s" / "latbench.db"
    (store.parent / "descriptors" / "local.json").mkdir(parents=True)
    cfg = _config(tmp_path, store)
    cmd = ["--config", cfg, "devices", "describe", "local", "--max-time", "0.05"]
    assert main(cmd) == 2
    err = capsys.readouterr().err
    assert f"descriptor file {str(store.parent / 'descriptors' / 'local.json')!r}" in err
    assert "is a directory; expected a file to write" in err
    assert not (store.parent / "descriptors" / "local.json.partial").exists()  # nothing measured


def test_describe_refuses_a_store_folder_that_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: "latbench: error: [Errno 20] Not a directory: '.../descriptors'"."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cfg = _config(tmp_path, blocker / "latbench.db")
    assert main(["--config", cfg, "devices", "describe", "local", "--max-time", "0.05"]) == 2
    err = capsys.readouterr().err
    assert f"descriptor folder {str(blocker / 'descriptors')!r}" in err
    assert "cannot be created" in err and "expected a directory" in err


def test_describe_again_keeps_the_part_it_does_not_measure_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A run with --no-kernels replaced a descriptor's micro-kernels with none, silently."""
    out = tmp_path / "local.json"
    cmd = ["devices", "describe", "local", "--no-kernels", "--space", "nb201", "--refs", "1"]
    cmd += ["--min-runs", "1", "-o", str(out)]
    assert main([*cmd, "--max-time", "0.02"]) == 0
    assert str(out) in capsys.readouterr().out
    first = Descriptor.load(out)
    # the kernels of an earlier run with the same settings (two of them, as measured here)
    first.kernels_ms = {"matmul_64": 0.01, "conv3x3_c16_32": 0.05}
    first.save(out)

    assert main([*cmd, "--max-time", "0.02"]) == 0
    printed = capsys.readouterr().out
    assert "(updated: kept the earlier descriptor's 2 micro-kernels)" in printed
    again = Descriptor.load(out)
    assert again.kernels_ms == first.kernels_ms and len(again.reference_ms) == 1

    # other timing settings: not mixed; said before measuring, and the summary says replaced
    with caplog.at_level(logging.WARNING, logger="latbench.commands.describe"):
        assert main([*cmd, "--max-time", "0.03"]) == 0
    warned = caplog.text
    assert "holds 2 micro-kernels, which this run does not measure and will not keep" in warned
    assert "max_time_s 0.02 (this run: 0.03)" in warned
    assert "(replaced the earlier descriptor)" in capsys.readouterr().out
    assert Descriptor.load(out).kernels_ms == {}


def test_describe_refuses_samples_csv_at_the_descriptor_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: the descriptor written, then replaced by the CSV; the summary named the file."""
    out = tmp_path / "d.json"
    cmd = ["devices", "describe", "local", "--no-kernels", "--space", "nb201", "--refs", "1"]
    for csv in (out, tmp_path / "d.json.partial"):
        assert main([*cmd, "-o", str(out), "--samples-csv", str(csv)]) == 2
        err = capsys.readouterr().err
        assert f"--samples-csv {str(csv)!r} is the" in err and "expected another file" in err
        assert not out.exists() and not csv.exists()


def test_describe_refuses_refs_without_space(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: the 13 micro-kernels measured and --refs 5 ignored, exit 0."""
    out = tmp_path / "d.json"
    assert main(["devices", "describe", "local", "--refs", "5", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--refs 5 is the number of reference architectures of --space" in err
    assert "expected --space SPACE too" in err
    assert not out.exists() and not (tmp_path / "d.json.partial").exists()
