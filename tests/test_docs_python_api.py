"""Every code block of docs/python-api.md runs, in order, as a user would paste it."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_python_api_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LATBENCH_CONFIG", raising=False)
    blocks = _blocks()
    assert len(blocks) >= 5
    namespace: dict[str, object] = {"__name__": "__docs__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), namespace)  # our own docs
    assert (tmp_path / "cell.onnx").stat().st_size > 1000
    assert (tmp_path / "pixel3.lbp").is_file()
    m = namespace["m"]
    assert getattr(m, "ok", False)
    assert (
        float(
            namespace["p"].score(  # type: ignore[attr-defined]
                namespace["test"].arch.tolist(),  # type: ignore[attr-defined]
                namespace["test"].latency_ms.to_numpy(),  # type: ignore[attr-defined]
            )
        )
        > 0.8
    )
    assert "['fbnet', 'nb201']" in out.getvalue()
