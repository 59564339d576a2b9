"""The ``latbench`` pytest plugin: keep latency regressions out of continuous integration.

Installed with latbench and registered through the ``pytest11`` entry point, so any project that
has latbench installed gets the ``latbench`` fixture::

    def test_classifier_is_fast_enough(latbench):
        m = latbench.measure("model.onnx")                 # or "nb201:|nor_conv_3x3~0|+|...|"
        latbench.assert_budget(m, median_ms=5.0, p90_ms=8.0)

    def test_in_one_line(latbench):
        latbench.check("model.onnx", median_ms=5.0)        # measure + assert_budget

A measurement is a real :class:`~latbench.profilers.record.Measurement` taken by a latbench
device (``local`` by default: a worker process pinned to an idle CPU), so budgets are judged on
the median of many timed runs, never on one noisy run. A test fails when a statistic exceeds its
budget (or when the measurement itself failed); the terminal shows a table like
pytest-benchmark's (name, min, median, IQR, p90, runs, budget, status).

Command-line options (``pytest --help``, group "latbench"): ``--latbench-device``,
``--latbench-runtime``, ``--latbench-threads``, ``--latbench-min-runs``, ``--latbench-min-time``,
``--latbench-max-time``, ``--latbench-budget-scale`` (multiply every budget, e.g. for a slower CI
runner), ``--latbench-json`` (write every measurement with its raw samples) and
``--latbench-config`` (a bench.toml naming remote devices).

Why this module imports almost nothing at load time: pytest loads every ``pytest11`` plugin in
every run of every project where latbench is installed, so the heavy parts (numpy, onnxruntime,
the device layer) are imported only when a test first asks for the fixture.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover - typing only, keeps plugin load light
    from latbench.config import Config
    from latbench.devices.base import Device
    from latbench.profilers.record import Measurement

__all__ = ["BudgetResult", "LatbenchFixture", "LatbenchSession"]

#: Statistics a budget may bound, all in milliseconds (``Measurement`` properties).
BUDGET_STATS = ("median_ms", "min_ms", "mean_ms", "p90_ms", "p99_ms", "iqr_ms")
#: The model format each runtime measures, for models given as ``space:arch``.
RUNTIME_FORMATS = {"onnxruntime": "onnx", "litert": "tflite", "torch": "torch"}
_SUFFIXES = {"onnx": ".onnx", "tflite": ".tflite", "torch": ".pt2"}

_SESSION_KEY = pytest.StashKey["LatbenchSession"]()


# ---- options ---------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("latbench", "latency budgets measured by latbench")
    group.addoption(
        "--latbench-device",
        default="local",
        help="device to measure on: local or a [devices.NAME] of --latbench-config "
        "(default: local)",
    )
    group.addoption(
        "--latbench-runtime",
        default=None,
        help="runtime: onnxruntime, litert or torch (default: the config's, else onnxruntime)",
    )
    group.addoption(
        "--latbench-threads", type=int, default=None, help="intra-op threads (default: 1)"
    )
    group.addoption(
        "--latbench-min-runs",
        type=int,
        default=None,
        help="minimum timed runs per measurement (default: the config's, else 20)",
    )
    group.addoption(
        "--latbench-min-time",
        type=float,
        default=None,
        help="minimum timing window in seconds (default: the config's, else 1.0)",
    )
    group.addoption(
        "--latbench-max-time",
        type=float,
        default=None,
        help="maximum timing window in seconds (default: the config's, else 10.0)",
    )
    group.addoption(
        "--latbench-budget-scale",
        type=float,
        default=1.0,
        help="multiply every budget by this factor (e.g. 1.5 on a slower CI runner)",
    )
    group.addoption(
        "--latbench-json",
        default=None,
        metavar="PATH",
        help="write every measurement (raw samples, budget, verdict) to this JSON file",
    )
    group.addoption(
        "--latbench-config",
        default=None,
        metavar="PATH",
        help="bench.toml with [devices.*] and [measure] (default: $LATBENCH_CONFIG, ./bench.toml)",
    )


def pytest_configure(config: pytest.Config) -> None:
    from latbench._validate import out_of_range

    bad = out_of_range(
        (option, config.getoption(option), rule)
        for option, rule in (
            ("--latbench-budget-scale", {"positive": True}),
            ("--latbench-min-runs", {"integer": True, "low": 0}),
            ("--latbench-min-time", {"low": 0}),
            ("--latbench-max-time", {"positive": True}),
            ("--latbench-threads", {"integer": True, "low": 1}),
        )
    )
    if bad is not None:
        raise pytest.UsageError(bad[1])
    lo, hi = config.getoption("--latbench-min-time"), config.getoption("--latbench-max-time")
    if lo is not None and hi is not None and hi < lo:
        raise pytest.UsageError(
            f"--latbench-max-time {hi:g} is below --latbench-min-time {lo:g}; expected a "
            "maximum of at least the minimum"
        )
    _check_names(config)
    json_path = config.getoption("--latbench-json")
    if json_path and not Path(json_path).parent.is_dir():
        # refused now rather than after every measurement of the run
        raise pytest.UsageError(
            f"--latbench-json {json_path!r}: directory {str(Path(json_path).parent)!r} does not "
            "exist; create it first"
        )
    config.stash[_SESSION_KEY] = LatbenchSession(config)


def _check_names(config: pytest.Config) -> None:
    """A config file, device or runtime given on the command line that does not exist is a
    usage error at start, not the same traceback in every test that measures."""
    path = config.getoption("--latbench-config")
    device = config.getoption("--latbench-device")
    runtime = config.getoption("--latbench-runtime")
    if not path and (not device or device == "local") and not runtime:
        return  # nothing given: nothing to import (the plugin loads in every pytest run)
    from latbench.config import load_config
    from latbench.errors import LatbenchError

    try:
        cfg = load_config(path) if path else None
        if device and device != "local":
            (cfg or load_config(None)).device(device)
        if runtime:
            from latbench.profilers.runtimes import RUNTIMES

            RUNTIMES.get(runtime)
    except LatbenchError as exc:
        raise pytest.UsageError(f"latbench: {exc}") from None


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(_SESSION_KEY, None)
    if session is not None:
        session.close()


# ---- results -----------------------------------------------------------------------------------
@dataclass
class BudgetResult:
    """One measurement taken in a test, with the budget it was checked against (if any)."""

    name: str
    model: str
    measurement: Measurement
    budgets_ms: dict[str, float] = field(default_factory=dict)
    status: str = "measured"  # measured | pass | over | failed
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        m = self.measurement
        return {
            "name": self.name,
            "model": self.model,
            "status": self.status,
            "message": self.message,
            "budgets_ms": dict(self.budgets_ms),
            "stats": m.summary(),
            "verdict": _jsonable(m.verdict()),
            "measurement": m.to_dict(),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class LatbenchSession:
    """Per pytest run: the configured settings, the open devices, and every result."""

    def __init__(self, config: pytest.Config) -> None:
        self.pytest_config = config
        self.results: list[BudgetResult] = []
        self._devices: dict[str, Device] = {}
        self._config: Config | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._emitted: dict[tuple[str, str], str] = {}

    # settings ---------------------------------------------------------------------------------
    def opt(self, name: str) -> Any:
        return self.pytest_config.getoption(name)

    @property
    def bench_config(self) -> Config:
        if self._config is None:
            from latbench.config import load_config

            self._config = load_config(self.opt("--latbench-config"))
        return self._config

    def settings(self, overrides: dict[str, Any], device: str = "local") -> Any:
        """HarnessSettings from bench.toml ``[measure]`` with ``device``'s own table over it
        (``Config.measure_for``, as every command reads them), then the options, then
        ``overrides``."""
        from latbench.profilers.harness import HARNESS_KEYS, HarnessSettings

        values = self.bench_config.measure_for(device)
        for key, option in (
            ("min_runs", "--latbench-min-runs"),
            ("min_time_s", "--latbench-min-time"),
            ("max_time_s", "--latbench-max-time"),
        ):
            if self.opt(option) is not None:
                values[key] = self.opt(option)
        unknown = sorted(set(overrides) - HARNESS_KEYS)
        if unknown:
            raise TypeError(
                f"unknown harness setting(s) {unknown}; expected some of "
                f"{', '.join(sorted(HARNESS_KEYS))}"
            )
        given_max = "max_time_s" in overrides or self.opt("--latbench-max-time") is not None
        values.update(overrides)
        if values.get("max_time_s", 0) < values.get("min_time_s", 0):
            if given_max:  # both chosen: a contradiction to name, not to resolve silently
                raise ValueError(
                    f"max_time_s = {values['max_time_s']:g} is below min_time_s = "
                    f"{values['min_time_s']:g}; expected a maximum of at least the minimum"
                )
            values["max_time_s"] = values["min_time_s"]  # a minimum alone raises the maximum
        return HarnessSettings.from_mapping(values)

    def device(self, name: str) -> Device:
        if name not in self._devices:
            from latbench.devices import get_device

            self._devices[name] = get_device(name, self.bench_config)
        return self._devices[name]

    def model_file(self, model: str | os.PathLike[str], runtime: str) -> str:
        """A model file for ``model``: a path as is, or ``space:arch`` emitted once per run."""
        text = os.fspath(model)
        if os.path.exists(text) or ":" not in text:
            return text
        space_name, _, arch = text.partition(":")
        fmt = RUNTIME_FORMATS.get(runtime, "onnx")
        key = (text, fmt)
        if key not in self._emitted:
            from latbench.spaces import export, get_space

            space = get_space(space_name)
            graph = space.build(space.canonical(arch))
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="latbench-pytest-")
            path = Path(self._tmp.name) / f"{space_name}-{space.arch_id(arch)}{_SUFFIXES[fmt]}"
            export(graph, fmt, path, seed=0)
            self._emitted[key] = str(path)
        return self._emitted[key]

    def close(self) -> None:
        for dev in self._devices.values():
            dev.close()
        self._devices.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class LatbenchFixture:
    """What the ``latbench`` fixture gives a test: ``measure``, ``assert_budget``, ``check``."""

    def __init__(self, session: LatbenchSession, node_name: str) -> None:
        self._session = session
        self._node_name = node_name
        self.results: list[BudgetResult] = []

    @property
    def device_name(self) -> str:
        return str(self._session.opt("--latbench-device"))

    @property
    def runtime(self) -> str:
        chosen = self._session.opt("--latbench-runtime")
        return str(chosen or self._session.bench_config.measure.get("runtime") or "onnxruntime")

    def _runtime_for(self, model: str | os.PathLike[str], device: str) -> str:
        """As ``latbench measure`` chooses: ``--latbench-runtime``, else the file's suffix
        (``.tflite``: litert), else the device table's ``runtime``, else ``[measure]``'s."""
        from latbench.commands.measure import SUFFIX_RUNTIME

        chosen = self._session.opt("--latbench-runtime")
        if chosen:
            return str(chosen)
        by_suffix = SUFFIX_RUNTIME.get(Path(os.fspath(model)).suffix.lower())
        if by_suffix:
            return by_suffix
        table = self._session.bench_config.devices.get(device, {})
        return str(table.get("runtime") or self.runtime)

    def measure(
        self,
        model: str | os.PathLike[str],
        *,
        device: str | None = None,
        runtime: str | None = None,
        threads: int | None = None,
        batch: int | None = None,
        name: str | None = None,
        **settings: Any,
    ) -> Measurement:
        """Measure ``model`` (a model file or ``space:arch``) and record it for the summary.

        ``device`` and ``runtime`` default to ``--latbench-device`` / ``--latbench-runtime``;
        extra keyword arguments are harness settings (``min_runs=50``, ``min_time_s=2.0``, ...)
        that override the options for this measurement. A measurement that fails on the device
        is returned (``m.ok`` is False) and later fails :meth:`assert_budget`.
        """
        dev_name = device or self.device_name
        rt = runtime or self._runtime_for(model, dev_name)
        n_threads = threads if threads is not None else self._session.opt("--latbench-threads")
        if n_threads is None:
            n_threads = int(self._session.bench_config.measure.get("threads") or 1)
        path = self._session.model_file(model, rt)
        m = self._session.device(dev_name).measure(
            path,
            runtime=rt,
            threads=n_threads,
            batch=batch,
            settings=self._session.settings(settings, dev_name),
        )
        label = name or self._node_name
        taken = {r.name for r in self._session.results}
        if label in taken:
            label = f"{label}[{os.fspath(model)}]"
            n = 2
            while label in taken:  # the same model measured again in one test: #2, #3, ...
                label = f"{name or self._node_name}[{os.fspath(model)}#{n}]"
                n += 1
        result = BudgetResult(name=label, model=os.fspath(model), measurement=m)
        if not m.ok:
            result.status = "failed"
            result.message = f"measurement failed: {m.error}"
        self.results.append(result)
        self._session.results.append(result)
        return m

    def assert_budget(self, m: Measurement, **budgets_ms: float) -> None:
        """Fail the test when a statistic of ``m`` exceeds its budget (milliseconds).

        Budgets are keyword arguments named after the statistic: ``median_ms``, ``min_ms``,
        ``mean_ms``, ``p90_ms``, ``p99_ms``, ``iqr_ms``; each is multiplied by
        ``--latbench-budget-scale``. A failed measurement fails the test whatever the budget.
        """
        if not budgets_ms:
            raise TypeError(
                f"assert_budget() needs at least one budget, e.g. median_ms=5.0; "
                f"expected some of {', '.join(BUDGET_STATS)}"
            )
        unknown = sorted(set(budgets_ms) - set(BUDGET_STATS))
        if unknown:
            raise TypeError(
                f"unknown budget(s) {unknown}; expected some of {', '.join(BUDGET_STATS)} "
                "(all in milliseconds)"
            )
        from latbench._validate import expected_number

        bad = {k: v for k, v in budgets_ms.items() if expected_number(v, positive=True)}
        if bad:
            raise ValueError(
                f"budget(s) {bad}; expected milliseconds > 0 (a budget of 0 or less fails every "
                "measurement)"
            )
        scale = float(self._session.opt("--latbench-budget-scale") or 1.0)
        scaled = {k: float(v) * scale for k, v in budgets_ms.items()}
        result = next((r for r in reversed(self.results) if r.measurement is m), None)
        if result is None:  # a Measurement taken elsewhere: record it now
            result = BudgetResult(name=self._node_name, model=m.model_path, measurement=m)
            self.results.append(result)
            self._session.results.append(result)
        result.budgets_ms = scaled
        where = f"{result.model} on {m.device}/{m.runtime}"
        if not m.ok:
            result.status = "failed"
            result.message = f"measurement of {where} failed: {m.error}"
            pytest.fail(result.message, pytrace=False)
        over = [
            f"{k.removesuffix('_ms')} {getattr(m, k):.4g} ms > budget {v:.4g} ms"
            for k, v in scaled.items()
            if getattr(m, k) > v
        ]
        figures = (
            f"min {m.min_ms:.4g} ms, median {m.median_ms:.4g} ms "
            f"(95% CI {m.ci_median_ms[0]:.4g}-{m.ci_median_ms[1]:.4g}), IQR {m.iqr_ms:.4g} ms, "
            f"p90 {m.p90_ms:.4g} ms, {m.runs} runs"
        )
        if over:
            verdict = m.verdict()
            note = (
                "" if verdict["stable"] else f"; note: unstable ({'; '.join(verdict['reasons'])})"
            )
            result.status = "over"
            result.message = f"latency budget exceeded for {where}: {', '.join(over)} [{figures}]"
            pytest.fail(result.message + note, pytrace=False)
        result.status = "pass"
        result.message = figures

    def check(
        self, model: str | os.PathLike[str], *, median_ms: float | None = None, **kw: Any
    ) -> Measurement:
        """Measure ``model`` and assert its budgets in one call; returns the measurement.

        Keyword arguments named like a budget (``median_ms``, ``p90_ms``, ...) are budgets; the
        rest go to :meth:`measure`.
        """
        budgets = {k: kw.pop(k) for k in list(kw) if k in BUDGET_STATS}
        if median_ms is not None:
            budgets["median_ms"] = median_ms
        if not budgets:  # before measuring: a check without a budget checks nothing
            raise TypeError(
                f"check() needs at least one budget, e.g. median_ms=5.0; expected some of "
                f"{', '.join(BUDGET_STATS)}"
            )
        m = self.measure(model, **kw)
        self.assert_budget(m, **budgets)
        return m


@pytest.fixture
def latbench(request: pytest.FixtureRequest) -> LatbenchFixture:
    """Measure models on a latbench device and fail the test when a latency budget is exceeded.

    ``latbench.measure(model)`` then ``latbench.assert_budget(m, median_ms=...)``, or
    ``latbench.check(model, median_ms=...)``. See ``docs/pytest-plugin.md``.
    """
    session = request.config.stash[_SESSION_KEY]
    return LatbenchFixture(session, request.node.name)


# ---- reporting --------------------------------------------------------------------------------
def _fmt(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else "-"


def summary_rows(results: list[BudgetResult]) -> tuple[list[str], list[list[str]]]:
    """The summary table: header and one row per result (times in ms)."""
    header = ["Name (time in ms)", "Min", "Median", "IQR", "P90", "Runs", "Budget", "Status"]
    rows = []
    for r in results:
        m = r.measurement
        budget = ", ".join(f"{k.removesuffix('_ms')}<={v:.4g}" for k, v in r.budgets_ms.items())
        if m.ok:
            stats = [_fmt(m.min_ms), _fmt(m.median_ms), _fmt(m.iqr_ms), _fmt(m.p90_ms)]
            runs = str(m.runs)
        else:
            stats, runs = ["-"] * 4, "0"
        status = {"pass": "PASS", "over": "OVER", "failed": "FAILED"}.get(r.status, "-")
        rows.append([r.name, *stats, runs, budget or "-", status])
    return header, rows


def format_table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    return [line(header), "-" * len(line(header)), *(line(r) for r in rows)]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    session = config.stash.get(_SESSION_KEY, None)
    if session is None or not session.results:
        return
    first = session.results[0].measurement
    devices = sorted({r.measurement.device for r in session.results})
    runtimes = sorted({r.measurement.runtime for r in session.results})
    title = (
        f"latbench: {len(session.results)} measurement(s) on {', '.join(devices)} "
        f"with {', '.join(runtimes)} {first.runtime_version}".rstrip()
    )
    terminalreporter.write_sep("-", title)
    header, rows = summary_rows(session.results)
    for text in format_table(header, rows):
        terminalreporter.write_line(text)
    unstable = [r.name for r in session.results if r.measurement.ok and not _stable(r)]
    if unstable:
        terminalreporter.write_line(
            f"unstable measurement(s): {', '.join(unstable)} (see the verdict in --latbench-json; "
            "raise --latbench-min-time or pin an idle CPU)"
        )
    path = config.getoption("--latbench-json")
    if path:
        payload = {"results": [r.to_dict() for r in session.results]}
        Path(path).write_text(json.dumps(payload, indent=1, sort_keys=True), encoding="utf-8")
        terminalreporter.write_line(f"latbench: wrote {path}")


def _stable(r: BudgetResult) -> bool:
    return bool(r.measurement.verdict()["stable"])
