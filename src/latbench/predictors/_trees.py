"""Regression trees as plain arrays: code-free saving and a vectorised numpy predictor.

scikit-learn fits the trees; latbench keeps only ``children_left``, ``children_right``,
``feature``, ``threshold`` and ``value`` of every tree, concatenated into flat arrays with the
root of each tree. Prediction walks all trees for all samples at once (one numpy step per tree
level), so a saved forest needs neither pickle nor the scikit-learn version that trained it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

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


def leaf_values(forest: dict[str, np.ndarray], x: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """``(n_samples, n_trees)`` leaf values; ``x`` is compared in float32 as sklearn does."""
    xf = np.asarray(x, dtype=np.float32).astype(np.float64)
    if xf.shape[0] > chunk:  # bounded memory: the node matrix is n_samples x n_trees
        return np.concatenate(
            [leaf_values(forest, xf[s : s + chunk], chunk) for s in range(0, xf.shape[0], chunk)]
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
