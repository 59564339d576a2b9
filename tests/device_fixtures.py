"""Module-scoped fixtures of the real device servers, shared by the SSH, adb and collect tests.

Assign one in a test module as ``sshd = sshd_fixture()``: pytest finds it by that name.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devices_servers import ADB, SSHD, AdbServer, Sshd

FIXTURES = Path(__file__).parent / "fixtures" / "devices"


def make_script(path: Path, text: str) -> Path:
    """``text`` written to ``path`` as an executable script."""
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def sshd_fixture() -> Any:
    """OpenSSH's sshd on a free loopback port, for the module."""

    @pytest.fixture(scope="module")
    def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
        if not os.access(SSHD, os.X_OK):
            pytest.fail(f"{SSHD} is missing: run `make sysdeps` (installs openssh-server)")
        server = Sshd(tmp_path_factory.mktemp("sshd")).start()
        yield server
        server.stop()

    return sshd


def phone_fixture() -> Any:
    """The local adb-protocol server as a Pixel 6: saved real ``getprop`` and ``dumpsys``."""

    @pytest.fixture(scope="module")
    def phone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdbServer]:
        if not os.access(ADB, os.X_OK):
            pytest.fail(f"{ADB} is missing: run `make sysdeps` (installs adb)")
        root = tmp_path_factory.mktemp("phone")
        bin_dir = root / "bin"
        bin_dir.mkdir()
        make_script(bin_dir / "getprop", f"#!/bin/sh\ncat {FIXTURES / 'getprop_pixel6.txt'}\n")
        make_script(
            bin_dir / "dumpsys",
            f'#!/bin/sh\n[ "$1" = battery ] && exec cat {FIXTURES / "dumpsys_battery.txt"}\n'
            "exit 1\n",
        )
        server = AdbServer(root / "sandbox", bin_dir=bin_dir).start()
        yield server
        server.stop()

    return phone


def bench_bin_fixture() -> Any:
    """The ``benchmark_model`` stand-in pushed to the phone (LiteRT, benchmark_model's output)."""

    @pytest.fixture(scope="module")
    def bench_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
        src = (FIXTURES / "benchmark_model_standin.py").read_text()
        out = tmp_path_factory.mktemp("bin") / "benchmark_model"
        return make_script(out, f"#!{sys.executable}\n{src}")

    return bench_bin


def count_rows(db: Path) -> int:
    """Rows a running collect has stored so far, read without waiting on the writer's locks
    (0 when not readable yet).

    A plain read-only connection with a 50 ms busy timeout: the store's own readonly open waits
    up to 30 s on a lock, which can stall the polling loop past the end of a fast collection.
    """
    import sqlite3

    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=0.05)
        try:
            (n,) = conn.execute("SELECT COUNT(*) FROM measurements").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:  # created but tables not committed yet, or busy: poll again
        return 0
    return int(n)
