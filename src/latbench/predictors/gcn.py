"""BRP-NAS style graph convolutional latency predictor (Dudziak et al., NeurIPS 2020), in torch.

Input: an architecture graph, as :func:`latbench.predictors.encodings.cell_encoding` gives it:
the cell DAG for search spaces (NAS-Bench-201's 8-node cell: input, the six edge operations,
output; FBNet's chain of 22 blocks), the full graph for imported models (``space="graph"``).

Model::

    h0  = Linear(node_features)
    h_l = h_{l-1} + ReLU(LayerNorm(A_hat @ h_{l-1} @ W_l))       l = 1..layers
    g   = [mean_nodes(h_L), max_nodes(h_L)]                        graph embedding
    z   = MLP([g, device_embedding])                               standardised log latency

``A_hat`` is the row-normalised ``A + A^T + I`` (messages flow both ways, as in BRP-NAS). The
target is log-latency standardised per device (``(log y - mean_d) / std_d``), so one network
serves devices whose latencies differ by orders of magnitude; the device is an input through a
learned embedding, so the model trains on several devices at once (long-format ``devices``).
``rank_weight > 0`` adds BRP-NAS's pairwise ranking loss (logistic loss on the order of pairs of
the same device in a batch) to the squared error.

Training is deterministic for a given ``random_state`` (its own torch RNG state; the global one
is restored) and uses ``threads`` torch threads (the previous setting is restored afterwards).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from latbench._validate import expected_number
from latbench.errors import PredictorError
from latbench.predictors import encodings as enc
from latbench.predictors.base import DEFAULT_DEVICE, Predictor, register

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _torch_settings(threads: int | None, seed: int) -> Iterator[Any]:
    import torch

    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            yield torch
    finally:
        torch.set_num_threads(old)


def _build_net(n_feat: int, hidden: int, layers: int, n_devices: int, device_dim: int) -> Any:
    import torch
    from torch import nn

    class GCN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(n_feat, hidden)
            self.convs = nn.ModuleList(
                [nn.Linear(hidden, hidden, bias=False) for _ in range(layers)]
            )
            self.norms = nn.ModuleList([nn.LayerNorm(hidden) for _ in range(layers)])
            self.devices = nn.Embedding(max(n_devices, 1), device_dim)
            self.head = nn.Sequential(
                nn.Linear(2 * hidden + device_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1)
            )

        def graph_embedding(
            self, adj: torch.Tensor, x: torch.Tensor, mask: torch.Tensor
        ) -> torch.Tensor:
            h = self.embed(x)
            for conv, norm in zip(self.convs, self.norms, strict=True):
                h = h + torch.relu(norm(adj @ conv(h)))
            m = mask.unsqueeze(-1)
            mean = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            mx = h.masked_fill(m == 0, -1e4).max(1).values
            return torch.cat([mean, mx], dim=1)

        def forward(
            self, adj: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, dev: torch.Tensor
        ) -> torch.Tensor:
            g = self.graph_embedding(adj, x, mask)
            return self.head(torch.cat([g, dev], dim=1)).squeeze(-1)

    return GCN()


def _normalise(adj: np.ndarray, mask: np.ndarray) -> np.ndarray:
    a = (
        adj
        + np.transpose(adj, (0, 2, 1))
        + np.eye(adj.shape[1], dtype=np.float32)[None] * mask[:, :, None]
    )
    a = np.minimum(a, 1.0)
    deg = a.sum(axis=2, keepdims=True)
    return (a / np.maximum(deg, 1.0)).astype(np.float32)


#: training runs of at least this many optimiser steps show a progress bar on a terminal
#: (900 architectures x 100 epochs at batch 64 is 1,500 steps, about 10 s on one core)
PROGRESS_MIN_STEPS = 5000


def _progress_bar(steps: int, rows: int) -> Any:
    """A tqdm bar of the optimiser steps on stderr, shown on a terminal for a long fit only."""
    from tqdm import tqdm

    return tqdm(
        total=steps,
        desc=f"gcn: training on {rows:,} rows",
        unit="step",
        file=sys.stderr,
        disable=steps < PROGRESS_MIN_STEPS or not sys.stderr.isatty(),
        leave=False,
        dynamic_ncols=True,
    )


@register("gcn")
class GCNPredictor(Predictor):
    """Graph convolutional network on the architecture graph (see the module docstring)."""

    accepts_graphs = True
    multi_device = True
    weight_libraries = ("torch",)

    def __init__(
        self,
        hidden: int = 64,
        layers: int = 3,
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        rank_weight: float = 0.0,
        device_dim: int = 8,
        random_state: int = 0,
        threads: int | None = 1,
    ) -> None:
        self.hidden = hidden
        self.layers = layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.rank_weight = rank_weight
        self.device_dim = device_dim
        self.random_state = random_state
        self.threads = threads

    n_features_in_: int
    log_mean_: np.ndarray
    log_std_: np.ndarray
    net_: Any

    # ---- encoding ------------------------------------------------------------------------------
    def _encode(self, archs: list[Any], space: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        adj, x = enc.cell_encoding(space, archs)
        mask = (x.sum(axis=2) != 0).astype(np.float32)
        if hasattr(self, "n_features_in_") and x.shape[2] != self.n_features_in_:
            raise PredictorError(
                f"gcn: node features of width {x.shape[2]}; the model was fitted on "
                f"{self.n_features_in_}"
            )
        return _normalise(adj, mask), x, mask

    def _check_params(self) -> None:
        """Refuse settings no network trains with, naming the value (``epochs=0``, ``lr=-1``)."""
        for key, low, integer in (
            ("hidden", 1, True),
            ("layers", 1, True),
            ("epochs", 1, True),
            ("batch_size", 1, True),
            ("device_dim", 1, True),
            ("lr", 0.0, False),
            ("weight_decay", 0.0, False),
            ("rank_weight", 0.0, False),
        ):
            value = getattr(self, key)
            want = expected_number(value, integer=integer, low=low, positive=key == "lr")
            if want:
                raise PredictorError(f"gcn: {key}={value!r}; expected {want}")
        if self.threads is not None and not (isinstance(self.threads, int) and self.threads >= 0):
            raise PredictorError(f"gcn: threads={self.threads!r}; expected an integer >= 0 or None")

    # ---- training ------------------------------------------------------------------------------
    def _fit(
        self, archs: list[Any], y_ms: np.ndarray, devices: np.ndarray | None, space: str
    ) -> None:
        self._check_params()
        adj, x, mask = self._encode(archs, space)
        self.n_features_in_ = int(x.shape[2])
        names = [DEFAULT_DEVICE] if devices is None else sorted(set(devices.tolist()))
        dev_idx = (
            np.zeros(len(archs), dtype=np.int64)
            if devices is None
            else np.searchsorted(np.array(names, dtype=object), devices).astype(np.int64)
        )
        logy = np.log(y_ms)
        self.log_mean_ = np.array([logy[dev_idx == d].mean() for d in range(len(names))])
        self.log_std_ = np.array(
            [max(float(logy[dev_idx == d].std()), 1e-3) for d in range(len(names))]
        )
        z = (logy - self.log_mean_[dev_idx]) / self.log_std_[dev_idx]
        with _torch_settings(self.threads, self.random_state) as torch:
            net = _build_net(
                self.n_features_in_,
                int(self.hidden),
                int(self.layers),
                len(names),
                int(self.device_dim),
            )
            opt = torch.optim.AdamW(
                net.parameters(), lr=float(self.lr), weight_decay=float(self.weight_decay)
            )
            n = len(archs)
            bs = max(1, min(int(self.batch_size), n))
            steps = max(1, int(self.epochs)) * ((n + bs - 1) // bs)
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=float(self.lr), total_steps=steps
            )
            ta, tx, tm = torch.from_numpy(adj), torch.from_numpy(x), torch.from_numpy(mask)
            tz = torch.from_numpy(z.astype(np.float32))
            td = torch.from_numpy(dev_idx)
            gen = torch.Generator().manual_seed(int(self.random_state))
            net.train()
            bar = _progress_bar(steps, n)
            for _ in range(max(1, int(self.epochs))):
                perm = torch.randperm(n, generator=gen)
                for s in range(0, n, bs):
                    bar.update()
                    b = perm[s : s + bs]
                    pred = net(ta[b], tx[b], tm[b], net.devices(td[b]))
                    loss = torch.mean((pred - tz[b]) ** 2)
                    if self.rank_weight:
                        loss = loss + float(self.rank_weight) * self._rank_loss(
                            torch, pred, tz[b], td[b]
                        )
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    sched.step()
            bar.close()
            net.eval()
        self.net_ = net

    @staticmethod
    def _rank_loss(torch: Any, pred: Any, target: Any, dev: Any) -> Any:
        dz = target[:, None] - target[None, :]
        dp = pred[:, None] - pred[None, :]
        valid = (dev[:, None] == dev[None, :]) & (dz > 0)
        if not bool(valid.any()):
            return pred.sum() * 0.0
        return torch.nn.functional.softplus(-dp[valid]).mean()

    # ---- prediction ----------------------------------------------------------------------------
    def _forward(self, archs: list[Any], dev_vec: np.ndarray) -> np.ndarray:
        adj, x, mask = self._encode(archs, self.space_)
        with _torch_settings(self.threads, self.random_state) as torch, torch.no_grad():
            d = torch.from_numpy(np.asarray(dev_vec, dtype=np.float32)).reshape(1, -1)
            out = []
            for s in range(0, len(archs), 8192):
                sl = slice(s, s + 8192)
                dd = d.expand(adj[sl].shape[0], -1)
                out.append(
                    self.net_(
                        torch.from_numpy(adj[sl]),
                        torch.from_numpy(x[sl]),
                        torch.from_numpy(mask[sl]),
                        dd,
                    )
                    .numpy()
                    .astype(np.float64)
                )
        return np.concatenate(out)

    def _predict(self, archs: list[Any], device: str) -> tuple[np.ndarray, np.ndarray | None]:
        i = self.devices_.index(device)
        z = self._forward(archs, self.device_embedding(device))
        return np.exp(z * self.log_std_[i] + self.log_mean_[i]), None

    def device_embedding(self, device: str) -> np.ndarray:
        """The learned embedding vector of a training device."""
        self._check_fitted()
        d = self._resolve_device(device)
        i = self.devices_.index(d)
        w: np.ndarray = self.net_.devices.weight.detach().numpy()[i].astype(np.float64)
        return w

    def predict_for_descriptor(
        self,
        archs: Any,
        descriptor: np.ndarray,
        *,
        log_mean: float | None = None,
        log_std: float | None = None,
    ) -> np.ndarray:
        """Predict (ms) with any device embedding, e.g. a mix of known devices' embeddings.

        The network outputs a standardised log latency; ``log_mean`` / ``log_std`` (default:
        the averages over the training devices) turn it into milliseconds. For ranking, only the
        descriptor matters.
        """
        self._check_fitted()
        vec = np.asarray(descriptor, dtype=np.float64).reshape(-1)
        if vec.size != int(self.device_dim):
            raise PredictorError(f"gcn: descriptor of size {vec.size}; expected {self.device_dim}")
        arch_list = self._canonical_archs(archs, self.space_)
        z = self._forward(arch_list, vec)
        mu = float(np.mean(self.log_mean_)) if log_mean is None else float(log_mean)
        sd = float(np.mean(self.log_std_)) if log_std is None else float(log_std)
        return np.exp(z * sd + mu)

    # ---- persistence -----------------------------------------------------------------------------
    def _check_weights(self, arrays: dict[str, np.ndarray]) -> None:
        """The settings and the stored weights describe one network, before it is built:
        the network's size comes from the settings, so settings edited to a size the weights
        do not have (``hidden=10**9``, ``layers=10**6``) are refused, not allocated."""
        embed, devices = arrays.get("sd.embed.weight"), arrays.get("sd.devices.weight")
        if embed is None or devices is None or embed.ndim != 2 or devices.ndim != 2:
            raise PredictorError(
                "the weights sd.embed.weight and sd.devices.weight are missing or not matrices"
            )
        layers = len({k.split(".")[2] for k in arrays if k.startswith("sd.convs.")})
        stored = {
            "hidden": int(embed.shape[0]),
            "n_features_in": int(embed.shape[1]),
            "layers": layers,
            "device_dim": int(devices.shape[1]),
            "devices": int(devices.shape[0]),
        }
        given = {
            "hidden": self.hidden,
            "n_features_in": self.n_features_in_,
            "layers": self.layers,
            "device_dim": self.device_dim,
            "devices": max(len(self.devices_), 1),
        }
        for key, want in stored.items():
            if given[key] != want:
                raise PredictorError(
                    f"{key} = {given[key]!r}, but the stored weights are of a network "
                    f"with {key} = {want}"
                )
        for key in ("log_mean", "log_std"):
            a = arrays.get(key)
            if a is None or a.shape != (stored["devices"],) or not np.isfinite(a).all():
                raise PredictorError(
                    f"{key} of shape {None if a is None else a.shape}; expected "
                    f"{stored['devices']} finite numbers, one per device"
                )

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        sd = {f"sd.{k}": v.detach().numpy().copy() for k, v in self.net_.state_dict().items()}
        sd["log_mean"] = self.log_mean_
        sd["log_std"] = self.log_std_
        return {"n_features_in": self.n_features_in_}, sd

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        import torch

        self._check_params()
        self.n_features_in_ = int(meta["n_features_in"])
        self._check_weights(arrays)
        self.log_mean_ = arrays["log_mean"]
        self.log_std_ = arrays["log_std"]
        net = _build_net(
            self.n_features_in_,
            int(self.hidden),
            int(self.layers),
            len(self.devices_),
            int(self.device_dim),
        )
        state = {
            k[3:]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("sd.")
        }
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise PredictorError(
                f"gcn: weights do not match the saved configuration: {exc}"
            ) from None
        net.eval()
        self.net_ = net
