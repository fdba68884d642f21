"""Latency predictors for OFA MobileNetV3 subnets: learnt from table sums or measured latencies.

Every kind shares one interface (:class:`LatencyPredictor`): ``fit(archs, y)``, ``predict(archs)``
(ms, a NumPy array), ``save(path)`` / :func:`load_predictor`, and ``finetune(archs, y, mode)``
for the kinds that can adapt to a new device. Kinds (:data:`LATENCY_PREDICTORS`):

- ``mlp``: the latency seed's one-hot MLP, 120 + R inputs (per block a one-hot kernel and a one-hot
  expand ratio, all zero for blocks the depth switches off, then one slot per resolution of the
  model's list, stored in the model) -> 400 -> 400 -> 400 -> 1 with ReLU. Fine-tuning ``head`` is
  the seed's protocol (everything frozen, the last Linear replaced by a new Linear(400, 1), only
  it trained); ``full`` trains every layer at a lower learning rate.
- ``additive``: what a table sum is: an intercept plus one coefficient per (resolution, layer
  key) (``LayerKeys``), each shrunk toward a linear model of the layer's MACs and element-wise
  work (ridge, penalty by cross-validation). Exact on table-sum labels once every key is seen.
- ``gbdt``: scikit-learn's ``HistGradientBoostingRegressor`` on structural features (per-stage
  depth, kernel and expand sums, MACs, params, activations, resolution); ``stack=true`` boosts the
  residual of an ``additive`` model instead.
- ``calibrated_lut``: ``a * table_sum + b`` fitted on a few measured networks (``b = 0`` with one).
- ``generalised``: the ``mlp`` input concatenated with a vector describing the device (HELP-style:
  log latencies of fixed reference architectures measured on it, or given scalar features).

Files are ``torch.save`` dicts of plain values and tensors, read with ``weights_only=True``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from hardware.latency_data import Arch, arch_key, canonical_arch, split_unique
from hardware.metrics import latency_metrics
from nas.components import Component
from nas.config import option
from nas.errors import UserError
from nas.io import load_checkpoint, save_checkpoint
from nas.registry import Registry
from NasSearchSpace.ofa_mbv3_layout import E_OPTIONS, KS_OPTIONS, MAX_DEPTH, N_BLOCKS, N_STAGES, is_active

FORMAT = "latency-predictor"
VERSION = 1
ROOT = Path(__file__).resolve().parents[1]
NOTE10_DIR = ROOT / "data" / "ofa"

LATENCY_PREDICTORS: Registry[type[LatencyPredictor]] = Registry("latency predictor kind")


class LatencyPredictor(Component):
    """Predicts the latency (ms) of OFA MobileNetV3 subnets of one width.

    ``width_mult`` is the training archs' width (archs without ``w`` are read as that width;
    archs of another width are refused). ``train_keys`` are the :func:`arch_key` of the networks
    it was trained on (so an evaluation can leave them out).
    """

    finetune_modes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self.width_mult: float | None = None
        self.train_keys: list[str] = []
        self.info: dict[str, Any] = {}  # how it was trained (epochs, ...), saved with it

    # ---- the interface -------------------------------------------------------------------------

    def fit(self, archs: Sequence[Any], y: Sequence[float] | np.ndarray) -> LatencyPredictor:
        archs, y = self._training_data(archs, y, refit=True)
        self._fit(archs, y)
        self.train_keys = [arch_key(a) for a in archs]
        return self

    def predict(self, archs: Sequence[Any]) -> np.ndarray:
        if self.width_mult is None:
            raise UserError(f"the {self.name} latency predictor is not trained; fit or load one first")
        archs = [self.prepare_arch(a) for a in archs]
        if not archs:
            return np.zeros(0)
        return np.asarray(self._predict(archs), float).reshape(-1)

    def predict_one(self, arch: Any) -> float:
        return float(self.predict([arch])[0])

    def finetune(
        self,
        archs: Sequence[Any],
        y: Sequence[float] | np.ndarray,
        mode: str = "head",
        seed: int | None = None,
    ) -> LatencyPredictor:
        """Adapt a trained predictor to ``archs``/``y`` (a new device); ``mode`` in
        :attr:`finetune_modes`. The archs may have another width than the source's."""
        if not self.finetune_modes:
            raise UserError(
                f"a {self.name} latency predictor cannot be fine-tuned; train one on the target data instead"
            )
        if mode not in self.finetune_modes:
            raise UserError(f"fine-tuning mode {mode!r} is not one of {', '.join(self.finetune_modes)}")
        if self.width_mult is None:
            raise UserError(f"fine-tuning needs a trained {self.name} latency predictor (give --init MODEL)")
        archs, y = self._training_data(archs, y, refit=False)
        self._finetune(archs, y, mode, self.options.seed if seed is None else seed)
        self.train_keys = sorted(set(self.train_keys) | {arch_key(a) for a in archs})
        return self

    def evaluate(self, archs: Sequence[Any], y: Sequence[float] | np.ndarray) -> dict[str, Any]:
        return latency_metrics(y, self.predict(archs))

    def copy(self) -> LatencyPredictor:
        return copy.deepcopy(self)

    def save(self, path: str | os.PathLike) -> None:
        save_checkpoint(
            path,
            {
                "format": FORMAT,
                "version": VERSION,
                "kind": self.name,
                "options": dataclasses.asdict(self.options),
                "width_mult": self.width_mult,
                "train_keys": list(self.train_keys),
                "info": dict(self.info),
                "state": self.state(),
            },
        )

    # ---- what a kind defines -------------------------------------------------------------------

    def _fit(self, archs: list[Arch], y: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, archs: list[Arch]) -> np.ndarray:
        raise NotImplementedError

    def _finetune(self, archs: list[Arch], y: np.ndarray, mode: str, seed: int) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """Plain values and tensors that :meth:`load_state` restores."""
        raise NotImplementedError

    def load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # ---- helpers -------------------------------------------------------------------------------

    def prepare_arch(self, arch: Any) -> Arch:
        """``arch`` validated and canonical, of the predictor's width (filled in when missing)."""
        a = canonical_arch(arch, self.width_mult)
        if self.width_mult is not None and a["w"] != self.width_mult:
            raise UserError(
                f"subnet width w = {a['w']} differs from the latency predictor's width {self.width_mult} "
                "(fine-tune it on networks of that width)"
            )
        return a

    def _training_data(self, archs: Sequence[Any], y: Any, refit: bool) -> tuple[list[Arch], np.ndarray]:
        y = np.asarray(y, float).reshape(-1)
        if len(archs) != len(y):
            raise UserError(f"{len(archs)} architectures but {len(y)} latencies")
        if len(y) == 0:
            raise UserError("no training samples")
        if not np.all(np.isfinite(y)) or np.any(y <= 0):
            raise UserError("training latencies must be positive finite numbers (ms)")
        out = [canonical_arch(a, None if refit else self.width_mult) for a in archs]
        widths = sorted({a["w"] for a in out})
        if len(widths) > 1:
            raise UserError(f"the training networks mix widths {widths}; train one predictor per width")
        self.width_mult = widths[0]
        return out, y


def make_predictor(kind: str, **options: Any) -> LatencyPredictor:
    """A new, untrained predictor of ``kind`` with ``options`` (one-line errors for unknown names)."""
    return LATENCY_PREDICTORS.get(kind)(**options)


def load_predictor(path: str | os.PathLike) -> LatencyPredictor:
    """A predictor written by :meth:`LatencyPredictor.save`."""
    ckpt = load_checkpoint(path, "latency predictor")
    if ckpt.get("format") != FORMAT or "kind" not in ckpt:
        raise UserError(
            f"{str(path)!r} is not a latency predictor file (write one with tools/latency_predictor.py train)"
        )
    if int(ckpt.get("version", 0)) > VERSION:
        raise UserError(
            f"latency predictor {str(path)!r} has format version {ckpt['version']}, newer than this "
            f"toolkit's {VERSION}; update the toolkit"
        )
    kind = ckpt["kind"]
    if kind not in LATENCY_PREDICTORS:
        raise UserError(f"latency predictor {str(path)!r} is of unknown kind {kind!r}")
    model = LATENCY_PREDICTORS.get(kind)(ckpt["options"])
    model.width_mult = ckpt["width_mult"]
    model.train_keys = list(ckpt.get("train_keys", []))
    model.info = dict(ckpt.get("info", {}))
    try:
        model.load_state(ckpt["state"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise UserError(f"latency predictor {str(path)!r} is damaged ({type(e).__name__}: {e})") from None
    return model


def with_options(model: LatencyPredictor, **overrides: Any) -> LatencyPredictor:
    """``model`` with some options replaced (e.g. fine-tuning settings of a loaded model)."""
    from nas.components import make_options

    model.options = make_options(type(model).Options, model.options, overrides, model.name)
    return model


# ---- the one-hot encoding and the MLP --------------------------------------------------------------


class OneHotEncoding:
    """The seed's encoding with one resolution slot per resolution of ``resolutions``.

    ``60`` kernel one-hots (3 per block), ``60`` expand one-hots (3 per block), all zero for
    blocks the depth switches off, then ``len(resolutions)`` resolution one-hots. The seed's
    ``(r - 112) // 16`` bins put four resolutions of a step-4 space in one slot; here every
    resolution has its own.
    """

    def __init__(self, resolutions: Sequence[int]) -> None:
        self.resolutions = tuple(sorted({int(r) for r in resolutions}))
        if not self.resolutions:
            raise UserError("the one-hot encoding needs at least one resolution")
        self._slot = {r: i for i, r in enumerate(self.resolutions)}

    @property
    def dim(self) -> int:
        return 2 * N_BLOCKS * 3 + len(self.resolutions)

    def encode(self, archs: Sequence[Arch]) -> np.ndarray:
        x = np.zeros((len(archs), self.dim), np.float32)
        nk, ne = len(KS_OPTIONS), len(E_OPTIONS)
        for i, a in enumerate(archs):
            for j in range(N_BLOCKS):
                if is_active(a["d"], j):
                    x[i, j * nk + KS_OPTIONS.index(a["ks"][j])] = 1
                    x[i, N_BLOCKS * nk + j * ne + E_OPTIONS.index(a["e"][j])] = 1
            slot = self._slot.get(a["r"])
            if slot is None:
                raise UserError(
                    f"resolution {a['r']} has no slot in the predictor's one-hot encoding "
                    f"{list(self.resolutions)}; train or fine-tune it on networks of that resolution"
                )
            x[i, 2 * N_BLOCKS * 3 + slot] = 1
        return x


def make_mlp(n_in: int, hidden: int, layers: int) -> torch.nn.Sequential:
    mods: list[torch.nn.Module] = []
    width = n_in
    for _ in range(layers):
        mods += [torch.nn.Linear(width, hidden), torch.nn.ReLU()]
        width = hidden
    mods.append(torch.nn.Linear(width, 1))
    return torch.nn.Sequential(*mods)


def train_net(
    net: torch.nn.Module,
    params: Sequence[torch.nn.Parameter],
    x: torch.Tensor,
    t: torch.Tensor,
    val: tuple[torch.Tensor, torch.Tensor] | None,
    *,
    optimizer: str,
    lr: float,
    momentum: float,
    weight_decay: float,
    batch_size: int,
    epochs: int,
    patience: int,
    loss: str,
    generator: torch.Generator,
    schedule: str = "cosine",
) -> dict[str, Any]:
    """Minibatch training of ``params`` of ``net`` on ``(x, t)``; with ``val`` and ``patience`` > 0,
    early stopping on the validation MSE (the best epoch's weights are kept). ``schedule``:
    ``cosine`` (from ``lr`` to 0 over ``epochs``) or ``constant``."""
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        raise UserError(f"optimizer {optimizer!r} is not one of adam, sgd")
    if loss not in ("mse", "rmse"):
        raise UserError(f"loss {loss!r} is not one of mse, rmse")
    if schedule not in ("cosine", "constant"):
        raise UserError(f"learning-rate schedule {schedule!r} is not one of cosine, constant")
    sched = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
        if schedule == "cosine"
        else None
    )
    n = len(x)
    bs = n if batch_size <= 0 else min(batch_size, n)
    best, best_state, bad, done = math.inf, None, 0, 0
    for epoch in range(1, epochs + 1):
        done = epoch
        net.train()
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            err = torch.nn.functional.mse_loss(net(x[idx]).squeeze(1), t[idx])
            if loss == "rmse":
                err = torch.sqrt(err + 1e-6)
            opt.zero_grad(set_to_none=True)
            err.backward()
            opt.step()
        if sched is not None:
            sched.step()
        if val is not None and patience > 0:
            net.eval()
            with torch.no_grad():
                v = float(torch.nn.functional.mse_loss(net(val[0]).squeeze(1), val[1]))
            if v < best:
                best, bad = v, 0
                best_state = {k: p.detach().clone() for k, p in net.state_dict().items()}
            else:
                bad += 1
                if bad >= patience:
                    break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return {"epochs": done, "best_val_mse": None if best_state is None else best}


@LATENCY_PREDICTORS.register("mlp")
class MLPPredictor(LatencyPredictor):
    """The seed's one-hot MLP (120 + R inputs, 3 hidden layers of 400, ReLU), trained with our
    protocol: Adam, target divided by the training mean, minibatches of 256, cosine learning rate,
    early stopping on ``val_fraction`` of the training networks (never the test set).

    The seed's own recipe is ``optimizer=sgd lr=0.01 momentum=0.6 weight_decay=1e-4 batch_size=32
    epochs=50 loss=rmse target_scale=none patience=0 schedule=constant``; its head fine-tuning
    ``finetune_optimizer=sgd finetune_lr=0.1 finetune_weight_decay=1e-3 finetune_epochs=100``
    (the seed also drops the ReLU before the head; here the network keeps its shape).
    """

    name = "mlp"

    finetune_modes = ("head", "full")

    @dataclass
    class Options:
        hidden: int = option(400, "units per hidden layer")
        layers: int = option(3, "hidden layers")
        resolutions: list[int] | None = option(
            None, "resolutions of the one-hot (one slot each; default: those of the training data)"
        )
        optimizer: str = option("adam", "adam or sgd", choices=("adam", "sgd"))
        lr: float = option(1e-3, "learning rate")
        schedule: str = option(
            "cosine",
            "learning rate: cosine (to 0 over the epochs) or constant",
            choices=("cosine", "constant"),
        )
        momentum: float = option(0.9, "SGD momentum")
        weight_decay: float = option(1e-3, "weight decay (L2, added to the gradient)")
        batch_size: int = option(256, "minibatch size (0: full batch)")
        epochs: int = option(1000, "most epochs")
        patience: int = option(100, "epochs without a better validation MSE before stopping (0: never stop)")
        val_fraction: float = option(0.1, "share of the training networks held out for early stopping")
        loss: str = option("mse", "mse, or rmse (the seed's sqrt(MSE + 1e-6))", choices=("mse", "rmse"))
        target_scale: str = option(
            "mean", "divide targets by the training mean, or none", choices=("mean", "none")
        )
        seed: int = option(0, "seed of initialisation, shuffling and the validation split")
        finetune_optimizer: str = option(
            "adam", "fine-tuning optimizer: adam or sgd", choices=("adam", "sgd")
        )
        finetune_lr: float = option(1e-2, "fine-tuning learning rate, head mode")
        finetune_full_lr: float = option(1e-4, "fine-tuning learning rate, full mode (every layer)")
        finetune_epochs: int = option(300, "fine-tuning epochs (full batch; no early stopping)")
        finetune_weight_decay: float = option(0.0, "fine-tuning weight decay")

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self.encoding: OneHotEncoding | None = None
        self.net: torch.nn.Sequential | None = None
        self.scale = 1.0

    # ---- inputs ------------------------------------------------------------------------------

    def _inputs(self, archs: list[Arch], extra: np.ndarray | None = None) -> torch.Tensor:
        assert self.encoding is not None
        return torch.from_numpy(self.encoding.encode(archs))

    def _n_inputs(self) -> int:
        assert self.encoding is not None
        return self.encoding.dim

    # ---- training ----------------------------------------------------------------------------

    def _build(self, archs: list[Arch]) -> None:
        o = self.options
        self.encoding = OneHotEncoding(o.resolutions or sorted({a["r"] for a in archs}))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(o.seed)
            self.net = make_mlp(self._n_inputs(), o.hidden, o.layers)

    def _fit(self, archs: list[Arch], y: np.ndarray, extra: np.ndarray | None = None) -> None:
        o = self.options
        self._build(archs)
        assert self.net is not None
        self.scale = float(np.mean(y)) if o.target_scale == "mean" else 1.0
        x = self._inputs(archs, extra)
        t = torch.as_tensor(y / self.scale, dtype=torch.float32)
        n_val = int(round(o.val_fraction * len(archs))) if o.patience > 0 else 0
        val = None
        if n_val >= 5 and len(archs) - n_val >= 5:
            order = np.random.default_rng(o.seed).permutation(len(archs))
            vi, ti = torch.as_tensor(order[:n_val]), torch.as_tensor(order[n_val:])
            val, x, t = (x[vi], t[vi]), x[ti], t[ti]
        gen = torch.Generator().manual_seed(o.seed)
        self.info = train_net(
            self.net, list(self.net.parameters()), x, t, val,
            optimizer=o.optimizer, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay,
            batch_size=o.batch_size, epochs=o.epochs, patience=o.patience if val is not None else 0,
            loss=o.loss, generator=gen, schedule=o.schedule,
        )  # fmt: skip
        self.info["n_train"] = len(t)
        self.info["n_val"] = 0 if val is None else len(val[1])

    def _predict(self, archs: list[Arch], extra: np.ndarray | None = None) -> np.ndarray:
        assert self.net is not None
        self.net.eval()
        with torch.no_grad():
            return self.net(self._inputs(archs, extra)).squeeze(1).double().numpy() * self.scale

    def _finetune(
        self, archs: list[Arch], y: np.ndarray, mode: str, seed: int, extra: np.ndarray | None = None
    ) -> None:
        """``head``: freeze everything, put a new Linear(hidden, 1) in place of the last layer and
        train it alone (the seed's protocol); ``full``: train every layer at ``finetune_full_lr``.
        Both re-scale the target by the target mean first, so ``full`` starts from the source
        model's predictions scaled to the target's mean; full batch, ``finetune_epochs``."""
        o = self.options
        assert self.net is not None
        if o.target_scale == "mean":
            self.scale = float(np.mean(y))
        gen = torch.Generator().manual_seed(seed)
        if mode == "head":
            for p in self.net.parameters():
                p.requires_grad_(False)
            last = len(self.net) - 1
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.net[last] = torch.nn.Linear(self.net[last].in_features, 1)
            params = list(self.net[last].parameters())
            lr = o.finetune_lr
        else:
            params = list(self.net.parameters())
            lr = o.finetune_full_lr
        for p in params:
            p.requires_grad_(True)
        x = self._inputs(archs, extra)
        t = torch.as_tensor(y / self.scale, dtype=torch.float32)
        info = train_net(
            self.net, params, x, t, None,
            optimizer=o.finetune_optimizer, lr=lr, momentum=0.9, weight_decay=o.finetune_weight_decay,
            batch_size=0, epochs=o.finetune_epochs, patience=0, loss="mse", generator=gen,
        )  # fmt: skip
        for p in self.net.parameters():
            p.requires_grad_(True)
        self.info = {**self.info, "finetune": {"mode": mode, "n": len(archs), **info}}

    # ---- state -------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        assert self.net is not None and self.encoding is not None
        return {
            "resolutions": list(self.encoding.resolutions),
            "scale": self.scale,
            "n_inputs": self._n_inputs(),
            "net": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        o = self.options
        self.encoding = OneHotEncoding(state["resolutions"])
        self.scale = float(state["scale"])
        self.net = make_mlp(int(state["n_inputs"]), o.hidden, o.layers)
        self.net.load_state_dict(state["net"])
        self.net.eval()


# ---- the additive (table-structure) model ----------------------------------------------------------

_KEY = re.compile(
    r"^(?P<type>[A-Za-z_0-9]+?)-input:(?P<hi>\d+)x(?P<wi>\d+)x(?P<ci>\d+)-output:(?:(?P<ho>\d+)x(?P<wo>\d+)x)?(?P<co>\d+)"
    r"(?:-expand:(?P<m>\d+)-kernel:(?P<k>\d+)-stride:(?P<s>\d+)-idskip:(?P<id>\d)-se:(?P<se>\d)-hs:(?P<hs>\d))?$"
)
FIXED_TYPES = ("Conv", "Conv_1", "AvgPool2D", "Conv_2", "Logits")
DESCRIPTOR_NAMES = (
    *(f"is_{t}" for t in FIXED_TYPES),
    "is_block",
    "fixed_macs",
    "pw_expand_macs",
    "dw3_macs",
    "dw5_macs",
    "dw7_macs",
    "pw_project_macs",
    "elementwise",
    "hswish_elementwise",
    "se_elementwise",
    "residual_elementwise",
    "is_stride2",
    "stride2_elementwise",
    "input_elementwise",
    "se_fc_macs",
)


def layer_descriptors(key: str) -> np.ndarray:
    """What a layer key says about its cost, for the additive model's prior: a one-hot of the
    layer type, then millions of MACs of each part (the fixed layers' in one figure; for a block
    its 1x1 expansion, its depthwise conv by kernel size and its 1x1 projection) and millions of
    elements the block's element-wise operations touch (all, under h-swish, under SE, residual,
    after a stride of 2, its input), a stride-2 flag and the MACs of the SE's two small layers."""
    m = _KEY.match(key.rpartition("|")[2])
    if m is None:
        raise UserError(f"{key!r} is not an OFA latency-table layer key")
    g = {k: int(v) for k, v in m.groupdict().items() if v is not None and k != "type"}
    kind = m["type"]
    out = np.zeros(len(DESCRIPTOR_NAMES))
    a_in = g["hi"] * g["wi"]
    a_out = g.get("ho", 1) * g.get("wo", 1)
    if kind in FIXED_TYPES:
        out[FIXED_TYPES.index(kind)] = 1
        macs = {"Conv": a_out * 9 * g["ci"] * g["co"], "AvgPool2D": a_in * g["ci"]}.get(
            kind, a_in * g["ci"] * g["co"]
        )
        out[6] = macs / 1e6
        return out
    if kind != "expanded_conv" or "k" not in g:
        raise UserError(f"{key!r} is not an OFA latency-table layer key")
    mid, k = g["m"], g["k"]
    out[5] = 1
    out[7] = (a_in * g["ci"] * mid if mid != g["ci"] else 0) / 1e6  # OFA's first block has no expansion
    out[8 + (3, 5, 7).index(k) if k in (3, 5, 7) else 9] = a_out * mid * k * k / 1e6
    out[11] = a_out * mid * g["co"] / 1e6
    elementwise = (a_in + a_out) * mid / 1e6
    out[12] = elementwise
    out[13] = g["hs"] * elementwise
    out[14] = g["se"] * a_out * mid / 1e6
    out[15] = g["id"] * a_out * g["co"] / 1e6
    out[16] = float(g["s"] == 2)
    out[17] = out[16] * a_out * mid / 1e6
    out[18] = a_in * g["ci"] / 1e6
    out[19] = g["se"] * 2 * mid * round(mid / 4) / 1e6
    return out


@LATENCY_PREDICTORS.register("additive")
class AdditivePredictor(LatencyPredictor):
    """Latency = intercept + sum over the network's layers of one coefficient per layer key (the
    OFA table keys of :class:`LayerKeys`: shape, kernel, expand ratio, stride, SE, activation), a
    table sum with learnt entries. Exact on table-sum labels once every key has been seen.

    Each key's coefficient is ``descriptors(key) @ theta + delta[key]``: a linear model of the
    layer's MACs and element-wise work (:func:`layer_descriptors`, 20 values shared by every
    key, not penalised) plus a per-key deviation with a ridge penalty ``alpha``. With few
    networks the shared part carries the fit; with many, the deviations make it exact. ``alpha``
    ``auto`` picks it from a grid by 5-fold cross-validation. A key never seen in training gets
    the shared part alone (``unseen=prior``, at the resolutions trained on; ``unseen=prior_all``
    also at others, whose every key is then priced by the shared part, a few % off) or a one-line
    error (``unseen=error``, and ``prior`` at a resolution the model was not trained on).
    ``prior=false`` leaves the shared part out (a plain ridge over keys).

    ``per_resolution`` (default): a key has a coefficient per resolution, as the tables do (OFA
    measured each resolution's table separately, so the same layer shape, e.g. ``Logits``, has
    different means at different resolutions; shared keys leave an error of about 0.002 ms on
    the Note10 tables). ``per_resolution=false`` shares a key across the resolutions whose
    shapes coincide, which halves the coefficients of a step-4 space on a measured device.
    """

    name = "additive"

    @dataclass
    class Options:
        alpha: str | float = option("auto", "ridge penalty on the per-key deviations, or auto (5-fold CV)")
        prior: bool = option(True, "shrink per-key coefficients toward a linear model of their MACs")
        per_resolution: bool = option(
            True,
            "one coefficient per (resolution, key), as the tables have; false: shared across resolutions",
        )
        unseen: str = option(
            "prior",
            "layer keys never seen in training: prior (shared part; trained resolutions only), "
            "prior_all (any resolution) or error",
            choices=("prior", "prior_all", "error"),
        )
        seed: int = option(0, "seed of the cross-validation folds")

    ALPHAS = (1e-8, 1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self.coef: dict[str, float] = {}
        self.theta = np.zeros(len(DESCRIPTOR_NAMES))
        self.intercept = 0.0
        self.resolutions: list[int] = []
        self._layer_keys: Any = None

    def _keys(self, arch: Arch) -> list[str]:
        """The layer keys of ``arch``, prefixed ``<r>|`` with ``per_resolution``."""
        from NasSearchSpace.ofa_mbv3_latency import LayerKeys

        assert self.width_mult is not None
        if self._layer_keys is None or self._layer_keys.width_mult != self.width_mult:
            self._layer_keys = LayerKeys(self.width_mult)
        keys = self._layer_keys.keys(arch)
        return [f"{arch['r']}|{k}" for k in keys] if self.options.per_resolution else keys

    def _fit(self, archs: list[Arch], y: np.ndarray) -> None:
        o = self.options
        rows = [self._keys(a) for a in archs]
        vocab = sorted({k for r in rows for k in r})
        col = {k: i for i, k in enumerate(vocab)}
        counts = np.zeros((len(archs), len(vocab)))
        for i, r in enumerate(rows):
            for k in r:
                counts[i, col[k]] += 1
        phi = np.stack([layer_descriptors(k) for k in vocab]) if o.prior else np.zeros((len(vocab), 0))
        shared = counts @ phi  # (n, p): the networks' summed descriptors
        if o.alpha == "auto":
            alpha = self._cross_validate(counts, shared, y)
        else:
            try:
                alpha = float(o.alpha)
            except ValueError:
                raise UserError(f"additive alpha {o.alpha!r} must be a number >= 0 or auto") from None
            if alpha < 0:
                raise UserError(f"additive alpha {alpha} must be >= 0")
        theta, delta, b = self._solve(counts, shared, y, alpha)
        self.theta = np.zeros(len(DESCRIPTOR_NAMES)) if not o.prior else theta
        self.coef = {k: float(phi[i] @ theta + delta[i]) for i, k in enumerate(vocab)}
        self.intercept = b
        self.resolutions = sorted({a["r"] for a in archs})
        self.info = {"n_train": len(archs), "n_keys": len(vocab), "alpha": alpha}

    @staticmethod
    def _solve(
        counts: np.ndarray, shared: np.ndarray, y: np.ndarray, alpha: float
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Least squares of ``y ~ b + shared @ theta + counts @ delta`` with ``alpha * n * |delta|^2``."""
        n, k = counts.shape
        p = shared.shape[1]
        x = np.column_stack([shared, counts])
        xm, ym = x.mean(0), float(y.mean())
        scale = np.where(x.std(0) > 0, x.std(0), 1.0)
        scale[p:] = 1.0  # the penalty is on the raw per-key deviations
        xc, yc = (x - xm) / scale, y - ym
        if alpha > 0:
            pen = np.zeros((k, p + k))
            pen[:, p:] = np.sqrt(alpha * n) * np.eye(k)
            xc, yc = np.vstack([xc, pen]), np.concatenate([yc, np.zeros(k)])
        w = np.linalg.lstsq(xc, yc, rcond=None)[0] / scale
        return w[:p], w[p:], float(ym - xm @ w)

    def _cross_validate(self, counts: np.ndarray, shared: np.ndarray, y: np.ndarray) -> float:
        """The alpha of :attr:`ALPHAS` with the least 5-fold squared error (normal equations; each
        fold's Gram matrix is the whole one minus the fold's)."""
        import scipy.linalg

        n, k = counts.shape
        if n < 10:
            return self.ALPHAS[-1]
        scale = np.where(shared.std(0) > 0, shared.std(0), 1.0)
        a = np.column_stack([np.ones(n), shared / scale, counts])
        gram, rhs = a.T @ a, a.T @ y
        penalised = np.zeros(a.shape[1])
        penalised[a.shape[1] - k :] = 1.0
        jitter = 1e-10 * float(np.mean(np.diag(gram)))  # the intercept and the type one-hots are collinear
        folds = np.array_split(np.random.default_rng(self.options.seed).permutation(n), 5)
        parts = [(a[f], y[f]) for f in folds]
        best, best_err = self.ALPHAS[0], math.inf
        for alpha in self.ALPHAS:
            err = 0.0
            for af, yf in parts:
                g = gram - af.T @ af + np.diag(alpha * (n - len(yf)) * penalised + jitter)
                w = scipy.linalg.solve(g, rhs - af.T @ yf, assume_a="pos")
                err += float(np.sum((af @ w - yf) ** 2))
            if err < best_err * (1 - 1e-9):
                best, best_err = alpha, err
        return best

    def coefficient(self, key: str) -> float:
        c = self.coef.get(key)
        if c is not None:
            return c
        if self.options.unseen != "error" and self.options.prior:
            return float(layer_descriptors(key) @ self.theta)
        raise UserError(
            f"the additive latency predictor never saw layer {key!r}; train it on more networks or on "
            "networks of this resolution (or use prior=true unseen=prior)"
        )

    def _predict(self, archs: list[Arch]) -> np.ndarray:
        if self.options.unseen != "prior_all":
            for a in archs:
                if a["r"] not in self.resolutions:
                    raise UserError(
                        f"the additive latency predictor was trained at resolutions {self.resolutions}, "
                        f"not {a['r']}; train it on that resolution too (or set unseen=prior_all)"
                    )
        return np.array([self.intercept + sum(self.coefficient(k) for k in self._keys(a)) for a in archs])

    def state(self) -> dict[str, Any]:
        return {
            "keys": list(self.coef),
            "coef": [self.coef[k] for k in self.coef],
            "theta": self.theta.tolist(),
            "intercept": self.intercept,
            "resolutions": list(self.resolutions),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.coef = {str(k): float(c) for k, c in zip(state["keys"], state["coef"], strict=True)}
        self.theta = np.asarray(state["theta"], float)
        self.intercept = float(state["intercept"])
        self.resolutions = [int(r) for r in state["resolutions"]]


# ---- gradient-boosted trees ------------------------------------------------------------------------


def structural_features(archs: Sequence[Arch], n_classes: int = 1000) -> tuple[np.ndarray, list[str]]:
    """Per network: resolution, analytic MACs / params / activations (millions), and per stage its
    depth, MACs, kernel sum, expand sum and sum of kernel^2 * expand (depthwise cost), then per
    block its kernel and expand ratio (0 when off). Returns ``(features, names)``."""
    from NasSearchSpace.ofa_mbv3 import OFAMobileNetV3Space

    names = ["r", "macs", "params", "activations"]
    for s in range(N_STAGES):
        names += [f"d.s{s}", f"macs.s{s}", f"ks_sum.s{s}", f"e_sum.s{s}", f"k2e_sum.s{s}"]
    names += [f"ks.b{j}" for j in range(N_BLOCKS)] + [f"e.b{j}" for j in range(N_BLOCKS)]
    out = np.zeros((len(archs), len(names)))
    spaces: dict[tuple[float, int], Any] = {}
    for i, a in enumerate(archs):
        space = spaces.get((a["w"], a["r"]))
        if space is None:
            space = spaces[a["w"], a["r"]] = OFAMobileNetV3Space.for_arch(a)
        c = space.costs(a, n_classes)
        stage_macs = [s["macs"] for s in space.stage_costs(a, n_classes)]
        row = [a["r"], c["macs"], c["params"], c["activations"]]
        for s in range(N_STAGES):
            blocks = [s * MAX_DEPTH + b for b in range(a["d"][s])]
            row += [
                a["d"][s],
                stage_macs[s] - (stage_macs[s - 1] if s else 0.0),
                sum(a["ks"][j] for j in blocks),
                sum(a["e"][j] for j in blocks),
                sum(a["ks"][j] ** 2 * a["e"][j] for j in blocks),
            ]
        row += [a["ks"][j] if is_active(a["d"], j) else 0 for j in range(N_BLOCKS)]
        row += [a["e"][j] if is_active(a["d"], j) else 0 for j in range(N_BLOCKS)]
        out[i] = row
    return out, names


def export_trees(model: Any) -> dict[str, torch.Tensor]:
    """The trees of a fitted ``HistGradientBoostingRegressor`` (numeric features, no missing
    values) as flat tensors, so a file holds no pickle."""
    value, feat, thr, left, right, leaf, roots = [], [], [], [], [], [], []
    offset = 0
    for (tree,) in model._predictors:
        nodes = tree.nodes
        if np.any(nodes["is_categorical"]):
            raise ValueError("categorical splits are not exported")
        roots.append(offset)
        value.append(nodes["value"])
        feat.append(nodes["feature_idx"])
        thr.append(nodes["num_threshold"])
        left.append(nodes["left"].astype(np.int64) + offset)
        right.append(nodes["right"].astype(np.int64) + offset)
        leaf.append(nodes["is_leaf"].astype(bool))
        offset += len(nodes)
    cat = np.concatenate
    return {
        "baseline": torch.tensor(float(np.ravel(model._baseline_prediction)[0]), dtype=torch.float64),
        "value": torch.from_numpy(cat(value).astype(np.float64)),
        "feature": torch.from_numpy(cat(feat).astype(np.int64)),
        "threshold": torch.from_numpy(cat(thr).astype(np.float64)),
        "left": torch.from_numpy(cat(left)),
        "right": torch.from_numpy(cat(right)),
        "leaf": torch.from_numpy(cat(leaf)),
        "roots": torch.tensor(roots, dtype=torch.int64),
    }


def predict_trees(trees: Mapping[str, torch.Tensor], x: np.ndarray) -> np.ndarray:
    """The sum of the exported trees' leaf values plus the baseline (``x <= threshold`` goes left)."""
    value, feat, thr = trees["value"].numpy(), trees["feature"].numpy(), trees["threshold"].numpy()
    left, right, leaf = trees["left"].numpy(), trees["right"].numpy(), trees["leaf"].numpy()
    node = np.broadcast_to(trees["roots"].numpy(), (len(x), len(trees["roots"]))).copy()
    rows = np.arange(len(x))[:, None]
    while True:
        inner = ~leaf[node]
        if not inner.any():
            break
        go_left = x[rows, feat[node]] <= thr[node]
        node = np.where(inner, np.where(go_left, left[node], right[node]), node)
    return float(trees["baseline"]) + value[node].sum(1)


@LATENCY_PREDICTORS.register("gbdt")
class GBDTPredictor(LatencyPredictor):
    """scikit-learn's ``HistGradientBoostingRegressor`` on :func:`structural_features`.

    ``stack=true``: an ``additive`` model plus trees fitted to its residual, with the additive
    model's prediction as one more feature; the residuals the trees learn are out-of-fold (5
    folds), so they are the additive model's errors on networks it did not see.
    """

    name = "gbdt"

    @dataclass
    class Options:
        max_iter: int = option(2000, "most boosting iterations")
        learning_rate: float = option(0.05, "shrinkage")
        max_leaf_nodes: int = option(15, "leaves per tree")
        min_samples_leaf: int = option(5, "fewest samples per leaf")
        l2_regularization: float = option(0.0, "L2 penalty on leaf values")
        n_iter_no_change: int = option(50, "early stopping patience, iterations (10% held out; n >= 200)")
        stack: bool = option(False, "boost the residual of an additive model")
        n_classes: int = option(1000, "classes of the classifier the MACs are counted with")
        seed: int = option(0, "seed of the validation split and of the folds")

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self.trees: dict[str, torch.Tensor] | None = None
        self.base: AdditivePredictor | None = None

    def _regressor(self, n: int) -> Any:
        from sklearn.ensemble import HistGradientBoostingRegressor

        o = self.options
        return HistGradientBoostingRegressor(
            max_iter=o.max_iter, learning_rate=o.learning_rate, max_leaf_nodes=o.max_leaf_nodes,
            min_samples_leaf=min(o.min_samples_leaf, max(1, n // 4)), l2_regularization=o.l2_regularization,
            early_stopping=n >= 200, validation_fraction=0.1, n_iter_no_change=o.n_iter_no_change,
            random_state=o.seed,
        )  # fmt: skip

    def _fit(self, archs: list[Arch], y: np.ndarray) -> None:
        o = self.options
        x, _ = structural_features(archs, o.n_classes)
        target = y
        self.base = None
        if o.stack:
            from sklearn.model_selection import KFold

            oof = np.zeros(len(archs))
            folds = KFold(n_splits=min(5, len(archs)), shuffle=True, random_state=o.seed)
            for tr, te in folds.split(x) if len(archs) >= 2 else []:
                part = AdditivePredictor().fit([archs[i] for i in tr], y[tr])
                oof[te] = part.predict([archs[i] for i in te])
            self.base = AdditivePredictor().fit(archs, y)
            x = np.column_stack([x, oof])
            target = y - oof
        model = self._regressor(len(archs)).fit(x, target)
        self.trees = export_trees(model)
        self.info = {"n_train": len(archs), "n_iter": int(model.n_iter_)}

    def _predict(self, archs: list[Arch]) -> np.ndarray:
        assert self.trees is not None
        x, _ = structural_features(archs, self.options.n_classes)
        if self.base is None:
            return predict_trees(self.trees, x)
        self.base.width_mult = self.width_mult
        base = self.base._predict(archs)
        return base + predict_trees(self.trees, np.column_stack([x, base]))

    def state(self) -> dict[str, Any]:
        assert self.trees is not None
        return {"trees": dict(self.trees), "base": None if self.base is None else self.base.state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.trees = dict(state["trees"])
        self.base = None
        if state.get("base") is not None:
            self.base = AdditivePredictor()
            self.base.load_state(state["base"])


# ---- calibrated look-up table ----------------------------------------------------------------------


@LATENCY_PREDICTORS.register("calibrated_lut")
class CalibratedLUT(LatencyPredictor):
    """``a * table_sum + b`` fitted by least squares on measured networks (``b = 0`` with one).

    The tables (``lut_dir``) are copied into the model, so its file stands alone. Networks of
    another width than the tables' are priced by the same genes at the tables' width (the
    calibration absorbs the scale; a table of the right width is better).
    """

    name = "calibrated_lut"

    @dataclass
    class Options:
        lut_dir: str | None = option(None, "folder of OFA-format latency tables (required)")
        lut_device: str | None = option(None, "device of the tables (default: the only one in lut_dir)")
        table_width: float = option(1.2, "width the tables were measured for")
        intercept: bool = option(True, "fit b (with two or more networks)")
        seed: int = option(0, "unused (the fit is deterministic); kept for a uniform interface")

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self.tables: dict[int, dict[str, float]] = {}
        self.device = ""
        self.a, self.b = 1.0, 0.0

    def _load_tables(self) -> None:
        from NasSearchSpace.ofa_mbv3_latency import LatencyTable

        if self.options.lut_dir is None:
            raise UserError("the calibrated_lut latency predictor needs lut_dir, the folder of the tables")
        t = LatencyTable(
            self.options.lut_dir, device=self.options.lut_device, width_mult=self.options.table_width
        )
        self.tables, self.device = dict(t.tables), t.device

    def table_sum(self, archs: Sequence[Arch]) -> np.ndarray:
        from NasSearchSpace.ofa_mbv3_latency import LayerKeys

        if not self.tables:
            self._load_tables()
        keys = LayerKeys(self.options.table_width)
        out = []
        for a in archs:
            table = self.tables.get(a["r"])
            if table is None:
                raise UserError(
                    f"the calibrated table has no table for resolution {a['r']} "
                    f"(tables: {sorted(self.tables)})"
                )
            total = 0.0
            for k in keys.keys({**a, "w": self.options.table_width}):
                if k not in table:
                    raise UserError(f"latency table {self.device}_{a['r']} has no entry {k!r}")
                total += table[k]
            out.append(total)
        return np.asarray(out)

    def _fit(self, archs: list[Arch], y: np.ndarray) -> None:
        s = self.table_sum(archs)
        if len(archs) == 1 or not self.options.intercept or np.ptp(s) == 0:
            self.a, self.b = float(s @ y / (s @ s)), 0.0
        else:
            self.a, self.b = (float(v) for v in np.linalg.lstsq(np.column_stack([s, np.ones_like(s)]), y)[0])
        self.info = {"n_train": len(archs), "a": self.a, "b": self.b}

    def _predict(self, archs: list[Arch]) -> np.ndarray:
        return self.a * self.table_sum(archs) + self.b

    def state(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "device": self.device,
            "tables": {str(r): dict(t) for r, t in self.tables.items()},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.a, self.b = float(state["a"]), float(state["b"])
        self.device = str(state["device"])
        self.tables = {int(r): {str(k): float(v) for k, v in t.items()} for r, t in state["tables"].items()}


# ---- generalised (hardware-feature) MLP ------------------------------------------------------------


def hardware_embedding(reference_latency_ms: Sequence[float]) -> np.ndarray:
    """HELP-style device features: the log latencies (ms) of a fixed list of reference networks
    measured on the device."""
    v = np.asarray(reference_latency_ms, float)
    if v.size == 0 or not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise UserError("reference latencies for a hardware embedding must be positive numbers")
    return np.log(v)


@LATENCY_PREDICTORS.register("generalised")
class GeneralisedMLP(MLPPredictor):
    """The ``mlp`` with a device description appended to its input: one model for several devices.

    Each training sample carries its device's feature vector (:func:`hardware_embedding` of
    reference networks measured on that device, or scalar features such as cores, memory and
    bandwidth); features are standardised with the training devices' mean and spread. A
    prediction uses the vector given, or the one set with :meth:`set_device` (default: the last
    training device's). Whether it generalises to a device it was not trained on can only be
    shown with several training devices and a held-out one; with two devices (Note10 tables and
    this CPU) it cannot.
    """

    name = "generalised"

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self.hw_mean: np.ndarray | None = None
        self.hw_std: np.ndarray | None = None
        self.device_features: np.ndarray | None = None
        self.reference_keys: list[str] = []  # arch_key of the reference networks, when embeddings are

    def _hardware(self, hardware: Any, n: int) -> np.ndarray:
        if hardware is None:
            if self.device_features is None:
                raise UserError("the generalised latency predictor needs the device's hardware features")
            hardware = self.device_features
        h = np.asarray(hardware, float)
        if h.ndim == 1:
            h = np.broadcast_to(h, (n, h.size))
        if h.shape[0] != n or not np.all(np.isfinite(h)):
            raise UserError(f"hardware features must be one finite vector, or one per network ({n})")
        if self.hw_mean is not None and h.shape[1] != self.hw_mean.size:
            raise UserError(
                f"hardware features have {h.shape[1]} values; the model was trained with {self.hw_mean.size}"
            )
        return h

    def set_device(self, features: Sequence[float] | np.ndarray) -> None:
        self.device_features = self._hardware(features, 1)[0].copy()

    def set_device_from_references(self, archs: Sequence[Any], latency_ms: Sequence[float]) -> None:
        """Describe the device by the measured latencies of the model's reference networks
        (:attr:`reference_keys`; ``archs`` may hold more, in any order)."""
        if not self.reference_keys:
            raise UserError(
                "this generalised predictor was trained without reference networks; give features"
            )
        have = {arch_key(canonical_arch(a)): float(v) for a, v in zip(archs, latency_ms, strict=True)}
        missing = [k for k in self.reference_keys if k not in have]
        if missing:
            raise UserError(
                f"{len(missing)} of the predictor's {len(self.reference_keys)} reference networks were not "
                "measured on this device; measure the same reference networks"
            )
        self.set_device(hardware_embedding([have[k] for k in self.reference_keys]))

    def _inputs(self, archs: list[Arch], extra: np.ndarray | None = None) -> torch.Tensor:
        assert self.encoding is not None and self.hw_mean is not None and self.hw_std is not None
        h = self._hardware(extra, len(archs))
        z = (h - self.hw_mean) / self.hw_std
        return torch.from_numpy(np.column_stack([self.encoding.encode(archs), z]).astype(np.float32))

    def _n_inputs(self) -> int:
        assert self.encoding is not None and self.hw_mean is not None
        return self.encoding.dim + self.hw_mean.size

    def fit(self, archs: Sequence[Any], y: Any, hardware: Any = None) -> GeneralisedMLP:  # type: ignore[override]
        """``hardware``: one feature vector per network (or one for all)."""
        if hardware is None:
            raise UserError("the generalised latency predictor trains on hardware features per network")
        archs, y = self._training_data(archs, y, refit=True)
        self.hw_mean, self.hw_std = None, None
        h = self._hardware(hardware, len(archs))
        self.hw_mean = h.mean(0)
        self.hw_std = np.where(h.std(0) > 0, h.std(0), 1.0)
        self._fit(archs, y, h)
        self.device_features = h[-1].copy()
        self.train_keys = [arch_key(a) for a in archs]
        return self

    def fit_devices(
        self, data: Mapping[str, tuple[Sequence[Any], Any]], features: Mapping[str, Sequence[float]]
    ) -> GeneralisedMLP:
        """Train on several devices: ``data[name] = (archs, y)`` with ``features[name]`` each."""
        missing = [d for d in data if d not in features]
        if missing:
            raise UserError(f"no hardware features for device(s) {', '.join(missing)}")
        archs, ys, hw = [], [], []
        for name, (a, y) in data.items():
            archs += list(a)
            ys.append(np.asarray(y, float))
            hw += [np.asarray(features[name], float)] * len(a)
        return self.fit(archs, np.concatenate(ys), np.stack(hw))

    def predict(self, archs: Sequence[Any], hardware: Any = None) -> np.ndarray:  # type: ignore[override]
        if self.width_mult is None:
            raise UserError("the generalised latency predictor is not trained; fit or load one first")
        archs = [self.prepare_arch(a) for a in archs]
        return np.asarray(
            self._predict(archs, None if hardware is None else self._hardware(hardware, len(archs)))
        )

    def finetune(
        self, archs: Sequence[Any], y: Any, mode: str = "head", seed: int | None = None, hardware: Any = None
    ) -> GeneralisedMLP:  # type: ignore[override]
        """Fine-tune for a device with features ``hardware`` (default: the current device)."""
        if hardware is not None:
            self.set_device(hardware)
        super().finetune(archs, y, mode, seed)
        return self

    def _finetune(
        self, archs: list[Arch], y: np.ndarray, mode: str, seed: int, extra: np.ndarray | None = None
    ) -> None:
        super()._finetune(archs, y, mode, seed, None)

    def state(self) -> dict[str, Any]:
        assert self.hw_mean is not None and self.hw_std is not None and self.device_features is not None
        return {
            **super().state(),
            "hw_mean": self.hw_mean.tolist(),
            "hw_std": self.hw_std.tolist(),
            "device_features": self.device_features.tolist(),
            "reference_keys": list(self.reference_keys),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.hw_mean = np.asarray(state["hw_mean"], float)
        self.hw_std = np.asarray(state["hw_std"], float)
        self.device_features = np.asarray(state["device_features"], float)
        self.reference_keys = [str(k) for k in state.get("reference_keys", [])]
        super().load_state(state)


def device_embeddings(
    datasets: Mapping[str, tuple[Sequence[Arch], np.ndarray]], n_ref: int = 20
) -> tuple[list[Arch], dict[str, np.ndarray]]:
    """Reference networks for HELP-style embeddings: up to ``n_ref`` networks present in every
    dataset (by :func:`arch_key`, sorted), and each device's :func:`hardware_embedding` of them.
    Pass each device's ``references.csv`` (:func:`~hardware.latency_data.read_references`) as its
    dataset to use the reference networks measured for that purpose."""
    from hardware.latency_data import deduplicate

    tables = {}
    for name, (archs, y) in datasets.items():
        u, uy = deduplicate(archs, y)
        tables[name] = {arch_key(a): (a, v) for a, v in zip(u, uy, strict=True)}
    common = sorted(set.intersection(*(set(t) for t in tables.values()))) if tables else []
    if not common:
        raise UserError("the devices' datasets share no network; measure the same reference networks on each")
    ref = common[:n_ref]
    first = next(iter(tables.values()))
    return [first[k][0] for k in ref], {
        name: hardware_embedding([t[k][1] for k in ref]) for name, t in tables.items()
    }


# ---- transfer to a new device ----------------------------------------------------------------------

TRANSFER_METHODS = ("source", "head", "full", "calibrated_lut")


def transfer_curve(
    source_model: LatencyPredictor,
    target_archs: Sequence[Any],
    target_y: Sequence[float] | np.ndarray,
    test_archs: Sequence[Any],
    test_y: Sequence[float] | np.ndarray,
    ks: Sequence[int] = (10, 20, 50, 100),
    seeds: Sequence[int] = (0, 1, 2),
    methods: Sequence[str] = TRANSFER_METHODS,
    lut_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Adapt ``source_model`` to a target device with ``k`` of its networks, per ``k`` and seed,
    and score each adapted model on the target's test networks.

    For each seed the pool ``target_archs`` (deduplicated, and without the test networks) is
    shuffled once and the first ``k`` taken, so the sets grow with ``k``. Methods:
    ``source`` (the source model unchanged; one row per seed, ``k = 0``), ``head`` and ``full``
    (``source_model.finetune``), ``calibrated_lut`` (``a * table_sum + b`` on the k networks,
    tables from ``lut_dir``, default ``data/ofa``), and any other registered kind, trained from
    scratch on the k networks with that seed. Rows: ``method, k, seed`` and
    :func:`latency_metrics` of the test networks.
    """
    test_keys = {arch_key(canonical_arch(a, source_model.width_mult)) for a in test_archs}
    ((pool, pool_y),) = split_unique(target_archs, target_y, [1.0], seed=0)
    keep = [i for i, a in enumerate(pool) if arch_key(a) not in test_keys]
    pool, pool_y = [pool[i] for i in keep], pool_y[keep]
    if ks and max(ks) > len(pool):
        raise UserError(f"k = {max(ks)} exceeds the {len(pool)} target networks outside the test set")
    test_y = np.asarray(test_y, float)
    unknown = [m for m in methods if m not in TRANSFER_METHODS and m not in LATENCY_PREDICTORS]
    if unknown:
        raise UserError(
            f"unknown transfer method(s) {', '.join(unknown)}; use {', '.join(TRANSFER_METHODS)} or a kind"
        )
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(len(pool))
        for method in methods:
            for k in [0] if method == "source" else ks:
                idx = order[:k]
                archs_k, y_k = [pool[i] for i in idx], pool_y[idx]
                if method == "source":
                    model = source_model.copy()
                    if model.finetune_modes:  # the MLP's input does not depend on the width
                        model.width_mult = pool[0]["w"] if pool else model.width_mult
                elif method in ("head", "full"):
                    model = source_model.copy().finetune(archs_k, y_k, method, seed=seed)
                elif method == "calibrated_lut":
                    model = CalibratedLUT(lut_dir=str(lut_dir or NOTE10_DIR)).fit(archs_k, y_k)
                else:
                    model = make_predictor(method, seed=seed).fit(archs_k, y_k)
                rows.append(
                    {
                        "method": method,
                        "k": k,
                        "seed": seed,
                        **latency_metrics(test_y, model.predict(test_archs)),
                    }
                )
                if log is not None:
                    r = rows[-1]
                    log(f"{method:>15} k={k:<4} seed={seed}  RMSE {r['rmse']:.4f}  MAPE {r['mape']:.2f}%  "
                        f"+-10% {r['within10']:.1f}  Spearman {r['spearman']:.4f}")  # fmt: skip
    return rows
