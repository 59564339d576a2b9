"""The ``latbench`` command: help, version, spaces/arch/export, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from latbench import __version__
from latbench.cli import main
from latbench.spaces import NB201Space, get_space

NB = NB201Space().from_index(1)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_help_and_version_through_the_real_entry_point() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "latbench.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0
    for cmd in ("spaces", "arch", "export"):
        assert cmd in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "latbench.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and r.stdout.strip() == f"latbench {__version__}"


def test_spaces_lists_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "spaces")
    assert rc == 0
    assert "nb201" in out and "15,625" in out and "fbnet" in out and "skip_connect" in out
    rc, out, _ = run(capsys, "spaces", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["nb201"]["size"] == 15_625 and rows["fbnet"]["positions"] == 22


def test_arch_show(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "arch", "show", "nb201", NB)
    assert rc == 0
    assert "nb201_index  1" in out and "MACs" in out and "params" in out
    rc, out, _ = run(capsys, "arch", "show", "nb201", NB, "--json", "--nodes")
    doc = json.loads(out)
    g = get_space("nb201").build(NB)
    assert doc["macs"] == g.macs() and doc["graph_id"] == g.graph_id()
    assert len(doc["node_list"]) == len(g.nodes)
    rc, out, _ = run(
        capsys, "arch", "show", "fbnet", "0-" * 21 + "8", "--resolution", "64", "--nodes"
    )
    assert rc == 0 and "1x3x64x64" in out and "head_conv" in out


def test_space_colon_arch_form(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``SPACE:ARCH``, the form ``latbench measure`` takes, works for arch show and export too."""
    _, two_args, _ = run(capsys, "arch", "show", "nb201", NB, "--json")
    rc, colon, _ = run(capsys, "arch", "show", f"nb201:{NB}", "--json")
    assert rc == 0 and json.loads(colon) == json.loads(two_args)
    path = tmp_path / "m.onnx"
    rc, _, _ = run(capsys, "export", f"nb201:{NB}", "-o", str(path))
    assert rc == 0 and path.stat().st_size > 0


def test_export_and_show_imported_onnx(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    rc, out, _ = run(
        capsys,
        "export",
        "nb201",
        NB,
        "--format",
        "onnx",
        "-o",
        str(path),
        "--seed",
        "3",
        "--batch",
        "2",
    )
    assert rc == 0 and path.is_file() and "wrote" in out
    onnx.checker.check_model(onnx.load(str(path)))
    rc, out, _ = run(capsys, "arch", "show", "--onnx", str(path), "--json", "--batch", "2")
    doc = json.loads(out)
    g = get_space("nb201").build(NB, batch=2)
    assert doc["macs"] == g.macs() and doc["graph_id"] == g.graph_id()
    # re-emit the imported model as TFLite, format from the suffix
    tfl = tmp_path / "m.tflite"
    rc, out, _ = run(capsys, "export", "--onnx", str(path), "-o", str(tfl))
    assert rc == 0 and tfl.read_bytes()[4:8] == b"TFL3"


def test_export_torch_program(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import torch

    path = tmp_path / "m.pt2"
    rc, _, _ = run(capsys, "export", "nb201", NB, "-f", "torch", "-o", str(path))
    assert rc == 0
    program = torch.export.load(str(path))
    y = program.module()(torch.zeros(1, 3, 32, 32))
    assert tuple(y.shape) == (1, 10) and bool(torch.isfinite(y).all())


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["arch", "show", "nb301", "x"], ["nb301", "nb201", "fbnet"]),
        (
            ["arch", "show", "nb201", "|nor_conv_3x4~0|+|none~0|none~1|+|none~0|none~1|none~2|"],
            ["nor_conv_3x4", "nor_conv_3x3"],
        ),
        (["arch", "show", "nb201", "|none~0|"], ["|op~0|+|op~0|op~1|+|op~0|op~1|op~2|"]),
        (["arch", "show", "fbnet", "1-2-3"], ["3 layer(s)", "22"]),
        (["export", "nb201", NB, "-o", "model.bin"], ["--format"]),
        # a suffix of another format would be written, then refused by `measure`
        (["export", "nb201", NB, "-f", "onnx", "-o", "m.tflite"], ["that of tflite", ".onnx"]),
        (["export", "nb201", NB, "-f", "torch", "-o", "m.pt"], ["TorchScript", "ending in .pt2"]),
        (["arch", "show"], ["SPACE ARCH", "SPACE:ARCH", "got neither"]),
        (["arch", "show", "nb201"], ["SPACE:ARCH", "got 'nb201'"]),
        (["arch", "show", "nb301:x"], ["unknown space 'nb301'", "nb201"]),
        (["arch", "sample", "nb201", "-n", "0"], ["-n 0; expected an integer >= 1"]),
        (["spaces", "nope"], ["no search space matches 'nope'", "fbnet, nb201"]),
    ],
)
def test_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], needles: list[str]
) -> None:
    rc, _, err = run(capsys, *argv)
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("latbench: error: ")
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0]


def test_unsupported_onnx_operator_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    graph = helper.make_graph(
        [helper.make_node("Elu", ["x"], ["y"], name="weird_act")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])],
    )
    path = tmp_path / "elu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    rc, _, err = run(capsys, "arch", "show", "--onnx", str(path))
    assert rc != 0 and "Elu" in err and "weird_act" in err and len(err.strip().splitlines()) == 1
    rc, _, err = run(capsys, "arch", "show", "--onnx", str(tmp_path / "none.onnx"))
    assert rc != 0 and "does not exist" in err


def test_verbose_flag_logs_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    cmd = [sys.executable, "-m", "latbench.cli", "arch", "show", "nb301", "x"]
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert plain.returncode == 2
    (line,) = plain.stderr.strip().splitlines()
    assert line.startswith("latbench: error: unknown") and "'nb301'" in line and "nb201" in line
    verbose = subprocess.run(
        [*cmd[:3], "-vv", *cmd[3:]], capture_output=True, text=True, timeout=60
    )
    assert verbose.returncode == 2
    assert "Traceback" in verbose.stderr  # logged at debug level only
    rc, out, _ = run(capsys, "-v", "spaces")
    assert rc == 0 and "nb201" in out


def test_warnings_read_like_errors_and_name_their_module_with_v(tmp_path: Path) -> None:
    """A warning of a plain run is ``latbench: warning: ...``, as an error is ``latbench:
    error: ...``; with -v every record names its level and module, for debugging."""
    from latbench import predictors
    from latbench.datasets.reference import load_reference

    d = load_reference("nb201")
    d = d[d.device == "help/pixel3"].iloc[:50]
    model = tmp_path / "p.lbp"
    predictors.save(
        predictors.create("ridge").fit(d.arch.tolist(), d.latency_ms.to_numpy(), space="nb201"),
        model,
    )
    archs = tmp_path / "a.txt"
    archs.write_text(f"{NB}\n{NB}\n")  # one architecture twice: ranked once, with a warning
    cmd = [sys.executable, "-m", "latbench.cli", "rank", "--predictor", str(model), "--archs"]
    plain = subprocess.run([*cmd, str(archs)], capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0, plain.stderr
    (line,) = plain.stderr.strip().splitlines()
    assert line.startswith("latbench: warning: 1 of the 2 architectures to rank repeat"), line
    verbose = subprocess.run(
        [*cmd[:3], "-v", *cmd[3:], str(archs)], capture_output=True, text=True, timeout=60
    )
    assert verbose.returncode == 0
    assert "WARNING latbench.nas.rank: 1 of the 2 architectures" in verbose.stderr


def test_arch_show_kernels_lists_what_a_kernel_predictor_sums(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from latbench.predictors.encodings import kernel_features

    kernels = kernel_features(get_space("nb201").build(NB))
    rc, out, _ = run(capsys, "arch", "show", "nb201", NB, "--kernels")
    assert rc == 0 and f"{len(kernels)} fused kernels (what the kernel predictor sums):" in out
    table = out.split("fused kernels")[1].splitlines()[2:]
    assert len(table) == len(kernels)
    first = table[0].split()
    assert first[:2] == ["0", kernels[0]["type"]] and first[-len(kernels[0]["nodes"]) :] == list(
        kernels[0]["nodes"]
    )
    rc, out, _ = run(capsys, "arch", "show", "nb201", NB, "--kernels", "--json")
    doc = json.loads(out)
    assert rc == 0 and [k["type"] for k in doc["kernels"]] == [k["type"] for k in kernels]
    assert doc["kernels"][0]["nodes"] == list(kernels[0]["nodes"])


def test_sample(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "arch", "sample", "nb201", "-n", "3", "--seed", "1")
    archs = out.split()
    assert rc == 0 and archs == get_space("nb201").sample(3, seed=1)
    assert all(a.startswith("|") for a in archs)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc (Linux)")
def test_an_os_error_while_writing_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A file that cannot be written (here: /proc takes no new files) names the file, and no
    traceback is printed."""
    rc, _, err = run(capsys, "export", f"nb201:{NB}", "-o", "/proc/latbench-test.onnx")
    assert rc == 1 and "Traceback" not in err
    assert err.startswith("latbench: error: ") and "'/proc/latbench-test.onnx'" in err
