"""The plugin's baseline comparison: ``--latbench-compare`` and ``--latbench-compare-fail``.

The rules, the loading of a baseline and the comparison are checked on records built here (exact
numbers); two real pytester runs check that a regression fails the run and that a baseline from
another setup is refused with the difference named.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latbench.errors import ConfigError, DatasetError, SchemaVersionError
from latbench.profilers.record import Measurement
from latbench.pytest_plugin import (
    RESULTS_FORMAT,
    RegressionRule,
    compare_with_baseline,
    load_baseline,
    parse_compare_fail,
)
from plugin_helpers import FAST, tiny_onnx

pytest_plugins = ["pytester"]


def record(samples: list[float], **kw: object) -> Measurement:
    base = {
        "runtime": "onnxruntime",
        "runtime_version": "1.0",
        "device_fingerprint": "abc",
        "threads": 1,
        "input_shapes": {"x": [1, 64]},
    }
    base.update(kw)
    return Measurement(samples_ms=samples, **base)  # type: ignore[arg-type]


# ---- rules -----------------------------------------------------------------------------------
def test_rules_parse_percent_and_milliseconds() -> None:
    rules = parse_compare_fail(["median:10%,p90:0.5ms", " min_ms : 0% "])
    assert rules == [
        RegressionRule("median_ms", 10.0, "%"),
        RegressionRule("p90_ms", 0.5, "ms"),
        RegressionRule("min_ms", 0.0, "%"),
    ]
    assert [str(r) for r in rules] == ["median:10%", "p90:0.5ms", "min:0%"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("median", "'median'; expected STAT:LIMIT with STAT one of median, min, mean, p90"),
        ("latency:10%", "'latency:10%'; expected STAT:LIMIT"),
        ("median:10", "limit '10' has no unit; expected a percentage (10%) or milliseconds (10ms)"),
        ("median:-5%", "limit '-5%'; expected a number >= 0 with its unit"),
        ("p90:1s", "limit '1s'; expected a number >= 0 with its unit"),
        ("median:nan%", "limit 'nan%'; expected a number >= 0"),
    ],
)
def test_a_bad_rule_names_the_value_and_the_form(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_compare_fail([spec])
    assert message in str(err.value)


# ---- comparison ------------------------------------------------------------------------------
def test_a_growth_beyond_the_limit_is_a_regression_in_either_unit() -> None:
    base, now = record([1.0, 1.0, 1.0]), record([1.2, 1.2, 1.2])
    c = compare_with_baseline(now, base, parse_compare_fail(["median:10%"]))
    assert c.state == "compared" and c.changes["median_ms"] == (1.0, 1.2)
    assert c.regressions == ("median 1.2 ms vs 1 ms in the baseline (+20% > median:10%)",), (
        c.regressions
    )
    assert c.change_text() == "+20.0% REGRESSED"
    # the same growth within a looser limit, and in milliseconds
    assert compare_with_baseline(now, base, parse_compare_fail(["median:25%"])).regressions == ()
    assert compare_with_baseline(now, base, parse_compare_fail(["median:0.3ms"])).regressions == ()
    assert len(compare_with_baseline(now, base, parse_compare_fail(["min:0.1ms"])).regressions) == 1
    # faster is never a regression, and without rules the change is only shown
    faster = compare_with_baseline(base, now, parse_compare_fail(["median:0%"]))
    assert faster.regressions == () and faster.change_text() == "-16.7%"


@pytest.mark.parametrize(
    ("changed", "reason"),
    [
        ({"device_fingerprint": "other"}, "device_fingerprint 'abc' in the baseline, 'other' now"),
        ({"runtime_version": "2.0"}, "runtime_version '1.0' in the baseline, '2.0' now"),
        ({"runtime": "litert"}, "runtime 'onnxruntime' in the baseline, 'litert' now"),
        ({"threads": 4}, "threads 1 in the baseline, 4 now"),
        ({"batch": 8}, "batch 1 in the baseline, 8 now"),
        (
            {"input_shapes": {"x": [1, 128]}},
            "input_shapes {'x': [1, 64]} in the baseline, {'x': [1, 128]} now",
        ),
    ],
)
def test_another_machine_or_setup_is_refused_with_the_difference(
    changed: dict[str, object], reason: str
) -> None:
    base = record([1.0, 1.0])
    c = compare_with_baseline(record([9.0, 9.0], **changed), base, parse_compare_fail(["min:1%"]))
    assert c.state == "incomparable" and c.reasons == (reason,)
    assert c.regressions == () and c.change_text() == "incomparable"


def test_another_model_file_is_compared_new_and_failed_are_not() -> None:
    rules = parse_compare_fail(["median:1%"])
    changed_model = record([2.0], model_sha256="new")
    assert compare_with_baseline(
        changed_model, record([1.0], model_sha256="old"), rules
    ).regressions
    assert compare_with_baseline(record([1.0]), None, rules).state == "new"
    failed = Measurement.failed("worker crashed")
    assert compare_with_baseline(failed, record([1.0]), rules).state == "failed"
    assert compare_with_baseline(record([1.0]), failed, rules).reasons == (
        "the baseline's measurement failed",
    )


# ---- loading ---------------------------------------------------------------------------------
def _payload(**kw: object) -> dict[str, object]:
    entry = {
        "name": "test_a",
        "fullname": "test_x.py::test_a",
        "measurement": record([1.0]).to_dict(),
    }
    d: dict[str, object] = {"format": RESULTS_FORMAT, "version": 1, "results": [entry]}
    d.update(kw)
    return d


def test_a_baseline_loads_by_fullname(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    path.write_text(json.dumps(_payload()), encoding="utf-8")
    loaded = load_baseline(path)
    assert list(loaded) == ["test_x.py::test_a"] and loaded["test_x.py::test_a"] == record([1.0])


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        (None, DatasetError, "does not exist; expected a results file written by --latbench-json"),
        (b'{"format": "latbench-pytest-results", "vers', DatasetError, "is not JSON (line 1"),
        (b"\xff\xfe\x00", DatasetError, "is not text"),
        (b'{"benchmarks": []}', DatasetError, "not a latbench results file (no format field)"),
        (b"[1, 2]", DatasetError, "not a latbench results file (a JSON list)"),
        (b'{"results": []}', DatasetError, "written by an older latbench, before results had"),
        (json.dumps(_payload(version=9)).encode(), SchemaVersionError, "version 9, newer than"),
        (json.dumps(_payload(version="1")).encode(), DatasetError, "version '1'; expected an int"),
        (json.dumps(_payload(results={})).encode(), DatasetError, "results dict; expected a list"),
    ],
)
def test_a_corrupt_or_foreign_baseline_says_why(
    tmp_path: Path, content: bytes | None, error: type[Exception], message: str
) -> None:
    path = tmp_path / "base.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error) as err:
        load_baseline(path)
    assert message in str(err.value) and "base.json" in str(err.value)


def test_a_malformed_entry_is_named_by_its_position(tmp_path: Path) -> None:
    payload = _payload()
    entry = payload["results"][0]  # type: ignore[index]
    entry["measurement"]["samples_ms"] = [1.0, -1.0]
    payload["results"] = [dict(entry, fullname="a"), {"name": "b"}]
    path = tmp_path / "base.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"results\[0\] is malformed \(samples_ms\[1\] = -1.0"):
        load_baseline(path)
    payload["results"] = [{"name": "b", "fullname": "b"}]
    path.write_text(json.dumps(payload), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"results\[0\] is malformed \(missing 'measurement'\)"):
        load_baseline(path)


# ---- real runs -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--latbench-compare=nowhere.json"], "--latbench-compare 'nowhere.json' does not exist"),
        (["--latbench-compare-fail=median:5%"], "needs a baseline; expected --latbench-compare"),
        (["--latbench-skip", "--latbench-only"], "--latbench-skip and --latbench-only contradict"),
    ],
)
def test_bad_comparison_options_stop_pytest_at_start(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile(test_one="def test_one(latbench):\n    raise AssertionError('not run')\n")
    result = pytester.runpytest_inprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    tiny_onnx(pytester.path / "tiny.onnx")
    pytester.makepyfile(
        test_lat="""
        def test_one(latbench):
            latbench.check("tiny.onnx", median_ms=1000)

        def test_two(latbench):
            latbench.check("tiny.onnx", median_ms=1000)
        """
    )
    return pytester


def write_baseline(path: Path, samples: dict[str, list[float]], **kw: object) -> Path:
    """A baseline of test_lat.py's tests as this machine measures them (local, onnxruntime,
    1 thread, batch 1), with the given samples and fields."""
    import onnxruntime

    from latbench.config import load_config
    from latbench.devices import get_device

    with get_device("local", load_config(None)) as dev:
        fingerprint = dev.fingerprint()
    same = {
        "device": "local",
        "device_fingerprint": fingerprint,
        "runtime_version": onnxruntime.__version__,
        "batch": 1,
    }
    results = [
        {
            "name": name,
            "fullname": f"test_lat.py::{name}",
            "measurement": record(times, **{**same, **kw}).to_dict(),
        }
        for name, times in samples.items()
    ]
    payload = {"format": RESULTS_FORMAT, "version": 1, "results": results}
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


def test_a_regression_fails_the_run_and_is_saved(project: pytest.Pytester) -> None:
    # test_one's baseline is far faster than anything measured now, test_two's far slower
    baseline = write_baseline(
        project.path / "base.json", {"test_one": [1e-6] * 5, "test_two": [1e6] * 5}
    )
    out = project.path / "now.json"
    result = project.runpytest_inprocess(
        *FAST,
        f"--latbench-compare={baseline}",
        "--latbench-compare-fail=median:50%",
        f"--latbench-json={out}",
    )
    result.assert_outcomes(passed=2)  # every budget holds: the run fails on the regression
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "Name (time in ms)*Status*Vs baseline",
            "test_one *PASS*% REGRESSED",
            "test_two *PASS*-*%",
            "latbench: performance regressed against *base.json (--latbench-compare-fail "
            "median:50%):",
            "  test_one: median * ms vs 1e-06 ms in the baseline (+*% > median:50%)",
        ]
    )
    payload = json.loads(out.read_text(encoding="utf-8"))
    assert payload["format"] == RESULTS_FORMAT and payload["version"] == 1
    saved = {r["fullname"]: r["baseline"] for r in payload["results"]}
    assert saved["test_lat.py::test_one"]["state"] == "compared"
    assert len(saved["test_lat.py::test_one"]["regressions"]) == 1
    assert saved["test_lat.py::test_two"]["regressions"] == []
    # the saved results are a baseline themselves
    assert set(load_baseline(out)) == {"test_lat.py::test_one", "test_lat.py::test_two"}


def test_a_baseline_from_another_setup_is_refused_not_compared(project: pytest.Pytester) -> None:
    baseline = write_baseline(project.path / "base.json", {"test_one": [1e-6] * 5})
    payload = json.loads(baseline.read_text(encoding="utf-8"))
    other = json.loads(json.dumps(payload["results"][0]))
    other.update(name="test_two", fullname="test_lat.py::test_two")
    payload["results"][0]["measurement"]["runtime_version"] = "0.1.0"
    other["measurement"]["device_fingerprint"] = "0000"
    payload["results"].append(other)
    baseline.write_text(json.dumps(payload), encoding="utf-8")
    result = project.runpytest_inprocess(
        *FAST, f"--latbench-compare={baseline}", "--latbench-compare-fail=median:1%"
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "test_one *PASS*incomparable",
            "test_two *PASS*incomparable",
            "latbench: test_one not compared with *base.json (another machine or setup: "
            "runtime_version '0.1.0' in the baseline, '*' now); record the baseline again here",
            "latbench: test_two not compared *(another machine or setup: device_fingerprint "
            "'0000' in the baseline, '*' now)*",
            "latbench: no regression against *base.json (0 compared*",
        ]
    )
