"""The fleet's fault rules for devices that cannot be built or whose table is wrong.

The device doubles stand for the scheduling logic only (which failure stops a device); the
adapters' own faults are tested against the real servers in the ssh and adb tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from latbench.devices.fleet import Fleet
from latbench.devices.remote import failure_kind
from latbench.errors import ConfigError, ModelError
from latbench.profilers.record import Measurement


class _Device:
    def __init__(self, name: str, error: Exception | None = None) -> None:
        self.name = name
        self.error = error
        self.calls = 0

    def measure(self, model: Any, **kw: Any) -> Measurement:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return Measurement(samples_ms=(1.0,), device=self.name, model_path=str(model))

    def close(self) -> None:
        pass


def test_a_device_that_cannot_be_built_stops_at_once_with_the_reason() -> None:
    built: list[str] = []

    def factory(name: str, table: Mapping[str, Any]) -> Any:
        built.append(name)
        if name == "bad":
            raise ConfigError("device 'bad': unknown key(s) 'serail'")
        return _Device(name)

    out = Fleet({"bad": {}, "good": {}}, factory=factory).run(
        {"bad": ["a", "b", "c"], "good": ["a", "b"]}
    )
    bad = [m for _, m in out.results["bad"]]
    assert [failure_kind(m) for m in bad] == ["device"] * 3
    assert all("unknown key(s) 'serail'" in str(m.error) for m in bad)
    assert "not measured" in str(bad[-1].error)
    assert built.count("bad") == 1  # not built again for every item
    assert "serail" in out.errors["bad"]
    assert all(m.ok for _, m in out.results["good"]) and "good" not in out.errors


def test_a_config_error_from_measure_stops_the_device_a_model_error_does_not() -> None:
    devices = {
        "nobin": _Device("nobin", ConfigError("device 'nobin': benchmark_binary = None")),
        "badmodel": _Device("badmodel", ModelError("model file 'x' does not exist")),
    }
    fleet = Fleet({n: {} for n in devices}, factory=lambda n, t: devices[n])  # type: ignore[arg-type,return-value]
    out = fleet.run({"nobin": ["a", "b", "c"], "badmodel": ["a", "b"]})
    assert [failure_kind(m) for _, m in out.results["nobin"]] == ["device"] * 3
    assert devices["nobin"].calls == 1  # the rest were failed with the reason, not re-tried
    assert "benchmark_binary" in out.errors["nobin"]
    assert [failure_kind(m) for _, m in out.results["badmodel"]] == ["model", "model"]
    assert devices["badmodel"].calls == 2 and "badmodel" not in out.errors
