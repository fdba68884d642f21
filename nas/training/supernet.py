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

The training is the one loop (:class:`~nas.training.loop.TrainLoop`): the sandwich is its step
hook, the evaluation of both ends its end-of-epoch hook; optimiser, schedule, clipping, AMP,
checkpoints and ``--resume`` are the loop's.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nas.config import option
from nas.data import DataSplits, load_dataset
from nas.errors import UserError
from nas.scoring import score_subnet
from nas.search.description import default_space_name
from nas.space import Arch, SearchSpace, get_search_space
from nas.training.loop import TrainConfig, TrainLoop


@dataclass
class SupernetConfig(TrainConfig):
    """Defaults of ``train.py supernet``; every field is also a command-line flag."""

    dataset: str = option("cifar10_embedded", "dataset name (see --help of train.py for the list)")
    data: str | None = option(None, "dataset folder; default: the dataset's own default location")
    n_classes: int | None = option(None, "number of classes; must match the dataset (default: the dataset's)")
    vld_size: int = option(0, "images held out of training as the validation split (balanced per class)")
    search_space: str | None = option(
        None, "search space whose supernet is trained (default: the default preset's, e.g. mobilenetv3)"
    )
    width_mult: float = option(1.0, "OFA width multiplier (1.0 or 1.2)")
    lr: int = option(192, "lowest input resolution of the space, pixels")
    ur: int = option(256, "highest input resolution of the space, pixels")
    rstep: int = option(4, "resolution step, pixels")
    supernet_path: str | None = option(None, "OFA-format checkpoint to start from (a state dict)")
    pretrained: bool | None = option(
        None, "start from --supernet_path, or download OFA's ImageNet weights if none (default: iff a path)"
    )
    # the loop's options with the supernet's defaults
    epochs: int = option(30, "training epochs")
    base_lr: float | None = option(0.1, "peak learning rate of SGD (nesterov, momentum 0.9)")
    label_smoothing: float = option(0.1, "label smoothing of the largest subnet's loss")
    grad_clip: float | None = option(5.0, "clip the gradients' global norm to this value; none: no clipping")
    save: str | None = option("results/supernet", "run directory: checkpoints, logs, config")
    n_random: int = option(2, "random subnets per step besides the largest and the smallest")
    kd_ratio: float = option(
        1.0, "smaller subnets' loss: kd_ratio * KL(largest's softmax) + (1 - kd_ratio) * label loss"
    )
    bn_batches: int = option(10, "training batches used to recalibrate BatchNorm before evaluation")
    eval_images: int | None = option(None, "evaluate on at most this many images per epoch (default: all)")


def space_from_config(cfg: Any) -> SearchSpace:
    """The search space ``cfg.search_space`` (default: the default preset's) with the options
    ``cfg`` has fields for (e.g. ``lr``, ``ur``, ``rstep``, ``width_mult``)."""
    from nas.space import SEARCH_SPACES

    name = cfg.search_space or default_space_name()
    fields = [f.name for f in dataclasses.fields(SEARCH_SPACES.get(name).Options)]
    return get_search_space(name, **{k: getattr(cfg, k) for k in fields if hasattr(cfg, k)})


class SupernetTrainer:
    """Trains a supernet of the configured space on ``data``; resumable at epoch boundaries."""

    def __init__(self, cfg: SupernetConfig) -> None:
        self.cfg = cfg
        if cfg.n_random < 0:
            raise UserError(f"--n_random {cfg.n_random} must be >= 0")
        if not 0 <= cfg.kd_ratio <= 1:
            raise UserError(f"--kd_ratio {cfg.kd_ratio} must lie in [0, 1]")
        self.space: SearchSpace = space_from_config(cfg)
        self.space.require("supernet", "train.py supernet")
        self.data: DataSplits = load_dataset(cfg.dataset, cfg.data, vld_size=cfg.vld_size, seed=cfg.seed)
        if cfg.n_classes is not None and cfg.n_classes != self.data.n_classes:
            raise UserError(
                f"--n_classes {cfg.n_classes} does not match {cfg.dataset} ({self.data.n_classes} classes)"
            )
        torch.manual_seed(cfg.seed)
        self.supernet = self.space.make_supernet(self.data.n_classes)
        if cfg.pretrained or (cfg.pretrained is None and cfg.supernet_path):
            self.space.load_weights(self.supernet, cfg.supernet_path)
        self.loop: TrainLoop | None = None

    @property
    def device(self) -> torch.device:
        return self._loop().device

    @property
    def history(self) -> list[dict]:
        return self._loop().history

    @property
    def epoch(self) -> int:
        """Epochs completed."""
        return self._loop().epoch

    def _loop(self) -> TrainLoop:
        """The training loop (made on first use: it builds the loader, the optimiser and the schedule)."""
        if self.loop is None:
            self.loop = TrainLoop(
                self.supernet,
                self.data,
                self.space.resolutions[-1],  # batches at the highest resolution, resized per subnet
                self.cfg,
                step_fn=self._sandwich_step,
                on_epoch_end=lambda loop: self.evaluate_ends(),
                weights_file="supernet.pth",  # OFA's format, for --supernet_path of the other commands
                weights_every_epoch=True,
            )
            self.supernet = self.loop.model
        return self.loop

    # ---- training -------------------------------------------------------------------------

    def _sandwich(self, rng: np.random.Generator) -> list[Arch]:
        return [self.space.largest(), self.space.smallest(), *self.space.sample(self.cfg.n_random, rng)]

    def _sandwich_step(self, loop: TrainLoop, x: torch.Tensor, y: torch.Tensor) -> tuple[float, None]:
        """One sandwich step's forward and backward passes; returns the largest subnet's loss."""
        cfg, teacher, top_loss = self.cfg, None, 0.0
        rng = np.random.default_rng([cfg.seed, loop.epoch, loop.step_in_epoch])
        for i, arch in enumerate(self._sandwich(rng)):
            self.space.activate(loop.model, arch)
            r = self.space.resolution(arch)
            xi = x if x.shape[-1] == r else F.interpolate(x, size=r, mode="bilinear")
            with loop.autocast():
                logits = loop.model(xi.contiguous(memory_format=torch.channels_last))
                if i == 0:
                    loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                    teacher = F.softmax(logits.detach().float(), dim=1)
                    top_loss = loss.item()
                else:
                    loss = (1 - cfg.kd_ratio) * F.cross_entropy(
                        logits, y, label_smoothing=cfg.label_smoothing
                    )
                    if cfg.kd_ratio > 0:
                        kd = F.kl_div(F.log_softmax(logits.float(), dim=1), teacher, reduction="batchmean")
                        loss = loss + cfg.kd_ratio * kd
            loop.backward(loss)
        return top_loss, None

    def train(self, log=print) -> list[dict]:
        """Train the remaining epochs; checkpoint, log and write ``supernet.pth`` after every epoch."""
        loop = self._loop()
        loop.log = log
        history = loop.fit()
        return history

    def evaluate_ends(self) -> dict[str, float]:
        """Top-1 of the smallest and largest subnets on the validation split (the test split when
        there is none: for monitoring only, nothing is chosen by it)."""
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

    @property
    def ckpt_path(self) -> str:
        return os.path.join(self.cfg.save, "checkpoint.pth")
