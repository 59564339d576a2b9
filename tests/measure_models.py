"""Small real models for the measurement tests, built directly with onnx.helper."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def conv_net(path: Path, channels: int = 32, size: int = 56, layers: int = 2) -> Path:
    """A conv-relu stack with a static 1x3xSxS input (a few ms on one core)."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    prev, cin = "x", 3
    for i in range(layers):
        w = rng.standard_normal((channels, cin, 3, 3)).astype(np.float32) * 0.1
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        prev, cin = f"r{i}", channels
    nodes.append(helper.make_node("GlobalAveragePool", [prev], ["y"]))
    graph = helper.make_graph(
        nodes,
        "convnet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, 1, 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tiny_net(path: Path, dynamic_batch: bool = False) -> Path:
    """y = x + 1 on a [N, 4] tensor: microseconds per inference."""
    dims: list[int | str] = ["N" if dynamic_batch else 1, 4]
    one = numpy_helper.from_array(np.ones((1, 4), np.float32), "one")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
        [one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def local_fixture() -> Any:
    """A module-scoped ``local`` fixture: this machine's CPU as a LocalDevice, closed after."""
    import pytest

    from latbench.config import Config
    from latbench.devices import get_device
    from latbench.devices.local import LocalDevice

    @pytest.fixture(scope="module")
    def local() -> Iterator[LocalDevice]:
        dev = get_device("local", Config())
        assert isinstance(dev, LocalDevice)
        yield dev
        dev.close()

    return local
