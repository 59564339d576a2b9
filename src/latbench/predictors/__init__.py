"""Latency predictors: encodings, models, metrics, saving and loading.

>>> from latbench import predictors
>>> p = predictors.create("gbm").fit(archs, latency_ms, space="nb201")   # doctest: +SKIP
>>> predictors.save(p, "pixel3.lbp"); predictors.load("pixel3.lbp").predict(archs)  # doctest: +SKIP

Registered models (``PREDICTORS.names()``): ``flops``, ``ridge``, ``gbm``, ``rf``, ``kernel``,
``gcn``, ``ensemble`` and ``default`` (the recommended one). See ``docs/predictors.md``.
"""

from __future__ import annotations

from latbench.predictors import (  # few-shot: registers meta, adapted
    adapt,
    ensemble,
    fewshot_meta,
    gcn,
    kernel,
    tabular,
)
from latbench.predictors.base import PREDICTORS, Predictor, clone, create, register
from latbench.predictors.persist import load, save

__all__ = [
    "PREDICTORS",
    "Predictor",
    "adapt",
    "clone",
    "create",
    "ensemble",
    "fewshot_meta",
    "gcn",
    "kernel",
    "load",
    "register",
    "save",
    "tabular",
]
