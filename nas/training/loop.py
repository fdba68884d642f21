"""The one training loop of the toolkit, with hooks.

:class:`TrainLoop` trains any ``nn.Module`` on a :class:`~nas.data.DataSplits` with the options of
:class:`TrainConfig`: an optimiser from :data:`~nas.training.optim.OPTIMIZERS` (SGD, Adam, AdamW,
SAM), a per-step linear warm-up then cosine decay, label smoothing, mixed precision on CUDA, and
with a run directory (``save``) a checkpoint after every epoch (``--resume`` continues
bit-identically after a kill), ``log.csv`` (and TensorBoard when installed) and the weights.
Without a run directory (a search's fine-tuning of a candidate) nothing is written.

Everything that differs between trainings is a hook, so no training copies the loop:

- ``loss_fn(model, x, y) -> (loss, logits)``: a step's loss (default: cross-entropy of the final
  output with label smoothing); task trainers (early exits, layer skipping) give theirs;
- ``step_fn(loop, x, y) -> (loss, logits)``: a step with several forward/backward passes whose
  gradients accumulate (the supernet's sandwich rule); it calls ``loop.backward(loss)``;
- ``evaluate_fn(model, batches) -> metrics``: scores the validation and test splits (default:
  top-1, top-5 and loss of the final output);
- ``on_epoch_start(loop)``: before each epoch's first step (``loop.epoch`` epochs done, also after a
  ``--resume``): per-epoch settings of a task, e.g. soft or hard gates, a loss weight's ramp;
- ``on_epoch_end(loop) -> metrics``: what is measured after each epoch (default: ``evaluate_fn``
  on the validation split, when there is one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from nas.config import option, save_config
from nas.data import DataSplits, Split, make_loader
from nas.data.loaders import derive_seed
from nas.device import resolve_device
from nas.errors import UserError
from nas.io import atomic_write_bytes, load_checkpoint, save_checkpoint
from nas.scoring import accuracy, final_output
from nas.training.after import after_training_fields
from nas.training.optim import OPTIMIZERS, SharpnessAware, frozen_bn_stats, param_groups, warmup_cosine

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
# (model, x, y) -> (loss, logits or None); the logits give the running training top-1
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]
# (model, batches) -> metrics such as {"top1", "top5", "loss"}
EvaluateFn = Callable[[nn.Module, Batches], dict[str, float]]


@dataclass
class TrainConfig:
    """Options of the training loop; every field is also a command-line flag."""

    epochs: int = option(50, "training epochs")
    batch_size: int = option(64, "images per step")
    optimizer: str = option(
        "sgd", f"optimiser: {', '.join(OPTIMIZERS.names())} (sam, asam: SGD + (adaptive) SAM)"
    )
    base_lr: float | None = option(
        None, "peak learning rate; none: 0.05 for sgd, sam and asam, 0.001 for adam and adamw"
    )
    momentum: float = option(0.9, "momentum of sgd, sam and asam (nesterov for sgd)")
    weight_decay: float = option(5e-5, "weight decay (not applied to BatchNorm and biases)")
    new_lr_mult: float = option(
        1.0, "learning-rate multiplier of the parts a task adds to a pre-trained network (exit heads, gates)"
    )
    sam_rho: float = option(
        0.05, "ascent radius of --optimizer sam (asam: relative to the weights, 0.5 to 2 is usual)"
    )
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
    """Cross-entropy of the model's final output with label smoothing."""

    def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = final_output(model(x))
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing), logits

    return loss_fn


def as_channels_last(batches: Batches) -> Batches:
    """Batches with images in channels-last memory order (faster convolutions on CPU and GPU)."""
    for x, y in batches:
        yield x.contiguous(memory_format=torch.channels_last), y


class TrainLoop:
    """Trains ``model`` on ``data.train`` at ``resolution`` pixels; resumable at epoch boundaries.

    Hooks: see the module docstring. ``identity`` holds further settings a ``--resume`` must match
    (e.g. the architecture); ``meta`` is stored with the weights, which go to ``weights_file`` at
    the end (and after every epoch with ``weights_every_epoch``).
    """

    def __init__(
        self,
        model: nn.Module,
        data: DataSplits,
        resolution: int,
        cfg: TrainConfig,
        loss_fn: LossFn | None = None,
        evaluate_fn: EvaluateFn | None = None,
        step_fn: Callable[[TrainLoop, torch.Tensor, torch.Tensor], tuple[float, torch.Tensor | None]]
        | None = None,
        on_epoch_end: Callable[[TrainLoop], dict[str, float]] | None = None,
        on_epoch_start: Callable[[TrainLoop], None] | None = None,
        identity: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        weights_file: str = "ckpt.pth",
        weights_every_epoch: bool = False,
        log: Callable[[str], None] = print,
    ) -> None:
        check_train_config(cfg)
        self.cfg, self.data, self.resolution, self.log = cfg, data, resolution, log
        self.device = resolve_device(cfg.device)
        self.spec = OPTIMIZERS.get(cfg.optimizer)
        self.base_lr = cfg.base_lr if cfg.base_lr is not None else self.spec.default_lr
        self.model = model.to(self.device).to(memory_format=torch.channels_last)
        self.loss_fn = loss_fn or default_loss(cfg.label_smoothing)
        self.evaluate_fn = evaluate_fn or accuracy
        self.step_fn = step_fn or _loss_step
        self.on_epoch_end = on_epoch_end or validate_epoch
        self.on_epoch_start = on_epoch_start or (lambda loop: None)
        self.identity = identity or {}
        self.meta = meta or {}
        self.weights_file, self.weights_every_epoch = weights_file, weights_every_epoch
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
        if self.steps == 0:
            raise UserError(f"--batch_size {cfg.batch_size} exceeds the {len(data.train)} training images")
        self.optimizer = self.spec.make(
            param_groups(self.model, cfg.weight_decay, self.base_lr, cfg.new_lr_mult), self.base_lr, cfg
        )
        sam = self.spec.sam
        self.sam = SharpnessAware(self.model.parameters(), cfg.sam_rho, self.spec.adaptive) if sam else None
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(int(cfg.warmup_epochs * self.steps), self.steps * cfg.epochs)
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp)
        self.epoch = 0  # epochs completed
        self.step_in_epoch = 0  # the step being taken, within the epoch
        self.history: list[dict[str, float]] = []
        self.best: dict[str, float] = {}  # epoch and metrics of the best validation top-1

    # ---- checkpoints ----------------------------------------------------------------------

    @property
    def ckpt_path(self) -> str:
        return os.path.join(self.cfg.save, "checkpoint.pth")

    def settings(self) -> dict[str, Any]:
        """What a ``--resume`` must match: the options (minus RESUME_FREE) and ``identity``."""
        free = RESUME_FREE | after_training_fields()
        own = {k: v for k, v in dataclasses.asdict(self.cfg).items() if k not in free}
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
        # an option added after the checkpoint was written is taken at its default
        old = {**{f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in new}, **old}
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
        """The weights alone (``{"state_dict", **meta}``), by default as ``<save>/<weights_file>``."""
        path = path or os.path.join(self.cfg.save, self.weights_file)
        save_checkpoint(path, {"state_dict": self.model.state_dict(), **self.meta})
        return path

    # ---- training -------------------------------------------------------------------------

    def autocast(self):
        """The context of a forward pass: float16 autocast with ``--amp`` on CUDA, else nothing."""
        if self.use_amp:
            return torch.autocast(self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        """Backpropagate one loss of this step (gradients accumulate); refuses a non-finite loss."""
        if not torch.isfinite(loss):
            raise UserError(
                f"the training loss became {loss.item()} at epoch {self.epoch + 1}; lower --base_lr "
                f"(now {self.base_lr:g}) or set --grad_clip"
            )
        self.scaler.scale(loss).backward()

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor | None]:
        """One optimisation step; returns the loss and the logits of the (unperturbed) forward pass."""
        self.optimizer.zero_grad(set_to_none=True)
        loss, logits = self.step_fn(self, x, y)
        if self.sam is not None:
            self.sam.ascend()
            self.optimizer.zero_grad(set_to_none=True)
            with frozen_bn_stats(self.model):
                self.step_fn(self, x, y)
            self.sam.restore()  # the descent uses the perturbed point's gradients at the original weights
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss, None if logits is None else logits.detach()

    def fit(self) -> list[dict[str, float]]:
        """Train the remaining epochs; checkpoint, log and report after every epoch."""
        cfg = self.cfg
        persist = bool(cfg.save)  # without a run directory (a search's fine-tuning): nothing on disk
        if persist and self.try_resume():  # before writing anything: a refused resume leaves it as it was
            self.log(f"resumed from {self.ckpt_path} after epoch {self.epoch}")
        if persist:
            save_config(cfg, os.path.join(cfg.save, "config.yaml"))
        if self.use_amp:
            self.log("mixed precision: float16 autocast with GradScaler")
        writer = self._tensorboard() if persist else None
        while self.epoch < cfg.epochs:
            e = self.epoch
            self.loader.set_epoch(e)
            torch.manual_seed(derive_seed(cfg.seed, e, 3))  # dropout of this epoch, reproducible on resume
            self.model.train()
            self.on_epoch_start(self)
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
                self.step_in_epoch = i
                lr = self.optimizer.param_groups[0]["lr"]
                loss, logits = self._step(x, y)
                loss_sum += loss
                if logits is not None:
                    correct += (logits.argmax(1) == y).sum().item()
                    seen += len(y)
                bar.set_postfix(loss=f"{loss_sum / (i + 1):.3f}", lr=f"{lr:.3g}")
                bar.update()
            bar.close()
            train_time = time.time() - t0
            self.epoch = e + 1
            row: dict[str, float] = {"epoch": self.epoch, "lr": lr, "train_loss": loss_sum / self.steps}
            if seen:
                row["train_top1"] = 100.0 * correct / seen
            row.update(self.on_epoch_end(self))
            row["time_s"] = train_time
            self.history.append(row)
            if persist:
                self.save_checkpoint()
                if self.weights_every_epoch:
                    self.save_weights()
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
        for key, value in row.items():
            if key not in ("epoch", "lr", "train_loss", "time_s"):
                name = key.replace("_", " ")
                parts.append(f"{name} {value:.2f}%" if "top" in key else f"{name} {value:.4g}")
        return "  ".join(parts) + f"  ({row['time_s']:.0f}s train)"

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
        with self.autocast():
            return self.evaluate_fn(self.model, as_channels_last(loader))

    def test(self) -> dict[str, float]:
        return self.evaluate(self.data.test)


def _loss_step(loop: TrainLoop, x: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor | None]:
    """The default step: one forward pass, ``loss_fn``, one backward pass."""
    with loop.autocast():
        loss, logits = loop.loss_fn(loop.model, x, y)
    loop.backward(loss)
    return loss.item(), logits


def validate_epoch(loop: TrainLoop) -> dict[str, float]:
    """The default end of an epoch: ``evaluate_fn`` on the validation split, best top-1 kept."""
    if loop.data.valid is None:
        return {}
    res = loop.evaluate(loop.data.valid)
    if "top1" in res and res["top1"] > loop.best.get("valid_top1", -1.0):
        loop.best = {"epoch": loop.epoch, "valid_top1": res["top1"]}
    return {f"valid_{k}": v for k, v in res.items()}


def check_train_config(cfg: TrainConfig) -> None:
    """Refuse settings that cannot train, with the flag to change."""
    for name in ("epochs", "batch_size"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"--{name} {value!r} must be an integer >= 1")
    OPTIMIZERS.get(cfg.optimizer)  # unknown names: one line listing the choices
    if cfg.base_lr is not None and not cfg.base_lr > 0:
        raise UserError(f"--base_lr {cfg.base_lr} must be > 0")
    if not cfg.new_lr_mult > 0:
        raise UserError(f"--new_lr_mult {cfg.new_lr_mult} must be > 0")
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
