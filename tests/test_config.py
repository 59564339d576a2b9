"""A broken bench.toml: one error naming the file, the key and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from latbench.cli import main
from latbench.config import load_config
from latbench.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[measure", "not valid TOML: Expected ']'"),
        (
            "top = 1",
            "unknown section(s) ['top']; expected ['collect', 'devices', 'measure', 'store']",
        ),
        ("[measure]\nnope = 1", "unknown key measure.nope; expected one of ['batch', 'cpus'"),
        ('[measure]\nmin_time_s = "x"', "measure.min_time_s = 'x'; expected int or float"),
        ("[measure]\nstatistic = 3", "measure.statistic = 3; expected str"),
        ("[store]\npath = 3", "store.path = 3; expected str"),
        ("[store]\nbogus = 1", "unknown key store.bogus; expected one of ['path']"),
        ('[collect]\ndrift_every = "a"', "collect.drift_every = 'a'; expected int"),
        (
            "[collect]\nzzz = 1",
            "unknown key collect.zzz; expected one of ['drift_arch', 'drift_every', "
            "'drift_threshold']",
        ),
        ("[devices]\npi = 3", "[devices.pi] = 3; expected dict"),
        ("[devices.pi]\nhost = 'x'", '[devices.pi] needs transport = "local", "ssh"'),
        # an unknown transport is malformed (exit 2), not an UNAVAILABLE device
        (
            "[devices.x]\ntransport = 'sshh'",
            "[devices.x] transport = 'sshh': no such device transport; expected one of: adb, "
            "cuda, local, ssh",
        ),
        ('[store]\npath = ""', "store.path = ''; expected the store file's name"),
        ('[measure]\ncpus = "abc"', "measure.cpus = 'abc'; expected a CPU list"),
        ("[measure]\ncpus = [1.5]", "measure.cpus = [1.5]; expected a CPU list"),
        (
            "[devices.x]\ntransport = 'local'\ncpus = [0, 'a']",
            "[devices.x] cpus = [0, 'a']; expected a CPU list: CPU ids >= 0",
        ),
        (
            "[devices.x]\ntransport = 'ssh'\nhost = 'h'\ncpus = '3-1'",
            "[devices.x] cpus '3-1': a range must go up (expected e.g. 1-3)",
        ),
    ],
)
def test_a_broken_file_names_the_key_and_what_was_expected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, needle: str
) -> None:
    cfg = tmp_path / "bench.toml"
    cfg.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert str(info.value).startswith(f"{cfg}: ") and needle in str(info.value)
    # the command line says the same in one line, before any work
    assert main(["--config", str(cfg), "devices"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("latbench: error: ") and needle in err and len(err.splitlines()) == 1


def test_every_harness_setting_may_be_a_measure_default(tmp_path: Path) -> None:
    """[measure] takes the harness settings the command-line options set, statistic included."""
    cfg = tmp_path / "bench.toml"
    cfg.write_text(
        '[measure]\nstatistic = "min"\nloops = 4\nmin_cpu_fraction = 0.25\n'
        '[store]\npath = "lab.db"\n[collect]\ndrift_every = 0\ndrift_threshold = 0.2\n',
        encoding="utf-8",
    )
    c = load_config(cfg)
    assert (c.measure["statistic"], c.measure["loops"], c.measure["min_cpu_fraction"]) == (
        "min",
        4,
        0.25,
    )
    assert c.store_path == Path("lab.db") and c.collect["drift_threshold"] == 0.2
    assert c.measure_for("local")["statistic"] == "min"
