"""Progress of long work without a terminal (a pipe, a log): plain lines with the rate and
ETA, no carriage returns; a search's lines (``latbench._progress.Progress``, shared by
``collect`` and ``run_search``)."""

from __future__ import annotations

import io
from typing import Any

import pytest

import latbench._progress as progress_mod
from latbench import predictors
from latbench._progress import Progress, duration
from latbench.datasets.reference import load_reference
from latbench.nas import latency_constraint, make_objective, run_search
from latbench.spaces import get_space


def test_duration_reads_as_seconds_then_minutes() -> None:
    assert [duration(x) for x in (0.4, 42.4, 59.6, 61, 3725)] == [
        "0 s", "42 s", "1 min 00 s", "1 min 01 s", "62 min 05 s",
    ]  # fmt: skip


def test_lines_for_the_first_and_the_last_update_and_none_between_within_30_s() -> None:
    out = io.StringIO()  # no isatty() -> True: lines, not a bar
    p = Progress(True, 5, "nb201 lab", out)
    assert p.active
    for i in range(5):
        p.update({"ok": i + 1})
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 2, lines
    assert lines[0].startswith("nb201 lab: 1/5 arch (20%)") and "ETA " in lines[0]
    assert lines[1].startswith("nb201 lab: 5/5 arch (100%)") and lines[1].endswith("ok=5")
    assert "ETA" not in lines[1]


def test_first_false_prints_nothing_for_short_work_and_lines_once_it_is_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = io.StringIO()
    p = Progress(True, 100, "evolution fbnet", out, first=False)
    for _ in range(10):
        p.update({}, n=10)
    assert out.getvalue() == ""  # under LINE_EVERY_S: not even the last line
    monkeypatch.setattr(progress_mod, "LINE_EVERY_S", 0.0)
    out = io.StringIO()
    p = Progress(True, 100, "evolution fbnet", out, first=False)
    p.update({"feasible": 0}, n=40)
    p.update({"feasible": 7}, n=60)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("evolution fbnet: 40/100 arch (40%)") and "ETA " in lines[0]
    assert lines[-1].startswith("evolution fbnet: 100/100 arch (100%)")
    assert lines[-1].endswith("feasible=7")


def test_disabled_or_empty_progress_shows_nothing() -> None:
    out = io.StringIO()
    for p in (Progress(False, 5, "x", out), Progress(True, 0, "x", out)):
        assert not p.active
        p.update({"ok": 1})
        p.say("said")  # what must be seen still goes out without a bar
        p.close()
    assert out.getvalue() == "said\nsaid\n"


def test_a_search_in_a_log_prints_lines_with_how_many_meet_the_constraints(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(progress_mod, "LINE_EVERY_S", 0.0)  # a line per batch
    space = get_space("nb201")
    d = load_reference("nb201")
    d = d[d.device == "help/pixel3"].iloc[:300]
    p: Any = predictors.create("ridge").fit(d.arch.tolist(), d.latency_ms.to_numpy(), space="nb201")
    lat = latency_constraint(p, 8.0, space)
    r = run_search(
        space, make_objective("params", space), [lat], "random", evaluations=600, progress=True
    )
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("random nb201: ")]
    assert "\r" not in err and len(lines) >= 2, err
    assert lines[-1].startswith("random nb201: 600/600 arch (100%)")
    feasible = sum(c.feasible for c in r.evaluated)
    assert lines[-1].endswith(f"feasible={feasible}") and 0 < feasible < 600
