"""Commands and outputs shown in docs/*.md behave as the pages say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from latbench.cli import main
from latbench.datasets import load_reference

DOCS = Path(__file__).resolve().parents[1] / "docs"
NB201_ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)


def _console_output(page: str, command: str) -> list[str]:
    """The lines a ```console block of ``page`` shows after ``$ command``, up to the next prompt."""
    lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
    start = lines.index(f"$ {command}")
    out = []
    for line in lines[start + 1 :]:
        if line.startswith("$ ") or line.startswith("```"):
            break
        out.append(line)
    return out


def test_spaces_md_arch_show_lines_match_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    shown = _console_output("spaces.md", f"latbench arch show nb201 '{NB201_ARCH}'")
    assert shown[-1] == "..."
    assert main(["arch", "show", "nb201", NB201_ARCH]) == 0
    printed = capsys.readouterr().out.splitlines()
    # the page shows the first lines of the output verbatim, then "..."
    assert printed[: len(shown) - 1] == shown[:-1]


def test_spaces_md_node_name_exists_in_an_nb201_graph() -> None:
    from latbench.spaces import get_space

    nb = get_space("nb201")
    graph = nb.build(nb.from_index(1))
    assert graph.node_macs("s0c0_e10_conv") > 0


def _samples(tmp_path: Path) -> tuple[Path, Path]:
    ref = load_reference("nb201")
    rows = ref[ref.device == "help/samsung_s7"].sample(60, random_state=0)
    rows = rows[["space", "arch", "latency_ms"]]
    train, held_out = tmp_path / "train.csv", tmp_path / "held_out.csv"
    rows.iloc[:48].to_csv(train, index=False)
    rows.iloc[48:].to_csv(held_out, index=False)
    return train, held_out


def test_adaptation_md_held_out_comparison_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # docs/adaptation.md: keep some samples back and compare an adapted base on them
    train, held_out = _samples(tmp_path)
    base, adapted = tmp_path / "base.lbp", tmp_path / "adapted.lbp"
    devices = "help/silver_4114,help/samsung_a50,help/1080ti_1"
    fit = ["predictor", "fit", "--reference", "nb201", "--devices", devices]
    assert main([*fit, "--model", "meta", "--no-embed-prior", "-o", str(base)]) == 0
    adapt = ["adapt", str(base), "--samples", str(train)]
    assert main([*adapt, "--name", "my_phone", "-o", str(adapted)]) == 0
    capsys.readouterr()
    evaluate = ["predictor", "evaluate", str(adapted), "--data", str(held_out)]
    assert main([*evaluate, "--device", "my_phone"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"spearman\s+0\.\d+", out), out


def test_adaptation_md_adapted_name_defaults_to_the_samples_stem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # without --name the adapted device is "train", and evaluate refuses my_phone's rows
    train, held_out = _samples(tmp_path)
    base, adapted = tmp_path / "base.lbp", tmp_path / "adapted.lbp"
    fit = [
        "predictor",
        "fit",
        "--reference",
        "nb201",
        "--devices",
        "help/silver_4114,help/1080ti_1",
    ]
    assert main([*fit, "--model", "meta", "--no-embed-prior", "-o", str(base)]) == 0
    assert main(["adapt", str(base), "--samples", str(train), "-o", str(adapted)]) == 0
    capsys.readouterr()
    evaluate = ["predictor", "evaluate", str(adapted), "--data", str(held_out)]
    try:
        rc = main([*evaluate, "--device", "my_phone"])
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    assert rc != 0
    assert "fitted on train" in capsys.readouterr().err


def test_search_md_rank_columns_are_named_after_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = _console_output(
        "search.md",
        "latbench rank --predictor pixel3.lbp --predictor titanx.lbp --space nb201 --all --top 5",
    )
    header = shown[0].split()
    assert header == ["rank", "arch", "latency_ms[pixel3]", "latency_ms[titanx]"]
    paths = []
    for device, name in (("help/pixel3", "pixel3"), ("help/titanx_1", "titanx")):
        path = tmp_path / f"{name}.lbp"
        fit = ["predictor", "fit", "--reference", "nb201", "--device", device]
        assert main([*fit, "--model", "ridge", "-o", str(path)]) == 0
        paths += ["--predictor", str(path)]
    capsys.readouterr()
    assert main(["rank", *paths, "--space", "nb201", "--all", "--top", "5"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split() == header
    assert len(printed) == 6
    assert printed[1].split()[0] == "1"
