"""bench.toml values that are wrong are refused when the file is loaded, by file, table and key.

Each case names the value and what was expected, so a typo in a device table or a zero in
``[measure]`` stops the command at once rather than in the middle of a run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from latbench.cli import main
from latbench.config import load_config
from latbench.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
NB201_ARCH = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|"


def _refused(tmp_path: Path, text: str) -> str:
    cfg = tmp_path / "bench.toml"
    cfg.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    message = str(info.value)
    assert message.startswith(f"{cfg}"), message
    return message


def _loads(tmp_path: Path, text: str) -> None:
    cfg = tmp_path / "bench.toml"
    cfg.write_text(text + "\n", encoding="utf-8")
    load_config(cfg)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("min_runs = 0", "[measure] min_runs = 0; expected an integer >= 1"),
        ("timeout_s = 0", "[measure] timeout_s = 0; expected a number > 0"),
        ("timeout_s = 0.0", "[measure] timeout_s = 0.0; expected a number > 0"),
        ("batch = 0", "[measure] batch = 0; expected an integer >= 1"),
        ("threads = 0", "[measure] threads = 0; expected an integer >= 1"),
        ("threads = 2.5", "[measure] threads = 2.5; expected an integer >= 1"),
        ("warmup_runs = nan", "[measure] warmup_runs = nan; expected an integer >= 0"),
        ("max_time_s = inf", "[measure] max_time_s = inf; expected a number > 0"),
        ("max_time_s = 0", "[measure] max_time_s = 0; expected a number > 0"),
        ("min_time_s = nan", "[measure] min_time_s = nan; expected a number >= 0"),
        ("min_runs = -1", "[measure] min_runs = -1; expected an integer >= 1"),
        ("loops = 0", "[measure] loops = 0; expected an integer >= 1"),
        (
            "min_time_s = 5.0\nmax_time_s = 2.0",
            "[measure] max_time_s = 2.0 is below min_time_s = 5.0; expected max_time_s >= "
            "min_time_s",
        ),
        ('statistic = "mean"', "[measure] statistic = 'mean'; expected one of: median, min"),
        (
            'runtime = "nope"',
            "[measure] runtime = 'nope'; expected one of: litert, onnxruntime, torch",
        ),
    ],
)
def test_a_bad_measure_value_is_refused_at_load(tmp_path: Path, text: str, needle: str) -> None:
    assert needle in _refused(tmp_path, "[measure]\n" + text)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("drift_every = -1", "collect.drift_every = -1; expected an integer >= 0"),
        ("drift_threshold = nan", "collect.drift_threshold = nan; expected a number > 0"),
        ("drift_threshold = -1", "collect.drift_threshold = -1; expected a number > 0"),
        ("drift_threshold = 0", "collect.drift_threshold = 0; expected a number > 0"),
        (
            'drift_arch = "garbage"',
            "collect.drift_arch = 'garbage' is no architecture of any search space",
        ),
        ('drift_arch = ""', "collect.drift_arch = '' is no architecture of any search space"),
    ],
)
def test_a_bad_collect_value_is_refused_at_load(tmp_path: Path, text: str, needle: str) -> None:
    message = _refused(tmp_path, "[collect]\n" + text)
    assert needle in message
    if "drift_arch" in text:  # what an architecture looks like, per space
        assert "nb201:" in message and "fbnet:" in message


def test_good_collect_values_still_load(tmp_path: Path) -> None:
    # 0 is documented as "never re-measure the drift reference"
    _loads(
        tmp_path, f'[collect]\ndrift_every = 0\ndrift_threshold = 0.2\ndrift_arch = "{NB201_ARCH}"'
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        # a device named local with a transport whose needed keys are missing
        (
            '[devices.local]\ntransport = "ssh"',
            "[devices.local] (transport = 'ssh'): host is missing; transport = 'ssh' needs host",
        ),
        ('[devices.b]\ntransport = "ssh"\nhost = ""', "host = ''; expected a host name"),
        # keys of another transport
        (
            '[devices.b]\ntransport = "ssh"\nhost = "h"\nserial = "X1"',
            "[devices.b] (transport = 'ssh'): unknown key(s) 'serial'",
        ),
        (
            '[devices.b]\ntransport = "local"\nhost = "h"',
            "[devices.b] (transport = 'local'): unknown key(s) 'host'",
        ),
        (
            '[devices.b]\ntransport = "adb"\nport = 22',
            "[devices.b] (transport = 'adb'): unknown key(s) 'port'",
        ),
        # values of the wrong type or range
        (
            '[devices.b]\ntransport = "ssh"\nhost = "h"\nport = "22a"',
            "[devices.b] (transport = 'ssh'): port = '22a'; expected an integer in [1, 65535]",
        ),
        (
            '[devices.b]\ntransport = "ssh"\nhost = "h"\nuser = 5',
            "user = 5; expected a user name",
        ),
        (
            '[devices.b]\ntransport = "ssh"\nhost = "h"\nruntime = "tflite"',
            "runtime = 'tflite'; expected one of ai_edge_litert, litert, onnxruntime",
        ),
        (
            '[devices.b]\ntransport = "ssh"\nhost = "h"\nhost_key_check = "no"',
            "host_key_check = 'no'; expected one of accept-new, yes",
        ),
        ('[devices.b]\ntransport = "cuda"\nindex = -1', "index = -1; expected an integer >= 0"),
        (
            '[devices.b]\ntransport = "cuda"\ndtype = "float64"',
            "dtype = 'float64'; expected one of bfloat16, float16, float32",
        ),
        ('[devices.b]\ntransport = "adb"\nrounds = 0', "rounds = 0; expected an integer >= 1"),
        (
            '[devices.b]\ntransport = "adb"\ncooldown_s = -1',
            "cooldown_s = -1; expected a number >= 0",
        ),
        (
            '[devices.b]\ntransport = "adb"\nremote_dir = "tmp/x"',
            "remote_dir = 'tmp/x'; expected an absolute directory on the phone",
        ),
        (
            '[devices.b]\ntransport = "adb"\nextra_args = "--x"',
            "extra_args = '--x'; expected a list of strings",
        ),
        (
            '[devices.b]\ntransport = "local"\ntimeout_s = 0',
            "[devices.b] (transport = 'local'): timeout_s = 0; expected a number > 0",
        ),
        (
            '[devices.b]\ntransport = "local"\nmemory_limit_mb = 1.5',
            "memory_limit_mb = 1.5; expected an integer >= 0",
        ),
        (
            '[devices.b]\ntransport = "local"\nmin_runs = 0.5',
            "[devices.b] min_runs = 0.5; expected an integer",
        ),
        # a device table's harness keys over [measure]: together they must make sense
        (
            '[measure]\nmin_time_s = 5.0\n[devices.b]\ntransport = "local"\nmax_time_s = 2',
            "[devices.b] (over [measure]) max_time_s = 2.0 is below min_time_s = 5.0",
        ),
        # --device takes a comma list: such a device could never be named
        (
            '[devices.b]\ntransport = "local"\nmin_runs = -3',
            "[devices.b] min_runs = -3; expected a value >= 0",
        ),
        ('[devices."a,b"]\ntransport = "local"', "'a,b' is no device name"),
    ],
)
def test_a_bad_device_table_is_refused_at_load(tmp_path: Path, text: str, needle: str) -> None:
    assert needle in _refused(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[mesure]\nmin_runs = 3", "unknown section(s) ['mesure']"),
        ("[measure]\nmin_rns = 3", "unknown key measure.min_rns"),
        ("[collect]\ndrift_evry = 3", "unknown key collect.drift_evry"),
        ('[store]\npth = "x.db"', "unknown key store.pth"),
        ('[devices.b]\ntransport = "local"\ntimout_s = 3', "unknown key(s) 'timout_s'"),
        ('[measure]\nruntime = "onnxruntme"', "[measure] runtime = 'onnxruntme'"),
    ],
)
def test_a_typo_gets_a_did_you_mean(tmp_path: Path, text: str, needle: str) -> None:
    message = _refused(tmp_path, text)
    assert needle in message
    assert re.search(
        r"\(did you mean '(measure|min_runs|drift_every|path|timeout_s|onnxruntime)'\?\)$", message
    ), message


def test_an_unreadable_file_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "bench.toml"
    cfg.write_text("[measure]\nmin_runs = 3\n", encoding="utf-8")

    def denied(self: Path, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(ConfigError, match=r"bench.toml' cannot be read \(Permission denied\)"):
        load_config(cfg)


def test_a_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    message = _refused(tmp_path, "[measure]\nmin_runs = ")
    assert "not valid TOML" in message and "line 2, column" in message


def test_the_cli_says_it_in_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bench.toml"
    cfg.write_text('[devices.local]\ntransport = "ssh"\n', encoding="utf-8")
    rc = main(["--config", str(cfg), "devices"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"latbench: error: {cfg}: [devices.local] (transport = 'ssh'): host is missing" in err


def _toml_examples() -> list[tuple[str, str]]:
    out = [("bench.toml", (ROOT / "bench.toml").read_text(encoding="utf-8"))]
    for md in sorted((ROOT / "docs").glob("*.md")):
        for i, m in enumerate(re.finditer(r"```toml\n(.*?)```", md.read_text(), re.S)):
            out.append((f"{md.name}#{i}", m.group(1)))
    return out


@pytest.mark.parametrize(
    ("name", "text"), _toml_examples(), ids=lambda v: v if "\n" not in v else ""
)
def test_the_repos_bench_toml_and_the_docs_examples_load(
    tmp_path: Path, name: str, text: str
) -> None:
    cfg = tmp_path / "bench.toml"
    cfg.write_text(text, encoding="utf-8")
    load_config(cfg)
