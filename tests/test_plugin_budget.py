"""The latbench pytest plugin, run for real inside pytester on a tiny ONNX model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from plugin_helpers import FAST, tiny_onnx

pytest_plugins = ["pytester"]

NB201_ARCH = "nb201:|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|nor_conv_3x3~0|nor_conv_1x1~1|none~2|"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    tiny_onnx(pytester.path / "tiny.onnx")
    pytester.makepyfile(
        test_latency="""
        def test_generous(latbench):
            m = latbench.measure("tiny.onnx")
            assert m.ok and m.runs >= 5
            latbench.assert_budget(m, median_ms=1000.0, p90_ms=2000.0)

        def test_tiny_budget(latbench):
            latbench.check("tiny.onnx", median_ms=0.000001)
        """
    )
    return pytester


def test_pass_and_fail_with_summary_table(project: pytest.Pytester, tmp_path: Path) -> None:
    out = tmp_path / "latbench.json"
    result = project.runpytest_inprocess(*FAST, f"--latbench-json={out}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*latency budget exceeded for tiny.onnx on local/onnxruntime: median * ms > budget*",
            "*latbench: 2 measurement(s) on local with onnxruntime*",
            "Name (time in ms)*Min*Median*IQR*P90*Runs*Budget*Status",
            "test_generous *median<=1000, p90<=2000*PASS",
            "test_tiny_budget *median<=1e-06*OVER",
        ]
    )
    payload = json.loads(out.read_text())
    by_name = {r["name"]: r for r in payload["results"]}
    assert by_name["test_generous"]["status"] == "pass"
    assert by_name["test_tiny_budget"]["status"] == "over"
    samples = by_name["test_generous"]["measurement"]["samples_ms"]
    assert len(samples) >= 5 and all(s > 0 for s in samples)
    assert by_name["test_generous"]["stats"]["median_ms"] == pytest.approx(
        float(np.median(samples))
    )


def test_budget_scale_and_bad_budget_name(pytester: pytest.Pytester) -> None:
    tiny_onnx(pytester.path / "tiny.onnx")
    pytester.makepyfile(
        test_scale="""
        import pytest

        def test_scaled(latbench):
            m = latbench.measure("tiny.onnx", name="tiny")
            latbench.assert_budget(m, median_ms=1e-6)

        def test_unknown_stat(latbench):
            m = latbench.measure("tiny.onnx")
            with pytest.raises(TypeError, match="unknown budget.*median_ms"):
                latbench.assert_budget(m, latency=1.0)

        def test_architecture_string(latbench):
            m = latbench.check(ARCH, p90_ms=1e-6)
            assert m.ok and m.model_path.endswith(".onnx")
        """.replace("ARCH", repr(NB201_ARCH))
    )
    # a huge scale turns the tiny budgets into generous ones
    result = pytester.runpytest_inprocess(*FAST, "--latbench-budget-scale=1e12")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        ["tiny *median<=1e+06*PASS", "test_unknown_stat *-*-", "test_architecture_string *PASS"]
    )


def test_missing_model_is_an_error_naming_the_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_missing="""
        def test_missing(latbench):
            latbench.check("nowhere.onnx", median_ms=1.0)
        """
    )
    result = pytester.runpytest_inprocess(*FAST)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ModelError*nowhere.onnx*does not exist*"])


def test_a_json_path_in_a_missing_folder_is_refused_at_start(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_one="""
        def test_one(latbench):
            raise AssertionError("not run: the option is refused first")
        """
    )
    result = pytester.runpytest_inprocess(*FAST, "--latbench-json=nowhere/out.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--latbench-json 'nowhere/out.json'*'nowhere' does not exist*"])


def test_misspelt_settings_and_budgets_below_zero_are_errors(pytester: pytest.Pytester) -> None:
    """A typo in a harness setting would otherwise be ignored, and a budget of -1 would fail as
    "exceeded": both are mistakes in the test, said as such."""
    pytester.makepyfile(
        test_bad="""
        import pytest

        def test_typo(latbench):
            with pytest.raises(TypeError, match="unknown harness setting.*'min_tme_s'.*min_time_s"):
                latbench.measure("tiny.onnx", min_tme_s=0.5)

        def test_negative_budget(latbench):
            with pytest.raises(ValueError, match="'median_ms': -1.*expected milliseconds > 0"):
                latbench.assert_budget(latbench.measure("tiny.onnx"), median_ms=-1)
        """
    )
    tiny_onnx(pytester.path / "tiny.onnx")
    pytester.runpytest_inprocess(*FAST).assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--latbench-min-time=-1", "--latbench-min-time -1.0; expected a number >= 0"),
        ("--latbench-max-time=0", "--latbench-max-time 0.0; expected a number > 0"),
        ("--latbench-threads=0", "--latbench-threads 0; expected an integer >= 1"),
        ("--latbench-budget-scale=-1", "--latbench-budget-scale -1.0; expected a number > 0"),
        ("--latbench-device=nosuch", "unknown device 'nosuch'"),
        ("--latbench-runtime=nosuch", "unknown runtime 'nosuch'"),
        ("--latbench-config=/nonexistent.toml", "/nonexistent.toml"),
    ],
)
def test_bad_timing_options_are_refused_at_start(
    pytester: pytest.Pytester, option: str, message: str
) -> None:
    pytester.makepyfile(test_one="def test_one(latbench):\n    raise AssertionError('not run')\n")
    result = pytester.runpytest_inprocess(option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_a_device_tables_harness_keys_apply_to_that_device(pytester: pytest.Pytester) -> None:
    """``max_runs = 3`` in [devices.capped] caps that device's measurements, as in the commands;
    the other device keeps [measure]."""
    tiny_onnx(pytester.path / "tiny.onnx")
    (pytester.path / "bench.toml").write_text(
        '[devices.capped]\ntransport = "local"\nmax_runs = 3\n', encoding="utf-8"
    )
    pytester.makepyfile(
        test_dev="""
        def test_capped(latbench):
            m = latbench.measure("tiny.onnx", device="capped")
            assert m.ok and len(m.samples_ms) <= 3, len(m.samples_ms)

        def test_local(latbench):
            m = latbench.measure("tiny.onnx")
            assert m.ok and len(m.samples_ms) >= 5, len(m.samples_ms)
        """
    )
    result = pytester.runpytest_inprocess(*FAST, "--latbench-config", "bench.toml")
    result.assert_outcomes(passed=2)


def test_plugin_load_is_light() -> None:
    """Loading the plugin (every pytest run) must not import numpy, pandas or a runtime."""
    code = (
        "import sys, latbench.pytest_plugin; "
        "heavy = [m for m in ('numpy', 'pandas', 'onnxruntime', 'torch', 'matplotlib', "
        "'latbench.devices', 'latbench.spaces') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_max_below_min_is_refused_and_check_needs_a_budget(pytester: pytest.Pytester) -> None:
    tiny_onnx(pytester.path / "tiny.onnx")
    result = pytester.runpytest_inprocess("--latbench-min-time=0.5", "--latbench-max-time=0.1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--latbench-max-time 0.1 is below --latbench-min-time 0.5*"])
    pytester.makepyfile(
        test_two="""
        import pytest

        def test_contradiction(latbench):
            with pytest.raises(ValueError, match="max_time_s = 0.5 is below min_time_s = 2"):
                latbench.measure("tiny.onnx", min_time_s=2, max_time_s=0.5)

        def test_no_budget(latbench):
            with pytest.raises(TypeError, match="check.. needs at least one budget"):
                latbench.check("tiny.onnx")
            assert latbench.results == []  # nothing was measured

        def test_twice(latbench):
            for _ in range(3):
                latbench.check("tiny.onnx", median_ms=1000)
            assert [r.name for r in latbench.results] == [
                "test_twice", "test_twice[tiny.onnx]", "test_twice[tiny.onnx#2]"
            ]
        """
    )
    pytester.runpytest_inprocess(*FAST).assert_outcomes(passed=3)


def test_the_runtime_follows_the_files_suffix(pytester: pytest.Pytester) -> None:
    """As ``latbench measure``: a .tflite file is measured with LiteRT without --runtime."""
    from latbench.spaces import export, get_space

    sp = get_space("nb201")
    export(sp.build(sp.from_index(0), resolution=8), "tflite", pytester.path / "m.tflite", seed=0)
    pytester.makepyfile(
        test_lite="""
        def test_lite(latbench):
            m = latbench.check("m.tflite", median_ms=10_000)
            assert m.runtime == "litert", m.runtime
        """
    )
    pytester.runpytest_inprocess(*FAST).assert_outcomes(passed=1)
