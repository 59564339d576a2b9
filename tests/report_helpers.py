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


def harness_settings(**changes: Any) -> Any:
    """The short harness settings of every report test measurement (``changes`` on top)."""
    from latbench.profilers.harness import HarnessSettings

    base: dict[str, Any] = {
        "warmup_runs": 2,
        "warmup_time_s": 0.01,
        "min_runs": 10,
        "min_time_s": 0.03,
        "max_time_s": 0.2,
    }
    return HarnessSettings(**{**base, **changes})


def measure_rows(
    base: Path,
    archs: list[str],
    *,
    collection: str,
    threads: int = 1,
    settings: Any = None,
) -> list[tuple[dict[str, Any], Any]]:
    """Real onnxruntime measurements of ``archs`` on this CPU: ``(store row, record)`` pairs,
    the row as ``latbench collect`` stores it (``collection``, ``threads``, ``settings``)."""
    from latbench.datasets.schema import row_from_measurement
    from latbench.devices import get_device
    from latbench.spaces import NB201Space, export, get_space

    space = get_space("nb201")
    assert isinstance(space, NB201Space)
    out = []
    with get_device(LOCAL) as dev:
        for arch in archs:
            model = base / f"{space.arch_id(arch)}.onnx"
            if not model.exists():
                export(space.build(arch), "onnx", model, seed=0)
            m = dev.measure(
                str(model),
                runtime="onnxruntime",
                threads=threads,
                settings=settings if settings is not None else harness_settings(),
            )
            assert m.ok, m.error
            row = row_from_measurement(
                m,
                collection=collection,
                space="nb201",
                arch=arch,
                arch_id=space.arch_id(arch),
                arch_index=space.index(arch),
                device=LOCAL,
                drift_ratio=1.0,
            )
            out.append((row, m))
    return out


def real_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with N_ARCHS real measurements on this CPU and one failed row."""
    if "store" in _CACHE:
        path: Path = _CACHE["store"]
        return path
    from latbench.datasets import open as open_store
    from latbench.datasets.schema import row_from_measurement
    from latbench.profilers.record import Measurement
    from latbench.spaces import get_space

    base = tmp_path_factory.mktemp("report-store")
    space = get_space("nb201")
    pairs = measure_rows(base, pick_archs(), collection="test")
    rows = []
    for i, (row, _) in enumerate(pairs):
        rows.append({**row, "drift_ratio": 1.0 + 0.01 * i})
    # as ``latbench collect`` stores a failure: with the collection's thread count
    failed = Measurement.failed("worker crashed (SIGKILL)", runtime="onnxruntime", threads=1)
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
    _CACHE["store_rows"] = rows
    return path


#: The collections :func:`config_store` adds to :func:`real_store`'s ``test`` and their groups
#: (``sections.group_labels``): threads and statistic vary, and two collections measured
#: ``t1 · median``, so that group is split by collection.
CONFIG_N = 3
CONFIG_GROUPS = {
    "test": "local · onnxruntime · t1 · median · test",
    "few": "local · onnxruntime · t1 · median · few",
    "t2": "local · onnxruntime · t2 · median",
    "min": "local · onnxruntime · t1 · min",
}


def config_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """:func:`real_store` plus real measurements of CONFIG_N of its architectures with
    ``threads=2`` (collection ``t2``), ``statistic = "min"`` (``min``) and ``min_runs=6``
    capped at 6 runs (``few``). Returns the store and the records of the added rows by
    ``(collection, arch)``."""
    if "config" in _CACHE:
        cached: tuple[Path, dict[str, Any]] = _CACHE["config"]
        return cached
    from latbench.datasets import open as open_store

    real_store(tmp_path_factory)
    base = tmp_path_factory.mktemp("report-config")
    archs = pick_archs()[:: N_ARCHS // CONFIG_N][:CONFIG_N]
    added = (
        measure_rows(base, archs, collection="t2", threads=2)
        + measure_rows(base, archs, collection="min", settings=harness_settings(statistic="min"))
        + measure_rows(
            base,
            archs,
            collection="few",
            settings=harness_settings(min_runs=6, max_runs=6, loops=20, max_time_s=2.0),
        )
    )
    path = base / "latbench.db"
    with open_store(path) as store:
        store.add_many([*_CACHE["store_rows"], *(row for row, _ in added)])
    records = {(row["collection"], row["arch"]): m for row, m in added}
    _CACHE["config"] = (path, records)
    return path, records


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
