"""Collection under duress, with real processes and the real onnxruntime device.

- a collector killed with SIGKILL mid-run and run again ends with exactly the planned rows;
- a reader reads the store while a collection writes it;
- a model that crashes the runtime's worker mid-collection is recorded as failed, the run goes on.

The harness settings are tiny (3 runs, no minimum time) so the tests stay fast; the numbers are
not the point, the rows are.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

import latbench.datasets as lds
from device_fixtures import count_rows
from latbench.datasets.collect import CollectSettings, collect
from latbench.devices import get_device
from latbench.profilers.harness import HarnessSettings
from latbench.profilers.record import Measurement
from latbench.spaces import NB201Space

NB = NB201Space()
FAST = [
    "--min-runs", "3", "--min-time", "0", "--max-time", "0.05", "--spread", "0",
    "--warmup", "1", "--warmup-time", "0", "--no-progress",
]  # fmt: skip


def _collect_cmd(db: Path, n: int, seed: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "latbench.cli", "collect", "--space", "nb201", "--device", "local",
        "--sample", str(n), "--seed", str(seed), "--db", str(db), "--name", "rel", *FAST, *extra,
    ]  # fmt: skip


def _foreground_sigint() -> None:
    """In the child: SIGINT as a terminal's foreground process has it (the default handler).

    A test suite started in the background by a non-interactive shell (``make test &``, some
    CI runners) inherits SIGINT ignored, and so would the collector: Python installs its
    KeyboardInterrupt handler only where SIGINT is not ignored at start.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_rows(db: Path, proc: subprocess.Popen[bytes], at_least: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = count_rows(db)
        if n >= at_least:
            return n
        if proc.poll() is not None:
            raise AssertionError(
                f"the collector exited ({proc.returncode}) before {at_least} rows were seen "
                f"({n} stored)"
            )
        time.sleep(0.02)
    raise AssertionError(f"no {at_least} rows within {timeout_s} s")


def test_sigkill_mid_run_then_rerun_gives_exactly_the_planned_rows(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    n_archs = 16
    cmd = _collect_cmd(db, n_archs, 3, "--drift-every", "5")
    with subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as proc:
        try:
            killed_at = _wait_for_rows(db, proc, 4, timeout_s=120)
            os.killpg(proc.pid, signal.SIGKILL)  # the collector and its worker, no cleanup
        finally:
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the collector finished before it was killed"
    assert 4 <= killed_at < n_archs
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{count_rows(db)} " and "already stored" in rerun.stdout
    with lds.open(db, readonly=True) as store:
        df = store.to_pandas()
    assert len(df) == n_archs
    assert sorted(df["arch"]) == sorted(NB.sample(n_archs, 3))
    assert not df.duplicated(["collection", "device", "arch"]).any()
    assert set(df["status"]) == {"ok"}
    assert (df["latency_ms"] > 0).all() and df["samples_ms"].map(len).ge(3).all()


def test_reader_reads_while_a_collection_writes(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    seen: list[int] = []
    log = tmp_path / "collect.log"
    with (
        log.open("wb") as err,
        subprocess.Popen(
            _collect_cmd(db, 8, 4, "--drift-every", "0"), stdout=subprocess.DEVNULL, stderr=err
        ) as proc,
    ):
        try:
            while proc.poll() is None:
                if db.exists():
                    try:
                        df = lds.read_table(db)
                    except lds.store.DatasetError:
                        df = None  # the file exists but its tables are not committed yet
                    if df is not None:
                        seen.append(len(df))
                        assert df["latency_ms"].gt(0).all()
                time.sleep(0.05)
        finally:
            proc.wait(timeout=300)
    assert proc.returncode == 0, log.read_text()
    assert seen == sorted(seen)  # rows only ever appear, each read sees a consistent store
    assert len(set(seen)) >= 2  # reads happened while rows were being written
    assert len(lds.read_table(db)) == 8


class CrashingDevice:
    """The real local device; while one chosen model runs, its worker is killed with SIGSEGV."""

    def __init__(self, crash_arch_id: str) -> None:
        self.dev = get_device("local")
        self.name = "local"
        self.crash_arch_id = crash_arch_id

    def fingerprint(self) -> str:
        return self.dev.fingerprint()

    def measure(self, model: Any, **kw: Any) -> Measurement:
        if Path(model).stem != self.crash_arch_id:
            return self.dev.measure(model, **kw)
        kw["settings"] = HarnessSettings(min_runs=10**6, min_time_s=30, max_time_s=30)

        def crash() -> None:
            for child in psutil.Process().children():
                if child.is_running() and "spawn_main" in " ".join(child.cmdline()):
                    os.kill(child.pid, signal.SIGSEGV)

        timer = threading.Timer(1.0, crash)
        timer.start()
        try:
            return self.dev.measure(model, **kw)
        finally:
            timer.cancel()

    def close(self) -> None:
        self.dev.close()


def test_model_crashing_the_runtime_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    archs = NB.sample(4, seed=5)
    device = CrashingDevice(NB.arch_id(archs[1]))
    settings = CollectSettings(
        collection="crash",
        drift_every=0,
        harness=HarnessSettings(
            warmup_runs=1, warmup_time_s=0, min_runs=3, min_time_s=0, max_time_s=0.05,
            spread_threshold=0,
        ),
    )  # fmt: skip
    try:
        with lds.open(tmp_path / "c.db") as store:
            report = collect(store, NB, archs, [device], settings)
            df = store.to_pandas()
    finally:
        device.close()
    assert report.ok == 3 and report.failed == 1
    failed = df[df["status"] == "failed"]
    assert failed["arch"].tolist() == [archs[1]]
    assert "SIGSEGV" in failed["error"].item()
    assert df[df["status"] == "ok"]["arch"].tolist() == [archs[0], archs[2], archs[3]]


def test_ctrl_c_stops_after_the_current_arch_and_keeps_every_result(tmp_path: Path) -> None:
    """SIGINT to the whole process group (what a terminal's Ctrl-C does) reaches the worker
    too; the worker ignores it, the collector stops after the current architecture."""
    db = tmp_path / "c.db"
    cmd = _collect_cmd(db, 200, 5, "--drift-every", "0")
    with subprocess.Popen(
        cmd,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_foreground_sigint,
    ) as proc:
        try:
            before = _wait_for_rows(db, proc, 2, timeout_s=120)
            os.killpg(proc.pid, signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, (out, err)
    with lds.open(db, readonly=True) as store:
        df = store.to_pandas()
    # stopped early; an architecture in flight when the signal landed was finished and stored
    # (the signal may also land between two architectures, so >= rather than >)
    assert before <= len(df) < 200
    assert set(df["status"]) == {"ok"}  # nothing recorded as failed because of the interrupt
    assert f"{len(df)} ok" in out.decode()  # every measured result was stored
