"""What the CLI tests share: run ``latbench`` in-process and capture its output; a fixture
that runs each test in its own folder without a bench.toml.

Assign the fixture in a test module as ``_no_config = no_config_fixture()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from latbench.cli import main


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``latbench ARGV`` in this process: (exit status, stdout, stderr)."""
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def no_config_fixture() -> Any:
    """An autouse fixture: no bench.toml of the tree or the environment, each test in its own
    folder."""

    @pytest.fixture(autouse=True)
    def _no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.delenv("LATBENCH_CONFIG", raising=False)
        monkeypatch.chdir(tmp_path)

    return _no_config
