"""The CLI builds only the named command's parser, and every command lives in its module."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from latbench.cli import build_parser, command_modules, command_of


def test_command_of_skips_top_level_options() -> None:
    assert command_of(["-vv", "--config", "b.toml", "dataset", "list"]) == "dataset"
    assert command_of(["--config=b.toml", "measure", "m.onnx"]) == "measure"
    assert command_of(["--version"]) is None and command_of([]) is None


def _commands(parser) -> list[str]:  # type: ignore[no-untyped-def]
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    return sorted(sub.choices)


def test_every_command_is_registered_by_the_module_of_its_name() -> None:
    full = _commands(build_parser())
    assert full == [m for m in command_modules() if m != "describe"]
    for name in full:
        assert _commands(build_parser(name)) == [name]
    assert _commands(build_parser("no-such-command")) == full  # argparse then names the choices


@pytest.mark.parametrize("command", ["dataset", "spaces"])
def test_a_command_does_not_import_the_others(command: str) -> None:
    code = (
        "import sys; from latbench.cli import build_parser; "
        f"build_parser({command!r}); "
        "print(sorted(m for m in sys.modules if m.startswith('latbench.commands.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    imported = ast.literal_eval(out.stdout.strip())  # the module names the child printed
    assert f"latbench.commands.{command}" in imported
    # the heavy, unrelated ones (scikit-learn, scipy, torch) stay out
    assert not {"latbench.commands.predictor", "latbench.commands.search"} & set(imported)
    assert len(imported) < len(command_modules()) // 2


def test_unknown_command_lists_the_choices() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "latbench.cli", "nosuch"], capture_output=True, text=True
    )
    assert out.returncode == 2 and "invalid choice: 'nosuch'" in out.stderr
    assert "dataset" in out.stderr and "measure" in out.stderr
