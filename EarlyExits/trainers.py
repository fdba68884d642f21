"""Trainers of early-exit networks, on the engine's one training loop (optimisers incl. SAM,
warm-up + cosine, AMP on CUDA, resume in ``train.py ee``).

- ``ee_joint`` (EDANAS): the weighted sum of the cross-entropies of every exit; the backbone
  trains with the heads.
- ``nachos`` (NACHOS): each head's confidence unit gives an exit probability ``p_i`` (the final
  exit's is 1) and the cumulative exit probability ``q_i = p_i * prod_{j<i} (1 - p_j)``. The loss is

      w_alpha * sum_i mean(q_i * CE_i)                      classification, weighted by q
    + w_bce   * sum_{early i} class-balanced BCE(p_i, [exit i is right])
    + w_beta  * max(0, E[MACs] - mmax) / |C_last - mmax|    E[MACs] = mean_batch sum_i q_i * C_i
    + w_gamma * MSE(q, S[y])                                 the support-set term

  where ``C_i`` are the cumulative exit MACs and ``S[c]`` is the share of exits that classify class
  ``c`` right, measured after each epoch on a class-balanced ``support_share`` of the training
  split held out of training (each row normalised to sum to 1, so the target is a distribution
  over exits as ``q`` is). The last two terms start after ``ee_warmup`` epochs. Unlike the
  reference, the MAC term keeps its gradient (the reference built it from ``.item()``, so it
  never trained anything) and the support target is normalised (the reference regressed q, which
  sums to 1, onto raw accuracies). The backbone is frozen by default, as in the reference.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from EarlyExits.measures import collect_outputs, require_exit_space
from nas.config import option
from nas.data.splits import carve_valid
from nas.errors import UserError
from nas.measures import EvalContext
from nas.scoring import batches_of
from nas.training.trainers import TRAINERS, LoopOptions, LoopTrainer


@dataclass
class JointTask:
    """What ``ee_joint`` adds to the training loop's options (``train.py ee`` has them too)."""

    exit_weights: list[float] | None = option(
        None,
        "ee_joint: weight of each exit's cross-entropy, early exits first, the final one last (default: 1)",
    )


@dataclass
class JointOptions(LoopOptions, JointTask):
    n_epochs: int = option(2, "training epochs of every candidate's exits (joint with the backbone)")


@TRAINERS.register("ee_joint")
class JointTrainer(LoopTrainer):
    """EDANAS: sum of the exits' cross-entropies, weighted; backbone and heads trained together."""

    Options = JointOptions

    def check(self, space: Any) -> None:
        require_exit_space(space, "the ee_joint trainer")

    def begin(self, model: nn.Module, arch: Any, ctx: EvalContext, data: Any) -> Any:
        w = self.options.exit_weights
        if w is not None and len(w) != model.n_exits + 1:
            raise UserError(
                f"--exit_weights has {len(w)} values; this network has {model.n_exits + 1} exits "
                "(the final one included)"
            )
        return data

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs = model(x)
        weights = self.options.exit_weights or [1.0] * len(outs)
        ls = self.options.label_smoothing
        loss = sum(w * F.cross_entropy(o, y, label_smoothing=ls) for w, o in zip(weights, outs, strict=True))
        return loss, outs[-1]


@dataclass
class NachosTask:
    """What ``nachos`` adds to the training loop's options (``train.py ee`` has them too)."""

    freeze_backbone: bool = option(
        True, "nachos: train the heads and confidence units only (the backbone stays as inherited)"
    )
    ee_warmup: int = option(1, "nachos: epochs before the MAC and support-set terms join the loss")
    mmax: float | None = option(None, "avg_macs budget of the MAC term, millions; none: no MAC term")
    w_alpha: float = option(1.0, "nachos: weight of the q-weighted classification loss")
    w_bce: float = option(1.0, "nachos: weight of the confidence units' class-balanced BCE")
    w_beta: float = option(1.0, "nachos: weight of the MAC term")
    w_gamma: float = option(1.0, "nachos: weight of the support-set term (0: no support set held out)")
    support_share: float = option(0.1, "nachos: share of the training split held out as the support set")


@dataclass
class NachosOptions(LoopOptions, NachosTask):
    n_epochs: int = option(2, "training epochs of every candidate's exits")


def exit_probabilities(conf: list[torch.Tensor], n: int, device: torch.device) -> torch.Tensor:
    """``q`` [n, exits]: ``q_i = p_i * prod_{j<i} (1 - p_j)`` with the final ``p = 1``."""
    p = torch.stack([*conf, torch.ones(n, device=device)], dim=1)
    survive = torch.cumprod(torch.cat([torch.ones(n, 1, device=device), 1 - p[:, :-1]], dim=1), dim=1)
    return p * survive


def balanced_bce(p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE with positives and negatives weighted to equal total weight (``n / (2 n_pos)``, ...)."""
    n, pos = len(target), target.sum()
    neg = n - pos
    w = torch.where(target > 0, n / (2 * pos.clamp(min=1)), n / (2 * neg.clamp(min=1)))
    return F.binary_cross_entropy(p.clamp(1e-6, 1 - 1e-6), target, weight=w)


def mac_term(q: torch.Tensor, exit_macs: torch.Tensor, mmax: float) -> torch.Tensor:
    """``max(0, E[MACs] - mmax) / |C_last - mmax|`` with ``E[MACs] = mean_batch sum_i q_i C_i``;
    differentiable in ``q``."""
    expected = (q * exit_macs[None, :]).sum(dim=1).mean()
    scale = abs(float(exit_macs[-1]) - mmax) or 1.0
    return F.relu(expected - mmax) / scale


@TRAINERS.register("nachos")
class NachosTrainer(LoopTrainer):
    """NACHOS: q-weighted classification, confidence BCE, a differentiable MAC budget and the
    support-set term (see the module docstring)."""

    Options = NachosOptions

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        o = self.options
        if not 0 < o.support_share < 1:
            raise UserError(f"--support_share {o.support_share} must lie in (0, 1)")
        if o.mmax is not None and o.mmax <= 0:
            raise UserError(f"--mmax {o.mmax} must be > 0 (millions of MACs)")
        if o.ee_warmup < 0:
            raise UserError(f"--ee_warmup {o.ee_warmup} must be >= 0")
        self._state: dict[str, Any] = {}

    def check(self, space: Any) -> None:
        require_exit_space(space, "the nachos trainer")
        if not space.confidence:
            raise UserError(
                "the nachos trainer needs heads with a confidence unit: use --search_space cbnmobilenetv3"
            )

    def begin(self, model: nn.Module, arch: Any, ctx: EvalContext, data: Any) -> Any:
        o = self.options
        macs = ctx.space.exit_costs(arch, ctx.n_classes)["exit_macs"]
        self._state = {
            "epoch": 0,
            "macs": torch.tensor(macs, device=ctx.device),
            "support": None,
            "ctx": ctx,
            "arch": arch,
        }
        if o.freeze_backbone:
            model.freeze_backbone(True)
        if o.w_gamma > 0:
            n = max(ctx.n_classes, int(round(o.support_share * len(data.train))))
            train, support = carve_valid(data.train, n, ctx.n_classes, ctx.seed + 1)
            self._state["support_split"] = support
            data = dataclasses.replace(data, train=train)
        return data

    def end(self, model: nn.Module) -> None:
        model.freeze_backbone(False)
        self._state = {}

    def on_epoch_start(self, loop: Any) -> None:
        self._state["epoch"] = loop.epoch  # from the loop, so a resumed run keeps its warm-up

    def on_epoch_end(self, loop: Any) -> dict[str, float]:
        st = self._state
        if "support_split" in st and loop.epoch >= self.options.ee_warmup:
            ctx = st["ctx"]
            batches = batches_of(
                st["support_split"], ctx.resolution(st["arch"]), ctx.device, 200, ctx.seed, ctx.num_workers
            )
            out = collect_outputs(loop.model, batches)
            n_classes = ctx.n_classes
            right = torch.stack([lg.argmax(1) == out.labels for lg in out.logits], dim=1).float()
            table = torch.zeros(n_classes, right.shape[1])
            table.index_add_(0, out.labels, right)
            table = table / table.sum(dim=1, keepdim=True).clamp(min=1e-9)
            st["support"] = table.to(ctx.device)
            return {"support_acc": 100.0 * right[:, -1].mean().item()}
        return {}

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        o, st = self.options, self._state
        logits, conf = model.outputs(x)
        n = len(y)
        q = exit_probabilities(conf, n, x.device)
        ce = torch.stack(
            [F.cross_entropy(lg, y, reduction="none", label_smoothing=o.label_smoothing) for lg in logits], 1
        )
        loss = o.w_alpha * (q * ce).mean(dim=0).sum()
        for i, p in enumerate(conf):
            right = (logits[i].argmax(1) == y).float()
            loss = loss + o.w_bce * balanced_bce(p, right)
        if st.get("epoch", 0) >= o.ee_warmup:
            if o.mmax is not None and o.w_beta > 0:
                loss = loss + o.w_beta * mac_term(q, st["macs"], o.mmax)
            if st.get("support") is not None and o.w_gamma > 0:
                loss = loss + o.w_gamma * F.mse_loss(q, st["support"][y])
        return loss, logits[-1]
