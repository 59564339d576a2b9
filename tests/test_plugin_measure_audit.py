"""Bad and unusual input to the pytest plugin and to ``latbench measure``: each mistake is
refused by its value with what was expected, before anything is measured where it can be, and
no results file passes for what it is not (a partial run, the baseline it replaced)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from latbench.cli import main
from latbench.commands.measure import format_measurement
from latbench.errors import DatasetError
from latbench.profilers.record import Measurement
from latbench.profilers.runtimes import _runtime_message
from latbench.pytest_plugin import RESULTS_FORMAT, load_baseline
from plugin_helpers import FAST, tiny_onnx

pytest_plugins = ["pytester"]


def _results_file(path: Path, results: list[object], **fields: object) -> Path:
    payload = {"format": RESULTS_FORMAT, "version": 1, "results": results, **fields}
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


def _entry(fullname: str, samples: list[float]) -> dict[str, object]:
    return {"fullname": fullname, "measurement": {"samples_ms": samples}}


# ---- the fixture: mistakes in a test ------------------------------------------------------------
def test_assert_budget_names_what_is_not_a_measurement(pytester: pytest.Pytester) -> None:
    """A model path (the ``check`` call written as ``assert_budget``) or None used to fail with
    ``AttributeError: 'str' object has no attribute 'model_path'`` from the plugin's insides."""
    pytester.makepyfile(
        test_bad="""
        import pytest

        def test_path(latbench):
            with pytest.raises(TypeError, match=r"assert_budget\\(\\) got str 'tiny.onnx'; "
                               r"expected the Measurement latbench.measure\\(\\) returns; "
                               r".*latbench.check\\(model"):
                latbench.assert_budget("tiny.onnx", median_ms=5)

        def test_none(latbench):
            with pytest.raises(TypeError, match="got NoneType None; expected the Measurement"):
                latbench.assert_budget(None, median_ms=5)
        """
    )
    pytester.runpytest_inprocess(*FAST).assert_outcomes(passed=2)


def test_check_refuses_a_bad_budget_before_measuring(pytester: pytest.Pytester) -> None:
    """``check`` used to measure first and only then refuse the budget (a wasted measurement,
    listed in the table), and a misspelt budget was named as an unknown *harness setting*.
    The model here does not exist: reaching the measurement would raise ModelError instead."""
    pytester.makepyfile(
        test_bad="""
        import pytest

        def test_unit_in_the_value(latbench):
            with pytest.raises(ValueError, match=r"\\{'median_ms': '5ms'\\}; expected "
                               r"milliseconds > 0 \\(a number: the unit is in the name"):
                latbench.check("missing.onnx", median_ms="5ms")

        def test_nan(latbench):
            with pytest.raises(ValueError, match=r"'p90_ms': nan\\}; expected milliseconds > 0 "
                               r"\\(a finite number\\)"):
                latbench.check("missing.onnx", median_ms=5, p90_ms=float("nan"))

        def test_misspelt(latbench):
            with pytest.raises(TypeError, match=r"unknown budget\\(s\\) \\['p09_ms'\\]; expected "
                               r"some of median_ms"):
                latbench.check("missing.onnx", median_ms=5, p09_ms=3)
        """
    )
    result = pytester.runpytest_inprocess(*FAST)
    result.assert_outcomes(passed=3)
    assert "measurement(s)" not in result.stdout.str()  # nothing was measured


def test_a_harness_setting_of_the_wrong_type_is_named(pytester: pytest.Pytester) -> None:
    """``min_time_s="1s"`` used to fail with ``TypeError: '<' not supported between instances of
    'float' and 'str'``; a setting out of range showed the harness's frames."""
    tiny_onnx(pytester.path / "tiny.onnx")
    pytester.makepyfile(
        test_bad="""
        import pytest
        from latbench.errors import ConfigError

        def test_string(latbench):
            with pytest.raises(ConfigError, match="harness setting min_time_s = '1s'; expected"):
                latbench.measure("tiny.onnx", min_time_s="1s")

        def test_negative(latbench):
            with pytest.raises(ConfigError, match="min_runs = -3; expected a value >= 0"):
                latbench.measure("tiny.onnx", min_runs=-3)
        """
    )
    pytester.runpytest_inprocess(*FAST).assert_outcomes(passed=2)


def test_a_model_that_is_no_path_is_named(pytester: pytest.Pytester) -> None:
    """``measure(None)`` used to raise ``TypeError: expected str, bytes or os.PathLike object``
    and ``measure("")`` said ``model file '.' is a directory``."""
    pytester.makepyfile(
        test_bad="""
        import pytest
        from latbench.errors import ModelError

        @pytest.mark.parametrize("model", [None, "", 42])
        def test_model(latbench, model):
            with pytest.raises(ModelError, match=rf"model {model!r}; expected a model file "
                               r"path \\(.onnx, .tflite, .pt, .pt2\\) or SPACE:ARCH"):
                latbench.measure(model)
        """
    )
    pytester.runpytest_inprocess(*FAST).assert_outcomes(passed=3)


def test_a_name_that_is_no_string_is_refused_before_measuring(pytester: pytest.Pytester) -> None:
    """``measure(..., name=123)`` used to measure, pass, and then end the run with an
    INTERNALERROR in the summary table (``object of type 'int' has no len()``)."""
    pytester.makepyfile(
        test_bad="""
        import pytest

        def test_name(latbench):
            with pytest.raises(TypeError, match=r"measure\\(\\) name=123; expected a string "
                               r"\\(the label of this measurement"):
                latbench.check("missing.onnx", median_ms=5, name=123)
        """
    )
    result = pytester.runpytest_inprocess(*FAST)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK


# ---- options --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("--latbench-device", "a device name"),
        ("--latbench-runtime", "a runtime name"),
        ("--latbench-config", "the path of a bench.toml"),
        ("--latbench-json", "the path of a JSON file to write"),
        ("--latbench-compare", "the path of a results file"),
    ],
)
def test_an_empty_option_value_stops_pytest_at_start(
    pytester: pytest.Pytester, option: str, expected: str
) -> None:
    """``--latbench-json=$OUT`` with OUT unset used to write nothing without a word, and an
    empty device or config failed every latency test (``unknown device ''``, ``config file
    '.' is a directory``)."""
    pytester.makepyfile(test_one="def test_one(latbench):\n    raise AssertionError('not run')\n")
    result = pytester.runpytest_inprocess(f"{option}=")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{option} '' is empty; expected {expected}*"])


@pytest.mark.parametrize("value", ["", " , "])
def test_an_empty_regression_rule_stops_pytest_at_start(
    pytester: pytest.Pytester, value: str
) -> None:
    """``--latbench-compare-fail=$LIMITS`` with LIMITS unset used to give no rule at all: the
    comparison ran and no regression could fail the run."""
    baseline = _results_file(pytester.path / "base.json", [])
    pytester.makepyfile(test_one="def test_one(latbench):\n    raise AssertionError('not run')\n")
    result = pytester.runpytest_inprocess(
        f"--latbench-compare={baseline}", f"--latbench-compare-fail={value}"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*--latbench-compare-fail {value!r} is empty; expected STAT:LIMIT such as median:10%*"]
    )


def test_the_results_file_may_not_be_the_baseline(pytester: pytest.Pytester) -> None:
    """Writing the results over the baseline they are compared with used to replace it at
    the end of every run, so a regression became the next run's baseline and passed."""
    baseline = _results_file(pytester.path / "base.json", [_entry("test_one.py::test_one", [1.0])])
    before = baseline.read_text(encoding="utf-8")
    pytester.makepyfile(test_one="def test_one(latbench):\n    raise AssertionError('not run')\n")
    (pytester.path / "sub").mkdir()
    result = pytester.runpytest_inprocess(
        f"--latbench-compare={baseline}", "--latbench-json=sub/../base.json"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*--latbench-json 'sub/../base.json' is the --latbench-compare baseline; writing it "
            "would replace the baseline*; expected another file for --latbench-json*"
        ]
    )
    assert baseline.read_text(encoding="utf-8") == before


# ---- results files and baselines ----------------------------------------------------------------
def test_an_interrupted_run_is_marked_and_refused_as_a_baseline(pytester: pytest.Pytester) -> None:
    """The results file of a run stopped by Ctrl-C used to look complete: as a baseline, the
    tests after the interrupt were "new" and passed ``--latbench-compare-fail`` unmeasured."""
    pytester.makepyfile(
        test_one="""
        def test_a(latbench):
            pass

        def test_b(latbench):
            raise KeyboardInterrupt

        def test_c(latbench):
            pass
        """
    )
    out = pytester.path / "partial.json"
    # in a subprocess: an in-process pytester raises the inner KeyboardInterrupt again
    result = pytester.runpytest_subprocess(*FAST, f"--latbench-json={out}")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*wrote *partial.json (partial: the run was interrupted;*"])
    assert json.loads(out.read_text(encoding="utf-8"))["interrupted"] is True
    with pytest.raises(DatasetError, match=r"partial\.json' was written by an interrupted run"):
        load_baseline(out)
    again = pytester.runpytest_inprocess(*FAST, "-k", "test_a", f"--latbench-compare={out}")
    assert again.ret == pytest.ExitCode.USAGE_ERROR
    again.stderr.fnmatch_lines(["*interrupted run*; expected the results of a complete run*"])
    # a complete run is no partial one, and loads as a baseline
    complete = pytester.path / "complete.json"
    pytester.runpytest_inprocess(*FAST, "-k", "test_a", f"--latbench-json={complete}")
    assert json.loads(complete.read_text(encoding="utf-8"))["interrupted"] is False
    assert load_baseline(complete) == {}


def test_a_results_folder_removed_during_the_run_keeps_the_results(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder of ``--latbench-json`` removed by a test used to end the run in a
    ``FileNotFoundError`` traceback: no summary table, no results, exit status of a crash."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the results are rescued
    tiny_onnx(pytester.path / "tiny.onnx")
    (pytester.path / "out").mkdir()
    pytester.makepyfile(
        test_rm="""
        import shutil

        def test_one(latbench):
            latbench.check("tiny.onnx", median_ms=1000)
            shutil.rmtree("out")
        """
    )
    result = pytester.runpytest_inprocess(*FAST, "--latbench-json=out/r.json")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "test_one *PASS",
            "latbench: could not write --latbench-json 'out/r.json' (*No such file or "
            "directory*); the results were written to *latbench-results-*.json instead "
            "(expected 'out/r.json' to stay writable until the run ends)",
        ]
    )
    (rescued,) = tmp_path.glob("latbench-results-*.json")
    assert list(load_baseline(rescued)) == ["test_rm.py::test_one"]


def test_a_baseline_entry_that_is_no_object_is_named(tmp_path: Path) -> None:
    """Used to read ``results[0] is malformed (string indices must be integers, not 'str')``."""
    path = _results_file(tmp_path / "b.json", ["test_x.py::test_a"])
    with pytest.raises(
        DatasetError,
        match=r"results\[0\] is malformed \(a JSON str; expected an object with fullname and "
        r"measurement\)",
    ):
        load_baseline(path)


def test_a_test_twice_in_a_baseline_is_refused(tmp_path: Path) -> None:
    """Two results of one test (files merged by hand) used to keep the last without a word."""
    path = _results_file(
        tmp_path / "b.json", [_entry("t.py::test_a", [1.0]), _entry("t.py::test_a", [2.0])]
    )
    with pytest.raises(
        DatasetError,
        match=r"results\[1\] is malformed \(fullname 't.py::test_a' is also results\[0\]'s; "
        r"expected each test once\)",
    ):
        load_baseline(path)


# ---- latbench measure -------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["", "  "])
def test_measure_an_empty_target_is_named(capsys: pytest.CaptureFixture[str], target: str) -> None:
    """``latbench measure ""`` (an unset variable) used to say ``model file '.' is a
    directory``."""
    rc = main(["measure", target])
    err = capsys.readouterr().err
    assert rc == 2
    assert (
        f"TARGET {target!r} is empty; expected a .onnx/.tflite/.pt/.pt2 file or SPACE:ARCH" in err
    )


def test_a_failed_measurement_reports_its_runtime_without_empty_settings() -> None:
    """A measurement that failed before the runtime loaded used to print ``runtime
    onnxruntime  ()``."""
    text = format_measurement(Measurement.failed("timed out", runtime="onnxruntime"), "m.onnx")
    assert "runtime   onnxruntime\n" in text and "()" not in text
    assert "FAILED    timed out" in text


def test_measure_a_model_path_that_is_no_regular_file_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``/dev/null`` (or a FIFO) exists: it used to be reported as a file that "does not
    exist"."""
    rc = main(["measure", "/dev/null", "--runtime", "onnxruntime"])
    err = capsys.readouterr().err
    assert rc != 0
    assert "model file '/dev/null' is not a regular file (a device, pipe or socket)" in err


def test_measure_cpus_this_process_may_not_use_names_the_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``--cpus 99`` used to be reported as the device's ``cpus = '99'`` setting."""
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    far = max(os.sched_getaffinity(0)) + 64
    rc = main(["measure", str(model), "--cpus", str(far)])
    err = capsys.readouterr().err
    assert rc != 0
    assert f"--cpus '{far}' names CPU {far}, which this process may not use" in err


def test_a_long_runtime_message_is_cut_at_a_sentence_and_says_so() -> None:
    """torch's message about a file that is no zip archive used to stop mid-sentence ("or the
    file was "): a message longer than the limit ends at a sentence and says it was cut."""
    exc = RuntimeError(
        "PytorchStreamReader failed reading zip archive: not a ZIP archive. "
        "This is an internal miniz error. "
        + "If you are seeing this error, it was saved badly. "
        * 8
    )
    text = _runtime_message(exc, 120)
    assert len(text) <= 120
    assert text == (
        "PytorchStreamReader failed reading zip archive: not a ZIP archive. "
        "This is an internal miniz error. ..."
    )
    assert _runtime_message(RuntimeError("short; clear"), 120) == "short; clear"
