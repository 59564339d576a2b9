"""The device fleet: one worker per device, per-device queues, retries after a dropped link."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from device_fixtures import sshd_fixture
from devices_servers import Sshd, free_port, tiny_onnx
from latbench.config import Config
from latbench.devices.fleet import Fleet, FleetProgress, FleetTask
from latbench.devices.remote import failure_kind
from latbench.profilers.harness import HarnessSettings
from latbench.profilers.record import Measurement

FAST = HarnessSettings(
    warmup_runs=2, warmup_time_s=0.0, min_runs=5, min_time_s=0.05, max_time_s=0.3
)


sshd = sshd_fixture()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("models")
    return [tiny_onnx(out / f"m{i}.onnx", seed=i) for i in range(4)]


@pytest.mark.ssh
def test_fleet_survives_a_dropped_link_and_an_unreachable_board(
    sshd: Sshd, models: list[Path]
) -> None:
    dead = sshd.device_config(port=free_port(), reconnect_timeout_s=0.2, connect_timeout_s=1.0)
    cfg = Config(devices={"pi4": sshd.device_config(), "dead": dead})
    fleet = Fleet(
        cfg,
        ["pi4", "local", "dead"],
        measure_kwargs={"settings": FAST},
        retry_delay_s=0.1,
        max_consecutive_failures=2,
    )
    seen: list[tuple[str, Any, Measurement]] = []
    lines: list[str] = []
    killed = threading.Event()

    def on_result(device: str, item: Any, m: Measurement) -> None:
        seen.append((device, item, m))
        if device == "pi4" and not killed.is_set():
            killed.set()  # drop the link while the next model is being set up
            threading.Timer(0.05, sshd.kill_connections).start()

    def on_progress(p: FleetProgress) -> None:
        lines.append(p.line())

    work = {"pi4": models, "local": models[:2], "dead": models[:3]}
    result = fleet.run(work, on_result=on_result, on_progress=on_progress)
    pi4 = result.results["pi4"]
    assert [item for item, _ in pi4] == models  # every item, in queue order: nothing lost
    assert all(m.ok for _, m in pi4), [m.error for _, m in pi4]
    assert all(m.ok for _, m in result.results["local"])
    dead_rows = result.results["dead"]
    assert len(dead_rows) == 3 and all(failure_kind(m) == "transport" for _, m in dead_rows)
    assert "gave up" in str(dead_rows[-1][1].error) and "dead" in result.errors
    assert len(seen) == 4 + 2 + 3 and not any(result.pending.values())
    assert lines[-1] == "pi4 4/4 | local 2/2 | dead 3/3 (3 failed)"


class _FlakyDevice:
    """A device double for the scheduling logic (no hardware is involved in these checks)."""

    def __init__(self, name: str, table: Any) -> None:
        self.name = name
        self.fail_first = int(table.get("fail_first", 0))
        self.calls = 0
        self.closed = False

    def measure(self, model: Any, **kw: Any) -> Measurement:
        self.calls += 1
        if self.calls <= self.fail_first:
            return Measurement.failed("link dropped", harness={"failure": "transport"})
        if model == "boom":
            raise ValueError("not a LatbenchError")  # a bug in an adapter: isolated per device
        return Measurement(samples_ms=(1.0, 2.0), device=self.name, model_path=str(model))

    def close(self) -> None:
        self.closed = True


def test_transport_failures_are_retried_and_stop_leaves_items_pending() -> None:
    devices: dict[str, _FlakyDevice] = {}

    def factory(name: str, table: Any) -> Any:
        devices[name] = _FlakyDevice(name, table)
        return devices[name]

    fleet = Fleet({"a": {"fail_first": 1}, "b": {}}, factory=factory, retry_delay_s=0.0)
    out = fleet.run({"a": ["x", "y"], "b": ["p", "boom", "q"]})
    assert [m.ok for _, m in out.results["a"]] == [True, True]
    assert out.results["a"][0][1].harness["attempts"] == 2  # retried once after the drop
    assert [i for i, _ in out.results["b"]] == ["p"] and "b" in out.errors  # isolated crash
    assert devices["a"].closed and devices["b"].closed

    fleet2 = Fleet({"a": {}}, factory=factory)
    out2 = fleet2.run({"a": list(range(5))}, on_result=lambda d, i, m: fleet2.stop())
    assert len(out2.results["a"]) == 1 and out2.pending["a"] == [1, 2, 3, 4]
    assert not out2.ok


def test_prepare_errors_fail_one_item_and_tasks_serialise() -> None:
    fleet = Fleet({"a": {}}, factory=lambda n, t: _FlakyDevice(n, t))  # type: ignore[arg-type,return-value]

    def prepare(device: str, item: str) -> tuple[str, dict[str, Any]]:
        if item == "bad":
            raise RuntimeError("export failed")
        return f"{item}.onnx", {"threads": 2}

    out = fleet.run({"a": ["x", "bad", "y"]}, prepare=prepare)
    oks = [m.ok for _, m in out.results["a"]]
    assert oks == [True, False, True]
    assert "export failed" in str(out.results["a"][1][1].error)
    task = FleetTask(0, "x", "x.onnx", {"settings": FAST, "threads": 1})
    assert task.to_dict()["kwargs"]["settings"]["min_runs"] == 5
