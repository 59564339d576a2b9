"""``latbench measure A B ...``: models compared in interleaved rounds, with real onnxruntime.

The comparison itself runs on this machine's CPU; the generic interleaving of devices that
reload a model per call runs on the local device through the base class and on a real sshd on
loopback (the "board" is this machine).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cli_helpers import no_config_fixture
from device_fixtures import sshd_fixture
from devices_servers import Sshd, tiny_onnx
from latbench.cli import main
from latbench.config import Config, load_config
from latbench.devices import Device, get_device
from latbench.errors import ConfigError
from latbench.profilers import stats
from latbench.profilers.harness import HarnessSettings

#: a cell of three 3x3 convolutions in a row and one of skips only: the first is several times
#: slower on any CPU
HEAVY = (
    "nb201:|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
LIGHT = (
    "nb201:|skip_connect~0|+|skip_connect~0|skip_connect~1|"
    "+|skip_connect~0|skip_connect~1|skip_connect~2|"
)
FAST = ["--warmup", "2", "--min-runs", "8", "--min-time", "0.4", "--max-time", "2"]
ROUND_FAST = HarnessSettings(
    warmup_runs=1, warmup_time_s=0.0, min_runs=6, min_time_s=0.06, max_time_s=0.3
)

sshd = sshd_fixture()


_no_config = no_config_fixture()


# -- the statistics ------------------------------------------------------------------------------


def test_round_values_and_paired_ratio() -> None:
    xs = [1.0, 3.0, 2.0, 10.0, 4.0, 6.0]
    assert stats.round_values(xs, [3, 3], "median") == [2.0, 6.0]
    assert stats.round_values(xs, [3, 3], "min") == [1.0, 4.0]
    assert stats.round_values(xs, [3, 3], "round_min") == [1.0, 4.0]
    with pytest.raises(ValueError, match="do not add up to the 6 samples"):
        stats.round_values(xs, [3, 2])
    with pytest.raises(ValueError, match="'cpu_median' has no per-round value"):
        stats.round_values(xs, [3, 3], "cpu_median")
    base = [1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0]
    other = [2.0 * b for b in base]
    r = stats.paired_ratio(base, [*other, 99.0])  # a round of one model alone is not paired
    # a load that doubles every other round moves both sides of each ratio: it stays 2
    assert r == {"ratio": 2.0, "ci_low": 2.0, "ci_high": 2.0, "rounds": 8}
    few = stats.paired_ratio([1.0, 1.0, 1.0], [0.9, 1.0, 1.2])
    assert few["ratio"] == 1.0 and (few["ci_low"], few["ci_high"]) == (0.9, 1.2)
    with pytest.raises(ValueError, match="no rounds"):
        stats.paired_ratio([], [1.0])


# -- the command -----------------------------------------------------------------------------


def test_compare_names_the_slower_model_and_its_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["measure", LIGHT, HEAVY, "--rounds", "8", *FAST])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "rounds    8 interleaved (A B, B A, ...), each round's median" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "1 (baseline)" in rows["A"] and rows["A"].endswith(LIGHT)
    assert rows["B"].endswith(HEAVY) and " slower " in rows["B"]
    ratio = float(rows["B"].split()[3].rstrip("x"))
    assert ratio > 1.5


def test_compare_json_holds_every_record_and_the_paired_ratio(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc = main(["measure", HEAVY, LIGHT, "--rounds", "6", "--statistic", "min", "--json", *FAST])
    out, err = capsys.readouterr()
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["baseline"] == HEAVY and doc["statistic"] == "min" and doc["rounds"] == 6
    first, second = doc["results"]
    assert first["ratio_to_baseline"] is None
    r = second["ratio_to_baseline"]
    assert r["shown"] == "faster" and r["ci_high"] < 1 and r["rounds"] == 6 and r["level"] == 0.95
    for res in doc["results"]:
        rec = res["record"]
        sizes = rec["harness"]["round_sizes"]
        assert len(sizes) == 6 and sum(sizes) == len(rec["samples_ms"])  # no unpaired rounds
        assert rec["statistic"] == "min" and rec["env"]  # the environment comes with it
    # the reported ratio is the median of the per-round minima's ratios of these very samples
    a, b = (
        stats.round_values(
            res["record"]["samples_ms"], res["record"]["harness"]["round_sizes"], "min"
        )
        for res in doc["results"]
    )
    assert r["ratio"] == pytest.approx(stats.median([y / x for x, y in zip(a, b, strict=True)]))


def test_compare_refuses_what_it_cannot_compare(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        (
            ["measure", LIGHT, HEAVY, "--per-op"],
            "--per-op profiles one model at one setting; expected one TARGET",
        ),
        (["measure", LIGHT, HEAVY, "--counters"], "--counters profiles one model"),
        (["measure", LIGHT, "--rounds", "5"], "--rounds 5; expected an integer >= 1 with two"),
        (["measure", LIGHT, HEAVY, "--rounds", "0"], "--rounds 0; expected an integer >= 1"),
        (
            ["measure", LIGHT, HEAVY, "--statistic", "cpu_median"],
            "--statistic cpu_median has no per-round value to compare",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err
    onnx_file = tiny_onnx(tmp_path / "a.onnx")
    (tmp_path / "b.tflite").write_bytes(onnx_file.read_bytes())
    assert main(["measure", str(onnx_file), str(tmp_path / "b.tflite")]) == 2
    err = capsys.readouterr().err
    assert "the targets run on different runtimes:" in err and "(onnxruntime)" in err
    assert "(litert)" in err and "expected one runtime for a comparison" in err


def test_a_target_that_fails_is_named_and_the_others_are_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07 not a model at all" * 8)
    good = tiny_onnx(tmp_path / "good.onnx")
    rc = main(["measure", str(good), str(bad), str(good), "--rounds", "3", *FAST])
    out, err = capsys.readouterr()
    assert rc == 1
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "FAILED" in rows["B"] and "1 (baseline)" in rows["A"]
    assert "x [" in rows["C"]  # A and C still compared
    assert f"measurement of {bad} failed" in err


# -- devices that reload the model per call ------------------------------------------------------


def test_base_interleaving_merges_the_rounds_of_each_model(tmp_path: Path) -> None:
    models = [tiny_onnx(tmp_path / f"m{i}.onnx", seed=i, size=16 + 1008 * i) for i in range(2)]
    with get_device("local", load_config()) as dev:
        # the base class's rounds of whole measure() calls, as ssh, adb and cuda use them
        out = Device.measure_many(dev, models, interleave=4, settings=ROUND_FAST, threads=1)
    for m in out:
        assert m.ok, m.error
        sizes = m.round_sizes
        assert len(sizes) == 4 and sum(sizes) == m.runs and m.harness["interleaved"] == 4
        assert len(m.harness["rounds"]) == 4 and m.harness["settings"]["min_runs"] == 6
    assert out[1].median_ms > out[0].median_ms  # the larger matmul is the slower one

    with get_device("local", load_config()) as dev:
        calls: list[str] = []
        real = dev.measure

        def noted(model: object, **kw: object):  # type: ignore[no-untyped-def]
            calls.append(Path(str(model)).stem)  # the order of the real measure calls
            return real(model, **kw)  # type: ignore[arg-type]

        dev.measure = noted  # type: ignore[method-assign]
        Device.measure_many(dev, models, interleave=3, settings=ROUND_FAST, threads=1)
    assert calls == ["m0", "m1", "m1", "m0", "m0", "m1"]  # A B, B A, A B: none always first
    with pytest.raises(ConfigError, match="statistic"):
        Device.measure_many(dev, models, interleave=2, statistic="mode", settings=ROUND_FAST)


def test_ssh_board_interleaves_and_a_failing_model_fails_alone(sshd: Sshd, tmp_path: Path) -> None:
    models = [tiny_onnx(tmp_path / f"m{i}.onnx", seed=i) for i in range(2)]
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage, not onnx" * 4)
    dev = get_device("pi4", Config(devices={"pi4": sshd.device_config()}))
    with dev:
        out = dev.measure_many([models[0], bad, models[1]], interleave=3, settings=ROUND_FAST)
    assert not out[1].ok and out[1].error
    for m in (out[0], out[2]):
        assert m.ok, m.error
        assert len(m.round_sizes) == 3 and sum(m.round_sizes) == m.runs
        assert m.device == "pi4" and m.harness["remote"]["transport"] == "ssh"
    a, b = (stats.round_values(m.samples_ms, m.round_sizes) for m in (out[0], out[2]))
    assert stats.paired_ratio(a, b)["rounds"] == 3


def test_compare_loads_the_models_in_both_orders_and_pairs_every_round(tmp_path: Path) -> None:
    """Half the rounds with the models loaded A, B, half with B, A (the second model loaded
    into a worker runs faster), each model's halves one record; the budget is shared."""
    from latbench.commands._measure_compare import compare

    models = [str(tiny_onnx(tmp_path / f"m{i}.onnx", seed=i, size=64)) for i in range(2)]
    with get_device("local", load_config()) as dev:
        orders: list[list[str]] = []
        real = dev.measure_many

        def noted(ms, **kw):  # type: ignore[no-untyped-def]
            orders.append([Path(m).stem for m in ms])  # the real calls, in order
            return real(ms, **kw)

        dev.measure_many = noted  # type: ignore[method-assign]
        out = compare(dev, models, 5, "median", {"runtime": "onnxruntime", "settings": ROUND_FAST})
    assert orders == [["m0", "m1"], ["m1", "m0"]]
    for m, path in zip(out, models, strict=True):
        assert m.ok and m.model_path == path
        assert len(m.round_sizes) == 5 and sum(m.round_sizes) == m.runs
        assert m.harness["interleaved"] == 5 and len(m.harness["rounds"]) == 5
    a, b = (stats.round_values(m.samples_ms, m.round_sizes) for m in out)
    assert stats.paired_ratio(a, b)["rounds"] == 5


# -- thread counts of one target -------------------------------------------------------------


def test_thread_sweep_gives_each_count_its_ratio_speedup_and_efficiency(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import os

    n_cpus = len(os.sched_getaffinity(0))
    rc = main(["measure", HEAVY, "--threads", "1,2", "--rounds", "4", *FAST])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "rounds    4 interleaved (A B, B A, ...), each round's median" in out
    assert f"target    {HEAVY}" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("  ")}
    assert (
        rows["A"][1] == "1"
        and "(baseline)" in rows["A"]
        and rows["A"][-3:-1]
        == [
            "1.00x",
            "100%",
        ]
    )
    assert rows["B"][1] == "2"
    ratio = float(rows["B"][6].rstrip("x"))
    speedup = float(rows["B"][-3].rstrip("x"))
    efficiency = float(rows["B"][-2].rstrip("%"))
    assert speedup == pytest.approx(1 / ratio, abs=0.006)  # both rounded for the table
    assert efficiency == pytest.approx(100 * speedup / 2, abs=0.6)
    assert rows["A"][-1] == str(max(os.sched_getaffinity(0)))  # the last CPU for one thread
    if n_cpus >= 2:
        assert "-" in rows["B"][-1] or "," in rows["B"][-1]  # two CPUs for two threads
        assert "more threads than the CPUs" not in out


def test_thread_sweep_json_holds_each_count_and_its_scaling(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc = main(["measure", LIGHT, "--threads", "2,1", "--rounds", "4", "--json", *FAST])
    out, err = capsys.readouterr()
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["baseline"] == f"{LIGHT} --threads 2" and doc["rounds"] == 4
    first, second = doc["results"]
    assert (first["threads"], second["threads"]) == (2, 1)
    assert first["scaling"] == {"speedup": 1.0, "efficiency": 1.0}
    r, sc = second["ratio_to_baseline"], second["scaling"]
    assert sc["speedup"] == pytest.approx(1 / r["ratio"])
    assert sc["speedup_ci_low"] == pytest.approx(1 / r["ci_high"])
    assert sc["efficiency"] == pytest.approx(sc["speedup"] * 2 / 1)  # against 2 threads
    for res, threads in zip(doc["results"], (2, 1), strict=True):
        rec = res["record"]
        assert rec["threads"] == threads and res["target"] == LIGHT
        assert len(rec["harness"]["round_sizes"]) == 4
        assert sum(rec["harness"]["round_sizes"]) == len(rec["samples_ms"])
        assert rec["env"]["pinned_cpus"]  # where each count ran is recorded with it


def test_thread_sweep_says_when_threads_outnumber_the_pinned_cpus(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import os

    many = len(os.sched_getaffinity(0)) + 1
    rc = main(["measure", LIGHT, "--threads", f"1,{many}", "--rounds", "2", *FAST])
    out, err = capsys.readouterr()
    assert rc == 0, err
    n = many - 1
    cpus = f"{n} CPU" if n == 1 else f"{n} CPUs"
    assert f"note: B ({many} threads on {cpus}) runs more threads than the CPUs pinned" in out


def test_thread_sweep_refuses_what_it_cannot_compare(capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["measure", LIGHT, "--threads", "1,1"], "--threads 1,1 names 1 twice; expected distinct"),
        (
            ["measure", LIGHT, "--threads", "1,x"],
            "--threads 1,x ('x' is not a count); expected an integer >= 1",
        ),
        (["measure", LIGHT, "--threads", "0"], "--threads 0; expected an integer >= 1"),
        (["measure", LIGHT, "--threads", "1,2000"], "expected an integer >= 1 and <= 1024"),
        (
            ["measure", LIGHT, HEAVY, "--threads", "1,2"],
            "--threads 1,2 with 2 targets; expected one TARGET to compare thread counts of",
        ),
        (["measure", LIGHT, "--threads", "1,2", "--per-op"], "--per-op profiles one model at one"),
        (["measure", LIGHT, "--batch", "1,2", "--counters"], "(got several batch sizes:"),
        (
            ["measure", LIGHT, "--threads", "1,2", "--batch", "1,4"],
            "--threads 1,2 with --batch 1,4; expected several values for one of them",
        ),
        (["measure", LIGHT, "--batch", "2,2"], "--batch 2,2 names 2 twice; expected distinct"),
        (["measure", LIGHT, "--batch", "0"], "--batch 0; expected an integer >= 1"),
        (
            ["measure", LIGHT, HEAVY, "--batch", "1,8"],
            "--batch 1,8 with 2 targets; expected one TARGET to compare batch sizes of",
        ),
        (
            ["measure", LIGHT, "--threads", "1,2", "--statistic", "cpu_median"],
            "with several thread counts",
        ),
        (["measure", LIGHT, "--threads", "2", "--rounds", "3"], "(got 1 target(s), --threads 2)"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_measure_variants_interleaves_whole_calls_with_each_variants_arguments(
    tmp_path: Path,
) -> None:
    model = tiny_onnx(tmp_path / "m.onnx", size=64)
    with get_device("local", load_config()) as dev:
        calls: list[object] = []
        real = dev.measure

        def noted(model: object, **kw: object):  # type: ignore[no-untyped-def]
            calls.append(kw["threads"])
            return real(model, **kw)  # type: ignore[arg-type]

        dev.measure = noted  # type: ignore[method-assign]
        out = dev.measure_variants(
            model, [{"threads": 1}, {"threads": 2}], rounds=3, settings=ROUND_FAST
        )
        assert calls == [1, 2, 2, 1, 1, 2]  # A B, B A, A B
        assert [m.threads for m in out] == [1, 2]
        for m in out:
            assert m.ok, m.error
            assert len(m.round_sizes) == 3 and sum(m.round_sizes) == m.runs
            assert m.harness["interleaved"] == 3
        bad = [
            (dict(variants=[]), "expected a non-empty list of mappings"),
            (dict(variants={"threads": 1}), "expected a non-empty list of mappings"),
            (dict(variants=[1]), "variants[0] = 1; expected a mapping"),
            (
                dict(variants=[{"cpus": "0"}]),
                "variants[0] sets 'cpus'; expected only model, threads",
            ),
            (dict(variants=[{"threads": 1}], threads=2), "also given for every variant"),
            (dict(variants=[{"threads": 1}], rounds=0), "rounds = 0; expected an integer >= 1"),
        ]
        for kwargs, message in bad:
            with pytest.raises(ConfigError, match=re.escape(message)):
                dev.measure_variants(model, **kwargs)  # type: ignore[arg-type]


def test_ssh_board_compares_thread_counts(sshd: Sshd, tmp_path: Path) -> None:
    model = tiny_onnx(tmp_path / "m.onnx", size=256)
    dev = get_device("pi4", Config(devices={"pi4": sshd.device_config()}))
    with dev:
        out = dev.measure_variants(
            model, [{"threads": 1}, {"threads": 2}], rounds=2, settings=ROUND_FAST
        )
    for m, threads in zip(out, (1, 2), strict=True):
        assert m.ok, m.error
        assert m.threads == threads and m.device == "pi4"
        assert len(m.round_sizes) == 2 and m.harness["remote"]["transport"] == "ssh"


# -- batch sizes of one target ---------------------------------------------------------------


def test_batch_sweep_emits_the_architecture_at_each_size_and_gives_throughput(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc = main(["measure", HEAVY, "--batch", "1,4", "--rounds", "4", "--json", *FAST])
    out, err = capsys.readouterr()
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["baseline"] == f"{HEAVY} --batch 1" and doc["rounds"] == 4
    one, four = doc["results"]
    assert (one["batch"], four["batch"]) == (1, 4)
    for res, b in ((one, 1), (four, 4)):
        rec = res["record"]
        assert rec["batch"] == b and rec["input_shapes"]["input"] == [b, 3, 32, 32]
        assert len(rec["harness"]["round_sizes"]) == 4
        sc = res["scaling"]
        assert sc["ms_per_sample"] == pytest.approx(res["summary"]["median_ms"] / b)
        assert sc["samples_per_s"] == pytest.approx(1000 * b / res["summary"]["median_ms"])
    assert one["scaling"]["throughput_gain"] == 1.0
    r, sc = four["ratio_to_baseline"], four["scaling"]
    assert r["shown"] == "slower"  # four images take longer than one
    assert sc["throughput_gain"] == pytest.approx(4 / r["ratio"])
    assert sc["throughput_gain_ci_low"] <= sc["throughput_gain"] <= sc["throughput_gain_ci_high"]
    # the emitted models differ: the batch is part of the graph
    assert one["record"]["model_sha256"] != four["record"]["model_sha256"]


def test_batch_sweep_of_a_model_file_with_a_dynamic_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tiny_onnx(tmp_path / "dyn.onnx", size=64, batch="N")  # a symbolic batch
    rc = main(["measure", str(model), "--batch", "1,16", "--rounds", "4", *FAST])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "gain      throughput over A's: (batch / batch of A) / ratio" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("  ")}
    assert rows["A"][1] == "1" and rows["A"][-1] == "1.00x" and rows["B"][1] == "16"
    ratio = float(rows["B"][6].rstrip("x"))
    gain = float(rows["B"][-1].rstrip("x"))
    assert gain == pytest.approx(16 / ratio, rel=0.01)  # both rounded for the table
    per_sample = float(rows["B"][-4])  # "0.123 ms" -> the number, then its unit
    assert rows["B"][-3] == "ms" or rows["B"][-3] == "us"
    assert per_sample > 0


def test_batch_sweep_of_a_fixed_batch_file_is_refused_by_the_runtime(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tiny_onnx(tmp_path / "fixed.onnx")
    rc = main(["measure", str(model), "--batch", "1,8", "--rounds", "2", *FAST])
    err = capsys.readouterr().err
    assert rc != 0
    assert "rejects the input shapes" in err and "[8, 32]" in err


def test_measure_variants_takes_a_model_per_variant(tmp_path: Path) -> None:
    small = tiny_onnx(tmp_path / "small.onnx", size=16)
    large = tiny_onnx(tmp_path / "large.onnx", size=1024)
    with get_device("local", load_config()) as dev:
        out = dev.measure_variants(
            small, [{}, {"model": large}], rounds=2, settings=ROUND_FAST, threads=1
        )
    assert [m.model_path for m in out] == [str(small), str(large)]
    assert out[1].median_ms > out[0].median_ms
