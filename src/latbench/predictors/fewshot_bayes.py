"""``bayes``: Bayesian model averaging over proxies with a per-operation cost residual.

Why: a proxy device (``soft``) can only rank the target as well as some known device does, and
a linear combination of known devices caps at about 0.92 Spearman on the reference tables when
the target is unlike all of them (edge GPUs, TPUs, DSPs). Latency is close to a sum of
per-operation costs, so a handful of measurements can also fit the target's *own* op costs, if
the model has few enough of them. This method does both at once and lets the evidence of the K
samples decide how much of each.

Model (log latency ``t``, standardised by the K samples' mean and spread)::

    t(arch) = a + c * p_j(arch) + g(arch) . beta + noise
    a ~ N(0, 1), c ~ N(0, 1), beta ~ N(0, b I), noise ~ N(0, s)

``p_j`` is the base's log-latency on source device j, standardised over a random population
of the space; ``g`` are the architecture's *cost features* (:func:`cost_features`: how many
operations of each kind survive pruning, in raw counts, centred on the population). One model
per (source j, residual strength b, noise s) on a small grid, plus the models without any
source (``c = 0``: the pure op-cost model, ``b > 0``). Each model is a Bayesian linear
regression with ``2 + F`` weights (F = 7 for NAS-Bench-201), so its evidence (marginal
likelihood) and posterior mean are closed-form and cost O(K F^2): a fit takes milliseconds
whatever K is. Models whose posterior slope ``c`` is not positive are dropped (a proxy must
rank the same way). The prediction is the evidence-weighted average of the models' posterior
means, which is again linear: weights over the sources, an intercept and a coefficient per cost
feature, so it is stored and applied exactly like the other methods.

What the evidence does: where one source explains the samples (a GPU next to another GPU) the
models with ``b = 0`` of that source dominate and the method is ``soft``; where no source does
(an accelerator), models with a cost residual win and re-rank the architectures by the
target's own op costs. Measured on the reference tables (NB201, leave-one-device-out, K = 10,
``benchmarks/bench_fewshot_help.py``) it raises the edge devices by 0.03-0.09 and costs HELP's
GPUs up to 0.01.

Cost features exist where the space has a cost model that a few samples can fit:
NAS-Bench-201 (live operation counts after pruning, the two intermediate-node flags and
"cell disconnected"). For FBNet, position-free op counts were measured to rank worse than the
proxies (mean 0.884 vs 0.905 on leave-one-out), so :func:`cost_features` returns ``None`` and
``auto`` keeps its cross-validated choice there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from latbench.errors import PredictorError
from latbench.predictors import encodings as enc

#: residual strengths ``b`` (prior variance of each op-cost weight, standardised units)
RESIDUAL_GRID = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
#: noise variances ``s`` (fraction of the K samples' variance)
NOISE_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)
#: spaces with a cost model (see the module docstring)
COST_SPACES = ("nb201",)

# NAS-Bench-201 edges: 0:(1<-0) 1:(2<-0) 2:(2<-1) 3:(3<-0) 4:(3<-1) 5:(3<-2)
_NB201_SRC = np.array([0, 0, 1, 0, 1, 2])
_NB201_DST = np.array([1, 2, 2, 3, 3, 3])


class DegenerateSamples(PredictorError):
    """The K samples carry no ranking that ``bayes`` can use (all equal, or every source
    anti-correlated with them); :func:`latbench.predictors.fewshot.fit_bayes` falls back to
    ``soft`` on it."""


def _nb201_cost(ops: np.ndarray) -> np.ndarray:
    """``(N, 7)``: live counts of skip/conv1x1/conv3x3/avgpool, nodes 1-2 used, disconnected.

    An edge computes when its source node is reached from the cell input and its target node
    reaches the output (``none`` is op 0); everything else is pruned by the runtime.
    """
    nz = ops != 0
    n = len(ops)
    reach = np.zeros((n, 4), dtype=bool)  # reached from the input
    reach[:, 0] = True
    reach[:, 1] = nz[:, 0]
    reach[:, 2] = nz[:, 1] | (nz[:, 2] & reach[:, 1])
    reach[:, 3] = nz[:, 3] | (nz[:, 4] & reach[:, 1]) | (nz[:, 5] & reach[:, 2])
    out_ = np.zeros((n, 4), dtype=bool)  # reaches the output
    out_[:, 3] = True
    out_[:, 2] = nz[:, 5]
    out_[:, 1] = nz[:, 4] | (nz[:, 2] & out_[:, 2])
    out_[:, 0] = True
    live = nz & reach[:, _NB201_SRC] & out_[:, _NB201_DST]
    counts = np.stack([(live & (ops == c)).sum(axis=1) for c in (1, 2, 3, 4)], axis=1)
    nodes = out_[:, 1:3]
    return np.concatenate(
        [counts.astype(np.float64), nodes.astype(np.float64), (~reach[:, 3:4]).astype(np.float64)],
        axis=1,
    )


def cost_features(space: str, archs: Sequence[Any]) -> np.ndarray | None:
    """Raw per-operation cost features of ``archs``, or ``None`` where the space has none."""
    if space not in COST_SPACES:
        return None
    ops = enc.op_matrix(space, list(archs))
    return _nb201_cost(ops)


def _blr_evidence(
    x: np.ndarray, t: np.ndarray, prior_var: np.ndarray, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """Log evidence and posterior mean of ``t = x w + e``, ``w ~ N(0, diag(prior_var))``.

    Batched: ``x`` is (M, K, R), one design per model; returns ``(M,)`` and ``(M, R)``.
    Primal form, O(K R^2) per model, so the cost does not grow with K^3.
    """
    k = x.shape[1]
    xt = np.swapaxes(x, 1, 2)
    a = xt @ x / noise + np.diag(1.0 / prior_var)[None]
    chol = np.linalg.cholesky(a)
    rhs = (xt @ t) / noise  # (M, R)
    m = np.linalg.solve(a, rhs[..., None])[..., 0]
    logdet_a = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    ll = -0.5 * (
        k * np.log(2 * np.pi * noise)
        + float(np.log(prior_var).sum())
        + logdet_a
        + float(t @ t) / noise
        - np.einsum("mr,mr->m", rhs, m)
    )
    return ll, m


def fit_bayes_arrays(
    pz: np.ndarray,
    g: np.ndarray | None,
    t_log: np.ndarray,
    *,
    residual_grid: Sequence[float] = RESIDUAL_GRID,
    noise_grid: Sequence[float] = NOISE_GRID,
) -> tuple[float, np.ndarray, np.ndarray | None, dict[str, float]]:
    """Evidence-weighted model average (see the module docstring).

    ``pz`` (K x D): standardised source log-latencies; ``g`` (K x F) centred cost features or
    None; ``t_log`` (K,). Returns ``(intercept, weights on pz, weights on g, info)`` in log
    units of the target.
    """
    k, d = pz.shape
    if k < 3:
        raise PredictorError(f"bayes: got {k} samples; expected at least 3")
    tm = float(t_log.mean())
    sd = float(t_log.std())
    if not sd > 0:
        raise DegenerateSamples("bayes: all latencies are equal; expected measurements that differ")
    t = (t_log - tm) / sd
    nf = 0 if g is None else g.shape[1]
    grid_b = [b for b in residual_grid if b == 0 or nf]
    ones = np.ones((k, 1))
    lls: list[np.ndarray] = []
    # (source index or -1, b, posterior means) per block of models
    blocks: list[tuple[np.ndarray, float, np.ndarray]] = []
    for b in grid_b:
        res = b > 0 and g is not None
        gcols = [g] if res and g is not None else []
        # one design per source: [1, p_j, g]
        xs = np.stack([np.hstack([ones, pz[:, j : j + 1], *gcols]) for j in range(d)])
        pv = np.array([1.0, 1.0] + ([b] * nf if res else []))
        designs = [(np.arange(d), xs, pv)]
        if res and g is not None:
            designs.append((np.array([-1]), np.hstack([ones, g])[None], np.array([1.0] + [b] * nf)))
        for js, x, var in designs:
            for s in noise_grid:
                ll, m = _blr_evidence(x, t, var, s)
                if js[0] >= 0:
                    # a proxy must rank the same way as the target
                    ll = np.where(m[:, 1] > 0, ll, -np.inf)
                lls.append(ll)
                blocks.append((js, b, m))
    ll_all = np.concatenate(lls)
    if not np.isfinite(ll_all).any():
        raise DegenerateSamples("bayes: no source correlates positively with the samples")
    post_all = np.exp(ll_all - ll_all.max())
    post_all /= post_all.sum()
    w = np.zeros(d)
    beta = np.zeros(nf)
    a = 0.0
    res_mass = 0.0
    none_mass = 0.0
    n_models = int(np.isfinite(ll_all).sum())
    pos = 0
    for js, b, m in blocks:
        post = post_all[pos : pos + len(js)]
        pos += len(js)
        a += float(post @ m[:, 0])
        i = 1
        if js[0] >= 0:
            w += post * m[:, 1]
            i = 2
        else:
            none_mass += float(post.sum())
        if b > 0:
            beta += post @ m[:, i:]
            res_mass += float(post.sum())
    info = {
        "max_posterior": float(post_all.max()),
        "residual_mass": float(res_mass),
        "no_source_mass": float(none_mass),
        "models": float(n_models),
    }
    return tm + sd * a, sd * w, (sd * beta if nf else None), info
