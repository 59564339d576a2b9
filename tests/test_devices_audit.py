"""Bad input and faults at the device boundary: counts out of range, inputs no machine could
hold, empty tensors, model paths that are directories, and damaged replies from a board's agent.

The models are real ONNX files run by the real onnxruntime; the board is OpenSSH's sshd on
loopback with the real agent behind it (see ``tests/devices_servers.py``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from onnx import TensorProto, helper, save

from device_fixtures import sshd_fixture
from devices_servers import Sshd, tiny_onnx
from latbench.devices import agent
from latbench.devices.local import LocalDevice
from latbench.devices.remote import check_args, failure_kind
from latbench.devices.ssh import SSHDevice, _AgentChannel
from latbench.errors import ConfigError, ModelError
from latbench.profilers.harness import HarnessSettings
from latbench.profilers.runtimes import MAX_THREADS, get_runtime
from measure_models import tiny_net

FAST = HarnessSettings(
    warmup_runs=1, warmup_time_s=0.0, min_runs=3, min_time_s=0.02, max_time_s=0.2
)

sshd = sshd_fixture()


def _relu_net(path: Path, shape: list[int]) -> Path:
    """One Relu over an input of the static ``shape`` (sizes 0 included, which exporters emit)."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        path.stem,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("devaudit")
    out = {"tiny": tiny_net(d / "tiny.onnx"), "dyn": tiny_net(d / "dyn.onnx", dynamic_batch=True)}
    for name, shape in (("empty_dim", [1, 0]), ("empty_batch", [0, 4])):
        out[name] = _relu_net(d / f"{name}.onnx", shape)
    (d / "dir.onnx").mkdir()
    out["dir"] = d / "dir.onnx"
    return out


# ---- counts and sizes --------------------------------------------------------------------------
@pytest.mark.parametrize("threads", [10**6, 2**40])
def test_a_thread_count_no_cpu_has_is_refused_before_the_runtime_starts_it(
    models: dict[str, Path], threads: int
) -> None:
    """onnxruntime starts every intra-op thread at session creation: a million hung the worker
    until its timeout, and 2**40 was a pybind11 TypeError."""
    with pytest.raises(
        ConfigError, match=rf"threads = {threads}; expected an integer >= 1 and <= "
    ):
        get_runtime("onnxruntime").load(models["tiny"], threads=threads)
    assert MAX_THREADS >= 256


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"threads": "abc"}, r"threads = 'abc'; expected an integer >= 1 and <= \d+"),
        ({"threads": 2.5}, r"threads = 2\.5; expected an integer"),
        ({"threads": 5000}, r"threads = 5000; expected an integer >= 1 and <= \d+"),
        ({"batch": "x"}, r"batch = 'x'; expected an integer >= 1"),
        ({"batch": 1.5}, r"batch = 1\.5; expected an integer >= 1"),
    ],
)
def test_the_local_device_refuses_a_count_that_is_no_whole_number(
    models: dict[str, Path], kw: dict[str, Any], message: str
) -> None:
    """``int("abc")`` was a bare ValueError out of measure(), ``int(2.5)`` a silent 2."""
    dev = LocalDevice()
    try:
        with pytest.raises(ConfigError, match=message):
            dev.measure(models["tiny"], settings=FAST, **kw)
    finally:
        dev.close()


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"threads": "abc"}, r"threads = 'abc'; expected an integer >= 1 and <= \d+"),
        ({"threads": 2.5}, r"threads = 2\.5; expected an integer"),
        ({"batch": "x"}, r"batch = 'x'; expected an integer >= 1"),
    ],
)
def test_the_remote_devices_refuse_a_count_that_is_no_whole_number(
    models: dict[str, Path], kw: dict[str, Any], message: str
) -> None:
    """The check the ssh and adb devices make before they connect."""
    args = {"threads": 1, "batch": None, **kw}
    with pytest.raises(ConfigError, match=message):
        check_args("pi", models["tiny"], "onnxruntime", args["threads"], args["batch"])


def test_a_remote_device_names_a_directory_as_one(models: dict[str, Path]) -> None:
    with pytest.raises(ModelError, match=r"dir\.onnx' is a directory; expected a model file"):
        SSHDevice("pi", {"host": "127.0.0.1"}).measure(models["dir"], settings=FAST)


@pytest.mark.parametrize("batch", [10**12, 2**63])
def test_a_batch_no_machine_could_hold_is_a_model_error_naming_the_shape(
    models: dict[str, Path], batch: int
) -> None:
    """It was numpy's MemoryError ("Unable to allocate 29.1 TiB") or ValueError ("Maximum
    allowed dimension exceeded"), neither naming the input or the batch."""
    with pytest.raises(ModelError, match=rf"input 'x' of shape \[{batch}, 4\] \(float\) needs"):
        get_runtime("onnxruntime").load(models["dyn"], batch=batch)


def test_a_zero_size_dimension_is_not_called_dynamic(models: dict[str, Path]) -> None:
    with pytest.raises(ModelError, match=r"input 'x' has dimension 1 of size 0; expected a size"):
        get_runtime("onnxruntime").load(models["empty_dim"])


def test_a_zero_size_batch_is_named_not_replaced_by_one(models: dict[str, Path]) -> None:
    """A static batch of 0 was measured as batch 1, which onnxruntime then refused with
    "index: 0 Got: 1 Expected: 0"."""
    for batch in (None, 2):
        with pytest.raises(ModelError, match=r"input 'x' has a batch dimension \(0\) of size 0"):
            get_runtime("onnxruntime").load(models["empty_batch"], batch=batch)


# ---- the agent's wire format -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"f64le": agent.pack_floats([1.0, 2.0])["f64le"][:-4]}, r"hold 15 bytes; expected"),
        ({"f64le": "!!!not base64"}, r"hold '!!!not base64'; expected base64"),
        ({"f64le": 7}, r"hold '7'; expected base64"),
        ("abc", r"samples 'abc' \(str\); expected a list of numbers"),
        (3, r"samples '3' \(int\); expected a list"),
    ],
)
def test_damaged_packed_samples_are_a_value_error_naming_what_came(
    value: Any, message: str
) -> None:
    """A cut-short field was struct.error, text not base64 decoded to no samples, and a
    string became one sample per character."""
    with pytest.raises(ValueError, match=message):
        agent.unpack_floats(value)
    assert agent.unpack_floats(agent.pack_floats([1.5, 2.5])) == [1.5, 2.5]


def test_a_request_line_that_is_no_object_is_answered_and_the_agent_keeps_serving() -> None:
    """``[1]`` is valid JSON; ``req.get`` on it killed the agent with an AttributeError."""
    out = io.StringIO()
    rc = agent.serve(io.StringIO('[1]\n"ping"\n{"op": "ping"}\n'), out)
    replies = [json.loads(line) for line in out.getvalue().splitlines()[1:]]
    assert rc == 0 and len(replies) == 3
    assert replies[0] == {"ok": False, "error": "bad request line: '[1]'; expected a JSON object"}
    assert "expected a JSON object" in replies[1]["error"]
    assert replies[2]["ok"] is True


@pytest.mark.ssh
@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ("cut", "hold 4 bytes; expected base64 of a multiple of 8 bytes"),
        ("drop", "measurement = 'None'; expected an object"),
    ],
)
def test_a_damaged_reply_from_the_board_is_a_failed_record_and_the_next_one_measures(
    sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str, needle: str
) -> None:
    """The sshd, the board's agent and its reply are real; the reply is damaged as the host
    reads it (a healthy agent never sends one): its samples cut to half a float, or its record
    left out. Both came out of measure() as a traceback (struct.error, KeyError)."""
    model = tiny_onnx(tmp_path / "m.onnx")
    real = _AgentChannel.readline

    def damaged(self: _AgentChannel, timeout_s: float) -> dict[str, Any]:
        reply = real(self, timeout_s)
        if "measurement" in reply:
            if damage == "cut":
                reply["measurement"]["samples_ms"] = {"f64le": "AAAAAA=="}
            else:
                del reply["measurement"]
        return reply

    with SSHDevice("pi", sshd.device_config()) as dev:
        monkeypatch.setattr(_AgentChannel, "readline", damaged)
        bad = dev.measure(model, settings=FAST)
        monkeypatch.undo()
        good = dev.measure(model, settings=FAST)
    assert not bad.ok and failure_kind(bad) == "device"
    assert "pi: the board's agent sent an invalid measurement" in str(bad.error)
    assert needle in str(bad.error)
    assert good.ok and good.latency_ms > 0


def test_an_index_input_refused_by_value_is_named_with_the_generated_range(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A Gather into a 3-row table refuses the generated int64 ids (values up to 7): the error
    said only "rejects the input shapes", though the shape is right and the values are not,
    and onnxruntime printed its own coloured copy of the error on stderr besides."""
    import numpy as np
    from onnx import numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "idx"], ["y"])],
        "lookup",
        [helper.make_tensor_value_info("idx", TensorProto.INT64, [1, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 4])],
        [numpy_helper.from_array(np.ones((3, 4), np.float32), "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(tmp_path / "lookup.onnx"))
    with pytest.raises(
        ModelError, match=r"the integer inputs idx \(int64\) are generated in \[0, 8\)"
    ):
        get_runtime("onnxruntime").load(tmp_path / "lookup.onnx")
    assert "onnxruntime" not in capfd.readouterr().err  # said once, by the exception
