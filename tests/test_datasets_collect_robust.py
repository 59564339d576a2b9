"""Collection into the store: canonical architectures, the environment after timing, an
interrupt inside a store write, two processes collecting into one store."""

from __future__ import annotations

import io
import json
import re
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import latbench.datasets as lds
from latbench.datasets.collect import CollectReport, CollectSettings, collect
from latbench.datasets.store import Store
from latbench.errors import ArchError
from latbench.profilers.record import Measurement
from latbench.spaces import NB201Space

NB = NB201Space()
ENV = {"cpu_cur_freq_khz": {"0": 3_000_000}, "steal_ticks": 0}
ENV_AFTER = {"cpu_cur_freq_khz": {"0": 2_000_000}, "steal_ticks": 0}

DEVICE = '''
import threading
from pathlib import Path
from typing import Any

from latbench.profilers.record import Measurement
from latbench.spaces import NB201Space

NB = NB201Space()


class Scripted:
    """Measures nothing: a record computed from the model's name."""

    def __init__(self, name: str = "dev") -> None:
        self.name = name
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def fingerprint(self) -> str:
        return "fp"

    def measure(self, model: Any, **kw: Any) -> Measurement:
        arch_id = Path(model).stem
        with self.lock:
            self.calls.append(arch_id)
        base = 1.0 + int(arch_id[:4], 16) / 65536
        return Measurement(
            samples_ms=(base, base * 1.01, base * 0.99),
            runtime=kw["runtime"],
            threads=kw["threads"],
            batch=kw["batch"],
            env={"cpu_cur_freq_khz": {"0": 3_000_000}, "steal_ticks": 0},
            env_after={"cpu_cur_freq_khz": {"0": 2_000_000}, "steal_ticks": 0},
        )


def emit(arch: str, directory: Path) -> Path:
    path = directory / f"{NB.arch_id(arch)}.onnx"
    path.write_bytes(b"model")
    return path
'''
_NS: dict[str, Any] = {"__name__": "scripted_device"}
exec(compile(DEVICE, "scripted_device", "exec"), _NS)  # the same device as the subprocesses'
Scripted, emit = _NS["Scripted"], _NS["emit"]


def _run(store: Store, archs: list[str], dev: Any, **kw: Any) -> CollectReport:
    settings = CollectSettings(**{"collection": "c", "drift_every": 0, **kw})
    return collect(store, NB, archs, [dev], settings, emit=emit)


def test_two_spellings_of_one_architecture_are_one_canonical_row(tmp_path: Path) -> None:
    a, b = NB.sample(2, seed=3)
    dev = Scripted()
    with lds.open(tmp_path / "s.db") as store:
        report = _run(store, [f"  {a}", a, f"{b}\n"], dev)
        df = store.to_pandas()
    assert sorted(df["arch"]) == sorted([a, b])  # canonical strings, as the schema says
    assert report.ok == 2 and len(dev.calls) == 2  # measured once each
    assert not any(d.stored_elsewhere for d in report.devices.values())


def test_a_bad_architecture_stops_the_run_before_anything_is_recorded(tmp_path: Path) -> None:
    (a,) = NB.sample(1, seed=4)
    dev = Scripted()
    with lds.open(tmp_path / "s.db") as store:
        with pytest.raises(ArchError, match=r"architecture 2 of 3 to collect: nb201: 'bogus'"):
            _run(store, [a, "bogus", a], dev)
        with pytest.raises(ArchError, match=r"architecture 1 of 1 to collect is None; expected"):
            _run(store, [None], dev)  # type: ignore[list-item]
        assert store.count() == 0 and store.collections().empty
    assert dev.calls == []


def test_collect_stores_the_environment_after_timing(tmp_path: Path) -> None:
    archs = NB.sample(3, seed=5)
    with lds.open(tmp_path / "s.db") as store:
        assert _run(store, archs, Scripted()).ok == 3
        df = store.to_pandas()
        records = store.measurements()
    assert df["env_after"].map(json.loads).tolist() == [ENV_AFTER] * 3
    assert [m.env_after for m in records] == [ENV_AFTER] * 3
    assert [m.env for m in records] == [ENV] * 3
    assert all(any(r.startswith("CPU frequency") for r in m.verdict()["reasons"]) for m in records)


def test_an_interrupt_inside_a_row_write_loses_no_row_and_the_rerun_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second Ctrl-C that lands inside a store write aborts the run; the same store object
    (a notebook's) then resumes the collection: the rows stored stay, the row being written
    was rolled back and is measured by the rerun, nothing is measured twice."""
    archs = NB.sample(12, seed=6)
    original = Store._check_same_file
    writes = {"n": 0}

    def interrupt_the_fifth_row(self: Store) -> None:
        writes["n"] += 1
        if writes["n"] == 6:  # the collection's settings, then rows 1-4 went through
            raise KeyboardInterrupt
        original(self)

    with lds.open(tmp_path / "s.db") as store:
        monkeypatch.setattr(Store, "_check_same_file", interrupt_the_fifth_row)
        with pytest.raises(KeyboardInterrupt):
            _run(store, archs, Scripted())
        stored = store.count()
        assert stored == 4
        monkeypatch.setattr(Store, "_check_same_file", original)
        dev = Scripted()
        report = _run(store, archs, dev)
        assert report.devices["dev"].already == stored and report.ok == len(archs) - stored
        assert len(dev.calls) == len(archs) - stored
        df = store.to_pandas()
    assert sorted(df["arch"]) == sorted(archs) and df["status"].eq("ok").all()


WORKER = """
import sys
sys.path.insert(0, {here!r})
import latbench.datasets as lds
from latbench.datasets.collect import CollectSettings, collect
from latbench.spaces import NB201Space
from scripted_device import Scripted, emit

NB = NB201Space()
db, collection = sys.argv[1], sys.argv[2]
archs = NB.sample(120, seed=int(sys.argv[3]))
with lds.open(db) as store:
    report = collect(store, NB, archs, [Scripted()],
                     CollectSettings(collection=collection, drift_every=10), emit=emit)
d = report.devices["dev"]
print(d.ok, d.already, d.stored_elsewhere)
"""


def test_two_threads_collecting_into_one_store_at_once(tmp_path: Path) -> None:
    """Each thread with its own Store (as the docs ask): the same rules as two processes,
    without their start-up time (the process test below is marked slow)."""
    db = tmp_path / "s.db"
    start = threading.Barrier(3)
    reports: list[tuple[str, CollectReport]] = []
    errors: list[BaseException] = []

    def run(collection: str, seed: int) -> None:
        try:
            start.wait()
            with lds.open(db) as store:
                report = _run(store, NB.sample(80, seed=seed), Scripted(), collection=collection,
                              drift_every=10)  # fmt: skip
            reports.append((collection, report))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=r) for r in [("a", 0), ("a", 0), ("b", 1)]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sum(r.ok for c, r in reports if c == "a") == 80  # each row counted by its writer
    assert sum(r.ok for c, r in reports if c == "b") == 80
    with lds.open(db, readonly=True) as store:
        assert store.count(collection="a") == 80 and store.count(collection="b") == 80
        assert not store.to_pandas(columns=["collection", "arch_id"]).duplicated().any()


@pytest.mark.slow
def test_two_processes_collecting_into_one_store_at_once(tmp_path: Path) -> None:
    """Two collections of one collection and one of another write one new store at once:
    no error, no raw sqlite3 message, every key once, an intact file."""
    (tmp_path / "scripted_device.py").write_text(DEVICE)
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER.format(here=str(tmp_path))))
    db = tmp_path / "s.db"
    runs = [("same", 0), ("same", 0), ("other", 1)]
    start = threading.Barrier(len(runs))
    results: list[subprocess.CompletedProcess[str]] = []
    lock = threading.Lock()

    def run(collection: str, seed: int) -> None:
        start.wait()
        out = subprocess.run(
            [sys.executable, str(script), str(db), collection, str(seed)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        with lock:
            results.append(out)

    threads = [threading.Thread(target=run, args=r) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    for out in results:
        assert out.returncode == 0, out.stderr
        assert "sqlite3" not in out.stderr and "Traceback" not in out.stderr
    counts = {r.args[3]: [0, 0] for r in results}
    for r in results:
        counts[r.args[3]][0] += int(r.stdout.split()[0])  # rows this run stored itself
        counts[r.args[3]][1] += 1
    # each row is counted by the one run that stored it, the other one skipped or lost it
    assert counts == {"same": [120, 2], "other": [120, 1]}
    with lds.open(db, readonly=True) as store:
        assert store.count(collection="same") == 120 and store.count(collection="other") == 120
        keys = store.to_pandas(columns=["collection", "arch_id"])
        assert not keys.duplicated().any()
        assert store.to_pandas()["env_after"].notna().all()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


class _Terminal(io.StringIO):
    """stderr as a terminal shows it (the bar is drawn only on one)."""

    def isatty(self) -> bool:
        return True


def test_the_progress_bar_shows_rate_eta_and_the_ok_and_failed_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    archs = NB.sample(4, seed=7)
    bad = NB.arch_id(archs[2])

    class OneFails(Scripted):  # type: ignore[misc, valid-type]
        def measure(self, model: Any, **kw: Any) -> Measurement:
            if Path(model).stem == bad:
                return Measurement.failed("worker died", runtime=kw["runtime"])
            m: Measurement = super().measure(model, **kw)
            return m

    with lds.open(tmp_path / "s.db") as store:
        settings = CollectSettings(collection="c", drift_every=0)
        collect(store, NB, archs, [OneFails()], settings, emit=emit, progress=True)
    err = terminal.getvalue()
    assert "\r" in err  # redrawn in place
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert "4/4" in last and ("arch/s" in last or "s/arch" in last)
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", last)  # elapsed < remaining (the ETA)
    assert "ok=3" in last and "failed=1" in last


def test_a_record_the_store_cannot_hold_fails_its_architecture_and_the_sweep_goes_on(
    tmp_path: Path,
) -> None:
    """A device adapter's counters keyed by both numbers and names are not JSON the store can
    write (sorted keys of mixed types): that architecture is stored as failed with the reason,
    instead of a TypeError ending the whole collection."""
    archs = NB.sample(6, seed=8)
    bad = NB.arch_id(archs[1])

    class MixedKeys(Scripted):  # type: ignore[misc, valid-type]
        def measure(self, model: Any, **kw: Any) -> Measurement:
            m: Measurement = super().measure(model, **kw)
            if Path(model).stem == bad:
                return m.with_(counters={0: {"value": 1.0}, "cycles": {"value": 2.0}})
            return m

    with lds.open(tmp_path / "s.db") as store:
        report = _run(store, archs, MixedKeys())
        assert (report.ok, report.failed) == (5, 1)
        (row,) = store.to_pandas(status="failed").to_dict("records")
    assert row["arch"] == archs[1] and row["runtime"] == "onnxruntime"
    assert row["error"].startswith("the device's record cannot be stored: TypeError")
