"""A measurement worker: a separate, CPU-pinned process that survives the models it runs.

Models run in a child process (``multiprocessing`` *spawn*, so no state leaks from the parent)
pinned with ``os.sched_setaffinity`` to the chosen CPUs. The parent sends a picklable call, waits
with a timeout, and watches the child:

* the call returns or raises -> the value or the same exception comes back to the caller;
* the child dies (segfault, abort, killed by the OOM killer) -> :class:`WorkerCrashed` with the
  signal, e.g. ``worker died with signal SIGSEGV``; the worker restarts on the next call;
* the call exceeds ``timeout_s`` -> the child is killed, :class:`WorkerTimeout`; restart as above.

One worker is reused across many models, so the process start and the runtime imports are paid
once, not per model.

Signals: the worker ignores SIGINT (Ctrl-C reaches the whole process group; the parent decides
what an interrupt means) and, when the parent handles SIGTERM itself (``latbench collect``
finishes the current architecture), SIGTERM too. An interrupt of the parent while it waits for
a call kills the worker at once (its result is of no use any more); when the parent exits, every
worker still running is killed. A worker whose parent went away exits quietly.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import multiprocessing as mp
import multiprocessing.util
import os
import pickle
import resource
import signal
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any, Self

from latbench.errors import ConfigError, MeasurementError

__all__ = ["Worker", "WorkerCallError", "WorkerCrashed", "WorkerTimeout", "default_cpus"]

log = logging.getLogger(__name__)


class WorkerCrashed(MeasurementError):
    """The worker process died while running a call."""


class WorkerTimeout(MeasurementError):
    """A call ran longer than its timeout; the worker was killed."""


class WorkerCallError(MeasurementError):
    """A call could not be sent to the worker (its function or arguments do not pickle)."""


class _RemoteError(MeasurementError):
    """An exception in the worker that could not be sent back as itself."""


def default_cpus(threads: int | None) -> list[int]:
    """The CPUs to pin a worker to: the last ``threads`` CPUs this process may use.

    The last CPUs are usually the ones the kernel and interrupts use least; pinning keeps the
    runtime's threads from migrating between cores mid-measurement.
    """
    allowed = sorted(os.sched_getaffinity(0))
    n = max(1, min(int(threads or len(allowed)), len(allowed)))
    return allowed[-n:]


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


#: how long a polite stop (``close``) waits for the worker to exit before it is killed
CLOSE_WAIT_S = 2.0


def _parent_handles_sigterm() -> bool:
    """Whether this process has its own SIGTERM handler (a graceful stop, not death)."""
    try:
        return callable(signal.getsignal(signal.SIGTERM))
    except (ValueError, OSError):  # pragma: no cover - no signals on this platform
        return False


def _worker_main(
    conn: Connection,
    cpus: list[int] | None,
    memory_limit_bytes: int | None,
    ignore_sigterm: bool = False,
) -> None:
    # Ctrl-C in a terminal reaches the whole process group: the parent decides when to stop
    # (e.g. a collection finishes the current model), so the worker must not die mid-call. The
    # same for a SIGTERM sent to the group (``timeout``, systemd) when the parent handles it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if cpus:
        os.sched_setaffinity(0, cpus)
    if memory_limit_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if msg is None:
            return
        fn, args, kwargs = msg
        try:
            result = fn(*args, **kwargs)
            reply: tuple[str, Any] = ("ok", result)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
            tb = traceback.format_exc(limit=8)
            reply = ("error", (_sendable(exc), tb))
        try:
            conn.send(reply)
        except (BrokenPipeError, ConnectionError, EOFError):
            return  # the parent is gone (interrupted, killed): nobody wants the result
        except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable exception or result
            try:
                conn.send(("error", (_RemoteError(f"{type(exc).__name__}: {exc}"), "")))
            except (OSError, EOFError):
                return


def _sendable(exc: BaseException) -> BaseException:
    """``exc`` as the parent can receive it: itself, or a :class:`_RemoteError` naming it.

    A SystemExit or KeyboardInterrupt raised by the measured code must not stop the parent (it
    would exit ``latbench`` or look like the user's Ctrl-C), and an exception that pickles but
    does not unpickle (a constructor with other arguments than ``args``) would fail the parent
    with an unrelated TypeError.
    """
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if not isinstance(exc, Exception):
        return _RemoteError(f"the measured code raised {what} in the worker")
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - whatever breaks the round trip, send its text
        return _RemoteError(what)
    return exc


_START_LOCK = threading.Lock()


@contextlib.contextmanager
def _main_not_reimported() -> Iterator[None]:
    """Start a spawned child without it importing the caller's ``__main__``.

    A spawned child re-runs the main script (its ``__file__``, or its module under ``-m``)
    before it runs the target, so a script that measures without an ``if __name__ ==
    "__main__":`` guard would measure again in every worker, or fail in multiprocessing's
    bootstrapping check; from standard input the child cannot find ``<stdin>`` at all. The
    worker's target and everything it is sent live in latbench, so the child needs nothing of
    ``__main__``: hidden from multiprocessing's preparation data while the child starts.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    with _START_LOCK:
        saved: dict[str, Any] = {
            k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__
        }
        main.__dict__.pop("__file__", None)
        main.__dict__["__spec__"] = None
        try:
            yield
        finally:
            main.__dict__.pop("__spec__", None)
            main.__dict__.update(saved)


#: every worker of this process that may still run, killed when the process exits
_LIVE: weakref.WeakSet[Worker] = weakref.WeakSet()


def _kill_all() -> None:
    for w in list(_LIVE):
        with contextlib.suppress(Exception):
            w.kill()


# registered after multiprocessing's own exit hook, so it runs first (atexit is LIFO): that hook
# terminates daemon children with SIGTERM and waits, which a worker ignoring SIGTERM would not end
atexit.register(_kill_all)


class Worker:
    """A restartable child process that runs picklable calls, pinned to ``cpus``.

    ``memory_limit_bytes`` sets ``RLIMIT_AS`` in the child so a runaway model fails with an
    out-of-memory error (MemoryError or an abort) instead of taking the machine down.
    ``ignore_sigterm``: whether the child ignores SIGTERM; None (default) decides at each start:
    yes when this process has a SIGTERM handler of its own (it stops gracefully), else no.
    """

    def __init__(
        self,
        cpus: Sequence[int] | None = None,
        memory_limit_bytes: int | None = None,
        start_method: str = "spawn",
        ignore_sigterm: bool | None = None,
    ) -> None:
        self.cpus = list(cpus) if cpus else None
        self.memory_limit_bytes = memory_limit_bytes
        self.ignore_sigterm = ignore_sigterm
        self._ctx: Any = mp.get_context(start_method)
        self._proc: Any = None
        self._conn: Connection | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.is_alive() else None

    def start(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        parent, child = self._ctx.Pipe(duplex=True)
        ignore = self.ignore_sigterm
        if ignore is None:
            ignore = _parent_handles_sigterm()
        proc = self._ctx.Process(
            target=_worker_main,
            args=(child, self.cpus, self.memory_limit_bytes, ignore),
            name="latbench-worker",
            daemon=True,
        )
        with _main_not_reimported():
            proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        _LIVE.add(self)
        log.debug("started worker pid %s on cpus %s", proc.pid, self.cpus)

    def _reap(self, wait_s: float = CLOSE_WAIT_S) -> int | None:
        """Forget the child: wait up to ``wait_s`` for it to exit, then kill it (SIGKILL: it
        may ignore SIGTERM)."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        _LIVE.discard(self)
        if conn is not None:
            conn.close()
        if proc is None:
            return None
        if wait_s > 0:
            proc.join(timeout=wait_s)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=5)
        code = proc.exitcode
        if code is not None:  # close() refuses a process that is somehow still running
            proc.close()
        return int(code) if code is not None else None

    def call(
        self, fn: Callable[..., Any], *args: Any, timeout_s: float | None = None, **kwargs: Any
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` in the worker and return its result.

        Re-raises the worker's exception (a MeasurementError naming it when it cannot come back
        as itself: it does not unpickle, or it is a SystemExit or KeyboardInterrupt of the
        measured code); raises :class:`WorkerCrashed` when the process dies and
        :class:`WorkerTimeout` after ``timeout_s`` seconds (the worker restarts on the next call).
        ``timeout_s`` is None (no limit) or finite seconds > 0 (ConfigError otherwise).
        """
        if timeout_s is not None and (
            isinstance(timeout_s, bool)
            or not isinstance(timeout_s, int | float)
            or not (math.isfinite(timeout_s) and timeout_s > 0)
        ):
            raise ConfigError(f"timeout_s = {timeout_s!r}; expected seconds > 0, or None")
        if self._proc is not None and not self._proc.is_alive():
            self._reap()
            self.restarts += 1
        self.start()
        assert self._conn is not None and self._proc is not None
        conn, proc = self._conn, self._proc
        # a child that is already gone is reported by the poll loop below
        try:
            conn.send((fn, args, kwargs))
        except (BrokenPipeError, OSError):
            pass
        except (pickle.PicklingError, AttributeError, TypeError) as unpicklable:
            # pickled before anything is written: the pipe and the worker are still fine
            kind = type(unpicklable).__name__
            raise WorkerCallError(
                f"cannot send the call to the worker process ({kind}: {unpicklable}); the "
                "model and its arguments must be picklable: a module-level class or function, "
                "not a lambda or a local object"
            ) from None
        try:
            status, payload = self._wait(conn, proc, timeout_s)
        except BaseException:
            # Ctrl-C (or any exception of the parent) while the worker runs: its result is lost
            # anyway, so stop it now rather than wait for the call to finish
            self.kill()
            raise
        if status == "ok":
            return payload
        exc, tb = payload
        log.debug("worker traceback:\n%s", tb)
        if isinstance(exc, BaseException):
            raise exc
        raise _RemoteError(str(exc))

    def _wait(self, conn: Connection, proc: Any, timeout_s: float | None) -> tuple[str, Any]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            try:
                ready = conn.poll(0.05)
            except (EOFError, OSError):
                ready = False
            if ready:
                try:
                    status, payload = conn.recv()
                    return status, payload
                except (EOFError, OSError):
                    pass
                except Exception as exc:  # noqa: BLE001 - the reply arrived but does not unpickle
                    raise _RemoteError(
                        f"the worker's reply could not be read ({type(exc).__name__}: {exc})"
                    ) from None
            if not proc.is_alive() or (ready is False and proc.exitcode is not None):
                code = self._reap()
                self.restarts += 1
                if code is not None and code < 0:
                    sig = _signal_name(code)
                    hint = " (killed: out of memory?)" if sig == "SIGKILL" else ""
                    raise WorkerCrashed(f"worker died with signal {sig}{hint}")
                raise WorkerCrashed(f"worker exited unexpectedly with status {code}")
            if deadline is not None and time.monotonic() > deadline:
                proc.kill()
                self._reap()
                self.restarts += 1
                raise WorkerTimeout(f"timed out after {timeout_s:g} s; the worker was killed")

    def kill(self) -> None:
        """Stop the worker at once (SIGKILL), e.g. on an interrupt. Idempotent."""
        if self._proc is not None:
            with contextlib.suppress(Exception):
                self._proc.kill()
        self._reap(wait_s=0)

    def close(self) -> None:
        """Stop the worker (politely, then by force after ``CLOSE_WAIT_S``). Idempotent."""
        if self._conn is not None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self._conn.send(None)
        self._reap()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # never raise from a finaliser
            self.close()
