"""``latbench collect --device local,board``: several devices through the fleet, one store.

The board is this machine behind a real OpenSSH server on loopback (tests/devices_servers.py):
the collector drives the local worker and the board's agent over SSH at once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import latbench.datasets as lds
from device_fixtures import sshd_fixture
from devices_servers import Sshd
from latbench.cli import main
from latbench.spaces import NB201Space

FAST = [
    "--min-runs", "3", "--min-time", "0", "--max-time", "0.05", "--spread", "0",
    "--warmup", "1", "--warmup-time", "0", "--no-progress", "--drift-every", "2",
]  # fmt: skip


sshd = sshd_fixture()


def _toml(table: dict[str, object]) -> str:
    def value(v: object) -> str:
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return str(v).lower() if isinstance(v, bool) else str(v)

    return "[devices.board]\n" + "".join(f"{k} = {value(v)}\n" for k, v in table.items())


@pytest.mark.ssh
def test_collect_on_local_and_an_ssh_board_at_once(
    sshd: Sshd, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bench.toml"
    cfg.write_text(_toml(sshd.device_config()), encoding="utf-8")
    db = tmp_path / "c.db"
    argv = ["--config", str(cfg), "collect", "--space", "nb201", "--device", "local,board",
            "--sample", "3", "--seed", "1", "--db", str(db), "--name", "fl", *FAST]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "local: 0 already stored, 3 ok" in out and "board: 0 already stored, 3 ok" in out
    with lds.open(db, readonly=True) as store:
        df = store.to_pandas()
        drift = store.drift("fl")
    assert df.groupby("device").size().to_dict() == {"board": 3, "local": 3}
    assert set(df["status"]) == {"ok"}
    assert sorted(df[df["device"] == "board"]["arch"]) == sorted(NB201Space().sample(3, 1))
    assert set(drift["device"]) == {"board", "local"} and drift["latency_ms"].notna().all()
    # a rerun finds everything stored on both devices
    assert main(argv) == 0
    assert "board: 3 already stored, 0 ok" in capsys.readouterr().out


@pytest.mark.ssh
def test_a_board_that_is_down_is_measured_by_the_rerun_once_it_is_up(
    sshd: Sshd, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Link failures are the device's, not the architectures': they are reported and not
    stored, so the plain rerun (no --retry-failed) measures them when the board is back."""
    import socket

    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        down_port = sock.getsockname()[1]
    cfg = tmp_path / "bench.toml"
    cfg.write_text(
        _toml(sshd.device_config(port=down_port, reconnect_timeout_s=0.5)), encoding="utf-8"
    )
    db = tmp_path / "c.db"
    argv = ["--config", str(cfg), "collect", "--space", "nb201", "--device", "local,board",
            "--sample", "3", "--seed", "2", "--db", str(db), "--name", "down", *FAST]  # fmt: skip
    assert main(argv) == 1  # work left undone
    out = capsys.readouterr().out
    assert "local: 0 already stored, 3 ok" in out
    assert "board: 3 not measured, the device could not be reached" in out
    assert "run the same command again once it is back" in out
    with lds.open(db, readonly=True) as store:
        assert store.to_pandas().groupby("device").size().to_dict() == {"local": 3}
    cfg.write_text(_toml(sshd.device_config()), encoding="utf-8")  # the board is back
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "board: 0 already stored, 3 ok" in out and "local: 3 already stored, 0 ok" in out


def test_a_device_tables_harness_keys_apply_to_that_device_under_the_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``max_runs = 3`` in [devices.capped] caps that device only; its ``min_time_s = 5`` is
    overridden by ``--min-time 0`` on the command line (options > device table > [measure])."""
    import json

    cfg = tmp_path / "bench.toml"
    cfg.write_text(
        '[measure]\nwarmup_time_s = 0.01\n\n[devices.capped]\ntransport = "local"\n'
        "max_runs = 3\nmin_time_s = 5\n",
        encoding="utf-8",
    )
    db = tmp_path / "c.db"
    argv = ["--config", str(cfg), "collect", "--space", "nb201", "--device", "local,capped",
            "--sample", "2", "--seed", "1", "--db", str(db), "--name", "own", *FAST]  # fmt: skip
    assert main(argv) == 0
    assert "capped: 0 already stored, 2 ok" in capsys.readouterr().out
    with lds.open(db, readonly=True) as store:
        df = store.to_pandas()
        params = store.collection_params("own")
    settings = {
        dev: [json.loads(h)["settings"] if isinstance(h, str) else h["settings"] for h in g.harness]
        for dev, g in df.groupby("device")
    }
    assert {s["max_runs"] for s in settings["capped"]} == {3}
    assert {s["max_runs"] for s in settings["local"]} == {None}
    assert {s["min_time_s"] for s in settings["capped"]} == {0.0}  # the option wins
    assert all(s["warmup_time_s"] == 0.0 for v in settings.values() for s in v)  # --warmup-time 0
    assert (df[df.device == "capped"].runs <= 3).all()
    assert params is not None and params["device_harness"]["capped"]["max_runs"] == 3
    assert "local" not in params["device_harness"]
