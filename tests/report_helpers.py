"""Real data for the report tests: a store of real onnxruntime measurements of NB201 cells.

Built once per test session (the first test that asks for it pays ~5 s) and shared by the report
test modules through :func:`real_store`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

N_ARCHS = 12
LOCAL = "local"
_CACHE: dict[str, Any] = {}


def reference() -> pd.DataFrame:
    if "ref" not in _CACHE:
        from latbench.datasets import load_reference

        _CACHE["ref"] = load_reference("nb201")
    ref: pd.DataFrame = _CACHE["ref"]
    return ref


def pick_archs(n: int = N_ARCHS) -> list[str]:
    """``n`` reference architectures spread evenly over the latency range of a desktop CPU."""
    ref = reference()
    cpu = ref[ref["device"] == "help/gold_6240"].sort_values("latency_ms")
    idx = np.linspace(0, len(cpu) - 1, n).round().astype(int)
    return [str(a) for a in cpu["arch"].iloc[idx]]


def real_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with N_ARCHS real measurements on this CPU and one failed row."""
    if "store" in _CACHE:
        path: Path = _CACHE["store"]
        return path
    from latbench.datasets import open as open_store
    from latbench.datasets.schema import row_from_measurement
    from latbench.devices import get_device
    from latbench.profilers.harness import HarnessSettings
    from latbench.profilers.record import Measurement
    from latbench.spaces import NB201Space, export, get_space

    base = tmp_path_factory.mktemp("report-store")
    space = get_space("nb201")
    assert isinstance(space, NB201Space)
    settings = HarnessSettings(
        warmup_runs=2, warmup_time_s=0.01, min_runs=10, min_time_s=0.03, max_time_s=0.2
    )
    rows = []
    with get_device(LOCAL) as dev:
        for i, arch in enumerate(pick_archs()):
            model = export(space.build(arch), "onnx", base / f"a{i}.onnx", seed=0)
            m = dev.measure(str(model), runtime="onnxruntime", threads=1, settings=settings)
            assert m.ok, m.error
            rows.append(
                row_from_measurement(
                    m,
                    collection="test",
                    space="nb201",
                    arch=arch,
                    arch_id=space.arch_id(arch),
                    arch_index=space.index(arch),
                    device=LOCAL,
                    drift_ratio=1.0 + 0.01 * i,
                )
            )
    failed = Measurement.failed("worker crashed (SIGKILL)", runtime="onnxruntime")
    rows.append(
        row_from_measurement(
            failed,
            collection="test",
            space="nb201",
            arch=space.from_index(7),
            arch_id=space.arch_id(space.from_index(7)),
            arch_index=7,
            device=LOCAL,
        )
    )
    path = base / "latbench.db"
    with open_store(path) as store:
        store.add_many(rows)
    _CACHE["store"] = path
    return path


def store_frame(path: Path) -> pd.DataFrame:
    from latbench.datasets import open as open_store

    with open_store(path, readonly=True) as store:
        return store.to_pandas()


def fitted_predictor(path: Path, measurements: pd.DataFrame) -> Path:
    """A real ``ridge`` predictor fitted on the reference CPU table, saved to ``path``."""
    from latbench import predictors

    ref = reference()
    cpu = ref[ref["device"] == "help/gold_6240"].sample(400, random_state=0)
    p = predictors.create("ridge").fit(
        list(cpu["arch"]), cpu["latency_ms"].to_numpy(), space="nb201"
    )
    predictors.save(p, path)
    assert len(measurements)
    return path


SEARCH_RESULT: dict[str, Any] = {
    "space": "nb201",
    "device": "local",
    "budget_ms": 1.5,
    "evaluated": [
        {"arch": "a", "latency_ms": 1.0, "accuracy": 0.80},
        {"arch": "b", "latency_ms": 1.2, "accuracy": 0.78},  # dominated by a
        {"arch": "c", "latency_ms": 2.0, "accuracy": 0.86},
        {"arch": "d", "latency_ms": 3.0, "accuracy": 0.85},  # dominated by c
        {"arch": "e", "latency_ms": 4.0, "accuracy": 0.91},
        {"arch": "f", "latency_ms": 0.5, "accuracy": 0.60},
    ],
}


def full_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    """The report of :func:`real_store` with a real predictor and a search result, built once."""
    if "report" in _CACHE:
        cached: tuple[Path, list[Any]] = _CACHE["report"]
        return cached
    import json

    from latbench.report import predictions_from_predictor, render_report

    db = real_store(tmp_path_factory)
    base = db.parent
    measurements = store_frame(db)
    predictor = fitted_predictor(base / "ridge.lbp", measurements)
    (base / "search.json").write_text(json.dumps(SEARCH_RESULT))
    page, sections = render_report(
        measurements=measurements,
        predictions=predictions_from_predictor(predictor, measurements),
        reference=reference(),
        search=SEARCH_RESULT,
        meta={"store": str(db)},
    )
    out = base / "report.html"
    out.write_text(page, encoding="utf-8")
    _CACHE["report"] = (out, sections)
    return out, sections
