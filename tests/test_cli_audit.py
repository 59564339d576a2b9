"""collect, rank, devices and the pytest plugin on bad input: options out of range named as the
user gave them, --archs files that are directories, binary or in SPACE:ARCH form, describe runs
with nothing (or too much) to measure, result paths that cannot be written. Everything is
refused before a measurement starts, so each test takes well under a second."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import cli, no_config_fixture
from latbench.commands._archfile import read_archs
from latbench.errors import ConfigError
from latbench.spaces import get_space

pytest_plugins = ["pytester"]

ARCH = "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|nor_conv_3x3~0|nor_conv_1x1~1|none~2|"


_no_config = no_config_fixture()


def collect(*extra: str) -> list[str]:
    return ["collect", "--space", "nb201", "--sample", "1", "--db", "s.db", *extra]


# ---- collect options -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--drift-threshold", "nan"], "--drift-threshold nan; expected a number > 0"),
        (["--drift-threshold", "0"], "--drift-threshold 0.0; expected a number > 0"),
        (["--drift-every", "-1"], "--drift-every -1; expected an integer >= 0"),
        (["--threads", "0"], "--threads 0; expected an integer >= 1"),
        (["--batch", "0"], "--batch 0; expected an integer >= 1"),
        (["--weights-seed", "-1"], "--weights-seed -1; expected an integer >= 0"),
        (["--name", " "], "--name ' '; expected a collection name"),
        (
            ["--drift-arch", ARCH, "--drift-every", "0"],
            "with --drift-every 0: drift control is off",
        ),
    ],
)
def test_collect_refuses_an_option_out_of_range_by_its_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: list[str], message: str
) -> None:
    rc, out, err = cli(capsys, *collect(*extra))
    assert rc == 2, out
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "s.db").exists()  # refused before the store is made


def test_collect_refuses_a_sample_beyond_the_enumeration_limit(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # fbnet has ~1e21 architectures: drawing 10^8 of them ran for minutes before any message
    rc, _, err = cli(capsys, "collect", "--space", "fbnet", "--sample", "100000000", "--db", "s.db")
    assert rc == 2
    assert "--sample 100000000; expected at most 1,000,000" in err
    assert not (tmp_path / "s.db").exists()


# ---- --archs files ---------------------------------------------------------------------------
def test_archs_file_that_is_binary_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "archs.txt").write_bytes(b"\xff\xfe\x00\x89PNG\r\n")
    rc, _, err = cli(capsys, *collect()[:3], "--archs", "archs.txt", "--db", "s.db")
    assert rc == 2
    assert "--archs archs.txt:1: byte 0xff is not UTF-8; expected UTF-8 text" in err
    assert "(architectures one per line or a CSV with an 'arch' column)" in err


def test_archs_file_that_is_a_directory_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "archs").mkdir()
    rc, _, err = cli(capsys, *collect()[:3], "--archs", "archs", "--db", "s.db")
    assert rc == 2
    assert "--archs 'archs' is a directory; expected a file of architectures" in err
    assert "does not exist" not in err


def test_an_empty_archs_file_says_empty_not_columns(tmp_path: Path) -> None:
    for name, text in (("a.csv", ""), ("b.txt", "\n  \n")):
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError, match=f"--archs '{tmp_path / name}' is empty; expected"):
            read_archs(tmp_path / name, get_space("nb201"))


def test_archs_file_takes_space_colon_arch_lines(tmp_path: Path) -> None:
    nb201 = get_space("nb201")
    path = tmp_path / "archs.txt"
    path.write_text(f"nb201:{ARCH}\n{ARCH}\n", encoding="utf-8")
    assert read_archs(path, nb201) == [nb201.canonical(ARCH)] * 2


def test_archs_file_with_another_space_prefix_names_the_line(tmp_path: Path) -> None:
    from latbench.errors import ArchError

    path = tmp_path / "archs.txt"
    path.write_text(f"{ARCH}\nfbnet:{ARCH}\n", encoding="utf-8")
    with pytest.raises(ArchError, match="line 2"):
        read_archs(path, get_space("nb201"))


# ---- devices describe ------------------------------------------------------------------------
def test_describe_with_nothing_to_measure_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rc, _, err = cli(capsys, "devices", "describe", "local", "--no-kernels", "-o", "d.json")
    assert rc == 2
    assert "--no-kernels without --space leaves nothing to measure" in err
    assert not (tmp_path / "d.json").exists()


def test_describe_refuses_more_references_than_it_draws_from(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rc, _, err = cli(
        capsys,
        "devices",
        "describe",
        "local",
        "--space",
        "nb201",
        "--refs",
        "1000",
        "--no-kernels",
        "--max-time",
        "0.01",
        "--min-runs",
        "1",
        "-o",
        "d.json",
    )
    assert rc == 2
    assert "--refs 1000; expected at most 200" in err
    assert not (tmp_path / "d.json").exists()


def test_devices_lists_a_name_given_twice_once(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, "devices", "--json", "local", "local")
    assert rc == 0
    assert [e["name"] for e in json.loads(out)] == ["local"]


# ---- the pytest plugin -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("folder", "is a directory; expected a file to write"),
        ("afile/out.json", "is not a directory; expected an existing directory"),
        ("nowhere/out.json", "does not exist; create it first"),
    ],
)
def test_plugin_refuses_an_unwritable_results_path_at_start(
    pytester: pytest.Pytester, where: str, message: str
) -> None:
    (pytester.path / "folder").mkdir()
    (pytester.path / "afile").write_text("x", encoding="utf-8")
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest_inprocess(f"--latbench-json={where}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--latbench-json {where!r}*{message}*"])
