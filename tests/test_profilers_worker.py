"""The worker process: results, exceptions, real crashes (abort, segfault), hangs, pinning."""

from __future__ import annotations

import ctypes
import os
import time

import pytest

from latbench.errors import ModelError
from latbench.profilers.worker import Worker, WorkerCrashed, WorkerTimeout, default_cpus


def _add(a: int, b: int) -> int:
    return a + b


def _pid() -> int:
    return os.getpid()


def _affinity() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def _abort() -> None:
    os.abort()


def _segfault() -> None:
    ctypes.string_at(0)  # reads address 0: SIGSEGV


def _hang() -> None:
    time.sleep(3600)


def _raise() -> None:
    raise ModelError("bad model 'x.onnx'")


def _allocate(n_bytes: int) -> int:
    return len(bytearray(n_bytes))


@pytest.fixture(scope="module")
def worker() -> object:
    w = Worker(cpus=default_cpus(1))
    yield w
    w.close()


def test_call_returns_and_the_process_is_reused(worker: Worker) -> None:
    assert worker.call(_add, 2, 3) == 5
    pid = worker.call(_pid)
    assert pid != os.getpid()
    assert worker.call(_pid) == pid  # no new process per call


def test_worker_is_pinned(worker: Worker) -> None:
    assert worker.call(_affinity) == default_cpus(1)


def test_exceptions_come_back_with_their_type(worker: Worker) -> None:
    with pytest.raises(ModelError, match=r"x\.onnx"):
        worker.call(_raise)
    assert worker.call(_add, 1, 1) == 2  # still the same healthy worker


@pytest.mark.parametrize(("fn", "sig"), [(_abort, "SIGABRT"), (_segfault, "SIGSEGV")])
def test_a_crash_is_reported_with_its_signal_and_the_worker_restarts(
    worker: Worker, fn: object, sig: str
) -> None:
    before = worker.call(_pid)
    with pytest.raises(WorkerCrashed, match=f"worker died with signal {sig}"):
        worker.call(fn)  # type: ignore[arg-type]
    after = worker.call(_pid)
    assert after != before


def test_a_hang_times_out_and_the_worker_restarts(worker: Worker) -> None:
    before = worker.call(_pid)
    t0 = time.monotonic()
    with pytest.raises(WorkerTimeout, match=r"timed out after 0\.5 s"):
        worker.call(_hang, timeout_s=0.5)
    assert time.monotonic() - t0 < 10
    assert worker.call(_pid) != before


def test_memory_limit_turns_a_runaway_allocation_into_an_error() -> None:
    with Worker(memory_limit_bytes=1 << 30) as w:
        assert w.call(_allocate, 1 << 20) == 1 << 20
        with pytest.raises(MemoryError):
            w.call(_allocate, 4 << 30)
