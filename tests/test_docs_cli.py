"""docs/cli.md is generated from the argparse parser and must match it."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from latbench.cli import build_parser

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_cli_reference", DOCS / "gen_cli_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_cli_reference", module)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date() -> None:
    expected = _generator().render(build_parser())
    current = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert current == expected, (
        "docs/cli.md is out of date with latbench.cli.build_parser(); "
        "run: .venv/bin/python docs/gen_cli_reference.py"
    )


def test_reference_lists_every_command_and_option() -> None:
    text = _generator().render(build_parser())
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        assert f"## `latbench {name}`" in text
        for action in command._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}`" in text, (name, flag)
    assert "| `--db` `DB` | store to read" in text


def test_check_mode_reports_stale_file(tmp_path: Path) -> None:
    gen = _generator()
    stale = tmp_path / "cli.md"
    stale.write_text("old\n", encoding="utf-8")
    assert gen.main(["--check", "-o", str(stale)]) == 1
    assert gen.main(["-o", str(stale)]) == 0
    assert gen.main(["--check", "-o", str(stale)]) == 0
