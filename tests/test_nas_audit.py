"""Search and rank at their edges: tables with non-finite or conflicting values, constraints
and objectives that give NaN, repeated candidates, seeds, integer settings given as floats,
budgets at and beyond every architecture, units in the result's names and what produced it.

Real predictors fitted on the bundled reference, the real NB201 space and the real CLI.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latbench import __version__, predictors
from latbench.cli import main
from latbench.datasets.reference import load_reference
from latbench.errors import ConfigError, SearchError
from latbench.nas import (
    GraphStats,
    create_strategy,
    latency_constraint,
    load_table,
    make_objective,
    metric_constraint,
    rank_archs,
    run_search,
)
from latbench.nas.objectives import Constraint, Objective, all_archs
from latbench.spaces import get_space

SPACE = get_space("nb201")


@pytest.fixture(scope="module")
def pixel3() -> Any:
    df = load_reference("nb201")
    d = df[df.device == "help/pixel3"].iloc[:300]
    return predictors.create("ridge").fit(
        d.arch.tolist(), d.latency_ms.to_numpy(), space="nb201", devices=list(d.device)
    )


@pytest.fixture(scope="module")
def lbp(pixel3: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lbp") / "pixel3.lbp"
    predictors.save(pixel3, path)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _table(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("arch,accuracy\n" + "".join(f"{a},{v}\n" for a, v in rows), encoding="utf-8")
    return path


# ---- objective tables ------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["nan", "NaN", "", "n/a"])
def test_a_table_value_that_is_not_a_number_is_refused_with_its_line(
    tmp_path: Path, bad: str
) -> None:
    """``nan`` used to be read as "not computed": an architecture silently never returned."""
    archs = SPACE.sample(5, seed=1)
    rows = [(a, str(i)) for i, a in enumerate(archs)]
    rows[2] = (archs[2], bad)
    path = _table(tmp_path / "acc.csv", rows)
    with pytest.raises(ConfigError, match=rf"acc.csv:4: accuracy = {bad!r}; expected a number"):
        load_table(path, SPACE)
    # an infinity is a value: -inf the worst quality there is
    rows[2] = (archs[2], "-inf")
    assert load_table(_table(path, rows), SPACE).table[archs[2]] == -math.inf


def test_a_table_that_gives_one_arch_two_values_is_refused(tmp_path: Path) -> None:
    """The last line used to win silently."""
    archs = SPACE.sample(4, seed=2)
    rows = [(a, str(i)) for i, a in enumerate(archs)] + [(archs[1], "99")]
    path = _table(tmp_path / "acc.csv", rows)
    with pytest.raises(ConfigError, match=r"acc.csv:6: .* accuracy = 99, but line 3 gave it 1;"):
        load_table(path, SPACE)
    # the same value twice is one architecture with one value
    same = _table(tmp_path / "same.csv", [*rows[:4], (archs[1], "1")])
    assert load_table(same, SPACE).table[archs[1]] == 1.0


# ---- NaN from a constraint or the objective ------------------------------------------------
def test_a_constraint_that_gives_nan_stops_the_search_naming_it(pixel3: Any) -> None:
    """NaN <= limit is False: the candidate used to be infeasible with a NaN violation, and a
    constraint NaN everywhere was reported as 'the constraints together'."""
    none_first = {a for a in all_archs(SPACE) if SPACE.ops(a)[0] == 0}

    def lat(archs: Any) -> np.ndarray:
        y = pixel3.predict(list(archs))
        return np.where([a in none_first for a in archs], math.nan, y)

    con = Constraint("latency_ms[pixel3]", "latency", 10.0, "ms", lat)
    with pytest.raises(SearchError, match=r"constraint latency_ms\[pixel3\] gave NaN for \d+ of"):
        run_search(SPACE, make_objective("params", SPACE), [con], "random", evaluations=200)


def test_an_objective_nan_for_every_feasible_candidate_is_named(pixel3: Any) -> None:
    """Every candidate met the budget; the message used to blame 'the constraints together'."""
    broken = Objective("broken", lambda archs: np.full(len(archs), math.nan))
    lat = latency_constraint(pixel3, 40.0, SPACE)
    with pytest.raises(SearchError) as exc:
        run_search(SPACE, broken, [lat], "random", evaluations=30)
    msg = str(exc.value)
    assert "objective 'broken' is NaN for all 30 evaluated nb201" in msg
    assert "constraints together" not in msg


# ---- candidates, seeds, settings -------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["random", "exhaustive"])
def test_a_repeated_candidate_is_evaluated_and_counted_once(strategy: str) -> None:
    """Random used to spend budget slots on repeats: 5 of 10 evaluations with 19 distinct
    candidates left."""
    archs = SPACE.sample(20, seed=3)
    cands = [archs[0]] * 50 + [" " + a for a in archs[1:]]  # repeats and another spelling
    params = make_objective("params", SPACE)
    r = run_search(
        SPACE, params, [], create_strategy(strategy, candidates=cands), evaluations=10, seed=0
    )
    got = [c.arch for c in r.evaluated]
    assert len(got) == len(set(got)) and set(got) <= set(archs)
    assert r.evaluations == (10 if strategy == "random" else 20)


def test_a_negative_seed_is_refused_by_name(
    pixel3: Any, lbp: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """numpy's generators used to raise a bare ValueError traceback."""
    obj = make_objective("params", SPACE)
    with pytest.raises(ConfigError, match=r"seed = -1; expected an integer >= 0"):
        run_search(SPACE, obj, [latency_constraint(pixel3, 8.0, SPACE)], "evolution", seed=-1)
    out = tmp_path / "r.json"
    rc, _, err = run(
        capsys, "search", "--predictor", str(lbp), "--budget-ms", "8", "--seed", "-1",
        "--evaluations", "20", "-q", "--no-plot", "-o", str(out),
    )  # fmt: skip
    assert rc == 2 and "--seed -1; expected an integer >= 0" in err and not out.exists()
    rc, _, err = run(
        capsys, "search", "--predictor", str(lbp), "--budget-ms", "8", "--top", "0",
        "--evaluations", "20", "-q", "--no-plot", "-o", str(out),
    )  # fmt: skip
    assert rc == 2 and "--top 0; expected >= 1" in err


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("evolution", {"population": 2.0, "sample": 2.0, "children": 3.0}),
        ("reinforce", {"batch": 4.0}),
        ("random", {"batch": 7.0}),
    ],
)
def test_integer_settings_given_as_json_floats_run(
    pixel3: Any, name: str, settings: dict[str, float]
) -> None:
    """JSON ``2.0`` passed the range check and then failed deep inside (range(), numpy)."""
    strat = create_strategy(name, **settings)
    assert all(type(strat.params()[k]) is int for k in settings)
    r = run_search(
        SPACE,
        make_objective("params", SPACE),
        [latency_constraint(pixel3, 8.0, SPACE)],
        strat,
        evaluations=40,
    )
    assert r.evaluations == 40


# ---- budgets at the edges --------------------------------------------------------------------
def test_a_budget_equal_to_the_fastest_architecture_is_met(pixel3: Any) -> None:
    lat = pixel3.predict(all_archs(SPACE))
    fastest = float(lat.min())
    obj = make_objective("params", SPACE)
    r = run_search(SPACE, obj, [latency_constraint(pixel3, fastest, SPACE)], "exhaustive")
    assert {c.values["latency_ms[help/pixel3]"] for c in r.best} == {fastest}
    with pytest.raises(SearchError, match="no architecture of nb201"):
        run_search(SPACE, obj, [latency_constraint(pixel3, fastest * 0.999, SPACE)], "exhaustive")


def test_a_budget_above_every_architecture_is_named_in_a_warning(
    pixel3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A budget in microseconds given as milliseconds constrains nothing: said, not silent."""
    obj = make_objective("params", SPACE)
    with caplog.at_level(logging.WARNING, logger="latbench.nas.search"):
        run_search(SPACE, obj, [latency_constraint(pixel3, 15000.0, SPACE)], "random")
    assert "meets latency_ms[help/pixel3] <= 15000 ms" in caplog.text
    assert "the budget constrains nothing" in caplog.text
    caplog.clear()
    median = float(np.median(pixel3.predict(all_archs(SPACE))))
    with caplog.at_level(logging.WARNING, logger="latbench.nas.search"):
        run_search(SPACE, obj, [latency_constraint(pixel3, median, SPACE)], "random")
    assert "constrains nothing" not in caplog.text


# ---- rank ----------------------------------------------------------------------------------
def test_rank_ranks_a_repeated_arch_once(
    pixel3: Any, lbp: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same architecture used to get two ranks."""
    archs = SPACE.sample(4, seed=4)
    with caplog.at_level(logging.WARNING, logger="latbench.nas.rank"):
        rows = rank_archs([*archs, archs[2], " " + archs[0]], {"p": pixel3}, SPACE)
    assert sorted(r["arch"] for r in rows) == sorted(archs)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    assert "2 of the 6 architectures to rank repeat an earlier one" in caplog.text
    rc, out, err = run(capsys, "rank", "--predictor", str(lbp), "--sample", "20000")
    assert rc == 2 and out == ""
    assert "--sample 20000; expected at most 15625 (the architectures of nb201" in err


# ---- what result.json says -------------------------------------------------------------------
def test_the_memory_constraint_carries_its_unit_in_its_name(
    lbp: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``--max-memory-mb 2`` is a limit in bytes; the field used to be a bare ``max_memory``."""
    c = metric_constraint("memory", 2e6, GraphStats(SPACE))
    assert (c.name, c.unit) == ("max_memory_bytes", "bytes")
    out = tmp_path / "r.json"
    rc, _, _ = run(
        capsys, "search", "--predictor", str(lbp), "--budget-ms", "10", "--max-memory-mb", "2",
        "--evaluations", "60", "-q", "--no-plot", "-o", str(out),
    )  # fmt: skip
    assert rc == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    con = next(c for c in doc["constraints"] if c["kind"] == "memory")
    assert con == {"name": "max_memory_bytes", "kind": "memory", "limit": 2e6, "unit": "bytes"}
    for cand in doc["best"]:
        mem = SPACE.build(cand["arch"]).peak_activation_bytes()
        assert cand["max_memory_bytes"] == mem <= 2e6


def test_result_records_the_latbench_version_and_the_table_it_read(
    lbp: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    archs = SPACE.sample(12, seed=5)
    table = _table(tmp_path / "acc ü.csv", [(a, str(i)) for i, a in enumerate(archs)])
    out = tmp_path / "r.json"
    rc, _, _ = run(
        capsys, "search", "--predictor", str(lbp), "--budget-ms", "40", "--objective",
        str(table), "--table-only", "--strategy", "random", "--evaluations", "5", "-q",
        "--no-plot", "-o", str(out),
    )  # fmt: skip
    assert rc == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["latbench_version"] == __version__
    assert doc["objective"]["path"] == str(table)
    assert doc["objective"]["sha256"] == hashlib.sha256(table.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("extra", "want"),
    [
        (["--minimize"], "--minimize needs a CSV --objective; got --objective 'params'"),
        (["--objective-column", "acc"], "--objective-column needs a CSV --objective"),
        (
            ["--objective", "synflow", "--proxy-resolution", "0"],
            "--proxy-resolution 0: nb201: resolution = 0; expected an integer >= 1",
        ),
    ],
)
def test_objective_options_that_would_change_nothing_are_refused(
    lbp: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    extra: list[str],
    want: str,
) -> None:
    """--minimize without a table was ignored; --proxy-resolution 0 fell back to the default."""
    out = tmp_path / "r.json"
    rc, _, err = run(
        capsys, "search", "--predictor", str(lbp), "--budget-ms", "8", "--evaluations", "20",
        "-q", "--no-plot", "-o", str(out), *extra,
    )  # fmt: skip
    assert rc == 2 and want in err and not out.exists(), err
