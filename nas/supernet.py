"""Weight-sharing supernet training with the sandwich rule and in-place distillation.

Why the sandwich rule (BigNAS / AttentiveNAS style) and not OFA's progressive shrinking:
progressive shrinking first trains the full network, then unlocks kernel, depth and width in
separate phases, each of many epochs, and relies on a well-trained teacher; from scratch on a
CPU that is hours. The sandwich rule trains every size at once from the first step: each step
updates the largest subnet on the labels, and the smallest plus ``n_random`` random subnets on
the largest one's soft predictions (in-place distillation), accumulating their gradients into
one optimiser step. The two ends of the space are trained in every step, so both the cheapest
and the most accurate networks are usable after a few epochs.

Resolution is part of the architecture: the largest subnet trains at the highest resolution of
the space, the smallest at the lowest, random ones at a random resolution of the space.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from nas.config import option, save_config
from nas.data import DataSplits, load_dataset, make_loader
from nas.device import resolve_device
from nas.errors import UserError
from nas.io import atomic_write_bytes, load_checkpoint, save_checkpoint
from nas.scoring import score_subnet
from nas.space import Arch, SearchSpace, get_search_space


@dataclass
class SupernetConfig:
    """Defaults of ``train.py supernet``; every field is also a command-line flag."""

    dataset: str = option("cifar10_embedded", "dataset name (see --help of train.py for the list)")
    data: str | None = option(None, "dataset folder; default: the dataset's own default location")
    n_classes: int | None = option(None, "number of classes; must match the dataset (default: the dataset's)")
    vld_size: int = option(0, "images held out of training as the validation split (balanced per class)")
    search_space: str = option("mobilenetv3", "search space whose supernet is trained")
    width_mult: float = option(1.0, "OFA width multiplier (1.0 or 1.2)")
    lr: int = option(192, "lowest input resolution of the space, pixels")
    ur: int = option(256, "highest input resolution of the space, pixels")
    rstep: int = option(4, "resolution step, pixels")
    supernet_path: str | None = option(None, "OFA-format checkpoint to start from (a state dict)")
    pretrained: bool | None = option(
        None, "start from --supernet_path, or download OFA's ImageNet weights if none (default: iff a path)"
    )
    epochs: int = option(30, "training epochs")
    batch_size: int = option(64, "images per step")
    base_lr: float = option(0.1, "peak learning rate of SGD (nesterov, momentum 0.9)")
    weight_decay: float = option(5e-5, "weight decay (not applied to BatchNorm and biases)")
    warmup_epochs: float = option(1.0, "linear warm-up of the learning rate, epochs")
    label_smoothing: float = option(0.1, "label smoothing of the largest subnet's loss")
    n_random: int = option(2, "random subnets per step besides the largest and the smallest")
    kd_ratio: float = option(
        1.0, "smaller subnets' loss: kd_ratio * KL(largest's softmax) + (1 - kd_ratio) * label loss"
    )
    steps_per_epoch: int | None = option(None, "cap on steps per epoch (default: one pass over the data)")
    bn_batches: int = option(10, "training batches used to recalibrate BatchNorm before evaluation")
    eval_images: int | None = option(None, "evaluate on at most this many images per epoch (default: all)")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    num_workers: int = option(2, "data-loading workers (streaming datasets only)")
    seed: int = option(0, "random seed (data split, subnet sampling, initialisation)")
    save: str = option("results/supernet", "run directory: checkpoints, logs, config")
    resume: bool = option(False, "continue from <save>/checkpoint.pth if it exists")


class SupernetTrainer:
    """Trains a supernet of ``space`` on ``data``; resumable at epoch boundaries."""

    def __init__(self, cfg: SupernetConfig) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.n_random < 0:
            raise UserError("--epochs and --batch_size must be >= 1 and --n_random >= 0")
        if not 0 <= cfg.kd_ratio <= 1:
            raise UserError(f"--kd_ratio {cfg.kd_ratio} must lie in [0, 1]")
        self.space: SearchSpace = get_search_space(
            cfg.search_space, lr=cfg.lr, ur=cfg.ur, rstep=cfg.rstep, width_mult=cfg.width_mult
        )
        self.data: DataSplits = load_dataset(cfg.dataset, cfg.data, vld_size=cfg.vld_size, seed=cfg.seed)
        if cfg.n_classes is not None and cfg.n_classes != self.data.n_classes:
            raise UserError(
                f"--n_classes {cfg.n_classes} does not match {cfg.dataset} ({self.data.n_classes} classes)"
            )
        torch.manual_seed(cfg.seed)
        self.supernet = self.space.make_supernet(self.data.n_classes).to(self.device)
        self.supernet = self.supernet.to(memory_format=torch.channels_last)
        if cfg.pretrained or (cfg.pretrained is None and cfg.supernet_path):
            self.space.load_weights(self.supernet, cfg.supernet_path)
        self.optimizer = self._make_optimizer()
        self.epoch = 0  # epochs completed
        self.history: list[dict] = []

    # ---- set-up ---------------------------------------------------------------------------

    def _make_optimizer(self) -> torch.optim.Optimizer:
        decay, no_decay = [], []
        for name, p in self.supernet.named_parameters():
            (no_decay if p.ndim <= 1 or ".bn." in name else decay).append(p)
        return torch.optim.SGD(
            [
                {"params": decay, "weight_decay": self.cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.cfg.base_lr,
            momentum=0.9,
            nesterov=True,
        )

    def _lr_at(self, step: int, total: int, steps_per_epoch: int) -> float:
        """Linear warm-up, then cosine decay to zero."""
        warm = int(self.cfg.warmup_epochs * steps_per_epoch)
        if step < warm:
            return self.cfg.base_lr * (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return 0.5 * self.cfg.base_lr * (1 + math.cos(math.pi * t))

    # ---- checkpoints ----------------------------------------------------------------------

    @property
    def ckpt_path(self) -> str:
        return os.path.join(self.cfg.save, "checkpoint.pth")

    def save(self) -> None:
        save_checkpoint(
            self.ckpt_path,
            {
                "state_dict": self.supernet.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "epoch": self.epoch,
                "history": self.history,
                "config": dataclasses.asdict(self.cfg),
            },
        )
        # The weights alone, in OFA's format, for --supernet_path of the other commands.
        save_checkpoint(
            os.path.join(self.cfg.save, "supernet.pth"), {"state_dict": self.supernet.state_dict()}
        )

    def try_resume(self) -> bool:
        if not (self.cfg.resume and os.path.isfile(self.ckpt_path)):
            return False
        ckpt = load_checkpoint(self.ckpt_path, "supernet training checkpoint")
        old = ckpt.get("config", {})
        for key in ("dataset", "search_space", "width_mult", "lr", "ur", "rstep", "seed", "vld_size"):
            if old.get(key) != getattr(self.cfg, key):
                raise UserError(
                    f"--resume: {self.ckpt_path} was trained with {key}={old.get(key)!r}, not "
                    f"{getattr(self.cfg, key)!r}; use the same settings or another --save"
                )
        self.supernet.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.epoch = int(ckpt["epoch"])
        self.history = list(ckpt.get("history", []))
        return True

    # ---- training -------------------------------------------------------------------------

    def _sandwich(self, rng: np.random.Generator) -> list[Arch]:
        return [self.space.largest(), self.space.smallest(), *self.space.sample(self.cfg.n_random, rng)]

    def _step(self, x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator) -> float:
        """One sandwich step; returns the largest subnet's loss."""
        cfg = self.cfg
        self.optimizer.zero_grad(set_to_none=True)
        teacher = None
        top_loss = 0.0
        for i, arch in enumerate(self._sandwich(rng)):
            self.space.activate(self.supernet, arch)
            xi = x if x.shape[-1] == arch["r"] else F.interpolate(x, size=arch["r"], mode="bilinear")
            logits = self.supernet(xi.contiguous(memory_format=torch.channels_last))
            if i == 0:
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                teacher = F.softmax(logits.detach(), dim=1)
                top_loss = loss.item()
            else:
                loss = (1 - cfg.kd_ratio) * F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                if cfg.kd_ratio > 0:
                    kd = F.kl_div(F.log_softmax(logits, dim=1), teacher, reduction="batchmean")
                    loss = loss + cfg.kd_ratio * kd
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} for subnet {arch}; lower --base_lr")
            loss.backward()
        nn.utils.clip_grad_norm_(self.supernet.parameters(), 5.0)
        self.optimizer.step()
        return top_loss

    def train(self, log=print) -> list[dict]:
        """Train the remaining epochs; checkpoint and log after every epoch."""
        cfg = self.cfg
        if self.try_resume():  # before writing anything: a refused resume must leave the run as it was
            log(f"resumed from {self.ckpt_path} after epoch {self.epoch}")
        save_config(cfg, os.path.join(cfg.save, "config.yaml"))
        loader = make_loader(
            self.data.train,
            cfg.batch_size,
            self.space.resolutions[-1],
            train=True,
            device=self.device,
            seed=cfg.seed,
            num_workers=cfg.num_workers,
        )
        steps = len(loader) if cfg.steps_per_epoch is None else min(len(loader), cfg.steps_per_epoch)
        if steps == 0:
            raise UserError(
                f"--batch_size {cfg.batch_size} exceeds the {len(self.data.train)} training images"
            )
        total = steps * cfg.epochs
        while self.epoch < cfg.epochs:
            e = self.epoch
            loader.set_epoch(e)
            torch.manual_seed(cfg.seed * 1000 + e)  # dropout of this epoch, reproducible on resume
            self.supernet.train()
            t0, loss_sum = time.time(), 0.0
            bar = tqdm(
                total=steps, desc=f"epoch {e + 1}/{cfg.epochs}", leave=False, dynamic_ncols=True, disable=None
            )
            for i, (x, y) in enumerate(loader):
                if i >= steps:
                    break
                for g in self.optimizer.param_groups:
                    g["lr"] = self._lr_at(e * steps + i, total, steps)
                loss_sum += self._step(x, y, np.random.default_rng([cfg.seed, e, i]))
                bar.set_postfix(loss=f"{loss_sum / (i + 1):.3f}")
                bar.update()
            bar.close()
            train_time = time.time() - t0
            self.epoch = e + 1
            row = {"epoch": self.epoch, "train_loss": loss_sum / steps, "train_time_s": train_time}
            row.update(self.evaluate_ends())
            self.history.append(row)
            self.save()
            self._write_log()
            log(
                f"epoch {self.epoch}/{cfg.epochs}  loss {row['train_loss']:.3f}  "
                f"top1 smallest {row['top1_smallest']:.2f}%  largest {row['top1_largest']:.2f}%  "
                f"({train_time:.0f}s train)"
            )
        return self.history

    def evaluate_ends(self) -> dict[str, float]:
        """Top-1 of the smallest and largest subnets on the validation (or test) split."""
        split = self.data.valid if self.data.valid is not None else self.data.test
        out = {}
        for tag, arch in (("smallest", self.space.smallest()), ("largest", self.space.largest())):
            res = score_subnet(
                self.space,
                self.supernet,
                arch,
                self.data,
                split,
                self.device,
                bn_batches=self.cfg.bn_batches,
                max_images=self.cfg.eval_images,
                seed=self.cfg.seed,
            )
            out[f"top1_{tag}"] = res["top1"]
        return out

    def _write_log(self) -> None:
        keys = list(self.history[0])
        lines = [",".join(keys)] + [",".join(f"{r[k]:.6g}" for k in keys) for r in self.history]
        atomic_write_bytes(os.path.join(self.cfg.save, "log.csv"), ("\n".join(lines) + "\n").encode())
