"""Strategies and the search driver on NB201 with a real predictor fit on the reference data."""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pytest

from latbench import predictors
from latbench.datasets.reference import load_reference
from latbench.errors import ConfigError, SearchError
from latbench.nas import (
    STRATEGIES,
    Evaluator,
    GraphStats,
    TableObjective,
    create_strategy,
    latency_constraint,
    make_objective,
    metric_constraint,
    rank_archs,
    run_search,
)
from latbench.nas.objectives import all_archs
from latbench.nas.plots import plot_pareto
from latbench.spaces import get_space

SPACE = get_space("nb201")


@pytest.fixture(scope="module")
def pixel3() -> Any:
    df = load_reference("nb201")
    d = df[df.device == "help/pixel3"].iloc[:400]
    return predictors.create("ridge").fit(d.arch.tolist(), d.latency_ms.to_numpy(), space="nb201")


@pytest.fixture(scope="module")
def exhaustive(pixel3: Any) -> Any:
    lat = latency_constraint(pixel3, 8.0, SPACE)
    return run_search(SPACE, make_objective("params", SPACE), [lat], "exhaustive")


def test_exhaustive_visits_every_arch_and_is_the_optimum(exhaustive: Any, pixel3: Any) -> None:
    assert exhaustive.evaluations == 15_625
    every = all_archs(SPACE)
    lat = pixel3.predict(every)
    params = GraphStats(SPACE)("params", every)
    assert exhaustive.best[0].objective == pytest.approx(params[lat <= 8.0].max())
    assert all(c.feasible and c.values["latency_ms[default]"] <= 8.0 for c in exhaustive.best)
    # the front is monotone: slower points must be strictly better (exact ties are all on it)
    xs = [c.values["latency_ms[default]"] for c in exhaustive.pareto]
    ys = [c.objective for c in exhaustive.pareto]
    assert xs == sorted(xs) and ys == sorted(ys)
    pts = sorted(set(zip(xs, ys, strict=True)))
    assert all(b[0] > a[0] and b[1] > a[1] for a, b in itertools.pairwise(pts))


@pytest.mark.parametrize("strategy", ["random", "evolution", "reinforce"])
def test_strategies_respect_the_budget_and_are_seeded(strategy: str, pixel3: Any) -> None:
    def go(seed: int) -> Any:
        lat = latency_constraint(pixel3, 8.0, SPACE)
        return run_search(
            SPACE, make_objective("params", SPACE), [lat], strategy, evaluations=300, seed=seed
        )

    a, b, c = go(1), go(1), go(2)
    assert a.evaluations == 300
    assert [x.arch for x in a.evaluated] == [x.arch for x in b.evaluated]
    assert [x.arch for x in a.evaluated] != [x.arch for x in c.evaluated]
    assert all(x.feasible for x in a.best)
    assert a.pareto and a.to_dict()["best"][0]["arch"] == a.best[0].arch


@pytest.mark.parametrize("strategy", ["evolution", "reinforce"])
def test_guided_strategies_reach_the_exhaustive_optimum(
    strategy: str, pixel3: Any, exhaustive: Any
) -> None:
    opt = exhaustive.best[0].objective
    hits = 0
    for seed in range(3):
        lat = latency_constraint(pixel3, 8.0, SPACE)
        r = run_search(
            SPACE, make_objective("params", SPACE), [lat], strategy, evaluations=1000, seed=seed
        )
        hits += r.best[0].objective >= 0.99 * opt
    assert hits >= 2


def test_several_constraints_and_structural_limits(pixel3: Any) -> None:
    stats = GraphStats(SPACE)
    cons = [
        latency_constraint(pixel3, 10.0, SPACE, label="pixel3"),
        metric_constraint("flops", 60e6, stats),
        metric_constraint("memory", 2e6, stats),
    ]
    r = run_search(SPACE, make_objective("params", SPACE), cons, "random", evaluations=400)
    for c in r.best:
        assert c.values["latency_ms[pixel3]"] <= 10.0
        assert c.values["max_flops"] <= 60e6
        g = SPACE.build(c.arch)
        assert g.peak_activation_bytes() <= 2e6 and g.macs() <= 60e6
    assert json.dumps(r.to_dict())  # serialisable


def test_budget_no_architecture_meets(pixel3: Any) -> None:
    lat = latency_constraint(pixel3, 1e-6, SPACE)
    with pytest.raises(SearchError, match=r"no architecture of the whole space does"):
        run_search(SPACE, make_objective("params", SPACE), [lat], "random", evaluations=50)


def test_predictor_of_another_space_is_refused() -> None:
    df = load_reference("fbnet")
    d = df[df.device == df.device.iloc[0]].iloc[:50]
    fb = predictors.create("ridge").fit(d.arch.tolist(), d.latency_ms.to_numpy(), space="fbnet")
    with pytest.raises(SearchError, match=r"fitted on space 'fbnet'.*over 'nb201'"):
        latency_constraint(fb, 10.0, SPACE)
    with pytest.raises(SearchError, match="fitted on space 'fbnet'"):
        rank_archs(SPACE.sample(3), {"fb": fb}, SPACE)


def test_table_objective_missing_archs(pixel3: Any) -> None:
    archs = SPACE.sample(20, seed=0)
    table = TableObjective(SPACE, {a: float(i) for i, a in enumerate(archs)}, source="acc.csv")
    lat = latency_constraint(pixel3, 30.0, SPACE)
    with pytest.raises(SearchError, match=r"acc.csv.*no value for .* covers 20 nb201"):
        run_search(SPACE, table, [lat], "random", evaluations=100)
    # restricted to the table, the search works and finds the table's best feasible arch
    r = run_search(
        SPACE, table, [lat], "exhaustive", strategy_params={"candidates": archs}, evaluations=1
    )
    assert r.evaluations == 20
    feas = [a for a in archs if pixel3.predict([a])[0] <= 30.0]
    assert r.best[0].arch == max(feas, key=lambda a: table.table[a])


def test_exhaustive_refuses_huge_spaces_and_bad_settings() -> None:
    fb = get_space("fbnet")
    with pytest.raises(SearchError, match="exhaustive search over fbnet"):
        run_search(fb, make_objective("params", fb), [], "exhaustive")
    with pytest.raises(ConfigError, match="sample=99"):
        run_search(
            SPACE,
            make_objective("params", SPACE),
            [],
            "evolution",
            strategy_params={"sample": 99},
            evaluations=10,
        )
    assert set(STRATEGIES.names()) >= {"exhaustive", "random", "evolution", "reinforce"}


def test_expensive_objective_only_for_feasible(pixel3: Any) -> None:
    calls: list[int] = []

    def fn(archs: Any) -> np.ndarray:
        calls.append(len(archs))
        return np.ones(len(archs))

    from latbench.nas import Objective

    obj = Objective("costly", fn, expensive=True)
    lat = latency_constraint(pixel3, 3.0, SPACE)
    ev = Evaluator(obj, [lat])
    archs = SPACE.sample(200, seed=3)
    cands = ev.evaluate(archs)
    n_feas = sum(c.feasible for c in cands)
    assert 0 < n_feas < 200 and sum(calls) == n_feas
    assert all(np.isnan(c.objective) for c in cands if not c.feasible)
    ev.evaluate(archs)  # cached: no new calls
    assert sum(calls) == n_feas and ev.n_evaluated == 200 and ev.proposals == 400


def test_rank_orders_by_first_predictor_and_plot(pixel3: Any, exhaustive: Any, tmp_path) -> None:  # type: ignore[no-untyped-def]
    archs = SPACE.sample(50, seed=4)
    rows = rank_archs(archs, {"pixel3": pixel3}, SPACE, top=10)
    lat = [r["latency_ms[pixel3]"] for r in rows]
    assert len(rows) == 10 and lat == sorted(lat)
    assert lat[0] == pytest.approx(pixel3.predict(archs).min())
    png = plot_pareto(exhaustive, tmp_path / "front.png")
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("name", "params", "needle"),
    [
        ("evolution", {"population": 0}, "evolution: population=0; expected an integer >= 1"),
        ("evolution", {"sample": 40}, "evolution: sample=40; expected an integer in [1, 32]"),
        ("evolution", {"exploit": 2}, "evolution: exploit=2; expected a number in [0, 1]"),
        ("evolution", {"children": 1.5}, "children=1.5; expected an integer >= 1"),
        ("reinforce", {"lr": -1}, "reinforce: lr=-1; expected a number > 0"),
        ("reinforce", {"batch": 1}, "reinforce: batch=1; expected an integer >= 2"),
        ("random", {"batch": 0}, "random: batch=0; expected an integer >= 1"),
        ("exhaustive", {"max_size": float("nan")}, "exhaustive: max_size=nan"),
        ("evolution", {"popsize": 8}, "unknown setting(s) ['popsize']; expected some of"),
    ],
)
def test_bad_strategy_settings_are_named(name: str, params: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        create_strategy(name, **params)
    assert needle in str(info.value)


def test_a_plugin_strategy_with_its_own_settings_dict_is_not_second_guessed() -> None:
    from latbench.nas.strategies import Strategy

    class Anything(Strategy):
        name = "anything-test"

        def __init__(self, **settings: Any) -> None:
            self.settings = settings

        def run(self, space: Any, evaluator: Any, evaluations: int, seed: int) -> None:
            return None

    STRATEGIES.add("anything-test", Anything)
    try:
        s = create_strategy("anything-test", depth=3)
        assert isinstance(s, Anything) and s.settings == {"depth": 3}
    finally:
        STRATEGIES._items.pop("anything-test")


def test_evolution_spends_its_budget_repairing_when_nothing_is_feasible_yet() -> None:
    """An expensive objective (a zero-cost proxy) is computed only for feasible candidates. With
    a budget the exploration phase never meets, the local search used to find no candidate with
    an objective and stop at 60 % of the evaluations; it now expands the candidates nearest the
    budget until the evaluations are spent (and, on FBNet, says the space is too large to tell
    whether any architecture would meet it)."""
    from latbench.nas import Objective

    fb = get_space("fbnet")
    df = load_reference("fbnet")
    d = df[df.device == "help/silver_4114"].iloc[:500]
    p = predictors.create("ridge").fit(d.arch.tolist(), d.latency_ms.to_numpy(), space="fbnet")
    budget = float(np.percentile(p.predict(fb.sample(2000, seed=1)), 0.1))
    costly = Objective("costly", make_objective("params", fb).fn, expensive=True)
    found = 0
    for seed in range(3):
        lat = latency_constraint(p, budget, fb)
        try:
            r = run_search(fb, costly, [lat], "evolution", evaluations=150, seed=seed)
        except SearchError as exc:
            assert "none of the 150 evaluated fbnet architectures" in str(exc)
            assert "fbnet is too large to tell whether any" in str(exc)
            assert "evaluate more (--evaluations), or raise the budget" in str(exc)
        else:
            found += 1
            assert r.evaluations == 150 and r.best[0].values[lat.name] <= budget
    # seed 0 reaches the budget in the repair phase (before: none of 90 evaluated met it)
    assert found >= 1
