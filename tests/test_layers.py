"""The import rules of docs/design.md, checked by parsing every module's imports with ast."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "latbench"
SHARED = {
    "latbench",
    "latbench.errors",
    "latbench._registry",
    "latbench._validate",
    "latbench._csvfile",
    "latbench._atomic",
    "latbench._progress",
    "latbench.config",
}
# package -> latbench packages it may import (besides SHARED)
ALLOWED: dict[str, set[str]] = {
    "spaces": set(),
    "profilers": set(),
    "devices": {"spaces", "profilers"},
    "datasets": {"devices", "spaces", "profilers"},
    "predictors": {"spaces", "datasets"},
    "nas": {"predictors", "spaces"},
}
ANYTHING = {"cli", "commands", "report", "demo", "pytest_plugin"}
STDLIB_ONLY = {
    "latbench/profilers/record.py",
    "latbench/profilers/stats.py",
    "latbench/profilers/harness.py",
}


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str | None = None) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in the file, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = name or _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            # `from latbench import spaces` imports the sub-package (not `__version__`)
            if mod == "latbench":
                out.extend(
                    (node.lineno, f"latbench.{a.name}")
                    for a in node.names
                    if (SRC / a.name).is_dir() or (SRC / f"{a.name}.py").is_file()
                )
    return out


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "latbench" else None


MODULES = _modules()


def test_there_are_modules_to_check() -> None:
    names = {_module_name(p) for p in MODULES}
    assert {"latbench.spaces.graph", "latbench.cli", "latbench.errors"} <= names


def _violations(me_module: str, imports: list[tuple[int, str]]) -> list[str]:
    me = _layer(me_module)
    bad: list[str] = []
    for line, mod in imports:
        if not mod.startswith("latbench"):
            continue
        target = _layer(mod)
        if mod in SHARED or target is None or target == me:
            continue
        if target in {"cli", "commands"} and me not in ANYTHING:
            bad.append(f"line {line}: {mod} (library code never imports the CLI)")
        elif me in ALLOWED and target not in ALLOWED[me]:
            allowed = sorted(ALLOWED[me]) or "no other layer"
            bad.append(f"line {line}: {mod} (latbench.{me} may import {allowed})")
    return bad


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC.parent)))
def test_module_follows_the_import_rules(path: Path) -> None:
    bad = _violations(_module_name(path), _imports(path))
    assert not bad, f"{path.relative_to(SRC.parent)} breaks the layer rules: " + "; ".join(bad)


@pytest.mark.parametrize("rel", sorted(STDLIB_ONLY))
def test_agent_modules_use_the_standard_library_only(rel: str) -> None:
    path = SRC.parent / rel
    if not path.exists():
        pytest.skip(f"{rel} is not written yet")
    foreign = [
        f"line {line}: {mod}"
        for line, mod in _imports(path)
        if mod
        and mod.split(".")[0] not in sys.stdlib_module_names
        and mod != "__future__"
        and not mod.startswith("latbench.profilers")
    ]
    assert not foreign, f"{rel} must use the standard library only: {foreign}"


def test_checker_catches_violations(tmp_path: Path) -> None:
    """Absolute, relative and `from latbench import x` imports are all seen."""
    bad = tmp_path / "m.py"
    bad.write_text(
        "from latbench import predictors, __version__\n"
        "import latbench.nas.search\n"
        "from ..cli import main\n"
        "from .graph import Graph\n"
    )
    found = _violations("latbench.spaces.m", _imports(bad, "latbench.spaces.m"))
    assert len(found) == 3
    assert any("latbench.predictors" in f for f in found)
    assert any("latbench.nas.search" in f for f in found)
    assert any("latbench.cli" in f and "never imports the CLI" in f for f in found)
    assert _violations("latbench.nas.x", [(1, "latbench.predictors.base")]) == []
