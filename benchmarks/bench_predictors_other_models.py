"""Model classes ``default`` does not hold, on the NAS-Bench-201 columns where it ranks worst.

Same protocol as ``bench_predictors_accuracy.py`` (900 random training architectures of the
device column, ``numpy.random.default_rng(seed)``, the rest to test). For each column and seed:

* ``krr``: kernel ridge on the raw + effective-cell one-hot, log-latency targets, the kernel
  (polynomial of degree 2-4 or RBF), gamma and alpha chosen by 5-fold Spearman on the training
  rows only;
* ``gcn``: latbench's BRP-NAS style graph network with its defaults;
* each blended with ``default`` (geometric mean, weight ``w`` on the newcomer).

Prints Spearman / +-10 % accuracy per model and blend: the question is whether anything the
ensemble lacks would lift these columns.

    python benchmarks/bench_predictors_other_models.py [--devices a,b] [--seeds 0]
"""

from __future__ import annotations

import argparse
import itertools
import platform
import sys
import time
from typing import Any

import numpy as np
from sklearn.kernel_ridge import KernelRidge
from sklearn.model_selection import KFold

from latbench import predictors
from latbench.datasets import load_reference
from latbench.predictors import encodings
from latbench.predictors.metrics import acc_within, spearman

WEAKEST = (
    "oneproxy/eagle_dsp_855",
    "oneproxy/eagle_jetson_16",
    "oneproxy/eagle_tpu",
    "latbench/desktop_cpu_i7_7820x_fp32",
)
KERNELS: dict[str, dict[str, Any]] = {
    "poly2": {"kernel": "poly", "degree": 2, "coef0": 1},
    "poly3": {"kernel": "poly", "degree": 3, "coef0": 1},
    "poly4": {"kernel": "poly", "degree": 4, "coef0": 1},
    "rbf": {"kernel": "rbf"},
}
GAMMAS = (0.005, 0.01, 0.02, 0.05, 0.1)
ALPHAS = (1e-2, 1e-1, 1.0, 3.0, 10.0)


def fit_krr(x: np.ndarray, log_y: np.ndarray) -> tuple[KernelRidge, float, str]:
    """Kernel ridge with the (kernel, gamma, alpha) of best 5-fold Spearman; log targets."""
    mu = float(log_y.mean())
    folds = list(KFold(5, shuffle=True, random_state=0).split(x))
    best: tuple[float, str, float, float] | None = None
    for (name, params), gamma, alpha in itertools.product(KERNELS.items(), GAMMAS, ALPHAS):
        oof = np.zeros(len(x))
        for a, b in folds:
            m = KernelRidge(alpha=alpha, gamma=gamma, **params).fit(x[a], log_y[a] - mu)
            oof[b] = m.predict(x[b])
        rho = spearman(log_y, oof)
        if best is None or rho > best[0]:
            best = (rho, name, gamma, alpha)
    assert best is not None
    _, name, gamma, alpha = best
    model = KernelRidge(alpha=alpha, gamma=gamma, **KERNELS[name]).fit(x, log_y - mu)
    return model, mu, f"{name} gamma={gamma:g} alpha={alpha:g}"


def cell(y: np.ndarray, pred: np.ndarray) -> str:
    """``Spearman / +-10 % accuracy in %`` of ``pred`` against ``y``."""
    return f"{spearman(y, pred):.4f} / {100 * acc_within(y, pred, 10):.1f}"


def blend(base: np.ndarray, other: np.ndarray, w: float = 0.25) -> np.ndarray:
    """Geometric blend of two predictions, weight ``w`` on ``other``."""
    return np.exp((1 - w) * np.log(base) + w * np.log(other))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", default=",".join(WEAKEST), help="device columns (comma list)")
    ap.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (default 1)")
    ap.add_argument("--train-size", type=int, default=900)
    args = ap.parse_args()
    df = load_reference("nb201")
    print(f"# {' '.join(sys.argv)}")
    print(f"# machine: {platform.machine()}, python {platform.python_version()}")
    print(
        "| device | seed | default | krr | krr w=0.25 | gcn | gcn w=0.25 | krr kernel | gcn fit s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for dev in args.devices.split(","):
        sub = df[df.device == dev]
        if sub.empty:
            raise SystemExit(f"device {dev!r} is not in the nb201 reference table")
        archs = sub.arch.tolist()
        y = sub.latency_ms.to_numpy()
        x = np.hstack(
            [
                encodings.onehot("nb201", archs),
                encodings.onehot("nb201", encodings.canonical_cells("nb201", archs)),
            ]
        )
        for seed in range(args.seeds):
            perm = np.random.default_rng(seed).permutation(len(archs))
            tr, te = perm[: args.train_size], perm[args.train_size :]
            train = [archs[i] for i in tr]
            test = [archs[i] for i in te]
            default = predictors.create("default").fit(train, y[tr], space="nb201").predict(test)
            krr, mu, kernel = fit_krr(x[tr], np.log(y[tr]))
            p_krr = np.exp(krr.predict(x[te]) + mu)
            t0 = time.perf_counter()
            p_gcn = predictors.create("gcn").fit(train, y[tr], space="nb201").predict(test)
            gcn_s = time.perf_counter() - t0
            cells = [
                cell(y[te], p)
                for p in (default, p_krr, blend(default, p_krr), p_gcn, blend(default, p_gcn))
            ]
            print(f"| {dev} | {seed} | {' | '.join(cells)} | {kernel} | {gcn_s:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
