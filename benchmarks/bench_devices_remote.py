"""Per-model overhead of the SSH round trip (push, run, fetch) on loopback, connection reused.

Starts a real sshd on 127.0.0.1 (as the tests do), then measures N distinct small ONNX models
through one SSHDevice. Overhead per model = the host's wall time for ``measure()`` minus the
harness's own time on the board (warm-up + timed runs): it covers the SFTP push, the JSON request
and reply, model loading in the agent, environment snapshots and record transfer. For contrast,
a few models are measured with a fresh connection each (connect + agent copy + agent start),
interleaved with the reused-connection runs.

Run: .venv/bin/python benchmarks/bench_devices_remote.py [N]
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from devices_servers import Sshd, tiny_onnx
from latbench.devices.ssh import SSHDevice
from latbench.profilers.harness import HarnessSettings

SETTINGS = HarnessSettings(
    warmup_runs=5, warmup_time_s=0.0, min_runs=20, min_time_s=0.05, max_time_s=0.2
)


def spread(xs: list[float]) -> str:
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return f"median {statistics.median(xs):.1f} ms (IQR {q[0]:.1f}-{q[2]:.1f} ms, n={len(xs)})"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    tmp = Path(tempfile.mkdtemp(prefix="bench-devices-"))
    (tmp / "sshd").mkdir()
    server = Sshd(tmp / "sshd").start()
    models = [tiny_onnx(tmp / f"m{i}.onnx", seed=i, size=64) for i in range(n)]
    overhead_ms: list[float] = []
    push_ms: list[float] = []
    fresh_ms: list[float] = []
    try:
        with SSHDevice("loopback", server.device_config()) as dev:
            dev.measure(models[0], settings=SETTINGS)  # connect, copy the agent, start it
            for i, model in enumerate(models):
                m = dev.measure(model, settings=SETTINGS)
                assert m.ok, m.error
                overhead_ms.append(m.harness["remote"]["overhead_s"] * 1e3)
                push_ms.append(m.harness["remote"]["push_s"] * 1e3)
                if i % max(1, n // 4) == 0:  # interleave a few fresh-connection runs
                    t0 = time.perf_counter()
                    with SSHDevice("fresh", server.device_config()) as fresh:
                        r = fresh.measure(model, settings=SETTINGS)
                    assert r.ok, r.error
                    wall = time.perf_counter() - t0
                    fresh_ms.append((wall - r.harness["elapsed_s"]) * 1e3)
    finally:
        server.stop()
    print("bench_devices_remote: per-model overhead beyond the timed runs (ssh, loopback)")
    print(f"  command: {sys.executable} {' '.join(sys.argv)}")
    print(f"  machine: {platform.machine()} {platform.processor() or ''} {platform.platform()}")
    print(f"  reused connection: {spread(overhead_ms)}  (push alone: {spread(push_ms)})")
    print(f"  fresh connection per model: {spread(fresh_ms)}")
    ratio = statistics.median(fresh_ms) / statistics.median(overhead_ms)
    print(f"  fresh / reused: {ratio:.0f}x; target: reused <= 50 ms")


if __name__ == "__main__":
    main()
