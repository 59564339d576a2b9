"""The torch emitter: eval-mode float32 module, picklable factory, cost model cross-check."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from latbench.spaces import FBNetSpace, NB201Space, get_space, make_input
from latbench.spaces.emit_torch import to_torch, torch_factory

NB201 = NB201Space()
FBNET = FBNetSpace()


def test_module_is_eval_float32_and_deterministic() -> None:
    g = NB201.build(NB201.from_index(11))
    m = to_torch(g, seed=5)
    assert not m.training
    assert all(p.dtype == torch.float32 for p in m.parameters())
    x = torch.from_numpy(make_input(g, 0)["input"])
    with torch.no_grad():
        y1, y2 = m(x), to_torch(g, seed=5)(x)
        y3 = to_torch(g, seed=6)(x)
    assert isinstance(y1, torch.Tensor) and y1.shape == (1, 10)
    assert torch.equal(y1, y2)
    assert not torch.equal(y1, y3)


def test_factory_is_picklable_and_rebuilds_the_same_module() -> None:
    g = NB201.build(NB201.from_index(12))
    factory = torch_factory(g, seed=3)
    clone = pickle.loads(pickle.dumps(factory))
    x = torch.from_numpy(make_input(g, 1)["input"])
    with torch.no_grad():
        assert torch.equal(clone()(x), to_torch(g, seed=3)(x))


@pytest.mark.parametrize(
    ("space", "arch", "res"),
    [
        ("nb201", NB201.from_index(100), None),
        ("fbnet", "1-5-8-0-2-3-4-6-7-1-5-8-0-2-3-4-6-7-1-5-8-0", 64),
    ],
)
def test_cost_model_matches_torch(space: str, arch: str, res: int | None) -> None:
    """Parameter count and conv/linear MACs agree with torch's own counters."""
    g = get_space(space).build(arch, resolution=res)
    m = to_torch(g)
    assert sum(p.numel() for p in m.parameters()) == g.params()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        m(torch.from_numpy(make_input(g, 0)["input"]))
    mac_ops = sum(g.node_macs(n) for n in g.nodes if n.op in ("conv", "linear"))
    assert counter.get_total_flops() == 2 * mac_ops


def test_node_names_with_dots_are_fine() -> None:
    from latbench.spaces import GraphBuilder

    b = GraphBuilder()
    x = b.input((1, 3, 4, 4))
    y = b.conv(x, 2, 3, name="features.0.conv")
    y = b.batchnorm(y, name="features.0.bn")
    m = to_torch(b.build([y]))
    assert len(list(m.parameters())) == 3
