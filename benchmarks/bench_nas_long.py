"""Wall time of one long evolution run on NB201 (the local search's cost per round).

NB201, ridge fitted on 1,000 reference rows of ``help/pixel3``, objective ``params``, budget
10.26 ms (the 50th percentile of predicted latency), seed 0; prints the seconds, the distinct
evaluations and the best objective. To compare two versions, run it A B A B with each one's
sources first on the path, in one session:

    PYTHONPATH=OTHER_CHECKOUT/src .venv/bin/python benchmarks/bench_nas_long.py 12000
    .venv/bin/python benchmarks/bench_nas_long.py 12000
"""

from __future__ import annotations

import argparse
import time

import latbench
from latbench import predictors
from latbench.datasets.reference import load_reference
from latbench.nas import latency_constraint, make_objective, run_search
from latbench.spaces import get_space


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("evaluations", type=int, nargs="?", default=12000)
    args = ap.parse_args()
    ref = load_reference("nb201")
    rows = ref[ref.device == "help/pixel3"].iloc[:1000]
    space = get_space("nb201")
    p = predictors.create("ridge").fit(
        rows.arch.tolist(), rows.latency_ms.to_numpy(), space="nb201"
    )
    t0 = time.perf_counter()
    r = run_search(
        space,
        make_objective("params", space),
        [latency_constraint(p, 10.26, space)],
        "evolution",
        evaluations=args.evaluations,
        seed=0,
    )
    wall = time.perf_counter() - t0
    print(
        f"{wall:.3f} s  {r.evaluations} evaluations  best {r.best[0].objective:.0f}  "
        f"(latbench from {latbench.__file__})"
    )


if __name__ == "__main__":
    main()
