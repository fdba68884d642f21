"""Trainers: how a candidate is trained before it is measured (the middle step of the pipeline).

A trainer is a registered component (:data:`TRAINERS`) whose ``train(model, arch, ctx)`` trains
the model in place with the one training loop (:class:`nas.training.loop.TrainLoop`: every optimiser
of the registry, SAM included, warm-up + cosine, AMP on CUDA) and returns metrics of its
training; its :meth:`Trainer.loss` is the loop's loss hook, so a task trainer (early exits,
layer skipping) overrides that and keeps the loop. ``single_exit`` is plain fine-tuning with
cross-entropy; with ``--n_epochs 0`` (the default) candidates keep their inherited weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.components import Component
from nas.config import option
from nas.errors import UserError
from nas.measures import EvalContext
from nas.registry import Registry
from nas.scoring import final_output

TRAINERS: Registry = Registry("trainer")


class Trainer(Component):
    """Trains a candidate in place; ``provides`` names the metrics :meth:`train` returns."""

    provides: ClassVar[tuple[str, ...]] = ()

    def check(self, space: Any) -> None:
        """Refuse a search space this trainer cannot train (one-line ``UserError``); called when the
        evaluator is built, before anything expensive (default: any space)."""

    def changes_weights(self) -> bool:
        """Whether :meth:`train` changes the weights (then the search keeps them as ``ckpt.pth``)."""
        return True

    def train(self, model: nn.Module, arch: Any, ctx: EvalContext) -> dict[str, Any]:
        """Train ``model`` (the network of ``arch``) on ``ctx.data.train``; metrics of the training."""
        return {}

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training loss of one batch and the logits the running training top-1 is counted on."""
        logits = final_output(model(x))
        return F.cross_entropy(logits, y), logits


@dataclass
class LoopOptions:
    """The training loop's options, as a search-time trainer exposes them (``msunas.py`` flags)."""

    n_epochs: int = option(0, "fine-tuning epochs per candidate before scoring (0: inherited weights)")
    batch_size: int = option(64, "fine-tuning images per step")
    optimizer: str = option("sgd", "fine-tuning optimiser (a registered one: sgd, adam, adamw, sam, asam)")
    base_lr: float = option(0.01, "peak fine-tuning learning rate")
    momentum: float = option(0.9, "momentum of sgd, sam and asam (nesterov for sgd)")
    weight_decay: float = option(5e-5, "weight decay (not applied to BatchNorm and biases)")
    new_lr_mult: float = option(
        1.0, "learning-rate multiplier of the parts a task adds to the candidate (exit heads, gates)"
    )
    sam_rho: float = option(
        0.05, "ascent radius of --optimizer sam (asam: relative to the weights, 0.5 to 2 is usual)"
    )
    warmup_epochs: float = option(0.0, "linear warm-up of the fine-tuning learning rate, epochs; then cosine")
    label_smoothing: float = option(0.0, "label smoothing of the fine-tuning loss")
    grad_clip: float | None = option(None, "clip the gradients' global norm to this value; none: no clipping")
    amp: bool = option(True, "mixed precision on CUDA while fine-tuning (CPU runs float32)")
    steps_per_epoch: int | None = option(None, "cap on fine-tuning steps per epoch; none: one pass")


class LoopTrainer(Trainer):
    """A trainer that runs the one training loop for ``n_epochs`` with its :meth:`loss`."""

    Options = LoopOptions
    provides = ("train_loss",)

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        if self.options.n_epochs < 0:
            raise UserError(f"--n_epochs {self.options.n_epochs} must be >= 0")

    def changes_weights(self) -> bool:
        return self.options.n_epochs > 0

    def train(self, model: nn.Module, arch: Any, ctx: EvalContext) -> dict[str, Any]:
        from nas.training.loop import TrainConfig, TrainLoop

        o = self.options
        if o.n_epochs == 0:
            return {}
        shared = {f.name for f in dataclasses.fields(TrainConfig)} & {f.name for f in dataclasses.fields(o)}
        cfg = TrainConfig(
            **{k: getattr(o, k) for k in shared},
            epochs=o.n_epochs,
            device=str(ctx.device),
            num_workers=ctx.num_workers,
            seed=ctx.seed,
            save=None,  # nothing on disk: the search keeps the weights it wants
        )
        data = dataclasses.replace(ctx.data, valid=None)  # the measures score the validation split
        data = self.begin(model, arch, ctx, data)
        loop = TrainLoop(
            model,
            data,
            ctx.resolution(arch),
            cfg,
            loss_fn=self.loss,
            on_epoch_end=self.on_epoch_end,
            on_epoch_start=self.on_epoch_start,
            log=lambda *_: None,
        )
        try:
            history = loop.fit()
        finally:
            self.end(model)
        return {"train_loss": history[-1]["train_loss"]}

    def begin(self, model: nn.Module, arch: Any, ctx: EvalContext, data: Any) -> Any:
        """Before a candidate's training: per-candidate state (e.g. its exit costs); returns the
        data to train on (default: ``data``, the training split without the validation images)."""
        return data

    def on_epoch_start(self, loop: Any) -> None:
        """Before each epoch (``loop.epoch`` epochs done, also after a resume): per-epoch settings."""

    def on_epoch_end(self, loop: Any) -> dict[str, float]:
        """After each epoch (``loop.epoch`` epochs done): metrics for the training log (default none)."""
        return {}

    def end(self, model: nn.Module) -> None:
        """After a candidate's training, also when it failed (default: nothing)."""


@TRAINERS.register("single_exit")
class SingleExit(LoopTrainer):
    """Plain fine-tuning: cross-entropy of the final output (label smoothing from the options)."""

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = final_output(model(x))
        return F.cross_entropy(logits, y, label_smoothing=self.options.label_smoothing), logits
