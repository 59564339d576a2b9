"""Regression trees as plain arrays: code-free saving and fast prediction.

scikit-learn fits the trees; latbench keeps only ``children_left``, ``children_right``,
``feature``, ``threshold`` and ``value`` of every tree, concatenated into flat arrays with the
root of each tree. That is all a saved file holds, so it needs neither pickle nor the
scikit-learn version that trained it.

Prediction rebuilds scikit-learn ``Tree`` objects of the *running* version from those arrays
(filling its node record by field name, so a new field such as ``missing_go_to_left`` gets a
neutral value) and uses their compiled ``predict``: ~50x faster than walking the trees in numpy.
If that ever fails (a scikit-learn whose tree state changed shape), a vectorised numpy walk over
all trees at once (one step per tree level) gives the same numbers.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

FOREST_KEYS = ("left", "right", "feature", "threshold", "value", "roots")


def pack(trees: Sequence[Any]) -> dict[str, np.ndarray]:
    """Flatten fitted sklearn ``DecisionTreeRegressor.tree_`` objects into arrays."""
    left, right, feat, thr, val, roots = [], [], [], [], [], []
    offset = 0
    for t in trees:
        n = int(t.node_count)
        cl = np.asarray(t.children_left[:n], dtype=np.int64)
        cr = np.asarray(t.children_right[:n], dtype=np.int64)
        left.append(np.where(cl >= 0, cl + offset, -1))
        right.append(np.where(cr >= 0, cr + offset, -1))
        feat.append(np.asarray(t.feature[:n], dtype=np.int64))
        thr.append(np.asarray(t.threshold[:n], dtype=np.float64))
        val.append(np.asarray(t.value[:n], dtype=np.float64).reshape(n, -1)[:, 0])
        roots.append(offset)
        offset += n
    return {
        "left": np.concatenate(left),
        "right": np.concatenate(right),
        "feature": np.concatenate(feat),
        "threshold": np.concatenate(thr),
        "value": np.concatenate(val),
        "roots": np.asarray(roots, dtype=np.int64),
    }


_SK_CACHE: dict[int, tuple[np.ndarray, list[Any]]] = {}


def _sklearn_trees(forest: dict[str, np.ndarray], n_features: int) -> list[Any] | None:
    """scikit-learn ``Tree`` objects rebuilt from the arrays (cached per forest), or None."""
    key = id(forest["left"])
    hit = _SK_CACHE.get(key)
    if hit is not None and hit[0] is forest["left"]:
        return hit[1]
    try:
        from sklearn.tree._tree import NODE_DTYPE, Tree

        roots = [*forest["roots"].tolist(), forest["left"].size]
        trees = []
        for a, b in itertools.pairwise(roots):
            n = b - a
            nodes = np.zeros(n, dtype=NODE_DTYPE)
            left, right = forest["left"][a:b], forest["right"][a:b]
            nodes["left_child"] = np.where(left >= 0, left - a, -1)
            nodes["right_child"] = np.where(right >= 0, right - a, -1)
            nodes["feature"] = np.where(left >= 0, forest["feature"][a:b], -2)
            nodes["threshold"] = np.where(left >= 0, forest["threshold"][a:b], -2.0)
            nodes["n_node_samples"] = 1
            nodes["weighted_n_node_samples"] = 1.0
            depth = np.zeros(n, dtype=np.int64)
            for i in range(n):  # parents precede children in sklearn's node order
                if left[i] >= 0:
                    depth[left[i] - a] = depth[right[i] - a] = depth[i] + 1
            t = Tree(n_features, np.array([1], dtype=np.intp), 1)
            t.__setstate__(
                {
                    "max_depth": int(depth.max()),
                    "node_count": n,
                    "nodes": nodes,
                    "values": forest["value"][a:b].reshape(n, 1, 1).astype(np.float64),
                }
            )
            trees.append(t)
    except Exception as exc:  # noqa: BLE001 - any failure falls back to the numpy walk
        log.debug("scikit-learn trees unavailable (%s); using the numpy tree walk", exc)
        return None
    if len(_SK_CACHE) > 64:
        _SK_CACHE.clear()
    _SK_CACHE[key] = (forest["left"], trees)
    return trees


def tree_sum(forest: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Sum over trees of the leaf values, ``(n_samples,)``: one compiled loop over all trees."""
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    trees = _sklearn_trees(forest, x32.shape[1])
    if trees is not None:
        try:
            from sklearn.ensemble._gradient_boosting import predict_stages
            from sklearn.tree import DecisionTreeRegressor

            est = np.empty((len(trees), 1), dtype=object)
            for i, t in enumerate(trees):
                d = DecisionTreeRegressor()
                d.tree_ = t
                est[i, 0] = d
            out = np.zeros((x32.shape[0], 1))
            predict_stages(est, x32, 1.0, out)
            result: np.ndarray = out[:, 0]
            return result
        except Exception as exc:  # noqa: BLE001 - fall back to per-tree prediction
            log.debug("predict_stages unavailable (%s)", exc)
    summed: np.ndarray = leaf_values(forest, x32).sum(axis=1)
    return summed


def leaf_values(forest: dict[str, np.ndarray], x: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """``(n_samples, n_trees)`` leaf values; ``x`` is compared in float32 as sklearn does."""
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    trees = _sklearn_trees(forest, x32.shape[1])
    if trees is not None:
        return np.stack([t.predict(x32).reshape(-1) for t in trees], axis=1)
    return _leaf_values_numpy(forest, x32, chunk)


def _leaf_values_numpy(forest: dict[str, np.ndarray], x: np.ndarray, chunk: int) -> np.ndarray:
    xf = np.asarray(x, dtype=np.float32).astype(np.float64)
    if xf.shape[0] > chunk:  # bounded memory: the node matrix is n_samples x n_trees
        return np.concatenate(
            [
                _leaf_values_numpy(forest, xf[s : s + chunk], chunk)
                for s in range(0, xf.shape[0], chunk)
            ]
        )
    left, right = forest["left"], forest["right"]
    feature, threshold = forest["feature"], forest["threshold"]
    node = np.broadcast_to(forest["roots"][None, :], (xf.shape[0], forest["roots"].size)).copy()
    node = node.astype(np.int32) if forest["left"].size < 2**31 else node
    rows = np.arange(xf.shape[0])[:, None]
    while True:
        lc = left[node]
        inner = lc >= 0
        if not inner.any():
            break
        f = np.where(inner, feature[node], 0)
        go_left = xf[rows, f] <= threshold[node]
        node = np.where(inner, np.where(go_left, lc, right[node]), node)
    values: np.ndarray = forest["value"][node]
    return values
