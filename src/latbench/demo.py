"""``latbench demo``: the main job, end to end, on this machine's CPU with the embedded store.

1. collect a small NB201 sample on ``local`` (onnxruntime) into ``OUT/latbench.db``;
2. fit a predictor on part of it and evaluate it on the architectures it did not see;
3. adapt the multi-device reference predictor (trained on the bundled NB201 tables, which never
   saw this machine) to this CPU from 10 measurements, and compare it with step 2;
4. run a latency-constrained search with the adapted predictor and verify its picks for real
   (under a margin set by the adapted predictor's own under-prediction on the step-1 sample,
   inside that sample's region: a search picks exactly the architectures it under-predicts);
5. write a self-contained HTML report and print a short summary with its path.

Every step keeps its result under ``OUT``: the store resumes the measurements, fitted predictors
and the search result are files, so running the demo again resumes instead of starting over.
This module composes several layers and therefore belongs to the CLI layer.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import latbench.datasets as lbd
import latbench.predictors as lbp
from latbench.config import Config, load_config
from latbench.datasets.collect import CollectSettings, collect
from latbench.devices import get_device
from latbench.errors import ConfigError
from latbench.predictors import metrics
from latbench.predictors.adapt import choose_samples
from latbench.profilers.harness import HarnessSettings
from latbench.spaces import get_space

log = logging.getLogger(__name__)

#: multi-device base: the reference devices it is trained on (the NB201 meta-train split of
#: HELP's protocol plus the desktop and mobile columns of the other sources)
BASE_DEVICES = "all"


@dataclass
class DemoOptions:
    out_dir: Path = Path("demo-out")
    sample: int = 60  # NB201 architectures measured on this CPU
    train: int = 40  # of which the first ``train`` fit the local predictor; the rest test
    shots: int = 10  # measurements for the few-shot adaptation
    model: str = "gbm"  # the predictor fitted on local measurements
    base_model: str = "meta"  # the multi-device base predictor
    evaluations: int = 500
    objective: str = "params"
    verify: int = 5
    seed: int = 0
    progress: bool = True
    harness: HarnessSettings = field(
        default_factory=lambda: HarnessSettings(
            warmup_runs=5, warmup_time_s=0.1, min_runs=15, min_time_s=0.4, max_time_s=3.0
        )
    )


#: the fewest architectures the demo fits on and tests on (5 and 3: below that a Spearman
#: says nothing); adaptation needs at least 3 shots
MIN_TRAIN, MIN_TEST, MIN_SHOTS = 5, 3, 3


def check_options(o: DemoOptions) -> None:
    """Refuse, before anything is measured, options that would fail a later step of the demo
    (named as the ``latbench demo`` options)."""
    from latbench._validate import out_of_range

    bad = out_of_range(
        [
            (
                "--sample",
                o.sample,
                {"integer": True, "low": MIN_TRAIN + MIN_TEST, "high": get_space("nb201").size()},
            ),
            ("--train", o.train, {"integer": True, "low": MIN_TRAIN, "high": o.sample - MIN_TEST}),
            ("--shots", o.shots, {"integer": True, "low": MIN_SHOTS}),
            ("--evaluations", o.evaluations, {"integer": True, "low": 1}),
            ("--verify", o.verify, {"integer": True, "low": 0}),
        ]
    )
    if bad is not None:
        why = {
            "--sample": f" ({MIN_TRAIN} to fit and {MIN_TEST} to test at least, of the "
            f"{get_space('nb201').size()} nb201 architectures)",
            "--train": f" (at least {MIN_TEST} of --sample {o.sample} are left to test)",
            "--shots": " (few-shot adaptation needs 3)",
        }.get(bad[0], "")
        raise ConfigError(bad[1] + why)


#: the budget margin is this quantile of the adapted predictor's held-out under-prediction
#: (what ``latbench search --margin-from`` uses by default), capped at MAX_MARGIN
MARGIN_QUANTILE = 0.97
MAX_MARGIN = 0.5


@dataclass
class DemoSummary:
    out_dir: Path
    report: Path
    measured: int = 0
    failed: int = 0
    local_eval: dict[str, float] = field(default_factory=dict)
    adapted_eval: dict[str, float] = field(default_factory=dict)
    base_devices: int = 0
    budget_ms: float = 0.0
    margin: float = 0.0
    verified: list[dict[str, Any]] = field(default_factory=list)
    steps_s: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        le, ae = self.local_eval, self.adapted_eval
        met = sum(1 for v in self.verified if v.get("met_budget"))
        return [
            f"measured {self.measured} NB201 architectures on this CPU ({self.failed} failed)",
            f"local predictor ({le.get('train', 0):.0f} archs): Spearman "
            f"{le.get('spearman', float('nan')):.3f}, MAPE {le.get('mape', float('nan')):.1f} %, "
            f"within 10 %: {le.get('acc10', float('nan')):.0f} % on {le.get('test', 0):.0f} unseen",
            f"few-shot ({ae.get('shots', 0):.0f} measurements, base of {self.base_devices} "
            f"reference devices): Spearman {ae.get('spearman', float('nan')):.3f}, MAPE "
            f"{ae.get('mape', float('nan')):.1f} % on the same unseen archs",
            f"search under {self.budget_ms:.3f} ms (margin {100 * self.margin:.0f} % for "
            f"prediction error): {met} of {len(self.verified)} verified picks met the budget "
            "when measured",
            "time per step: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.steps_s.items()),
            f"report: {self.report}",
        ]


def _evaluate(y_true: Any, y_pred: Any) -> dict[str, float]:
    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    return {
        "spearman": float(metrics.spearman(t, p)),
        "kendall": float(metrics.kendall(t, p)),
        "mape": float(metrics.mape(t, p)),
        "acc10": 100.0 * float(metrics.acc_within(t, p, 10.0)),
        "test": float(len(t)),
    }


class _Step:
    def __init__(self, summary: DemoSummary, name: str, say: Callable[[str], None]) -> None:
        self.summary, self.name, self.say = summary, name, say

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()
        self.say(f"[demo] {self.name} ...")

    def __exit__(self, *exc: object) -> None:
        self.summary.steps_s[self.name] = time.perf_counter() - self.t0


def run_demo(
    options: DemoOptions | None = None,
    config: Config | None = None,
    say: Callable[[str], None] = log.info,
) -> DemoSummary:
    """Run (or resume) the demo; see the module docstring."""
    o = options or DemoOptions()
    check_options(o)
    cfg = config or load_config()
    out = Path(o.out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"demo output {str(out)!r} is a file; expected a folder (or a new name)")
    out.mkdir(parents=True, exist_ok=True)
    summary = DemoSummary(out_dir=out, report=out / "report.html")
    space = get_space("nb201")
    archs = space.sample(o.sample, seed=o.seed)
    # train and test archs interleave in measurement order, so that a slow drift of the machine
    # during the collection affects both alike
    test_every = max(2, round(o.sample / max(1, o.sample - o.train)))
    test_archs = [a for i, a in enumerate(archs) if i % test_every == test_every - 1]
    test_archs = test_archs[: o.sample - o.train]
    train_archs = [a for a in archs if a not in set(test_archs)]
    settings = CollectSettings(
        collection="demo-nb201-local",
        runtime="onnxruntime",
        threads=1,
        harness=o.harness,
        drift_every=20,
        seed=o.seed,
    )
    store = lbd.open(out / "latbench.db")
    device = get_device("local", cfg)
    try:
        # 1. measure ---------------------------------------------------------------------
        with _Step(summary, "collect", say):
            collect(store, space, archs, [device], settings, progress=o.progress)
        rows = store.to_pandas(collection=settings.collection)
        ok = rows[rows["status"] == "ok"].drop_duplicates("arch").set_index("arch")
        summary.measured = len(ok)
        summary.failed = int((rows["status"] != "ok").sum())
        train = [a for a in train_archs if a in ok.index]
        test = [a for a in test_archs if a in ok.index]
        if len(train) < 5 or len(test) < 3:
            raise RuntimeError(f"too few successful measurements ({len(ok)}) to go on")

        # 2. a predictor fitted on this CPU -------------------------------------------------
        with _Step(summary, "fit", say):
            params: dict[str, Any] = {"random_state": o.seed} if o.model in ("gbm", "rf") else {}
            local = lbp.create(o.model, **params)
            local.fit(train, ok.loc[train, "latency_ms"].to_numpy(), space="nb201")
            lbp.save(local, out / "local.lbp")
            pred_local = local.predict(test)
            truth = ok.loc[test, "latency_ms"].to_numpy()
            summary.local_eval = {**_evaluate(truth, pred_local), "train": float(len(train))}

        # 3. few-shot adaptation of the reference multi-device base --------------------------
        with _Step(summary, "adapt", say):
            base_path = out / "base.lbp"
            if base_path.is_file():
                base = lbp.load(base_path)
            else:
                from latbench.predictors.adapt import fit_base

                ref = lbd.load_reference("nb201")
                # as `latbench predictor fit --devices all`: the embed prior is stored with it
                base = fit_base(
                    o.base_model,
                    ref["arch"].tolist(),
                    ref["latency_ms"].to_numpy(),
                    space="nb201",
                    devices=ref["device"].tolist(),
                )
                lbp.save(base, base_path)
            summary.base_devices = len(base.devices_)
            shots = choose_samples(base, o.shots, seed=o.seed)
            shot_settings = CollectSettings(
                collection="demo-nb201-local-shots",
                runtime="onnxruntime",
                threads=1,
                harness=o.harness,
                drift_every=0,
                seed=o.seed,
            )
            collect(store, space, shots, [device], shot_settings, progress=o.progress)
            srows = store.to_pandas(collection=shot_settings.collection)
            srows = srows[srows["status"] == "ok"].drop_duplicates("arch")
            adapted = base.adapt(srows["arch"].tolist(), srows["latency_ms"].to_numpy())
            lbp.save(adapted, out / "adapted.lbp")
            pred_adapted = adapted.predict(test)
            summary.adapted_eval = {**_evaluate(truth, pred_adapted), "shots": float(len(srows))}

        # 4. latency-constrained search, verified on the device ------------------------------
        with _Step(summary, "search", say):
            search_doc = _search(o, space, adapted, ok, device, settings, out, summary)

        # 5. report --------------------------------------------------------------------------
        with _Step(summary, "report", say):
            from latbench.report.build import build_report

            predictions = pd.DataFrame(
                {
                    "space": "nb201",
                    "arch": test * 2,
                    "device": "local",
                    "latency_ms": np.concatenate([truth, truth]),
                    "predicted_ms": np.concatenate([pred_local, pred_adapted]),
                    "predictor": [f"{o.model} ({len(train)} local archs)"] * len(test)
                    + [f"{o.base_model} adapted ({len(srows)} shots)"] * len(test),
                }
            )
            build_report(
                summary.report,
                measurements=store.to_pandas(),
                predictions=predictions,
                reference=lbd.load_reference("nb201"),
                search=search_doc,
                local_devices=["local"],
                title="latbench demo: NB201 on this CPU",
                meta={"store": str(out / "latbench.db")},
            )
    finally:
        device.close()
        store.close()
    (out / "summary.json").write_text(
        json.dumps(
            {
                "local_eval": summary.local_eval,
                "adapted_eval": summary.adapted_eval,
                "budget_ms": summary.budget_ms,
                "margin": summary.margin,
                "verified": summary.verified,
                "steps_s": summary.steps_s,
            },
            indent=2,
        )
    )
    return summary


def _search(
    o: DemoOptions,
    space: Any,
    predictor: lbp.Predictor,
    measured: pd.DataFrame,
    device: Any,
    settings: CollectSettings,
    out: Path,
    summary: DemoSummary,
) -> dict[str, Any]:
    from latbench.nas.objectives import (
        GraphStats,
        latency_constraint,
        make_objective,
        trust_region,
    )
    from latbench.nas.search import run_search
    from latbench.spaces.emit_onnx import to_onnx

    result_path = out / "search.json"
    budget = float(np.median(measured["latency_ms"]))
    summary.budget_ms = budget
    # The search maximises quality under the budget, so its picks sit where the predictor
    # under-predicts most (they win by looking fast). Guard as `latbench search --margin-from`
    # does: search under budget * (1 - margin), the margin being the MARGIN_QUANTILE of the
    # predictor's under-prediction on the collected archs (the shots were measured apart
    # from them, so these errors are mostly held out), and stay in their region (trust_region).
    archs = list(measured.index)
    truth = measured["latency_ms"].to_numpy(dtype=float)
    under = np.maximum(0.0, truth / predictor.predict(archs) - 1.0)
    margin = min(MAX_MARGIN, float(np.quantile(under, MARGIN_QUANTILE)))
    summary.margin = margin
    if result_path.is_file():
        doc: dict[str, Any] = json.loads(result_path.read_text())
        if (
            doc.get("demo_budget_ms") == budget
            and doc.get("demo_margin") == margin
            and "verification" in doc
        ):
            summary.verified = list(doc["verification"])
            return doc
    objective = make_objective(o.objective, space)
    constraint = latency_constraint(predictor, (1.0 - margin) * budget, space, label="local")
    result = run_search(
        space,
        objective,
        [constraint, *trust_region(archs, GraphStats(space))],
        "evolution",
        evaluations=o.evaluations,
        seed=o.seed,
        top=o.verify,
        progress=o.progress,
    )
    doc = result.to_dict(history=False)
    doc["demo_budget_ms"] = budget
    doc["demo_margin"] = margin
    verification = []
    model_dir = out / "models"
    model_dir.mkdir(exist_ok=True)
    for cand in result.best[: o.verify]:
        arch = cand.arch
        path = model_dir / f"{space.arch_id(arch)}.onnx"
        if not path.is_file():
            path.write_bytes(to_onnx(space.build(arch), seed=o.seed).SerializeToString())
        m = device.measure(str(path), runtime="onnxruntime", threads=1, settings=o.harness)
        predicted = float(predictor.predict([arch])[0])
        measured_ms = float(m.median_ms) if m.ok else float("nan")
        verification.append(
            {
                "arch": arch,
                "predicted_latency_ms": predicted,
                "measured_latency_ms": measured_ms,
                "budget_ms": budget,
                "met_budget": bool(m.ok and measured_ms <= budget),
                "status": m.status,
                "error": m.error,
            }
        )
    doc["verification"] = verification
    summary.verified = verification
    result_path.write_text(json.dumps(doc, indent=2, default=str))
    return doc
