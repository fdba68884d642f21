"""Training a network to convergence: the loop behind ``train.py subnet`` and the task trainers.

:class:`Finetuner` trains any ``nn.Module`` on a :class:`~nas.data.DataSplits` with the options of
:class:`FinetuneConfig`: an optimiser from :data:`OPTIMIZERS` (SGD, Adam, AdamW, SAM), a per-step
linear warm-up then cosine decay, label smoothing, mixed precision on CUDA, a checkpoint after
every epoch (``--resume`` continues bit-identically after a kill), ``log.csv`` (and TensorBoard
when it is installed) and the final weights in ``ckpt.pth``. Task trainers (early exits, layer
skipping, flatness) reuse it with their own ``loss_fn(model, x, y) -> (loss, logits)`` and
``evaluate_fn(model, batches) -> metrics`` instead of copying the loop.

:func:`train_subnet` is ``train.py subnet``: it builds the network of a ``net.subnet`` file with
weights from ``--init`` (a checkpoint of that network), else inherited from ``--supernet_path``,
else from scratch, fine-tunes it and merges its test top-1/top-5 into ``<save>/net.stats`` under
``"trained"``.

Run directory (``--save``, by default the folder of the ``net.subnet`` file): ``config.yaml``,
``checkpoint.pth`` (resumable: weights, optimiser, scheduler, scaler, epoch, RNG states, best),
``log.csv``, ``tb/`` (TensorBoard), ``ckpt.pth`` (final weights), ``net.subnet``, ``net.stats``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from nas.config import option, save_config
from nas.data import DataSplits, Split, load_dataset, make_loader
from nas.data.loaders import derive_seed
from nas.device import resolve_device
from nas.errors import UserError
from nas.io import atomic_write_bytes, load_checkpoint, read_json, save_checkpoint, write_json
from nas.registry import Registry
from nas.scoring import accuracy
from nas.space import Arch, SearchSpace, get_search_space

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
# (model, x, y) -> (loss, logits or None); the logits give the running training top-1
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]
# (model, batches) -> metrics such as {"top1", "top5", "loss"}
EvaluateFn = Callable[[nn.Module, Batches], dict[str, float]]


# ---- optimisers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OptimizerSpec:
    """How to build an optimiser: ``make(param_groups, lr, cfg)``, its default peak learning
    rate, and whether steps are sharpness-aware (SAM's ascent/descent around the base optimiser)."""

    make: Callable[[list[dict], float, FinetuneConfig], torch.optim.Optimizer]
    default_lr: float
    sam: bool = False


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer")


def _sgd(groups: list[dict], lr: float, cfg: FinetuneConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)


OPTIMIZERS.register("sgd")(OptimizerSpec(_sgd, 0.05))
OPTIMIZERS.register("adam")(OptimizerSpec(lambda g, lr, cfg: torch.optim.Adam(g, lr=lr), 1e-3))
OPTIMIZERS.register("adamw")(OptimizerSpec(lambda g, lr, cfg: torch.optim.AdamW(g, lr=lr), 1e-3))
# SAM (Foret et al., 2021) around SGD with momentum, as in the paper
OPTIMIZERS.register("sam")(OptimizerSpec(_sgd, 0.05, sam=True))


class SharpnessAware:
    """SAM's two steps around any optimiser: :meth:`ascend` moves the weights to the worst point
    within an L2 ball of radius ``rho`` (``w + rho * g / ||g||``, from the gradients of a first
    forward/backward pass); after a second pass there, :meth:`restore` puts the original weights
    back (exactly: they are copied, not subtracted), and the base optimiser then steps with the
    gradients of the perturbed point.

    The ascent direction does not depend on the gradients' scale, so it works on the scaled
    gradients of a ``GradScaler`` unchanged; non-finite gradients (a scaler overflow) skip it.
    """

    def __init__(self, params: Iterable[nn.Parameter], rho: float) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.rho = rho
        self._saved: list[tuple[nn.Parameter, torch.Tensor]] = []

    @torch.no_grad()
    def ascend(self) -> None:
        grads = [(p, p.grad) for p in self.params if p.grad is not None]
        if not grads:
            return
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for _, g in grads]))
        if not torch.isfinite(norm) or norm == 0:
            return
        scale = self.rho / (norm + 1e-12)
        for p, g in grads:
            self._saved.append((p, p.detach().clone()))
            p.add_((g.float() * scale).to(p.dtype))

    @torch.no_grad()
    def restore(self) -> None:
        for p, w in self._saved:
            p.copy_(w)
        self._saved = []


@contextlib.contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[None]:
    """BatchNorm running statistics left untouched (SAM's second pass sees perturbed weights)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(bns, saved, strict=True):
            m.momentum = momentum


# ---- configuration ---------------------------------------------------------------------------


@dataclass
class FinetuneConfig:
    """Options of the training loop; every field is also a command-line flag."""

    epochs: int = option(50, "training epochs")
    batch_size: int = option(64, "images per step")
    optimizer: str = option("sgd", f"optimiser: {', '.join(OPTIMIZERS.names())} (sam: SGD + SAM)")
    base_lr: float | None = option(
        None, "peak learning rate; none: 0.05 for sgd and sam, 0.001 for adam and adamw"
    )
    momentum: float = option(0.9, "momentum of sgd and sam (nesterov for sgd)")
    weight_decay: float = option(5e-5, "weight decay (not applied to BatchNorm and biases)")
    sam_rho: float = option(0.05, "radius of SAM's ascent step (--optimizer sam)")
    warmup_epochs: float = option(1.0, "linear warm-up of the learning rate, epochs; then cosine decay to 0")
    label_smoothing: float = option(0.1, "label smoothing of the training loss")
    grad_clip: float | None = option(None, "clip the gradients' global norm to this value; none: no clipping")
    amp: bool = option(True, "mixed precision (float16 autocast + GradScaler) on CUDA; CPU runs float32")
    steps_per_epoch: int | None = option(
        None, "cap on steps per epoch; none: one pass over the training images"
    )
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    num_workers: int = option(2, "data-loading workers (streaming datasets only)")
    seed: int = option(0, "random seed (validation split, initialisation, data order, dropout)")
    save: str | None = option(
        None, "run directory: checkpoints, logs, config; none (train.py subnet): the folder of --subnet"
    )
    resume: bool = option(False, "continue from <save>/checkpoint.pth if it exists")


# Options that may change between a run and its --resume without changing the result's meaning.
RESUME_FREE = frozenset({"resume", "device", "num_workers", "save", "subnet", "data"})
CHECKPOINT_SCHEMA = "finetune-checkpoint/1"


def default_loss(label_smoothing: float) -> LossFn:
    """Cross-entropy of ``model(x)`` with label smoothing."""

    def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing), logits

    return loss_fn


def as_channels_last(batches: Batches) -> Batches:
    """Batches with images in channels-last memory order (faster convolutions on CPU and GPU)."""
    for x, y in batches:
        yield x.contiguous(memory_format=torch.channels_last), y


# ---- the loop --------------------------------------------------------------------------------


class Finetuner:
    """Trains ``model`` on ``data.train`` at ``resolution`` pixels; resumable at epoch boundaries.

    ``loss_fn(model, x, y) -> (loss, logits)`` defines a step's loss (default: cross-entropy with
    ``cfg.label_smoothing``); ``evaluate_fn(model, batches) -> metrics`` scores the validation
    and test splits (default: top-1, top-5 and loss). ``identity`` holds further settings a
    ``--resume`` must match (e.g. the architecture); ``meta`` is stored with the final weights.
    """

    def __init__(
        self,
        model: nn.Module,
        data: DataSplits,
        resolution: int,
        cfg: FinetuneConfig,
        loss_fn: LossFn | None = None,
        evaluate_fn: EvaluateFn | None = None,
        identity: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        check_finetune_config(cfg)
        self.cfg, self.data, self.resolution, self.log = cfg, data, resolution, log
        self.device = resolve_device(cfg.device)
        self.spec = OPTIMIZERS.get(cfg.optimizer)
        self.base_lr = cfg.base_lr if cfg.base_lr is not None else self.spec.default_lr
        self.model = model.to(self.device).to(memory_format=torch.channels_last)
        self.loss_fn = loss_fn or default_loss(cfg.label_smoothing)
        self.evaluate_fn = evaluate_fn or accuracy
        self.identity = identity or {}
        self.meta = meta or {}
        self.use_amp = cfg.amp and self.device.type == "cuda"

        self.loader = make_loader(
            data.train,
            cfg.batch_size,
            resolution,
            train=True,
            device=self.device,
            seed=cfg.seed,
            num_workers=cfg.num_workers,
        )
        n = len(self.loader)
        self.steps = n if cfg.steps_per_epoch is None else min(n, cfg.steps_per_epoch)
        self.optimizer = self.spec.make(self._param_groups(), self.base_lr, cfg)
        self.sam = SharpnessAware(self.model.parameters(), cfg.sam_rho) if self.spec.sam else None
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(int(cfg.warmup_epochs * self.steps), self.steps * cfg.epochs)
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp)
        self.epoch = 0  # epochs completed
        self.history: list[dict[str, float]] = []
        self.best: dict[str, float] = {}  # epoch and metrics of the best validation top-1

    def _param_groups(self) -> list[dict]:
        decay, no_decay = [], []
        for p in self.model.parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 else decay).append(p)  # BatchNorm weights and biases
        return [
            {"params": decay, "weight_decay": self.cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    # ---- checkpoints ----------------------------------------------------------------------

    @property
    def ckpt_path(self) -> str:
        return os.path.join(self.cfg.save, "checkpoint.pth")

    def settings(self) -> dict[str, Any]:
        """What a ``--resume`` must match: the options (minus RESUME_FREE) and ``identity``."""
        own = {k: v for k, v in dataclasses.asdict(self.cfg).items() if k not in RESUME_FREE}
        return {**own, **self.identity}

    def save_checkpoint(self) -> None:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        save_checkpoint(
            self.ckpt_path,
            {
                "schema": CHECKPOINT_SCHEMA,
                "state_dict": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "epoch": self.epoch,
                "rng": rng,
                "best": self.best,
                "history": self.history,
                "settings": self.settings(),
            },
        )

    def try_resume(self) -> bool:
        """Load ``checkpoint.pth`` when ``--resume``; refuse to overwrite one without it."""
        if not os.path.isfile(self.ckpt_path):
            if self.cfg.resume:
                self.log(f"--resume: no {self.ckpt_path} yet; starting from epoch 0")
            return False
        if not self.cfg.resume:
            raise UserError(
                f"{self.ckpt_path} exists: pass --resume to continue that run, or choose another --save"
            )
        ckpt = load_checkpoint(self.ckpt_path, "training checkpoint")
        if ckpt.get("schema") != CHECKPOINT_SCHEMA:
            raise UserError(f"{self.ckpt_path} is not a checkpoint of this trainer; choose another --save")
        old, new = ckpt.get("settings", {}), self.settings()
        for key in dict.fromkeys([*new, *old]):
            if old.get(key) != new.get(key):
                raise UserError(
                    f"--resume: {self.ckpt_path} was trained with {key}={old.get(key)!r}, not "
                    f"{new.get(key)!r}; use the same settings or another --save"
                )
        self.model.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if "cuda" in ckpt["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
        self.epoch = int(ckpt["epoch"])
        self.history = list(ckpt.get("history", []))
        self.best = dict(ckpt.get("best", {}))
        return True

    def save_weights(self, path: str | None = None) -> str:
        """The weights alone (``{"state_dict", **meta}``), by default as ``<save>/ckpt.pth``."""
        path = path or os.path.join(self.cfg.save, "ckpt.pth")
        save_checkpoint(path, {"state_dict": self.model.state_dict(), **self.meta})
        return path

    # ---- training -------------------------------------------------------------------------

    def _autocast(self):
        if self.use_amp:
            return torch.autocast(self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor | None]:
        """One optimisation step; returns the loss and the logits of the (unperturbed) forward pass."""
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss, logits = self.loss_fn(self.model, x, y)
        if not torch.isfinite(loss):
            raise UserError(
                f"the training loss became {loss.item()} at epoch {self.epoch + 1}; lower --base_lr "
                f"(now {self.base_lr:g}) or set --grad_clip"
            )
        self.scaler.scale(loss).backward()
        if self.sam is not None:
            self.sam.ascend()
            self.optimizer.zero_grad(set_to_none=True)
            with self._autocast(), frozen_bn_stats(self.model):
                loss2, _ = self.loss_fn(self.model, x, y)
            self.scaler.scale(loss2).backward()
            self.sam.restore()  # the descent uses the perturbed point's gradients at the original weights
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.item(), None if logits is None else logits.detach()

    def fit(self) -> list[dict[str, float]]:
        """Train the remaining epochs; checkpoint, log and report after every epoch."""
        cfg = self.cfg
        persist = bool(cfg.save)  # without a run directory (a search's fine-tuning): nothing on disk
        if (
            persist and self.try_resume()
        ):  # before writing anything: a refused resume leaves the run as it was
            self.log(f"resumed from {self.ckpt_path} after epoch {self.epoch}")
        if persist:
            save_config(cfg, os.path.join(cfg.save, "config.yaml"))
        if self.use_amp:
            self.log("mixed precision: float16 autocast with GradScaler")
        writer = self._tensorboard() if persist else None
        valid = self.data.valid
        while self.epoch < cfg.epochs:
            e = self.epoch
            self.loader.set_epoch(e)
            torch.manual_seed(derive_seed(cfg.seed, e, 3))  # dropout of this epoch, reproducible on resume
            self.model.train()
            t0 = time.time()
            loss_sum, correct, seen = 0.0, 0, 0
            lr = self.optimizer.param_groups[0]["lr"]
            bar = tqdm(
                total=self.steps,
                desc=f"epoch {e + 1}/{cfg.epochs}",
                leave=False,
                dynamic_ncols=True,
                disable=None,
            )
            for i, (x, y) in enumerate(as_channels_last(self.loader)):
                if i >= self.steps:
                    break
                lr = self.optimizer.param_groups[0]["lr"]
                loss, logits = self._step(x, y)
                loss_sum += loss
                if logits is not None:
                    correct += (logits.argmax(1) == y).sum().item()
                    seen += len(y)
                bar.set_postfix(loss=f"{loss_sum / (i + 1):.3f}", lr=f"{lr:.3g}")
                bar.update()
            bar.close()
            self.epoch = e + 1
            row: dict[str, float] = {"epoch": self.epoch, "lr": lr, "train_loss": loss_sum / self.steps}
            if seen:
                row["train_top1"] = 100.0 * correct / seen
            if valid is not None:
                res = self.evaluate(valid)
                row.update({f"valid_{k}": v for k, v in res.items()})
                if "top1" in res and res["top1"] > self.best.get("valid_top1", -1.0):
                    self.best = {"epoch": self.epoch, "valid_top1": res["top1"]}
            row["time_s"] = time.time() - t0
            self.history.append(row)
            if persist:
                self.save_checkpoint()
                self._write_log()
            if writer is not None:
                for k, v in row.items():
                    if k != "epoch":
                        writer.add_scalar(k, v, self.epoch)
                writer.flush()
            self.log(self._epoch_line(row))
        if writer is not None:
            writer.close()
        if persist:
            self.save_weights()
        return self.history

    def _epoch_line(self, row: dict[str, float]) -> str:
        parts = [
            f"epoch {int(row['epoch'])}/{self.cfg.epochs}",
            f"lr {row['lr']:.4g}",
            f"loss {row['train_loss']:.3f}",
        ]
        if "train_top1" in row:
            parts.append(f"train top1 {row['train_top1']:.2f}%")
        if "valid_top1" in row:
            parts.append(f"valid top1 {row['valid_top1']:.2f}%")
        return "  ".join(parts) + f"  ({row['time_s']:.0f}s)"

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return None
        # purge_step drops events of epochs after the checkpoint that a killed run had logged
        return SummaryWriter(os.path.join(self.cfg.save, "tb"), purge_step=self.epoch + 1)

    def _write_log(self) -> None:
        keys = list(dict.fromkeys(k for r in self.history for k in r))
        lines = [",".join(keys)]
        for r in self.history:
            lines.append(
                ",".join("" if k not in r else str(r[k]) if k == "epoch" else f"{r[k]:.6g}" for k in keys)
            )
        atomic_write_bytes(os.path.join(self.cfg.save, "log.csv"), ("\n".join(lines) + "\n").encode())

    # ---- evaluation -----------------------------------------------------------------------

    def evaluate(self, split: Split, batch_size: int = 200) -> dict[str, float]:
        """``evaluate_fn`` of the model on ``split`` (no augmentation, fixed order)."""
        loader = make_loader(
            split,
            batch_size,
            self.resolution,
            train=False,
            device=self.device,
            seed=self.cfg.seed,
            num_workers=self.cfg.num_workers,
        )
        with self._autocast():
            return self.evaluate_fn(self.model, as_channels_last(loader))

    def test(self) -> dict[str, float]:
        return self.evaluate(self.data.test)


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor of step ``s``: linear warm-up to 1, then cosine decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return factor


def check_finetune_config(cfg: FinetuneConfig) -> None:
    """Refuse settings that cannot train, with the flag to change."""
    for name in ("epochs", "batch_size"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"--{name} {value!r} must be an integer >= 1")
    OPTIMIZERS.get(cfg.optimizer)  # unknown names: one line listing the choices
    if cfg.base_lr is not None and not cfg.base_lr > 0:
        raise UserError(f"--base_lr {cfg.base_lr} must be > 0")
    if cfg.steps_per_epoch is not None and cfg.steps_per_epoch < 1:
        raise UserError(f"--steps_per_epoch {cfg.steps_per_epoch} must be >= 1 (or left out)")
    checks = [
        (cfg.momentum >= 0, f"--momentum {cfg.momentum} must be >= 0"),
        (cfg.weight_decay >= 0, f"--weight_decay {cfg.weight_decay} must be >= 0"),
        (cfg.sam_rho > 0, f"--sam_rho {cfg.sam_rho} must be > 0"),
        (cfg.warmup_epochs >= 0, f"--warmup_epochs {cfg.warmup_epochs} must be >= 0"),
        (0 <= cfg.label_smoothing < 1, f"--label_smoothing {cfg.label_smoothing} must lie in [0, 1)"),
        (cfg.grad_clip is None or cfg.grad_clip > 0, f"--grad_clip {cfg.grad_clip} must be > 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


# ---- train.py subnet -------------------------------------------------------------------------


@dataclass
class SubnetSource:
    """Which network to train, from which weights, on which data."""

    subnet: str | None = option(None, "net.subnet file of the network to train (required)")
    init: str | None = option(
        None,
        "initial weights: a checkpoint of this network (a state dict, or a dict with 'state_dict' such as "
        "a previous ckpt.pth), or 'scratch'; none: inherited from --supernet_path if given, else scratch",
    )
    supernet_path: str | None = option(None, "OFA-format supernet whose weights the network inherits")
    search_space: str = option("mobilenetv3", "search space of the net.subnet file")
    width_mult: float = option(1.0, "OFA width multiplier (1.0 or 1.2)")
    dataset: str = option("cifar10_embedded", "dataset name")
    data: str | None = option(None, "dataset folder; default: the dataset's own default location")
    vld_size: int = option(0, "training images held out as a validation split, scored every epoch")
    max_train_images: int | None = option(
        None, "train on a random (seeded) subset of this many training images; none: all"
    )


@dataclass
class SubnetTrainConfig(FinetuneConfig, SubnetSource):
    """Defaults of ``train.py subnet``; ``--save`` defaults to the folder of ``--subnet``."""


@dataclass
class SubnetJob:
    """A network ready to train: what :func:`prepare_subnet` returns."""

    space: SearchSpace
    arch: Arch
    model: nn.Module
    data: DataSplits
    resolution: int
    init: str  # where the initial weights came from, for the log and net.stats


def _read_arch(space: SearchSpace, cfg: SubnetSource) -> Arch:
    path = cfg.subnet
    if not path:
        raise UserError("train.py subnet needs --subnet FILE (a net.subnet, e.g. from msunas.py)")
    if not os.path.isfile(path):
        raise UserError(f"--subnet {path!r} does not exist; pass the net.subnet file of the network to train")
    raw = read_json(path, "subnet file")
    w = raw.get("w") if isinstance(raw, dict) else None
    if w is not None and cfg.search_space == "mobilenetv3" and w != cfg.width_mult:
        raise UserError(f"--subnet {path!r} is a width {w} network; pass --width_mult {w}")
    try:
        return space.validate(raw)
    except UserError as e:
        raise UserError(f"--subnet {path!r} is not a {cfg.search_space} network: {e}") from None


def load_data(cfg: SubnetSource, seed: int) -> DataSplits:
    """The dataset with its validation split, the training images cut to ``max_train_images``."""
    data = load_dataset(cfg.dataset, cfg.data, vld_size=cfg.vld_size, seed=seed)
    n = cfg.max_train_images
    if n is not None:
        if n < 1:
            raise UserError(f"--max_train_images {n} must be >= 1 (or left out for all images)")
        if n < len(data.train):
            pick = np.sort(np.random.default_rng([seed, 1]).choice(len(data.train), n, replace=False))
            data = dataclasses.replace(data, train=data.train.subset(pick))
    return data


def load_init_weights(model: nn.Module, path: str) -> None:
    """Load ``--init`` into ``model``, refusing any missing, unexpected or mis-shaped tensor."""
    ckpt = load_checkpoint(path, "--init checkpoint")
    state = ckpt.get("state_dict", ckpt)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"--init {path!r} holds no state dict of tensors; pass a checkpoint of this network")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if missing or extra:
        what = f"lacks {missing[0]}" if missing else f"has {extra[0]}, which the network has not"
        raise UserError(
            f"--init {path!r} does not fit this network: it {what} ({len(missing)} missing, "
            f"{len(extra)} unexpected tensors); pass a checkpoint of the same net.subnet (a supernet goes to "
            "--supernet_path)"
        )
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise UserError(
                f"--init {path!r} does not fit this network: {k} has shape {tuple(state[k].shape)}, "
                f"expected {tuple(v.shape)}; pass a checkpoint of the same net.subnet and dataset"
            )
    model.load_state_dict(state)


def prepare_subnet(cfg: SubnetTrainConfig) -> SubnetJob:
    """Read the ``net.subnet``, load the data and build the network with its initial weights."""
    kwargs = {"width_mult": cfg.width_mult} if cfg.search_space == "mobilenetv3" else {}
    space = get_search_space(cfg.search_space, **kwargs)
    arch = _read_arch(space, cfg)
    init = cfg.init
    if init is not None and init != "scratch" and not os.path.isfile(init):
        raise UserError(
            f"--init {init!r} does not exist; pass a checkpoint file of this network or 'scratch'"
        )
    if init is not None and cfg.supernet_path:
        raise UserError("give either --init or --supernet_path: both set the initial weights")
    data = load_data(cfg, cfg.seed)
    torch.manual_seed(cfg.seed)  # the random initialisation (and a fresh classifier) depend on --seed only
    if hasattr(space, "make_supernet"):
        supernet = space.make_supernet(data.n_classes)
        source = f"scratch (random initialisation, seed {cfg.seed})"
        if cfg.supernet_path and init is None:
            skipped = space.load_weights(supernet, cfg.supernet_path)
            source = f"inherited from {cfg.supernet_path}"
            if skipped:
                source += f" (classifier re-initialised for {data.n_classes} classes)"
        model = space.build(arch, supernet)
        resolution = int(arch["r"])
    else:
        if cfg.supernet_path:
            raise UserError(f"the {cfg.search_space} space has no supernet; leave out --supernet_path")
        model = space.build(arch, n_classes=data.n_classes)
        source = f"scratch (random initialisation, seed {cfg.seed})"
        resolution = data.image_size
    if init is not None and init != "scratch":
        load_init_weights(model, init)
        source = f"checkpoint {init}"
    return SubnetJob(space, arch, model, data, resolution, source)


def _check_run_dir(save: str, space: SearchSpace, arch: Arch) -> str | None:
    """The ``net.stats`` of ``save`` must be a JSON object and its ``net.subnet`` this network."""
    stats = os.path.join(save, "net.stats")
    if os.path.isfile(stats) and not isinstance(read_json(stats, "net.stats"), dict):
        raise UserError(f"{stats} is not a JSON object; move it away or choose another --save")
    subnet = os.path.join(save, "net.subnet")
    if os.path.isfile(subnet):
        other = read_json(subnet, "subnet file")
        try:
            same = space.arch_id(space.validate(other)) == space.arch_id(arch)
        except UserError:
            same = False
        if not same:
            raise UserError(f"{subnet} holds another network; choose another --save")
        return None
    return subnet


def merge_stats(path: str, key: str, metrics: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Put ``metrics`` under ``key`` in the JSON object at ``path`` (``base`` if it is new), atomically;
    every other key is kept."""
    stats = read_json(path, "net.stats") if os.path.isfile(path) else dict(base)
    if not isinstance(stats, dict):
        raise UserError(f"{path} is not a JSON object; move it away or choose another --save")
    stats[key] = metrics
    write_json(path, stats)
    return stats


def train_subnet(
    cfg: SubnetTrainConfig,
    loss_fn: LossFn | None = None,
    evaluate_fn: EvaluateFn | None = None,
    model_fn: Callable[[SubnetJob], nn.Module] | None = None,
    stats_key: str = "trained",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """``train.py subnet``: fine-tune the network of ``cfg.subnet``, then write its test metrics.

    Returns what is written under ``stats_key`` in ``<save>/net.stats``. Task trainers pass their
    own ``loss_fn``/``evaluate_fn``, ``model_fn(job) -> module to train`` (e.g. the subnet with
    exit heads; default ``job.model``) and ``stats_key``.
    """
    check_finetune_config(cfg)
    job = prepare_subnet(cfg)
    if not cfg.save:
        cfg = dataclasses.replace(cfg, save=os.path.dirname(os.path.abspath(cfg.subnet)))
    new_subnet = _check_run_dir(cfg.save, job.space, job.arch)
    meta = {"arch": job.arch, "n_classes": job.data.n_classes, "dataset": cfg.dataset}
    trainer = Finetuner(
        model_fn(job) if model_fn is not None else job.model,
        job.data,
        job.resolution,
        cfg,
        loss_fn=loss_fn,
        evaluate_fn=evaluate_fn,
        identity={"arch": job.space.canonical(job.arch)},
        meta=meta,
        log=log,
    )
    log(
        f"{cfg.subnet}: {job.space.arch_id(job.arch)} at {job.resolution}px on {cfg.dataset} "
        f"({len(job.data.train)} training images); initial weights: {job.init}"
    )
    trainer.fit()
    if new_subnet is not None:
        write_json(new_subnet, job.arch)
    res = trainer.test()
    trained: dict[str, Any] = {
        **{k: float(v) for k, v in res.items()},
        "split": "test",
        "test_images": len(job.data.test),
        "dataset": cfg.dataset,
        "epochs": cfg.epochs,
        "optimizer": cfg.optimizer,
        "init": job.init,
        "checkpoint": "ckpt.pth",
    }
    if trainer.best:
        trained["best_valid"] = trainer.best
    stats_path = os.path.join(cfg.save, "net.stats")
    merge_stats(stats_path, stats_key, trained, {"id": job.space.arch_id(job.arch), "arch": job.arch})
    shown = "  ".join(f"{k} {v:.2f}%" if k.startswith("top") else f"{k} {v:.4f}" for k, v in res.items())
    log(f"test ({len(job.data.test)} images): {shown}")
    log(f"weights: {os.path.join(cfg.save, 'ckpt.pth')}  stats: {stats_path}  log: {cfg.save}/log.csv")
    return trained
