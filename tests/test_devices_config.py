"""A broken ``[devices.NAME]`` table of bench.toml: a clear error when the device is created.

Real adapters only (local, the ssh and adb transports); nothing here connects anywhere, the
tables are refused before that.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from latbench.cli import main
from latbench.config import Config
from latbench.devices import get_device
from latbench.errors import ConfigError
from latbench.profilers.harness import HarnessSettings


def _device(table: dict[str, Any]) -> Any:
    return get_device("d", Config(devices={"d": table}))


@pytest.mark.parametrize(
    ("table", "needles"),
    [
        ({"transport": "local", "timout_s": 3}, ["device 'd'", "'timout_s'", "timeout_s"]),
        (
            {"transport": "local", "memory_limit_mb": "lots"},
            ["memory_limit_mb = 'lots'", "integer >= 0"],
        ),
        ({"transport": "local", "min_runs": "ten"}, ["min_runs = 'ten'", "a number"]),
        ({"transport": "local", "max_time_s": -1}, ["max_time_s = -1", ">= 0"]),
        # cpus: the strict parser of every transport, never int() truncation or a traceback
        ({"transport": "local", "cpus": [1.7]}, ["device 'd'", "cpus = [1.7]", "CPU list"]),
        ({"transport": "local", "cpus": [0, "a"]}, ["device 'd'", "cpus = [0, 'a']", ">= 0"]),
        ({"transport": "local", "cpus": "1-0"}, ["device 'd'", "cpus '1-0'", "must go up"]),
        ({"transport": "local", "cpus": "abc"}, ["device 'd'", "cpus = 'abc'", "'4-7'"]),
        ({"transport": "ssh", "host": "h", "type": "pi"}, ["'type'", "host", "workdir"]),
        (
            {"transport": "ssh", "host": "h", "port": "22a"},
            ["port = '22a'", "an integer in [1, 65535]"],
        ),
        (
            {"transport": "ssh", "host": "h", "port": 70000},
            ["port = 70000", "an integer in [1, 65535]"],
        ),
        ({"transport": "ssh", "host": "h", "timeout_s": "1m"}, ["timeout_s = '1m'", "a number"]),
        ({"transport": "ssh", "host": "h", "reconnect_timeout_s": -5}, ["reconnect_timeout_s"]),
    ],
)
def test_a_bad_key_or_value_names_the_device_key_and_value(
    table: dict[str, Any], needles: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        _device(table)
    for n in needles:
        assert n in str(info.value)


@pytest.mark.skipif(shutil.which("adb") is None, reason="needs the adb client")
@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"rounds": "many"}, "rounds = 'many'; expected an integer >= 1"),
        ({"rounds": 0}, "rounds = 0; expected an integer >= 1"),
        ({"rounds": 2.5}, "rounds = 2.5; expected an integer >= 1"),
        ({"cooldown_s": "30s"}, "cooldown_s = '30s'; expected a number >= 0"),
        ({"serail": "x"}, "unknown key(s) 'serail'"),
        ({"connect_timeout_s": "soon"}, "connect_timeout_s = 'soon'"),
    ],
)
def test_adb_table(extra: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        _device({"transport": "adb", "serial": "x", **extra})
    assert needle in str(info.value)


def test_good_tables_still_work() -> None:
    dev = _device({"transport": "local", "memory_limit_mb": 512, "min_runs": 5, "cpus": "0"})
    assert dev.memory_limit_bytes == 512 * 2**20
    ssh = _device({"transport": "ssh", "host": "h", "port": 2222, "timeout_s": 30})
    assert ssh.transport.port == 2222 and ssh.timeout_s == 30.0


def test_harness_settings_name_a_value_of_the_wrong_type() -> None:
    with pytest.raises(ValueError, match="harness setting min_time_s = '1s'; expected a number"):
        HarnessSettings.from_mapping({"min_time_s": "1s"})
    with pytest.raises(ValueError, match="statistic = 3; expected a string"):
        HarnessSettings.from_mapping({"statistic": 3})


def test_collect_with_a_broken_table_stops_before_the_store_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bench.toml").write_text('[devices.board]\ntransport = "local"\ntimout_s = 3\n')
    rc = main(["collect", "--space", "nb201", "--device", "board", "--sample", "1"])
    err = capsys.readouterr().err
    # refused when bench.toml is loaded, by its table
    assert rc == 2 and "[devices.board] (transport = 'local'): unknown key(s) 'timout_s'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.toml"]


def test_measure_for_puts_a_device_tables_harness_keys_over_measure() -> None:
    cfg = Config(
        measure={"min_runs": 20, "max_time_s": 10.0, "threads": 1},
        devices={"pi": {"transport": "ssh", "host": "h", "max_time_s": 30, "runtime": "x"}},
    )
    assert cfg.measure_for("pi") == {"min_runs": 20, "max_time_s": 30, "threads": 1}
    # the adapter's own keys (ssh's runtime = the board's package) are not harness settings
    assert cfg.measure_for("local") == cfg.measure


def test_measure_takes_the_device_tables_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from measure_models import tiny_net

    model = tiny_net(tmp_path / "t.onnx")
    toml = tmp_path / "bench.toml"
    toml.write_text(
        '[devices.capped]\ntransport = "local"\nmax_runs = 4\nmin_runs = 2\nmax_time_s = 0.2\n'
        "min_time_s = 0.05\nwarmup_time_s = 0.01\n"
    )
    argv = ["--config", str(toml), "measure", str(model), "--device", "capped", "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    record = doc[0] if isinstance(doc, list) else doc
    assert record["harness"]["settings"]["max_runs"] == 4 and len(record["samples_ms"]) <= 4
    assert main([*argv, "--min-runs", "3"]) == 0  # an option goes over the table
    doc = json.loads(capsys.readouterr().out)
    record = doc[0] if isinstance(doc, list) else doc
    assert record["harness"]["settings"]["min_runs"] == 3
