"""Optimisers and the learning-rate schedule of the one training loop.

:data:`OPTIMIZERS` (``sgd``, ``adam``, ``adamw``, ``sam``: SAM around SGD with momentum, Foret et
al. 2021; ``asam``: adaptive SAM, Kwon et al. 2021), :class:`SharpnessAware` (SAM's and ASAM's
ascent and restore around any optimiser, BatchNorm statistics frozen on the second pass by
:func:`frozen_bn_stats`), :func:`param_groups` (no weight
decay on BatchNorm weights and biases) and :func:`warmup_cosine` (linear warm-up, then cosine decay
to zero, per step): the one schedule every training of the toolkit uses.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from nas.registry import Registry


@dataclass(frozen=True)
class OptimizerSpec:
    """How to build an optimiser: ``make(param_groups, lr, cfg)``, its default peak learning
    rate, and whether steps are sharpness-aware (SAM's ascent/descent around the base optimiser),
    with the ascent scaled by the weights' magnitudes (ASAM)."""

    make: Callable[[list[dict], float, Any], torch.optim.Optimizer]
    default_lr: float
    sam: bool = False
    adaptive: bool = False


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer")


def _sgd(groups: list[dict], lr: float, cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)


OPTIMIZERS.register("sgd")(OptimizerSpec(_sgd, 0.05))
OPTIMIZERS.register("adam")(OptimizerSpec(lambda g, lr, cfg: torch.optim.Adam(g, lr=lr), 1e-3))
OPTIMIZERS.register("adamw")(OptimizerSpec(lambda g, lr, cfg: torch.optim.AdamW(g, lr=lr), 1e-3))
# SAM (Foret et al., 2021) around SGD with momentum, as in the paper
OPTIMIZERS.register("sam")(OptimizerSpec(_sgd, 0.05, sam=True))
# ASAM (Kwon et al., 2021): SAM's ball in the weights' own scale, around SGD with momentum
OPTIMIZERS.register("asam")(OptimizerSpec(_sgd, 0.05, sam=True, adaptive=True))


class SharpnessAware:
    """SAM's two steps around any optimiser: :meth:`ascend` moves the weights to the worst point
    within a ball of radius ``rho`` (SAM: ``w + rho * g / ||g||``; ASAM, ``adaptive``:
    ``w + rho * T^2 g / ||T g||`` with ``T = |w| + eta`` element-wise, a ball in the weights' own
    scale), from the gradients of a first forward/backward pass; after a second pass there,
    :meth:`restore` puts the original weights back (exactly: they are copied, not subtracted), and
    the base optimiser then steps with the gradients of the perturbed point.

    The ascent direction does not depend on the gradients' scale, so it works on the scaled
    gradients of a ``GradScaler`` unchanged; non-finite gradients (a scaler overflow) skip it.
    (CNAS's FlatNAS trains with ASAM at rho 2.0, read as an integer; ours is a float.)
    """

    def __init__(
        self, params: Iterable[nn.Parameter], rho: float, adaptive: bool = False, eta: float = 0.01
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.rho, self.adaptive, self.eta = rho, adaptive, eta
        self._saved: list[tuple[nn.Parameter, torch.Tensor]] = []

    @torch.no_grad()
    def ascend(self) -> None:
        grads = [(p, p.grad.float()) for p in self.params if p.grad is not None]
        if not grads:
            return
        # T = |w| + eta (ASAM) or 1 (SAM); the step is rho * T^2 g / ||T g||
        ts = [p.detach().float().abs() + self.eta if self.adaptive else 1.0 for p, _ in grads]
        norm = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(t * g) for t, (_, g) in zip(ts, grads, strict=True)])
        )
        if not torch.isfinite(norm) or norm == 0:
            return
        scale = self.rho / (norm + 1e-12)
        for t, (p, g) in zip(ts, grads, strict=True):
            self._saved.append((p, p.detach().clone()))
            p.add_((t * t * g * scale).to(p.dtype))

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


def param_groups(
    model: nn.Module, weight_decay: float, lr: float | None = None, new_lr_mult: float = 1.0
) -> list[dict]:
    """The model's trainable parameters in two groups: with ``weight_decay``, and without it for
    BatchNorm weights and biases (every tensor of one dimension or less).

    A model that lists the parts a task added to a pre-trained network in ``new_modules()`` (exit
    heads, gates) gets those in two more groups whose learning rate is ``lr * new_lr_mult`` (when
    ``new_lr_mult != 1``): freshly initialised layers then learn faster than the inherited ones.
    """
    new = set()
    if new_lr_mult != 1.0 and hasattr(model, "new_modules"):
        new = {id(p) for m in model.new_modules() for p in m.parameters()}
    groups = {(fresh, d): [] for fresh in (False, True) for d in (True, False)}
    for p in model.parameters():
        if p.requires_grad:
            groups[(id(p) in new, p.ndim > 1)].append(p)
    out = []
    for (fresh, decay), params in groups.items():
        if fresh and not params:
            continue
        group = {"params": params, "weight_decay": weight_decay if decay else 0.0}
        if fresh:
            if lr is None:
                raise ValueError("param_groups needs the base learning rate to scale the new parts' rate")
            group["lr"] = lr * new_lr_mult
        out.append(group)
    return out


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor of step ``s``: linear warm-up to 1, then cosine decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return factor
