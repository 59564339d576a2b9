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
runner), ``--latbench-json`` (write every measurement with its raw samples),
``--latbench-compare`` / ``--latbench-compare-fail`` (compare with a saved ``--latbench-json``
and fail on a regression), ``--latbench-skip`` / ``--latbench-only`` (leave out, or run only, the
tests that use the fixture) and ``--latbench-config`` (a bench.toml naming remote devices).

Under pytest-xdist every worker measures on its own and sends its results to the controller,
which prints the one table, writes the one JSON file and compares with the baseline.

Why this module imports almost nothing at load time: pytest loads every ``pytest11`` plugin in
every run of every project where latbench is installed, so the heavy parts (numpy, onnxruntime,
the device layer) are imported only when a test first asks for the fixture.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from latbench._atomic import same_file, write_text_atomic

if TYPE_CHECKING:  # pragma: no cover - typing only, keeps plugin load light
    from latbench.config import Config
    from latbench.devices.base import Device
    from latbench.profilers.record import Measurement

__all__ = [
    "BudgetResult",
    "Comparison",
    "LatbenchFixture",
    "LatbenchSession",
    "RegressionRule",
    "compare_with_baseline",
    "load_baseline",
    "parse_compare_fail",
]

#: Statistics a budget may bound, all in milliseconds (``Measurement`` properties).
BUDGET_STATS = ("median_ms", "min_ms", "mean_ms", "p90_ms", "p99_ms", "iqr_ms")
#: The model format each runtime measures, for models given as ``space:arch``.
RUNTIME_FORMATS = {"onnxruntime": "onnx", "litert": "tflite", "torch": "torch"}
_SUFFIXES = {"onnx": ".onnx", "tflite": ".tflite", "torch": ".pt2"}
#: What ``--latbench-json`` writes: ``{"format": RESULTS_FORMAT, "version": RESULTS_VERSION, ...}``.
RESULTS_FORMAT = "latbench-pytest-results"
RESULTS_VERSION = 1
#: The fields of two measurements that must agree for their times to be compared: the same
#: hardware (``device_fingerprint`` hashes its identity), runtime and version, and the same
#: measurement (threads, batch, input shapes). The model itself may differ: that is what a
#: baseline comparison is for.
COMPARABLE_FIELDS = (
    "device",
    "device_fingerprint",
    "runtime",
    "runtime_version",
    "threads",
    "batch",
    "input_shapes",
)
_WORKER_KEY = "latbench_results"

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
        "--latbench-compare",
        default=None,
        metavar="PATH",
        help="compare every measurement with the same test's in this --latbench-json file "
        "(a baseline measured on the same device, runtime and version)",
    )
    group.addoption(
        "--latbench-compare-fail",
        action="append",
        default=None,
        metavar="STAT:LIMIT",
        help="with --latbench-compare: fail the run when STAT (min, median, mean, p90, p99, iqr) "
        "grew by more than LIMIT over the baseline, a percentage (median:10%%) or milliseconds "
        "(p90:0.5ms); several separated by commas or by repeating the option",
    )
    group.addoption(
        "--latbench-skip",
        action="store_true",
        default=False,
        help="skip every test that uses the latbench fixture",
    )
    group.addoption(
        "--latbench-only",
        action="store_true",
        default=False,
        help="run only the tests that use the latbench fixture",
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
    _check_empty(config)
    _check_names(config)
    json_path = config.getoption("--latbench-json")
    if json_path:  # refused now rather than after every measurement of the run
        _check_json_path(json_path)
    if config.getoption("--latbench-skip") and config.getoption("--latbench-only"):
        raise pytest.UsageError(
            "--latbench-skip and --latbench-only contradict each other; expected one of them"
        )
    session = LatbenchSession(config)
    compare = config.getoption("--latbench-compare")
    fail = config.getoption("--latbench-compare-fail")
    if compare and json_path and same_file(compare, json_path):
        raise pytest.UsageError(
            f"--latbench-json {json_path!r} is the --latbench-compare baseline; writing it would "
            "replace the baseline with this run's results (a regression would become the next "
            "baseline); expected another file for --latbench-json"
        )
    if fail and not compare:
        raise pytest.UsageError(
            f"--latbench-compare-fail {','.join(fail)} needs a baseline; expected "
            "--latbench-compare PATH too"
        )
    from latbench.errors import LatbenchError

    try:
        session.rules = parse_compare_fail(fail or [])
        if compare and not _is_worker(config):  # the controller compares, once
            session.baseline = load_baseline(compare)
    except LatbenchError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[_SESSION_KEY] = session


#: the options that take a name or a path, and what each expects (for an empty value)
_NAMED_OPTIONS = {
    "--latbench-device": "a device name (local or a [devices.NAME] of --latbench-config)",
    "--latbench-runtime": "a runtime name (onnxruntime, litert or torch)",
    "--latbench-config": "the path of a bench.toml",
    "--latbench-json": "the path of a JSON file to write",
    "--latbench-compare": "the path of a results file written by --latbench-json",
}


def _check_empty(config: pytest.Config) -> None:
    """An option given an empty value (``--latbench-json=$OUT`` with ``OUT`` unset) is a usage
    error: read as "not given" it would silently write no results or compare with nothing,
    and read as a name it fails every test that measures (``unknown device ''``,
    ``config file '.' is a directory``)."""
    for option, expected in _NAMED_OPTIONS.items():
        value = config.getoption(option)
        if value is not None and not str(value).strip():
            raise pytest.UsageError(f"{option} {value!r} is empty; expected {expected}")


def _check_json_path(value: str) -> None:
    """A ``--latbench-json`` path that cannot be written: a directory, a name under a file, a
    folder that does not exist or that this user may not write in."""
    path = Path(value)
    if path.is_dir():
        raise pytest.UsageError(
            f"--latbench-json {value!r} is a directory; expected a file to write"
        )
    if not path.parent.is_dir():
        blocker = next((p for p in path.parents if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise pytest.UsageError(
                f"--latbench-json {value!r}: the parent {str(blocker)!r} is not a directory; "
                "expected an existing directory"
            )
        raise pytest.UsageError(
            f"--latbench-json {value!r}: directory {str(path.parent)!r} does not exist; "
            "create it first"
        )
    if not os.access(path.parent, os.W_OK):
        raise pytest.UsageError(
            f"--latbench-json {value!r}: directory {str(path.parent)!r} is not writable; "
            "expected a directory this user may write in"
        )


def _write_results(value: str, text: str) -> None:
    """Write the results file whole or not at all: a run killed while writing (or a full disk)
    keeps the file already there, which may be the baseline of ``--latbench-compare``."""
    write_text_atomic(value, text)


def _is_worker(config: pytest.Config) -> bool:
    """True in a pytest-xdist worker (it sends its results to the controller)."""
    return hasattr(config, "workerinput")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--latbench-skip`` / ``--latbench-only``: mark the tests with or without the fixture."""
    skip, only = config.getoption("--latbench-skip"), config.getoption("--latbench-only")
    if not (skip or only):
        return
    for item in items:
        uses = "latbench" in getattr(item, "fixturenames", ())
        if skip and uses:
            item.add_marker(pytest.mark.skip(reason="latency test: --latbench-skip"))
        elif only and not uses:
            item.add_marker(pytest.mark.skip(reason="not a latency test: --latbench-only"))


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
    """One measurement taken in a test, with the budget it was checked against (if any).

    ``name`` is what the table shows (the test's name, ``name=`` of :meth:`LatbenchFixture.
    measure`, ``[model]`` / ``[model#2]`` for a repeat in one test); ``fullname`` is unique in a
    run and stable across runs (the test's node id with ``name`` in place of the test's name),
    the key a baseline comparison matches results on.
    """

    name: str
    model: str
    measurement: Measurement
    budgets_ms: dict[str, float] = field(default_factory=dict)
    status: str = "measured"  # measured | pass | over | failed
    message: str = ""
    fullname: str = ""

    def __post_init__(self) -> None:
        self.fullname = self.fullname or self.name

    def to_dict(self) -> dict[str, Any]:
        m = self.measurement
        return {
            "name": self.name,
            "fullname": self.fullname,
            "model": self.model,
            "status": self.status,
            "message": self.message,
            "budgets_ms": dict(self.budgets_ms),
            "stats": _jsonable(m.summary()),
            "verdict": _jsonable(m.verdict()),
            "measurement": m.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BudgetResult:
        """The result :meth:`to_dict` wrote (as a pytest-xdist worker sends it)."""
        from latbench.profilers.record import Measurement

        return cls(
            name=str(d["name"]),
            fullname=str(d.get("fullname") or d["name"]),
            model=str(d.get("model", "")),
            measurement=Measurement.from_dict(d["measurement"]),
            budgets_ms={str(k): float(v) for k, v in dict(d.get("budgets_ms") or {}).items()},
            status=str(d.get("status", "measured")),
            message=str(d.get("message", "")),
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# ---- baseline comparison ---------------------------------------------------------------------
_RULE = re.compile(r"^\s*([a-z0-9_]+)\s*:\s*([^%\s]+?)\s*(%|ms)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class RegressionRule:
    """``median:10%`` or ``p90:0.5ms``: the growth of a statistic over the baseline that fails
    the run (a percentage of the baseline's value, or milliseconds)."""

    stat: str  # one of BUDGET_STATS, e.g. "median_ms"
    limit: float
    unit: str  # "%" or "ms"

    def growth(self, base_ms: float, new_ms: float) -> float:
        """How much ``new_ms`` exceeds ``base_ms``, in this rule's unit."""
        if self.unit == "ms":
            return new_ms - base_ms
        return (new_ms - base_ms) / base_ms * 100.0 if base_ms > 0 else math.inf

    def __str__(self) -> str:
        return f"{self.stat.removesuffix('_ms')}:{self.limit:g}{self.unit}"


def parse_compare_fail(values: list[str] | tuple[str, ...]) -> list[RegressionRule]:
    """The rules of ``--latbench-compare-fail`` values (each may hold several, comma-separated).

    A limit must say its unit (``10%`` or ``0.5ms``): a bare ``0.5`` could be a fraction, a
    percentage or seconds, so it is refused rather than guessed.
    """
    from latbench.errors import ConfigError

    stats = ", ".join(k.removesuffix("_ms") for k in BUDGET_STATS)
    rules = []
    for value in values:
        if not str(value).replace(",", "").strip():  # --latbench-compare-fail=$LIMITS, unset
            raise ConfigError(
                f"--latbench-compare-fail {value!r} is empty; expected STAT:LIMIT such as "
                "median:10% (without a rule, no regression would fail the run)"
            )
        for text in str(value).split(","):
            if not text.strip():
                continue
            match = _RULE.match(text)
            stat = match.group(1).lower() if match else ""
            stat = stat if stat.endswith("_ms") else f"{stat}_ms"
            if match is None or stat not in BUDGET_STATS:
                raise ConfigError(
                    f"--latbench-compare-fail {text.strip()!r}; expected STAT:LIMIT with STAT one "
                    f"of {stats} and LIMIT a percentage (median:10%) or milliseconds (p90:0.5ms)"
                )
            number, unit = match.group(2), match.group(3)
            try:
                limit = float(number)
            except ValueError:
                limit = math.nan
            if unit is None and math.isfinite(limit):
                raise ConfigError(
                    f"--latbench-compare-fail {text.strip()!r}: limit {number!r} has no unit; "
                    f"expected a percentage ({number}%) or milliseconds ({number}ms)"
                )
            if unit is None or not math.isfinite(limit) or limit < 0:
                raise ConfigError(
                    f"--latbench-compare-fail {text.strip()!r}: limit {number + (unit or '')!r}; "
                    "expected a number >= 0 with its unit, a percentage (10%) or milliseconds "
                    "(0.5ms)"
                )
            rules.append(RegressionRule(stat, limit, unit.lower()))
    return rules


def load_baseline(path: str | os.PathLike[str]) -> dict[str, Measurement]:
    """The measurements of a ``--latbench-json`` file, by ``fullname``.

    Raises :class:`~latbench.errors.DatasetError` naming the file for a file that is missing,
    not JSON, not a latbench results file, written before results had a format version, written
    by an interrupted run (partial: the tests it lacks would pass as "new"), holding one test
    twice or holding a malformed measurement; :class:`~latbench.errors.SchemaVersionError` for
    a newer version.
    """
    from latbench.errors import DatasetError, SchemaVersionError
    from latbench.profilers.record import Measurement

    where = f"--latbench-compare {os.fspath(path)!r}"
    expected = f'expected a results file written by --latbench-json ("format": "{RESULTS_FORMAT}")'
    p = Path(path)
    if not p.is_file():
        why = "is a directory" if p.is_dir() else "does not exist"
        raise DatasetError(f"{where} {why}; {expected}")
    try:
        payload = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{where} is not text ({exc.reason}); {expected}") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{where} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); {expected}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != RESULTS_FORMAT:
        if isinstance(payload, dict) and "format" not in payload and "results" in payload:
            raise DatasetError(
                f"{where} was written by an older latbench, before results had a format version "
                "and test ids; record the baseline again with --latbench-json"
            )
        if isinstance(payload, dict):
            found = f"format {payload['format']!r}" if "format" in payload else "no format field"
        else:
            found = f"a JSON {type(payload).__name__}"
        raise DatasetError(f"{where} is not a latbench results file ({found}); {expected}")
    version = payload.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DatasetError(f"{where}: version {version!r}; expected an integer >= 1")
    if version > RESULTS_VERSION:
        raise SchemaVersionError(
            f"{where} has version {version}, newer than this latbench reads ({RESULTS_VERSION}); "
            "upgrade latbench or record the baseline again"
        )
    if payload.get("interrupted") is True:
        # the tests after the interrupt are missing: compared as "new", they would pass the
        # regression check unmeasured
        raise DatasetError(
            f"{where} was written by an interrupted run, so it holds only the tests measured "
            "before the interrupt; expected the results of a complete run: record the baseline "
            "again"
        )
    results = payload.get("results")
    if not isinstance(results, list):
        raise DatasetError(f"{where}: results {type(results).__name__}; expected a list")
    out: dict[str, Measurement] = {}
    first: dict[str, int] = {}
    for i, entry in enumerate(results):
        try:
            if not isinstance(entry, dict):
                raise TypeError(
                    f"a JSON {type(entry).__name__}; expected an object with fullname and "
                    "measurement"
                )
            key = entry["fullname"]
            if not isinstance(key, str) or not key:
                raise ValueError(f"fullname {key!r}; expected a test id")
            if key in first:  # two files merged by hand: which one is the baseline?
                raise ValueError(
                    f"fullname {key!r} is also results[{first[key]}]'s; expected each test once"
                )
            out[key] = Measurement.from_dict(entry["measurement"])
            first[key] = i
        except (KeyError, TypeError, ValueError) as exc:
            what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            raise DatasetError(f"{where}: results[{i}] is malformed ({what})") from None
    return out


@dataclass(frozen=True)
class Comparison:
    """One result against the baseline's result of the same ``fullname``.

    ``state``: ``compared``, ``new`` (the baseline has no such test), ``incomparable`` (another
    machine or setup: ``reasons`` says what differs) or ``failed`` (a failed measurement on either
    side: nothing to compare). ``changes`` maps each statistic to ``(baseline_ms, now_ms)``;
    ``regressions`` says which rules were exceeded, and by how much.
    """

    state: str
    changes: dict[str, tuple[float, float]] = field(default_factory=dict)
    regressions: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()

    def change_text(self, stat: str = "median_ms") -> str:
        """The column of the table: ``+12.3%``, or the state when nothing was compared."""
        if self.state != "compared":
            return self.state
        base, now = self.changes[stat]
        text = f"{(now - base) / base * 100:+.1f}%" if base > 0 else f"{now - base:+.4g}ms"
        return f"{text} REGRESSED" if self.regressions else text


def compare_with_baseline(
    now: Measurement, base: Measurement | None, rules: list[RegressionRule]
) -> Comparison:
    """Compare ``now`` with ``base`` (None: not in the baseline) under ``rules``.

    Two measurements are compared only when every :data:`COMPARABLE_FIELDS` agrees; a baseline
    taken on another machine, runtime version, thread count or batch is refused with the
    differences named, since its times say nothing about a regression here.
    """
    if base is None:
        return Comparison("new")
    if not (now.ok and base.ok):
        side = "this run's" if not now.ok else "the baseline's"
        return Comparison("failed", reasons=(f"{side} measurement failed",))
    reasons = tuple(
        f"{key} {_plain(getattr(base, key))!r} in the baseline, {_plain(getattr(now, key))!r} now"
        for key in COMPARABLE_FIELDS
        if _plain(getattr(base, key)) != _plain(getattr(now, key))
    )
    if reasons:
        return Comparison("incomparable", reasons=reasons)
    stats = dict.fromkeys(["median_ms", *(r.stat for r in rules)])
    changes = {k: (float(getattr(base, k)), float(getattr(now, k))) for k in stats}
    regressions = []
    for rule in rules:
        base_ms, now_ms = changes[rule.stat]
        grown = rule.growth(base_ms, now_ms)
        if grown > rule.limit:
            regressions.append(
                f"{rule.stat.removesuffix('_ms')} {now_ms:.4g} ms vs {base_ms:.4g} ms in the "
                f"baseline (+{grown:.4g}{rule.unit} > {rule})"
            )
    return Comparison("compared", changes=changes, regressions=tuple(regressions))


def _plain(value: Any) -> Any:
    """``value`` with frozen containers as plain ones (so the repr in a reason reads plainly)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _model_text(model: Any) -> str:
    """``model`` as a path string; anything that is no path (None, a number, an empty string
    that would read as the current directory) is refused by its value."""
    from latbench.errors import ModelError

    try:
        text = os.fspath(model)
    except TypeError:
        text = None
    if not isinstance(text, str) or not text.strip():
        raise ModelError(
            f"model {model!r}; expected a model file path (.onnx, .tflite, .pt, .pt2) or "
            "SPACE:ARCH such as nb201:|nor_conv_3x3~0|+|...|"
        )
    return text


class LatbenchSession:
    """Per pytest run: the configured settings, the open devices, and every result."""

    def __init__(self, config: pytest.Config) -> None:
        self.pytest_config = config
        self.results: list[BudgetResult] = []
        self._devices: dict[str, Device] = {}
        self._config: Config | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._emitted: dict[tuple[str, str], str] = {}
        #: --latbench-compare: the baseline's measurements by fullname, and the fail rules
        self.baseline: dict[str, Measurement] | None = None
        self.rules: list[RegressionRule] = []
        self.comparisons: dict[str, Comparison] = {}
        #: pytest-xdist workers whose results reached the controller
        self.workers: set[str] = set()
        #: the run was interrupted (Ctrl-C, ``pytest.exit``): its results are partial
        self.interrupted = False
        #: why ``--latbench-json`` could not be written, and where the results went instead
        self.write_error = ""
        self.rescued: str | None = None

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
        from latbench._validate import expected_number
        from latbench.errors import ConfigError

        given_max = "max_time_s" in overrides or self.opt("--latbench-max-time") is not None
        values.update(overrides)
        lo, hi = values.get("min_time_s", 0), values.get("max_time_s", 0)
        # only numbers are ordered here; anything else is named by HarnessSettings below
        if expected_number(lo) is None and expected_number(hi) is None and hi < lo:
            if given_max:  # both chosen: a contradiction to name, not to resolve silently
                raise ConfigError(
                    f"max_time_s = {hi:g} is below min_time_s = {lo:g}; expected a maximum of "
                    "at least the minimum"
                )
            values["max_time_s"] = lo  # a minimum alone raises the maximum
        try:
            return HarnessSettings.from_mapping(values)
        except ValueError as exc:  # a setting out of range: the test's mistake, named alone
            raise ConfigError(str(exc)) from None

    def device(self, name: str) -> Device:
        if name not in self._devices:
            from latbench.devices import get_device

            self._devices[name] = get_device(name, self.bench_config)
        return self._devices[name]

    def model_file(self, model: str | os.PathLike[str], runtime: str) -> str:
        """A model file for ``model``: a path as is, or ``space:arch`` emitted once per run."""
        text = _model_text(model)
        if os.path.exists(text) or ":" not in text:
            return text
        space_name, _, arch = text.partition(":")
        fmt = RUNTIME_FORMATS.get(runtime, "onnx")
        key = (text, fmt)
        if key not in self._emitted:
            from latbench.errors import ModelError
            from latbench.spaces import SPACES, export, get_space

            if space_name not in SPACES.names():  # "models:v2.onnx", "C:/m.onnx": a file
                raise ModelError(
                    f"model {text!r}: no such file, and {space_name!r} is not a search space; "
                    f"expected a model file or SPACE:ARCH with SPACE one of "
                    f"{', '.join(SPACES.names())}"
                )
            space = get_space(space_name)
            graph = space.build(space.canonical(arch))
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="latbench-pytest-")
            path = Path(self._tmp.name) / f"{space_name}-{space.arch_id(arch)}{_SUFFIXES[fmt]}"
            export(graph, fmt, path, seed=0)
            self._emitted[key] = str(path)
        return self._emitted[key]

    def add_worker_results(self, payload: str) -> None:
        """Results a pytest-xdist worker sent: JSON of ``{"worker", "results"}``, each result
        as :meth:`BudgetResult.to_dict` wrote it."""
        sent = json.loads(payload)
        if sent["results"]:
            self.workers.add(str(sent["worker"]))
        self.results.extend(BudgetResult.from_dict(d) for d in sent["results"])

    def compare(self) -> list[str]:
        """Compare every result with the baseline (``--latbench-compare``); the regressions."""
        if self.baseline is None:
            return []
        self.comparisons = {
            r.fullname: compare_with_baseline(
                r.measurement, self.baseline.get(r.fullname), self.rules
            )
            for r in self.results
        }
        return [
            f"{r.fullname}: {text}"
            for r in self.results
            for text in self.comparisons[r.fullname].regressions
        ]

    def payload(self) -> dict[str, Any]:
        """What ``--latbench-json`` writes (versioned; ``--latbench-compare`` reads it back)."""
        from latbench import __version__

        results = []
        for r in self.results:
            d = r.to_dict()
            c = self.comparisons.get(r.fullname)
            if c is not None:
                d["baseline"] = {
                    "state": c.state,
                    "changes_ms": {
                        k: {"baseline_ms": b, "now_ms": n} for k, (b, n) in c.changes.items()
                    },
                    "regressions": list(c.regressions),
                    "reasons": list(c.reasons),
                }
            results.append(d)
        return {
            "format": RESULTS_FORMAT,
            "version": RESULTS_VERSION,
            "latbench_version": __version__,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "baseline": self.opt("--latbench-compare"),
            "compare_fail": [str(r) for r in self.rules],
            "interrupted": self.interrupted,
            "results": _jsonable(results),
        }

    def close(self) -> None:
        for dev in self._devices.values():
            dev.close()
        self._devices.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class LatbenchFixture:
    """What the ``latbench`` fixture gives a test: ``measure``, ``assert_budget``, ``check``."""

    def __init__(self, session: LatbenchSession, node_name: str, nodeid: str = "") -> None:
        self._session = session
        self._node_name = node_name
        self._nodeid = nodeid or node_name
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
        by_suffix = SUFFIX_RUNTIME.get(Path(_model_text(model)).suffix.lower())
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
        from latbench.errors import LatbenchError

        __tracebackhide__ = True
        if name is not None and not isinstance(name, str):
            # the label of the table and of the baseline's key; anything else would end the
            # run in the summary table, after every measurement was taken
            raise TypeError(
                f"measure() name={name!r}; expected a string (the label of this measurement "
                "in the table and the baseline) or None for the test's name"
            )
        try:
            m = self._measure(model, device, runtime, threads, batch, settings)
        except LatbenchError as exc:
            # a mistake the message says all about (a missing or malformed model, an unknown
            # space, a device that refused): shown from the test's line, not latbench's insides
            raise exc.with_traceback(None) from exc.__cause__
        result = self._new_result(_model_text(model), m, name)
        if not m.ok:
            result.status = "failed"
            result.message = f"measurement failed: {m.error}"
        return m

    def _new_result(self, model: str, m: Measurement, name: str | None = None) -> BudgetResult:
        """Record ``m`` as the test's (or under ``name=``): its fullname is the test's node id
        (``::name`` after it), made unique within the test by ``[model]``, ``[model#2]``; it
        depends on this test alone, so it is the same whichever tests run (``-k``, xdist)."""
        base = name or self._node_name
        stem = f"{self._nodeid}::{name}" if name else self._nodeid
        taken = {r.fullname for r in self.results}
        label, fullname, n = base, stem, 1
        while fullname in taken:
            suffix = f"[{model}{'' if n == 1 else f'#{n}'}]"
            label, fullname = base + suffix, stem + suffix
            n += 1
        result = BudgetResult(name=label, fullname=fullname, model=model, measurement=m)
        self.results.append(result)
        self._session.results.append(result)
        return result

    def _measure(
        self,
        model: str | os.PathLike[str],
        device: str | None,
        runtime: str | None,
        threads: int | None,
        batch: int | None,
        settings: dict[str, Any],
    ) -> Measurement:
        dev_name = device or self.device_name
        rt = runtime or self._runtime_for(model, dev_name)
        n_threads = threads if threads is not None else self._session.opt("--latbench-threads")
        if n_threads is None:
            n_threads = int(self._session.bench_config.measure.get("threads") or 1)
        path = self._session.model_file(model, rt)
        return self._session.device(dev_name).measure(
            path,
            runtime=rt,
            threads=n_threads,
            batch=batch,
            settings=self._session.settings(settings, dev_name),
        )

    def assert_budget(self, m: Measurement, **budgets_ms: float) -> None:
        """Fail the test when a statistic of ``m`` exceeds its budget (milliseconds).

        Budgets are keyword arguments named after the statistic: ``median_ms``, ``min_ms``,
        ``mean_ms``, ``p90_ms``, ``p99_ms``, ``iqr_ms``; each is multiplied by
        ``--latbench-budget-scale``. A failed measurement fails the test whatever the budget.
        """
        from latbench.profilers.record import Measurement

        __tracebackhide__ = True
        if not isinstance(m, Measurement):
            hint = (
                "; to measure a model and check it in one call use latbench.check(model, ...)"
                if isinstance(m, str | os.PathLike)
                else ""
            )
            raise TypeError(
                f"assert_budget() got {type(m).__name__} {m!r}; expected the Measurement "
                f"latbench.measure() returns{hint}"
            )
        _check_budgets("assert_budget()", budgets_ms)
        scale = float(self._session.opt("--latbench-budget-scale") or 1.0)
        scaled = {k: float(v) * scale for k, v in budgets_ms.items()}
        result = next((r for r in reversed(self.results) if r.measurement is m), None)
        if result is None:  # a Measurement taken elsewhere: record it now
            result = self._new_result(m.model_path, m)
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
        __tracebackhide__ = True
        # a keyword in milliseconds is a budget (harness settings are in seconds or counts), so
        # a misspelt one (p09_ms) is named as a budget rather than as a harness setting
        budgets = {k: kw.pop(k) for k in list(kw) if k in BUDGET_STATS or k.endswith("_ms")}
        if median_ms is not None:
            budgets["median_ms"] = median_ms
        # before measuring: a check whose budget is wrong would measure for nothing
        _check_budgets("check()", budgets)
        m = self.measure(model, **kw)
        self.assert_budget(m, **budgets)
        return m


def _check_budgets(caller: str, budgets_ms: Mapping[str, Any]) -> None:
    """Budgets of ``assert_budget`` / ``check``: at least one, each a known statistic and a
    number of milliseconds > 0; a mistake in them is the test's, a ``TypeError`` (a name) or
    ``ValueError`` (a value), never a verdict."""
    from latbench._validate import expected_number

    __tracebackhide__ = True
    if not budgets_ms:
        raise TypeError(
            f"{caller} needs at least one budget, e.g. median_ms=5.0; "
            f"expected some of {', '.join(BUDGET_STATS)}"
        )
    unknown = sorted(set(budgets_ms) - set(BUDGET_STATS))
    if unknown:
        raise TypeError(
            f"unknown budget(s) {unknown}; expected some of {', '.join(BUDGET_STATS)} "
            "(all in milliseconds)"
        )
    bad = {k: v for k, v in budgets_ms.items() if expected_number(v, positive=True)}
    if bad:
        whys = []
        for v in bad.values():
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                whys.append("a number: the unit is in the name, as in median_ms=5.0")
            elif not math.isfinite(v):
                whys.append("a finite number")
            else:
                whys.append("a budget of 0 or less fails every measurement")
        why = "; ".join(dict.fromkeys(whys))
        raise ValueError(f"budget(s) {bad}; expected milliseconds > 0 ({why})")


@pytest.fixture
def latbench(request: pytest.FixtureRequest) -> LatbenchFixture:
    """Measure models on a latbench device and fail the test when a latency budget is exceeded.

    ``latbench.measure(model)`` then ``latbench.assert_budget(m, median_ms=...)``, or
    ``latbench.check(model, median_ms=...)``. See ``docs/pytest-plugin.md``.
    """
    session = request.config.stash[_SESSION_KEY]
    return LatbenchFixture(session, request.node.name, request.node.nodeid)


# ---- reporting --------------------------------------------------------------------------------
def _fmt(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else "-"


def summary_rows(
    results: list[BudgetResult], comparisons: Mapping[str, Comparison] | None = None
) -> tuple[list[str], list[list[str]]]:
    """The summary table: header and one row per result (times in ms).

    A name that several tests share (``test_one`` in two modules) is shown as each one's
    ``fullname``; with ``comparisons`` (``--latbench-compare``) a column gives the median's
    change over the baseline.
    """
    header = ["Name (time in ms)", "Min", "Median", "IQR", "P90", "Runs", "Budget", "Status"]
    if comparisons is not None:
        header.append("Vs baseline")
    names = display_names(results)
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
        row = [names[r.fullname], *stats, runs, budget or "-", status]
        if comparisons is not None:
            c = comparisons.get(r.fullname)
            row.append(c.change_text() if c is not None else "-")
        rows.append(row)
    return header, rows


def display_names(results: list[BudgetResult]) -> dict[str, str]:
    """The name to show for each ``fullname``: the short ``name``, unless several tests share it
    (``test_one`` in two modules), which are then shown by their ``fullname``."""
    owners: dict[str, set[str]] = {}
    for r in results:
        owners.setdefault(r.name, set()).add(r.fullname)
    return {r.fullname: r.fullname if len(owners[r.name]) > 1 else r.name for r in results}


def format_table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    return [line(header), "-" * len(line(header)), *(line(r) for r in rows)]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist controller: take the results a worker sent when it finished."""
    session = node.config.stash.get(_SESSION_KEY, None)
    output = getattr(node, "workeroutput", None) or {}
    if session is not None and _WORKER_KEY in output:
        session.add_worker_results(output[_WORKER_KEY])


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Send the results to the controller (in an xdist worker), or compare with the baseline,
    write ``--latbench-json`` and fail the run on a regression (everywhere else)."""
    config = session.config
    ls = config.stash.get(_SESSION_KEY, None)
    if ls is None:
        return
    if _is_worker(config):
        worker = str(config.workerinput.get("workerid", ""))  # type: ignore[attr-defined]
        results = [r.to_dict() for r in ls.results]
        output = config.workeroutput  # type: ignore[attr-defined]
        output[_WORKER_KEY] = json.dumps({"worker": worker, "results": results})
        return
    regressions = ls.compare()
    ls.interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    path = None if config.option.collectonly else config.getoption("--latbench-json")
    if path:  # always written, also with no measurement: never a stale file from an older run
        text = json.dumps(ls.payload(), indent=1, sort_keys=True)
        try:
            _write_results(path, text)
        except OSError as exc:
            # checked at start, yet gone now (a test removed the folder, the disk filled up): a
            # traceback here would also lose the summary table; keep the results elsewhere
            ls.write_error = f"could not write --latbench-json {path!r} ({exc})"
            ls.rescued = _rescue_results(text)
    if (regressions or ls.write_error) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _rescue_results(text: str) -> str | None:
    """Write a results file that could not go where asked to a new temporary file; its path,
    or None when that fails too."""
    try:
        fd, name = tempfile.mkstemp(prefix="latbench-results-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError:
        return None
    return name


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    session = config.stash.get(_SESSION_KEY, None)
    if session is None or _is_worker(config):
        return
    path = None if config.option.collectonly else config.getoption("--latbench-json")
    if not session.results:
        if path:
            _write_saved(terminalreporter, session, path, "no measurement in this run; ")
        return
    devices = sorted({r.measurement.device for r in session.results if r.measurement.device})
    runtimes = sorted(
        {
            f"{m.runtime} {m.runtime_version}".strip()
            for m in (r.measurement for r in session.results)
            if m.runtime
        }
    )
    title = (
        f"latbench: {len(session.results)} measurement(s) on {', '.join(devices) or '-'} "
        f"with {', '.join(runtimes) or '-'}"
    )
    terminalreporter.write_sep("-", title)
    compared = session.comparisons if session.baseline is not None else None
    header, rows = summary_rows(session.results, compared)
    for text in format_table(header, rows):
        terminalreporter.write_line(text)
    names = display_names(session.results)
    unstable = [names[r.fullname] for r in session.results if r.measurement.ok and not _stable(r)]
    if unstable:
        terminalreporter.write_line(
            f"unstable measurement(s): {', '.join(unstable)} (see the verdict in --latbench-json; "
            "raise --latbench-min-time or pin an idle CPU)"
        )
    if len(session.workers) > 1:
        terminalreporter.write_line(
            f"latbench: measured by {len(session.workers)} pytest-xdist workers at once, which "
            "share this machine's CPUs; for latencies that mean something, run the latency tests "
            "in one process (-n 0, or --latbench-skip here and --latbench-only without -n)"
        )
    if compared is not None:
        _write_comparison(terminalreporter, session)
    if path:
        _write_saved(terminalreporter, session, path, "")


def _write_saved(terminalreporter: Any, session: LatbenchSession, path: str, lead: str) -> None:
    """The last line of the summary: where the results file was written, or why it was not
    and where its content went instead."""
    if not session.write_error:
        terminalreporter.write_line(f"latbench: {lead}wrote {path}{_partial(session)}")
        return
    where = (
        f"the results were written to {session.rescued} instead"
        if session.rescued
        else "the results of this run are not saved"
    )
    terminalreporter.write_line(
        f"latbench: {lead}{session.write_error}; {where} (expected {path!r} to stay writable "
        "until the run ends)",
        red=True,
        bold=True,
    )


def _partial(session: LatbenchSession) -> str:
    """What the "wrote PATH" line adds for the results file of an interrupted run."""
    if not session.interrupted:
        return ""
    return " (partial: the run was interrupted; --latbench-compare refuses it as a baseline)"


def _write_comparison(terminalreporter: Any, session: LatbenchSession) -> None:
    baseline = session.opt("--latbench-compare")
    names = display_names(session.results)
    by_state: dict[str, list[str]] = {}
    for r in session.results:
        c = session.comparisons[r.fullname]
        by_state.setdefault(c.state, []).append(names[r.fullname])
        if c.state == "incomparable":
            terminalreporter.write_line(
                f"latbench: {names[r.fullname]} not compared with {baseline} (another machine "
                f"or setup: {'; '.join(c.reasons)}); record the baseline again here",
                yellow=True,
            )
    if by_state.get("new"):
        terminalreporter.write_line(
            f"latbench: not in the baseline {baseline}: {', '.join(by_state['new'])}"
        )
    regressions = [
        f"{names[r.fullname]}: {text}"
        for r in session.results
        for text in session.comparisons[r.fullname].regressions
    ]
    if regressions:
        terminalreporter.write_line(
            f"latbench: performance regressed against {baseline} (--latbench-compare-fail "
            f"{','.join(str(x) for x in session.rules)}):",
            red=True,
            bold=True,
        )
        for text in regressions:
            terminalreporter.write_line(f"  {text}", red=True)
    elif session.rules:
        n = len(by_state.get("compared", []))
        terminalreporter.write_line(
            f"latbench: no regression against {baseline} ({n} compared, "
            f"--latbench-compare-fail {','.join(str(x) for x in session.rules)})"
        )


def _stable(r: BudgetResult) -> bool:
    return bool(r.measurement.verdict()["stable"])
