"""bench.toml robustness: CPU lists, device transports, the store path and ``$LATBENCH_CONFIG``.

Each case writes a real bench.toml and runs the real command line; the errors must name the
file, the table and key, the value and what was expected, before anything is measured.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from latbench.cli import main
from latbench.config import Config, load_config
from latbench.devices import DEVICES, get_device
from latbench.devices.local import LocalDevice, parse_cpus
from latbench.errors import ConfigError, UnknownNameError

ARCH = "nb201:|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
FORM = "expected a CPU list: CPU ids >= 0 as an integer (3), a list of integers ([2, 3])"


@pytest.fixture(autouse=True)
def _no_env_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No stray $LATBENCH_CONFIG, and no ./bench.toml of the checkout."""
    monkeypatch.delenv("LATBENCH_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def _toml(tmp_path: Path, text: str, name: str = "bench.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def no_measuring(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Records every LocalDevice.measure call (there must be none)."""
    calls: list[Any] = []
    real = LocalDevice.measure

    def measure(self: LocalDevice, model: Any, **kwargs: Any) -> Any:
        calls.append(model)
        return real(self, model, **kwargs)

    monkeypatch.setattr(LocalDevice, "measure", measure)
    return calls


# ---- finding 4: the local device's cpus --------------------------------------------------
BAD_DEVICE_CPUS = [
    ('[0, "a"]', "[0, 'a']"),
    ("[1.7]", "[1.7]"),
    ('"abc"', "'abc'"),
    ("-1", "-1"),
    ("true", "True"),
    ('"0-"', "'0-'"),
    ('"1,,2"', "'1,,2'"),
    ("[[0]]", "[[0]]"),
    ('"0-99999999"', "'0-99999999'"),
]


@pytest.mark.parametrize(("toml_value", "shown"), BAD_DEVICE_CPUS)
def test_a_bad_local_cpus_names_file_table_key_value_and_form(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_measuring: list[Any],
    toml_value: str,
    shown: str,
) -> None:
    cfg = _toml(tmp_path, f'[devices.x]\ntransport = "local"\ncpus = {toml_value}\n')
    for argv in (["devices"], ["measure", ARCH, "--device", "x"]):
        rc, _, err = _run(capsys, "--config", str(cfg), *argv)
        assert rc == 2, err
        assert "Traceback" not in err and len(err.splitlines()) == 1
        assert err.startswith(f"latbench: error: {cfg}: [devices.x] cpus "), err
        assert shown in err
        if "99999999" in shown:
            assert "expected CPU ids in [0, 65535]" in err
        else:
            assert FORM in err
    assert no_measuring == []


def test_a_reversed_range_says_so_and_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _toml(tmp_path, '[devices.x]\ntransport = "local"\ncpus = "1-0"\n')
    rc, _, err = _run(capsys, "--config", str(cfg), "devices")
    assert rc == 2
    assert f"{cfg}: [devices.x] cpus '1-0': a range must go up (expected e.g. 0-1)" in err
    assert "reversed" in err


def test_a_bad_measure_cpus_names_the_measure_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_measuring: list[Any]
) -> None:
    cfg = _toml(tmp_path, '[measure]\ncpus = "abc"\n')
    rc, _, err = _run(capsys, "--config", str(cfg), "measure", ARCH)
    assert rc == 2 and no_measuring == []
    assert err.startswith(f"latbench: error: {cfg}: measure.cpus = 'abc'; {FORM}"), err


@pytest.mark.parametrize("value", ['"0"', "0", "[0]", '"0, 0"', '["0"]'])
def test_good_cpu_lists_are_accepted(tmp_path: Path, value: str) -> None:
    if 0 not in os.sched_getaffinity(0):
        pytest.skip("CPU 0 is not available to this process")
    cfg = load_config(
        _toml(
            tmp_path,
            f'[measure]\ncpus = {value}\n[devices.x]\ntransport = "local"\ncpus = {value}\n',
        )
    )
    with get_device("x", cfg) as dev:
        assert isinstance(dev, LocalDevice) and dev.cpus == [0]


def test_the_local_device_refuses_non_integer_cpus_in_python_too() -> None:
    """A table built in Python (no file): the device names itself, no truncation of 1.7."""
    for value in ([1.7], [0, "a"], "1-0", True):
        with pytest.raises(ConfigError, match=r"device 'd': cpus"):
            LocalDevice("d", {"cpus": value})
    with pytest.raises(ConfigError, match="expected a CPU list"):
        parse_cpus([2.0])
    assert parse_cpus("0-2,5") == [0, 1, 2, 5] and parse_cpus(None) is None


# ---- finding 5: an unknown transport -------------------------------------------------------
def test_an_unknown_transport_is_refused_when_the_file_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_measuring: list[Any]
) -> None:
    cfg = _toml(tmp_path, '[devices.x]\ntransport = "sshh"\n')
    needle = (
        f"{cfg}: [devices.x] transport = 'sshh': no such device transport; "
        "expected one of: adb, cuda, local, ssh"
    )
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert needle in str(info.value)
    for argv in (["devices"], ["devices", "--json"], ["measure", ARCH, "--device", "x"]):
        rc, out, err = _run(capsys, "--config", str(cfg), *argv)
        assert rc == 2, (argv, out, err)  # malformed, not UNAVAILABLE
        assert needle in err and "UNAVAILABLE" not in out
    assert no_measuring == []


def test_a_plugin_transport_passes_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(DEVICES._items, "myplugin", LocalDevice)
    cfg = load_config(_toml(tmp_path, '[devices.p]\ntransport = "myplugin"\ncpus = "big"\n'))
    assert cfg.device("p")["transport"] == "myplugin"  # a plugin reads its own cpus


def test_an_unknown_transport_of_a_python_config_names_the_device() -> None:
    with pytest.raises(UnknownNameError, match=r"device 'w': unknown device transport 'pigeon'"):
        get_device("w", Config(devices={"w": {"transport": "pigeon"}}))


# ---- minor: [store] path = "" ----------------------------------------------------------------
@pytest.mark.parametrize("value", ['""', '"  "'])
def test_an_empty_store_path_names_store_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    cfg = _toml(tmp_path, f"[store]\npath = {value}\n")
    rc, _, err = _run(capsys, "--config", str(cfg), "devices")
    assert rc == 2
    assert f"{cfg}: store.path = {value.strip(chr(34))!r}; expected the store file's name" in err


# ---- finding 11: $LATBENCH_CONFIG ------------------------------------------------------------
def test_help_names_latbench_config(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "$LATBENCH_CONFIG if set, else ./bench.toml if present" in out


def test_a_missing_config_says_it_came_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "gone.toml"
    monkeypatch.setenv("LATBENCH_CONFIG", str(missing))
    rc, _, err = _run(capsys, "devices")
    assert rc == 2
    assert f"config file {str(missing)!r} (from $LATBENCH_CONFIG) does not exist" in err
    assert "unset it, or pass --config FILE" in err
    monkeypatch.setenv("LATBENCH_CONFIG", str(tmp_path))
    rc, _, err = _run(capsys, "devices")
    assert rc == 2 and "(from $LATBENCH_CONFIG) is a directory" in err
    # --config wins over the variable, and its own missing file does not blame the variable
    rc, _, err = _run(capsys, "--config", str(missing), "devices")
    assert rc == 2 and "LATBENCH_CONFIG" not in err and "does not exist" in err
    good = _toml(tmp_path, '[devices.envdev]\ntransport = "local"\n', "env.toml")
    monkeypatch.setenv("LATBENCH_CONFIG", str(good))
    assert load_config().path == good and "envdev" in load_config().devices


def test_measure_cpus_pins_every_command_not_only_measure(tmp_path: Path) -> None:
    """``[measure] cpus`` is each device's default (its own table's ``cpus`` goes over it), so
    collect and describe pin as ``latbench measure`` does; a real one-architecture collect."""
    import latbench.datasets as lds

    cpu = sorted(os.sched_getaffinity(0))[-1]
    cfg_path = _toml(
        tmp_path,
        f'[measure]\ncpus = "{cpu}"\n[devices.other]\ntransport = "local"\ncpus = [{cpu}]\n',
    )
    cfg = load_config(cfg_path)
    assert get_device("local", cfg).cpus == [cpu]  # type: ignore[attr-defined]
    assert get_device("other", cfg).cpus == [cpu]  # type: ignore[attr-defined]
    db = tmp_path / "s.db"
    rc = main(["--config", str(cfg_path), "collect", "--space", "nb201", "--device", "local",
               "--sample", "1", "--seed", "0", "--db", str(db), "--min-runs", "3",
               "--min-time", "0.01", "--max-time", "0.05", "--resolution", "8"])  # fmt: skip
    assert rc == 0
    with lds.open(db, readonly=True) as store:
        envs = [json.loads(e) if isinstance(e, str) else e for e in store.to_pandas()["env"]]
    assert envs and all(e.get("pinned_cpus") == [cpu] for e in envs), envs
