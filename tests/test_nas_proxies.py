"""Zero-cost proxies on real torch modules, the digits batch, and the on-disk cache."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from latbench.errors import ConfigError, UnknownNameError
from latbench.nas.proxies import (
    InputSpec,
    ProxyCache,
    ProxyEvaluator,
    make_batch,
    naswot,
    synflow,
    zico,
)
from latbench.spaces import get_space


class Tiny(nn.Module):
    """conv -> functional ReLU -> pool -> linear: small enough to check the proxies by hand."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.fc = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.conv(x)).mean(dim=(2, 3)))


def test_digits_batch_is_real_and_resized() -> None:
    x, y = make_batch(InputSpec(data="digits", resolution=16, batch=8, seed=1))
    assert x.shape == (8, 3, 16, 16) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and int(y.min()) >= 0 and int(y.max()) <= 9
    assert abs(float(x.mean())) < 1e-4  # normalised
    x2, _ = make_batch(InputSpec(data="digits", resolution=16, batch=8, seed=1))
    assert torch.equal(x, x2)
    xr, _ = make_batch(InputSpec(data="random", resolution=16, batch=8, seed=1))
    assert not torch.equal(x, xr)
    with pytest.raises(ConfigError, match="splits"):
        InputSpec(batch=5, splits=2)


def test_synflow_matches_the_definition_on_a_linear_model() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(4, 3, bias=False)
    before = lin.weight.detach().clone()
    # R = sum(|W| @ 1) -> dR/dW_ij = 1 -> score = sum |W|
    assert synflow(lin, torch.zeros(2, 4)) == pytest.approx(float(before.abs().sum()))
    assert torch.equal(lin.weight.detach(), before)  # the model itself is untouched


def test_naswot_sees_functional_relus_and_grows_with_width() -> None:
    x, _ = make_batch(InputSpec(data="digits", resolution=8, batch=8))
    narrow, wide = naswot(Tiny(2), x), naswot(Tiny(64), x)
    assert math.isfinite(wide) and wide > narrow
    assert naswot(nn.Linear(3 * 8 * 8, 2), x.flatten(1)) == 0.0  # no ReLU: nothing recorded


def test_zico_is_finite_and_restores_mode() -> None:
    x, y = make_batch(InputSpec(data="digits", resolution=8, batch=8))
    m = Tiny(8).eval()
    s = zico(m, x, y, splits=2)
    assert math.isfinite(s) and s != 0.0
    assert not m.training and m.conv.weight.grad is None


def test_evaluator_on_nb201_uses_the_cache(tmp_path: Path) -> None:
    space = get_space("nb201")
    spec = InputSpec(resolution=8, batch=4, splits=2)
    db = tmp_path / "proxies.sqlite"
    archs = space.sample(2, seed=0)
    ev = ProxyEvaluator(space, "naswot", spec, ProxyCache(db))
    first = ev(archs)
    assert first.shape == (2,) and all(math.isfinite(v) for v in first)
    calls: list[str] = []

    def record(arch: str) -> float:  # counts the proxy computations the cache did not spare
        calls.append(arch)
        return 0.0

    ev2 = ProxyEvaluator(space, "naswot", spec, ProxyCache(db))
    ev2.score_one = record  # type: ignore[method-assign]
    assert ev2(archs).tolist() == first.tolist() and calls == []
    # another input spec is another cache entry
    ev3 = ProxyEvaluator(space, "naswot", InputSpec(resolution=8, batch=4, seed=1), ProxyCache(db))
    ev3.score_one = record  # type: ignore[method-assign]
    ev3(archs[:1])
    assert calls == archs[:1]
    for proxy in ("synflow", "zico"):
        v = ProxyEvaluator(space, proxy, spec)(archs[:1])
        assert math.isfinite(float(v[0])) and float(v[0]) > 0
    with pytest.raises(UnknownNameError, match="zico"):
        ProxyEvaluator(space, "snip", spec)
