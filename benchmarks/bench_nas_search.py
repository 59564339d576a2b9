"""Latency-aware search on NB201 / FBNet with predictors: quality vs exhaustive, throughput.

1. NB201, ridge predictor fit on 1,000 reference rows of ``help/pixel3``, objective ``params``,
   budgets = the 10th, 25th, 50th, 75th, 90th percentiles of predicted latency: search with 1,000
   evaluations vs the exhaustive optimum under the same budget, 10 seeds (goal: within 1 % in
   >= 9 of 10).
2. Throughput: distinct candidates evaluated per second (predicted latency + params) for random
   search on FBNet (no duplicates: every candidate is a fresh predictor call, batch 256) and
   exhaustive NB201, per predictor model (ridge, gbm), 5 repeats, interleaved.
3. Tight budgets with an expensive objective (``--tight``): FBNet, ridge fit on 500 reference
   rows of ``help/silver_4114``, objective ``params`` marked expensive (computed only for
   candidates that meet the budget, as the zero-cost proxies are), budgets at the 0.1, 0.5, 1
   and 2nd percentiles of the predicted latency of 2,000 random architectures, evolution with
   150 and 300 evaluations, 10 seeds: in how many seeds a feasible architecture is found, and
   the evaluations used (a search that finds nothing raises; its evaluations are counted from
   the message).

    .venv/bin/python benchmarks/bench_nas_search.py [--seeds 10] [--repeats 5] [--tight]
"""

from __future__ import annotations

import argparse
import platform
import re
import statistics
import time

import numpy as np

from latbench import predictors
from latbench.datasets.reference import load_reference
from latbench.errors import SearchError
from latbench.nas import Objective, latency_constraint, make_objective, run_search
from latbench.nas.objectives import all_archs
from latbench.spaces import get_space


def fit(space: str, device: str, model: str, n: int) -> predictors.Predictor:
    df = load_reference(space)
    d = df[df.device == device].iloc[:n]
    return predictors.create(model).fit(d.arch.tolist(), d.latency_ms.to_numpy(), space=space)


def quality(seeds: int) -> None:
    space = get_space("nb201")
    p = fit("nb201", "help/pixel3", "ridge", 1000)
    lat = p.predict(all_archs(space))
    for pct in (10, 25, 50, 75, 90):
        budget = float(np.percentile(lat, pct))
        ex = run_search(
            space, make_objective("params", space), [latency_constraint(p, budget, space)],
            "exhaustive",
        )  # fmt: skip
        opt = ex.best[0].objective
        n_opt = sum(1 for c in ex.evaluated if c.feasible and c.objective >= 0.99 * opt)
        print(
            f"NB201 budget {budget:.3f} ms ({pct}th percentile of predicted latency): exhaustive "
            f"optimum params={opt:.0f}, {n_opt} architecture(s) within 1 % of it"
        )
        runs: list[tuple[str, str, dict[str, float]]] = [
            ("evolution", "evolution", {}),
            ("ageing-only", "evolution", {"exploit": 0.0, "boundary": 0.0}),
            ("reinforce", "reinforce", {}),
            ("random", "random", {}),
        ]
        for label, strategy, params in runs:
            ratios, walls = [], []
            for seed in range(seeds):
                r = run_search(
                    space, make_objective("params", space),
                    [latency_constraint(p, budget, space)], strategy, evaluations=1000, seed=seed,
                    strategy_params=params,
                )  # fmt: skip
                ratios.append(r.best[0].objective / opt)
                walls.append(r.wall_s)
            hits = sum(x >= 0.99 for x in ratios)
            print(
                f"  {label:<12} 1000 evals: within 1% in {hits}/{seeds} seeds; "
                f"best/opt median {statistics.median(ratios):.4f} min {min(ratios):.4f}; "
                f"wall median {statistics.median(walls):.2f} s"
            )


def throughput(repeats: int) -> None:
    preds = {
        (sp, m): fit(sp, dev, m, 1000)
        for sp, dev in (("nb201", "help/pixel3"), ("fbnet", "help/pixel3"))
        for m in ("ridge", "gbm")
    }
    rates: dict[str, list[float]] = {}
    for _ in range(repeats):  # interleaved: A B C D A B C D ...
        for (sp_name, model), p in preds.items():
            space = get_space(sp_name)
            strategy, n = ("exhaustive", 15_625) if sp_name == "nb201" else ("random", 5000)
            med = float(np.median(p.predict(space.sample(500, seed=9))))
            r = run_search(
                space, make_objective("params", space), [latency_constraint(p, med, space)],
                strategy, evaluations=n, seed=len(rates.get(f"{sp_name}/{model}/{strategy}", [])),
            )  # fmt: skip
            rates.setdefault(f"{sp_name}/{model}/{strategy}", []).append(r.evaluations_per_s)
            rates.setdefault(f"{sp_name}/{model}/evaluator-only", []).append(r.evaluator_per_s)
    for key, xs in rates.items():
        q1, q3 = np.percentile(xs, [25, 75])
        print(
            f"  {key:<30} {statistics.median(xs):>9,.0f} evaluations/s "
            f"(IQR {q1:,.0f}-{q3:,.0f}, n={len(xs)})"
        )


def tight(seeds: int) -> None:
    space = get_space("fbnet")
    p = fit("fbnet", "help/silver_4114", "ridge", 500)
    costly = Objective("params (expensive)", make_objective("params", space).fn, expensive=True)
    pred = p.predict(space.sample(2000, seed=1))
    for pct in (0.1, 0.5, 1, 2):
        budget = float(np.percentile(pred, pct))
        for n in (150, 300):
            found, used = 0, []
            for seed in range(seeds):
                c = [latency_constraint(p, budget, space)]
                try:
                    r = run_search(space, costly, c, "evolution", evaluations=n, seed=seed)
                except SearchError as exc:
                    m = re.search(r"none of the (\d+) evaluated", str(exc))
                    used.append(int(m.group(1)) if m else -1)
                else:
                    found += 1
                    used.append(r.evaluations)
            print(
                f"  FBNet budget {budget:.2f} ms (percentile {pct:g}), {n} evaluations: "
                f"feasible found in {found}/{seeds} seeds; evaluations used median "
                f"{statistics.median(used):.0f} (min {min(used)}, max {max(used)})"
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5, help="throughput repeats (0: skip)")
    ap.add_argument(
        "--tight", action="store_true", help="only the tight-budget expensive-objective runs"
    )
    args = ap.parse_args()
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}; "
        f"python {platform.python_version()}"
    )
    print("command: .venv/bin/python benchmarks/bench_nas_search.py", vars(args))
    t = time.perf_counter()
    if args.tight:
        tight(args.seeds)
        print(f"total {time.perf_counter() - t:.1f} s")
        return
    quality(args.seeds)
    if args.repeats:
        throughput(args.repeats)
    print(f"total {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
