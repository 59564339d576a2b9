"""Zero-cost proxies of accuracy, computed on the CPU at initialisation: synflow, NASWOT, ZiCo.

A zero-cost proxy scores an untrained network from one or two forward/backward passes; it ranks
architectures by expected accuracy well enough to steer a search for a few milliseconds per
candidate instead of a training run. Each function here takes a ``torch.nn.Module`` and input
tensors, so it works on any model; :class:`ProxyEvaluator` builds the network of a search-space
architecture (``latbench.spaces.emit_torch``), computes a proxy on a fixed input batch and caches
the result on disk keyed by (space, arch, proxy, input spec).

Proxies (higher is better for all of them):

``synflow`` (Tanaka et al., 2020; used as a NAS proxy by Abdelfattah et al., ICLR 2021)
    Replace every weight by its absolute value, feed an all-ones input in float64, back-propagate
    the sum of the output, and sum ``|theta * dR/dtheta|`` over all weights. Data-independent.
``naswot`` (Mellor et al., ICML 2021)
    Binary ReLU activation codes of a batch; the score is ``log|det K|`` with ``K_ij`` the number
    of units on which inputs ``i`` and ``j`` agree. ReLUs are captured by a
    :class:`torch.overrides.TorchFunctionMode`, so functional ``F.relu`` calls (as in the emitted
    graph modules) are seen as well as ``nn.ReLU`` modules.
``zico`` (Li et al., ICLR 2023)
    Gradients of the cross-entropy loss on several mini-batches; per layer
    ``log(sum_theta mean|g| / std(g))``, summed over layers with a non-zero gradient.

The batch is either real images (scikit-learn's ``digits``, 8x8 greyscale, resized bilinearly to
the requested resolution and replicated to 3 channels, normalised per channel) or seeded Gaussian
noise with random labels; ``InputSpec`` names it and is part of the cache key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from latbench.errors import ConfigError, UnknownNameError

log = logging.getLogger(__name__)

__all__ = [
    "PROXIES",
    "InputSpec",
    "ProxyCache",
    "ProxyEvaluator",
    "default_cache_path",
    "make_batch",
    "naswot",
    "synflow",
    "zico",
]

CACHE_VERSION = 1


# ---- inputs ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class InputSpec:
    """The input batch a proxy sees: ``data`` is ``"digits"`` (real images) or ``"random"``.

    ``resolution`` is the square image side; ``batch`` the number of images (ZiCo splits it into
    ``splits`` mini-batches); ``seed`` picks the images (digits) or draws the noise (random) and
    seeds the network weights.
    """

    data: str = "digits"
    resolution: int = 32
    batch: int = 16
    splits: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.data not in ("digits", "random"):
            raise ConfigError(f"proxy input data {self.data!r}; expected 'digits' or 'random'")
        if self.resolution < 8:
            raise ConfigError(f"proxy resolution {self.resolution}; expected >= 8")
        if self.batch < 2 or self.splits < 2 or self.batch % self.splits:
            raise ConfigError(
                f"proxy batch {self.batch} with {self.splits} splits; expected batch >= 2, "
                "splits >= 2 and batch divisible by splits"
            )

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def make_batch(spec: InputSpec, num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)``: a float32 NCHW batch at ``spec.resolution`` and integer labels."""
    rng = np.random.default_rng(spec.seed)
    if spec.data == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        idx = rng.choice(len(digits.target), size=spec.batch, replace=False)
        img = torch.from_numpy(digits.images[idx].astype(np.float32) / 16.0)[:, None]
        img = F.interpolate(
            img, size=(spec.resolution, spec.resolution), mode="bilinear", align_corners=False
        )
        x = img.repeat(1, 3, 1, 1)
        x = (x - x.mean()) / (x.std() + 1e-6)
        y = torch.from_numpy(digits.target[idx].astype(np.int64) % num_classes)
    else:
        x = torch.from_numpy(
            rng.standard_normal((spec.batch, 3, spec.resolution, spec.resolution)).astype(
                np.float32
            )
        )
        y = torch.from_numpy(rng.integers(0, num_classes, size=spec.batch).astype(np.int64))
    return x.contiguous(), y


# ---- the proxies -----------------------------------------------------------------------------
def _output(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


def synflow(model: nn.Module, x: torch.Tensor) -> float:
    """SynFlow: ``sum |theta * dR/dtheta|`` with ``R`` the output sum on an all-ones input.

    Computed on a float64 copy with absolute weights and BatchNorm in eval mode (its running
    statistics make it an affine map, as the linearised network of the paper requires), so the
    original model is left untouched.
    """
    import copy

    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in net.state_dict().values():
            if p.is_floating_point():
                p.abs_()
    params = [p for p in net.parameters() if p.requires_grad]
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64)
    net.zero_grad()
    torch.sum(_output(net(ones))).backward()
    total = 0.0
    for p in params:
        if p.grad is not None:
            total += float(torch.sum(torch.abs(p.detach() * p.grad)).item())
    if not math.isfinite(total):
        return float("inf")
    return total


_RELUS: set[Callable[..., Any]] = {F.relu, torch.relu, F.relu6}


class _ReluRecorder(TorchFunctionMode):
    """Records the binary code (``out > 0``) of every ReLU evaluated inside the mode."""

    def __init__(self) -> None:
        super().__init__()
        self.codes: list[torch.Tensor] = []

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        if func in _RELUS and isinstance(out, torch.Tensor):
            self.codes.append((out.detach() > 0).flatten(1))
        return out


@contextmanager
def record_relus() -> Iterator[_ReluRecorder]:
    """Capture the ReLU activation codes of the forward passes run inside the block."""
    rec = _ReluRecorder()
    with rec:
        yield rec


def naswot(model: nn.Module, x: torch.Tensor) -> float:
    """NASWOT: ``log|det K|`` of the Hamming-agreement kernel of the ReLU codes of ``x``."""
    was_training = model.training
    model.train()  # batch statistics, as in the paper (codes depend on the batch)
    try:
        with torch.no_grad(), record_relus() as rec:
            model(x)
    finally:
        model.train(was_training)
    n = x.shape[0]
    k = np.zeros((n, n), dtype=np.float64)
    for c in rec.codes:
        cf = c.to(torch.float64)
        k += (cf @ cf.T + (1 - cf) @ (1 - cf).T).numpy()
    if not rec.codes:
        return 0.0
    sign, logdet = np.linalg.slogdet(k)
    return float(logdet) if sign > 0 else float("-inf")


def zico(model: nn.Module, x: torch.Tensor, y: torch.Tensor, splits: int = 2) -> float:
    """ZiCo: ``sum_layers log(sum_theta mean|g| / std(g))`` over ``splits`` mini-batches.

    Layers are the conv and linear weights; a layer whose gradient is zero everywhere is skipped
    (it carries no information), as in the reference implementation.
    """
    was_training = model.training
    model.train()
    grads: dict[str, list[torch.Tensor]] = {}
    try:
        for xb, yb in zip(torch.chunk(x, splits), torch.chunk(y, splits), strict=True):
            model.zero_grad()
            logits = _output(model(xb))
            loss = F.cross_entropy(logits.reshape(len(xb), -1), yb)
            loss.backward()
            for name, mod in model.named_modules():
                if isinstance(mod, nn.Conv2d | nn.Linear) and mod.weight.grad is not None:
                    grads.setdefault(name, []).append(mod.weight.grad.detach().flatten().clone())
    finally:
        model.zero_grad()
        model.train(was_training)
    total = 0.0
    for gs in grads.values():
        g = torch.stack(gs).to(torch.float64)
        std = g.std(dim=0)
        mean_abs = g.abs().mean(dim=0)
        ok = std > 0
        if not bool(ok.any()):
            continue
        s = float(torch.sum(mean_abs[ok] / std[ok]).item())
        if s > 0:
            total += math.log(s)
    return total


ProxyFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, InputSpec], float]

#: name -> function(model, x, y, spec) of the torch-based proxies
PROXIES: dict[str, ProxyFn] = {
    "synflow": lambda m, x, y, s: synflow(m, x),
    "naswot": lambda m, x, y, s: naswot(m, x),
    "zico": lambda m, x, y, s: zico(m, x, y, s.splits),
}


# ---- on-disk cache ---------------------------------------------------------------------------
def default_cache_path() -> Path:
    """``$LATBENCH_CACHE_DIR/proxies.sqlite`` (default ``~/.cache/latbench``)."""
    base = os.environ.get("LATBENCH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "latbench"
    )
    return Path(base) / "proxies.sqlite"


class ProxyCache:
    """A SQLite table ``(space, arch, proxy, spec) -> value`` shared across runs and processes.

    ``path=None`` keeps the cache in memory only. The spec string holds the input spec and the
    cache version, so changing the batch, resolution or data never returns a stale score.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else Path(path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            ":memory:" if self.path is None else str(self.path), check_same_thread=False
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS proxy (space TEXT, arch TEXT, proxy TEXT, spec TEXT, "
            "value REAL, PRIMARY KEY (space, arch, proxy, spec))"
        )
        self._db.commit()

    @staticmethod
    def _spec(spec: InputSpec, extra: str = "") -> str:
        return f"v{CACHE_VERSION}:{spec.key()}:{extra}"

    def get_many(
        self, space: str, archs: Sequence[str], proxy: str, spec: InputSpec, extra: str = ""
    ) -> dict[str, float]:
        s = self._spec(spec, extra)
        out: dict[str, float] = {}
        with self._lock:
            for i in range(0, len(archs), 500):
                chunk = list(archs[i : i + 500])
                q = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT arch, value FROM proxy WHERE space=? AND proxy=? AND spec=? "
                    f"AND arch IN ({q})",
                    [space, proxy, s, *chunk],
                ).fetchall()
                out.update({a: float(v) if v is not None else float("nan") for a, v in rows})
        return out

    def put_many(
        self, space: str, values: dict[str, float], proxy: str, spec: InputSpec, extra: str = ""
    ) -> None:
        s = self._spec(spec, extra)
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO proxy VALUES (?, ?, ?, ?, ?)",
                [(space, a, proxy, s, None if math.isnan(v) else v) for a, v in values.items()],
            )
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()


class ProxyEvaluator:
    """Computes one torch-based proxy for architectures of a space, through the cache.

    ``build(arch)`` must return the :class:`latbench.spaces.Graph` to score (the search driver
    passes ``space.build(arch, resolution=spec.resolution)``); the network gets the weights of
    ``spec.seed`` (``latbench.spaces.graph.init_params``), so a score is reproducible.
    """

    def __init__(
        self,
        space: Any,
        proxy: str,
        spec: InputSpec | None = None,
        cache: ProxyCache | None = None,
        threads: int | None = 1,
    ) -> None:
        if proxy not in PROXIES:
            raise UnknownNameError(
                f"unknown zero-cost proxy {proxy!r}; expected one of: {', '.join(sorted(PROXIES))}"
            )
        self.space = space
        self.proxy = proxy
        self.spec = spec or InputSpec()
        self.cache = cache if cache is not None else ProxyCache(None)
        self.threads = threads
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self._extra = hashlib.sha256(
            json.dumps(getattr(space, "__dict__", {}), sort_keys=True, default=str).encode()
        ).hexdigest()[:12]

    def _inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._batch is None:
            self._batch = make_batch(self.spec, int(getattr(self.space, "num_classes", 10)))
        return self._batch

    def score_one(self, arch: str) -> float:
        """The proxy of one architecture, computed now (no cache)."""
        from latbench.spaces.emit_torch import to_torch

        graph = self.space.build(arch, batch=1, resolution=self.spec.resolution)
        torch.manual_seed(self.spec.seed)
        model = to_torch(graph, seed=self.spec.seed)
        x, y = self._inputs()
        old = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            return float(PROXIES[self.proxy](model, x, y, self.spec))
        finally:
            torch.set_num_threads(old)

    def __call__(self, archs: Sequence[str]) -> np.ndarray:
        """Scores of ``archs`` (cached ones read back, the rest computed and stored)."""
        name = self.space.name
        uniq = list(dict.fromkeys(archs))
        known = self.cache.get_many(name, uniq, self.proxy, self.spec, self._extra)
        todo = [a for a in uniq if a not in known]
        if todo:
            fresh = {a: self.score_one(a) for a in todo}
            self.cache.put_many(name, fresh, self.proxy, self.spec, self._extra)
            known.update(fresh)
        return np.array([known[a] for a in archs], dtype=np.float64)
