"""The gate trainer ``layer_skipping``, on the engine's one training loop (optimisers incl. SAM,
warm-up + cosine, AMP on CUDA, resume in ``train.py layer_skipping``).

Loss of a batch, with ``g`` the gates' values per sample (soft: ``p``; hard: the decision with the
straight-through gradient of ``p``) and ``target`` each gate's target sparsity::

    CE + w * sum_gates (mean_batch(g) - (1 - target))^2 + w * max(0, 0.01 - mean_samples(var_gates(g)))

The first term asks each gate to stay open for ``1 - target`` of the samples, the second keeps the
decisions input-dependent (samples differ in which blocks they run). ``w`` ramps linearly from
``--w_start`` (0.1) after the first epoch to 1.0 after ``--ramp_epochs`` (10). Epochs alternate
soft gates (even) and hard gates (odd); the last epoch is always hard, as the network is evaluated
with hard gates (``--gate_schedule hard``: hard gates throughout). After every epoch the network
is scored on the validation split with hard gates and the best epoch's weights are the ones kept
(``--keep_best``; the reference logged the best epoch but kept the last).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from LayerSkipping.network import straight_through
from nas.config import option
from nas.errors import UserError
from nas.io import load_checkpoint, save_checkpoint
from nas.measures import EvalContext
from nas.scoring import accuracy
from nas.training.trainers import TRAINERS, LoopOptions, LoopTrainer

SCHEDULES = ("alternate", "hard")
MIN_VARIANCE = 0.01
BEST_FILE = "gates_best.pth"  # the best epoch's weights, next to a train.py run's checkpoint


@dataclass
class GateTask:
    """What ``layer_skipping`` adds to the training loop's options (``train.py layer_skipping`` too)."""

    ramp_epochs: int = option(10, "layer_skipping: epochs over which the sparsity terms' weight ramps to 1")
    w_start: float = option(0.1, "layer_skipping: weight of the sparsity terms in the first epoch")
    gate_schedule: str = option(
        "alternate",
        "layer_skipping: alternate (soft gates on even epochs, hard on odd ones and the last) or hard",
    )
    keep_best: bool = option(
        True, "layer_skipping: keep the weights of the epoch with the best validation top-1"
    )


@dataclass
class GateOptions(LoopOptions, GateTask):
    n_epochs: int = option(2, "training epochs of every candidate's gates (with the backbone)")
    new_lr_mult: float = option(
        10.0, "learning-rate multiplier of the gates (freshly initialised) over the backbone"
    )


def ramp_weight(epoch: int, ramp_epochs: int, start: float) -> float:
    """The sparsity terms' weight in epoch ``epoch`` (0-based): ``start`` -> 1 over ``ramp_epochs``."""
    if ramp_epochs <= 0:
        return 1.0
    return start + (1.0 - start) * min(1.0, epoch / ramp_epochs)


def epoch_mode(epoch: int, n_epochs: int, schedule: str) -> str:
    """``soft`` or ``hard`` gates in epoch ``epoch`` (0-based) of ``n_epochs``."""
    if schedule == "hard" or epoch % 2 == 1 or epoch == n_epochs - 1:
        return "hard"
    return "soft"


def sparsity_terms(g: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``sum_gates (mean_batch(g) - (1 - target))^2 + max(0, 0.01 - mean_samples(var_gates(g)))``
    for gate values ``g`` [n, gates] (the variance term needs two gates)."""
    if g.shape[1] == 0:
        return g.new_zeros(())
    loss = ((g.mean(0) - (1.0 - targets)) ** 2).sum()
    if g.shape[1] > 1:
        loss = loss + F.relu(MIN_VARIANCE - g.var(dim=1, unbiased=False).mean())
    return loss


def require_gated_space(space: Any, what: str) -> None:
    if not hasattr(space, "gate_plan"):
        raise UserError(f"{what} needs the gated search space skippingmobilenetv3, not {space.name!r}")


@TRAINERS.register("layer_skipping")
class GateTrainer(LoopTrainer):
    """Gates and backbone trained together: cross-entropy + ramped sparsity terms (module docstring)."""

    Options = GateOptions

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        o = self.options
        if o.gate_schedule not in SCHEDULES:
            raise UserError(f"--gate_schedule {o.gate_schedule!r} is not one of: {', '.join(SCHEDULES)}")
        if o.ramp_epochs < 0:
            raise UserError(f"--ramp_epochs {o.ramp_epochs} must be >= 0")
        self._state: dict[str, Any] = {}

    def check(self, space: Any) -> None:
        require_gated_space(space, "the layer_skipping trainer")

    def begin(self, model: nn.Module, arch: Any, ctx: EvalContext, data: Any) -> Any:
        self._state = {"ctx": ctx, "arch": arch, "w": self.options.w_start, "best": None, "best_top1": -1.0}
        return data

    def on_epoch_start(self, loop: Any) -> None:
        o, st = self.options, self._state
        st["w"] = ramp_weight(loop.epoch, o.ramp_epochs, o.w_start)
        loop.model.set_mode(epoch_mode(loop.epoch, loop.cfg.epochs, o.gate_schedule))
        if o.keep_best and st["best"] is None and loop.epoch > 0 and loop.cfg.save:  # a resumed train.py run
            path = os.path.join(loop.cfg.save, BEST_FILE)
            if os.path.isfile(path):
                saved = load_checkpoint(path, "best gate weights")
                st["best"], st["best_top1"] = saved["state_dict"], saved["valid_top1"]

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, p, hard = model.outputs(x)
        g = p if model.mode == "soft" else straight_through(p, hard)
        ce = F.cross_entropy(logits, y, label_smoothing=self.options.label_smoothing)
        return ce + self._state["w"] * sparsity_terms(g, model.targets), logits

    def on_epoch_end(self, loop: Any) -> dict[str, float]:
        st, model = self._state, loop.model
        model.set_mode("hard")
        if loop.data.valid is not None:  # train.py: the loop has just scored the validation split
            top1 = loop.best["valid_top1"] if loop.best.get("epoch") == loop.epoch else -1.0
            row = {}
        else:  # a search: the validation split the measures will score
            ctx = st["ctx"]
            top1 = accuracy(model, ctx.valid_batches(st["arch"]))["top1"]
            row = {"valid_top1": top1}
        if self.options.keep_best and top1 > st["best_top1"]:
            st["best"] = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            st["best_top1"] = top1
            if loop.cfg.save:
                save_checkpoint(
                    os.path.join(loop.cfg.save, BEST_FILE),
                    {"state_dict": st["best"], "valid_top1": top1, "epoch": loop.epoch},
                )
        if loop.epoch == loop.cfg.epochs and st["best"] is not None:  # the end: the best epoch's weights
            model.load_state_dict(st["best"])  # (before the loop's last checkpoint and ckpt.pth)
        return row

    def end(self, model: nn.Module) -> None:
        model.set_mode("hard")
        self._state = {}
