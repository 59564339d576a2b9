"""The plugin in the runs a pytest-benchmark user makes: -k, --co, -x, --latbench-skip and
--latbench-only, tests of one name in several modules, malformed models, and pytest-xdist."""

from __future__ import annotations

import json

import pytest

from latbench.pytest_plugin import RESULTS_FORMAT
from plugin_helpers import FAST, tiny_onnx

pytest_plugins = ["pytester"]

TESTS = """
def test_one(latbench):
    latbench.check("tiny.onnx", median_ms=1000)

def test_plain():
    pass
"""


def test_a_run_without_measurements_still_writes_its_json(pytester: pytest.Pytester) -> None:
    """A file left by an earlier run would otherwise pass for this run's results (a CI step that
    reads it after ``-k`` deselected the latency tests)."""
    pytester.makepyfile(test_lat=TESTS)
    out = pytester.path / "out.json"
    out.write_text('{"stale": true}', encoding="utf-8")
    result = pytester.runpytest_inprocess(*FAST, "-k", "plain", f"--latbench-json={out}")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines([f"latbench: no measurement in this run; wrote {out}"])
    payload = json.loads(out.read_text(encoding="utf-8"))
    assert payload["format"] == RESULTS_FORMAT and payload["version"] == 1
    assert payload["results"] == [] and payload["latbench_version"]
    # collecting runs nothing, and writes nothing
    out.unlink()
    pytester.runpytest_inprocess(*FAST, "--co", f"--latbench-json={out}")
    assert not out.exists()


def test_skip_and_only_select_the_latency_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lat=TESTS)
    result = pytester.runpytest_inprocess(*FAST, "--latbench-skip", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED *test_lat.py*: latency test: --latbench-skip"])
    assert "latbench:" not in result.stdout.str()  # nothing measured, no table
    tiny_onnx(pytester.path / "tiny.onnx")
    result = pytester.runpytest_inprocess(*FAST, "--latbench-only", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["test_one *PASS", "SKIPPED *test_lat.py*: not a latency test: --latbench-only"]
    )


def test_one_name_in_several_modules_keeps_each_test_apart(pytester: pytest.Pytester) -> None:
    """``test_m`` in two classes and two modules: four results, none named as a repeat of
    another, each with its node id as the key a baseline is matched on."""
    tiny_onnx(pytester.path / "tiny.onnx")
    body = "    def test_m(self, latbench):\n        latbench.check('tiny.onnx', median_ms=1000)\n"
    pytester.makepyfile(
        test_a=f"class TestA:\n{body}\nclass TestB:\n{body}",
        test_b="def test_m(latbench):\n    latbench.check('tiny.onnx', median_ms=1000)\n",
    )
    out = pytester.path / "out.json"
    result = pytester.runpytest_inprocess(*FAST, f"--latbench-json={out}", "-x")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "test_a.py::TestA::test_m *PASS",
            "test_a.py::TestB::test_m *PASS",
            "test_b.py::test_m *PASS",
        ]
    )
    assert "[tiny.onnx]" not in result.stdout.str()
    results = json.loads(out.read_text(encoding="utf-8"))["results"]
    assert [(r["name"], r["fullname"]) for r in results] == [
        ("test_m", "test_a.py::TestA::test_m"),
        ("test_m", "test_a.py::TestB::test_m"),
        ("test_m", "test_b.py::test_m"),
    ]


def test_a_shared_name_keeps_each_tests_fullname_whichever_tests_run(
    pytester: pytest.Pytester,
) -> None:
    """Two tests measuring under one ``name=``: each fullname comes from its own test, so it
    is the same when both run and when ``-k`` (or an xdist worker) runs one alone."""
    tiny_onnx(pytester.path / "tiny.onnx")
    body = "    latbench.check('tiny.onnx', median_ms=1000, name='resnet')\n"
    pytester.makepyfile(test_x=f"def test_a(latbench):\n{body}\ndef test_b(latbench):\n{body}")
    out = pytester.path / "out.json"

    def fullnames(*args: str) -> list[str]:
        pytester.runpytest_inprocess(*FAST, f"--latbench-json={out}", *args)
        return [r["fullname"] for r in json.loads(out.read_text(encoding="utf-8"))["results"]]

    assert fullnames() == ["test_x.py::test_a::resnet", "test_x.py::test_b::resnet"]
    assert fullnames("-k", "test_b") == ["test_x.py::test_b::resnet"]


def test_a_malformed_model_fails_on_the_tests_line_with_the_reason(
    pytester: pytest.Pytester,
) -> None:
    """The message says it all: the failure shows the test's line and the error, not pages of
    latbench's own frames; ``pytest.raises(ModelError)`` still catches it."""
    (pytester.path / "bad.onnx").write_bytes(b"not a model")
    pytester.makepyfile(
        test_bad="""
        import pytest
        from latbench.errors import ModelError

        def test_bad(latbench):
            latbench.check("bad.onnx", median_ms=1.0)

        def test_caught(latbench):
            with pytest.raises(ModelError, match="bad.onnx"):
                latbench.measure("bad.onnx")
            assert latbench.results == []

        def test_colon(latbench):
            latbench.measure("models:v2.onnx")
        """
    )
    result = pytester.runpytest_inprocess(*FAST)
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            '>       latbench.check("bad.onnx", median_ms=1.0)',
            "E       latbench.errors.ModelError: 'bad.onnx' is not a valid ONNX model*",
            "test_bad.py:*: ModelError",
            "E       latbench.errors.ModelError: model 'models:v2.onnx': no such file, and "
            "'models' is not a search space; expected a model file or SPACE:ARCH with SPACE one "
            "of fbnet, nb201",
        ]
    )
    out = result.stdout.str()
    assert "latbench/profilers" not in out and "latbench/devices" not in out


WORKER_CONFTEST = """
import json
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # what pytest-xdist sets in a worker
    config.workerinput = {"workerid": "gw3"}
    config.workeroutput = {}

def pytest_unconfigure(config):
    with open("workeroutput.json", "w") as f:
        json.dump(config.workeroutput, f)
"""


def test_an_xdist_worker_sends_its_results_and_writes_nothing(pytester: pytest.Pytester) -> None:
    tiny_onnx(pytester.path / "tiny.onnx")
    pytester.makeconftest(WORKER_CONFTEST)
    pytester.makepyfile(test_lat=TESTS)
    out = pytester.path / "out.json"
    result = pytester.runpytest_inprocess(*FAST, f"--latbench-json={out}")
    result.assert_outcomes(passed=2)
    assert not out.exists() and "latbench:" not in result.stdout.str()
    sent = json.loads(
        json.loads((pytester.path / "workeroutput.json").read_text())["latbench_results"]
    )
    assert sent["worker"] == "gw3"
    assert [r["fullname"] for r in sent["results"]] == ["test_lat.py::test_one"]
    assert sent["results"][0]["measurement"]["samples_ms"]


CONTROLLER_CONFTEST = """
import json
import pytest
from latbench.profilers.record import Measurement
from latbench.pytest_plugin import BudgetResult, pytest_testnodedown

class Node:  # a pytest-xdist worker, as the controller sees it when the worker is done
    def __init__(self, config, worker, runtime, version):
        m = Measurement(samples_ms=[1.0, 2.0, 3.0], runtime=runtime, runtime_version=version)
        result = BudgetResult(
            name="test_m", fullname=f"test_{worker}.py::test_m", model="m", measurement=m,
            budgets_ms={"median_ms": 5.0}, status="pass",
        )
        self.config = config
        self.workeroutput = {
            "latbench_results": json.dumps({"worker": worker, "results": [result.to_dict()]})
        }

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    pytest_testnodedown(Node(session.config, "gw0", "onnxruntime", "1.2"), None)
    pytest_testnodedown(Node(session.config, "gw1", "litert", "2.0"), None)
"""


def test_the_xdist_controller_reports_every_workers_results(pytester: pytest.Pytester) -> None:
    """One table, one JSON file with every worker's results, and a word that the measurements
    ran side by side."""
    pytester.makeconftest(CONTROLLER_CONFTEST)
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    out = pytester.path / "out.json"
    result = pytester.runpytest_inprocess(*FAST, f"--latbench-json={out}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*latbench: 2 measurement(s) on local with litert 2.0, onnxruntime 1.2*",
            "test_gw0.py::test_m *2.0000*3*median<=5*PASS",
            "test_gw1.py::test_m *2.0000*3*median<=5*PASS",
            "latbench: measured by 2 pytest-xdist workers at once, which share this machine's "
            "CPUs*-n 0*",
            f"latbench: wrote {out}",
        ]
    )
    results = json.loads(out.read_text(encoding="utf-8"))["results"]
    assert [r["fullname"] for r in results] == ["test_gw0.py::test_m", "test_gw1.py::test_m"]
    assert results[1]["measurement"]["samples_ms"] == [1.0, 2.0, 3.0]


@pytest.mark.slow
def test_under_real_xdist_the_controller_has_every_result(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    tiny_onnx(pytester.path / "tiny.onnx")
    pytester.makepyfile(
        test_a=TESTS, test_b=TESTS.replace("test_one", "test_two").replace("test_plain", "test_p2")
    )
    out = pytester.path / "out.json"
    result = pytester.runpytest_subprocess(*FAST, "-n", "2", f"--latbench-json={out}")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*latbench: 2 measurement(s) on local*"])
    names = sorted(r["fullname"] for r in json.loads(out.read_text(encoding="utf-8"))["results"])
    assert names == ["test_a.py::test_one", "test_b.py::test_two"]
