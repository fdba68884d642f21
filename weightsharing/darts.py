"""DARTS and PC-DARTS (``--strategy darts`` / ``pcdarts``), with the beta-decay fix (``--robust``).

DARTS (Liu et al., ICLR 2019): every edge mixes its operations with ``softmax(alpha)``; the weights
``w`` train on one half of the training images, ``alpha`` on the other (bilevel). ``--order 1``
takes the gradient of the architecture loss at the current ``w``; ``--order 2`` takes it at the
weights after one virtual SGD step, ``w' = w - xi (momentum buffer + grad + weight decay)`` with
``xi`` the current weight learning rate, and approximates the Hessian-vector product of the implicit
term by central differences, ``eps = 0.01 / ||dL_val/dw'||`` (the paper's estimate, see
:func:`unrolled_arch_grads`). The derived cell keeps the strongest operation of every edge.

PC-DARTS (Xu et al., ICLR 2020): ``--partial_channels K`` sends 1/K of the channels through the
mixed operation and shuffles them with the rest; ``--edge_norm`` weights every edge by a softmax of
``beta`` over the edges entering its node; ``--warmup_epochs`` train the weights alone first.

``--robust``: beta-decay regularisation (Ye et al., beta-DARTS, CVPR 2022). The architecture loss
gets ``lambda_t * mean over edges of logsumexp(alpha_edge)``, whose gradient is ``softmax(alpha)``
itself, so the strongest operations are pulled back and no parameter-free operation can run away
with the softmax before the convolutions have learnt; ``lambda_t`` rises linearly from 0 to
``--beta_weight`` over the epochs. Chosen over DARTS-'s auxiliary skip (an extra operation per edge
and a decay schedule to tune) and DrNAS's Dirichlet relaxation (a different sampler and
progressive pruning) because it is one term that works unchanged with partial channels and the
second order, and it reaches DrNAS's NAS-Bench-201 result in its paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.func import functional_call
from tqdm import tqdm

from nas.config import option
from nas.errors import UserError
from nas.search.strategies import STRATEGIES
from nas.space import Arch
from weightsharing.method import WeightSharingOptions, WeightSharingStrategy, accuracy, cross_entropy


@dataclass
class DartsOptions(WeightSharingOptions):
    order: int = option(1, "1: first-order DARTS; 2: second order (unrolled virtual step)", choices=[1, 2])
    arch_lr: float = option(3e-4, "architecture learning rate (Adam, betas 0.5 / 0.999)")
    arch_weight_decay: float = option(1e-3, "architecture weight decay")
    partial_channels: int = option(
        1, "PC-DARTS: 1/K of the channels go through the mixed operation (1: DARTS)"
    )
    edge_norm: bool = option(False, "PC-DARTS edge normalisation: a softmax weight per edge of a node")
    warmup_epochs: int = option(0, "epochs that train the weights only, before the architecture moves")
    robust: bool = option(False, "the collapse fix: beta-decay regularisation of the architecture weights")
    beta_weight: float = option(0.5, "--robust: the regulariser's weight at the last epoch (linear from 0)")
    affine: bool = option(False, "learnable BatchNorm scale and shift inside the mixed operations")


def unrolled_arch_grads(
    net: nn.Module,
    arch: list[torch.Tensor],
    forward_kwargs,
    train_batch: tuple[torch.Tensor, torch.Tensor],
    valid_batch: tuple[torch.Tensor, torch.Tensor],
    xi: float,
    momentum: float,
    weight_decay: float,
    w_opt: torch.optim.Optimizer | None = None,
    radius: float = 0.01,
) -> list[torch.Tensor]:
    """DARTS's second-order architecture gradient ``dL_val(w', alpha)/dalpha``, ``w' = w - xi (m v +
    dL_train/dw + wd w)`` (``v`` the SGD momentum buffer of ``w_opt`` when it has one):
    ``grad_alpha L_val(w') - xi (grad_alpha L_train(w+) - grad_alpha L_train(w-)) / (2 eps)`` with
    ``w+- = w +- eps grad_w' L_val(w')``, ``eps = radius / ||grad_w' L_val(w')||`` (DARTS: 0.01).

    ``forward_kwargs()`` builds the network's keyword arguments from ``arch`` (with their graph).
    The central difference is only as good as the loss is smooth at ``radius``: BatchNorm over few
    channels and images bends it within 0.01 of ``w``, so a tiny network needs a smaller radius
    (the tests use 1e-5 in float64 to check the formula)."""
    names, params = zip(*[(n, p) for n, p in net.named_parameters()], strict=True)
    xt, yt = train_batch
    xv, yv = valid_batch

    def loss_at(weights: dict[str, torch.Tensor] | None, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = (
            net(x, **forward_kwargs())
            if weights is None
            else functional_call(net, weights, (x,), forward_kwargs())
        )
        return cross_entropy(out, y)

    grads = torch.autograd.grad(loss_at(None, xt, yt), params)
    unrolled = {}
    for name, p, g in zip(names, params, grads, strict=True):
        step = g + weight_decay * p.detach()
        state = w_opt.state.get(p, {}) if w_opt is not None else {}
        buf = state.get("momentum_buffer")
        if buf is not None:
            step = step + momentum * buf
        unrolled[name] = (p.detach() - xi * step).requires_grad_()
    valid_loss = loss_at(unrolled, xv, yv)
    found = torch.autograd.grad(valid_loss, [*arch, *unrolled.values()])
    d_arch, d_w = found[: len(arch)], found[len(arch) :]
    eps = radius / torch.cat([d.flatten() for d in d_w]).norm()
    shifted = []
    for sign in (1.0, -1.0):
        w = {n: p.detach() + sign * eps * d for n, p, d in zip(names, params, d_w, strict=True)}
        shifted.append(torch.autograd.grad(loss_at(w, xt, yt), arch))
    return [da - xi * (gp - gm) / (2 * eps) for da, gp, gm in zip(d_arch, *shifted, strict=True)]


@STRATEGIES.register("darts")
class Darts(WeightSharingStrategy):
    """Differentiable architecture search (see the module docstring)."""

    Options = DartsOptions

    def check(self) -> None:
        super().check()
        o = self.options
        if o.partial_channels < 1:
            raise UserError(f"--partial_channels {o.partial_channels} must be >= 1")
        if o.channels % o.partial_channels:
            raise UserError(f"--partial_channels {o.partial_channels} must divide --channels {o.channels}")
        if not 0 <= o.warmup_epochs < o.epochs:
            raise UserError(f"--warmup_epochs {o.warmup_epochs} must be in [0, --epochs {o.epochs})")
        if o.arch_lr <= 0 or o.beta_weight < 0:
            raise UserError(f"--arch_lr {o.arch_lr} must be > 0 and --beta_weight {o.beta_weight} >= 0")

    def supernet_options(self) -> dict[str, Any]:
        return {"partial_channels": self.options.partial_channels, "affine": self.options.affine}

    def build(self, gen: torch.Generator) -> None:
        o = self.options
        shapes = self.supernet.arch_shapes()
        self.alphas = {
            k: (1e-3 * torch.randn(shape, generator=gen)).to(self.device).requires_grad_()
            for k, shape in shapes.items()
        }
        self.betas = (
            {
                k: (1e-3 * torch.randn(shape[0], generator=gen)).to(self.device).requires_grad_()
                for k, shape in shapes.items()
            }
            if o.edge_norm
            else {}
        )
        self.a_opt = torch.optim.Adam(
            self.arch_parameters(), lr=o.arch_lr, betas=(0.5, 0.999), weight_decay=o.arch_weight_decay
        )

    def arch_parameters(self) -> list[torch.Tensor]:
        return [*self.alphas.values(), *self.betas.values()]

    def forward_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"weights": {k: torch.softmax(a, dim=-1) for k, a in self.alphas.items()}}
        if self.betas:
            kw["edge_weights"] = self.supernet.normalised_edges(self.betas)
        return kw

    def regulariser(self, epoch: int) -> torch.Tensor | None:
        """``--robust``'s beta-decay term at ``epoch`` (None when off)."""
        o = self.options
        if not o.robust or o.beta_weight == 0:
            return None
        weight = o.beta_weight * (epoch + 1) / o.epochs
        return weight * torch.stack([torch.logsumexp(a, dim=-1).mean() for a in self.alphas.values()]).mean()

    def train_epoch(self, epoch: int, gen: torch.Generator, bar: tqdm) -> dict[str, float]:
        o = self.options
        net = self.supernet
        sums = {"train_loss": 0.0, "train_top1": 0.0, "arch_loss": 0.0, "arch_top1": 0.0}
        n = 0
        search = epoch >= o.warmup_epochs
        for (xt, yt), (xv, yv) in zip(self.loaders["weights"], self.loaders["arch"], strict=False):
            if search:
                self.a_opt.zero_grad(set_to_none=True)
                reg = self.regulariser(epoch)
                if o.order == 2:
                    grads = unrolled_arch_grads(
                        net,
                        self.arch_parameters(),
                        self.forward_kwargs,
                        (xt, yt),
                        (xv, yv),
                        self.lr_at(epoch),
                        o.momentum,
                        o.weight_decay,
                        self.w_opt,
                    )
                    if reg is not None:
                        grads = [
                            g + r
                            for g, r in zip(
                                grads,
                                torch.autograd.grad(
                                    reg, self.arch_parameters(), allow_unused=True, materialize_grads=True
                                ),
                                strict=True,
                            )
                        ]
                    for p, g in zip(self.arch_parameters(), grads, strict=True):
                        p.grad = g.detach()
                    with torch.no_grad():
                        out = net(xv, **self.forward_kwargs())
                    loss_v = cross_entropy(out, yv)
                else:
                    out = net(xv, **self.forward_kwargs())
                    loss_v = cross_entropy(out, yv)
                    (loss_v if reg is None else loss_v + reg).backward()
                self.a_opt.step()
                sums["arch_loss"] += float(loss_v.detach())
                sums["arch_top1"] += accuracy(out.detach(), yv)
            kw = {k: {t: v.detach() for t, v in d.items()} for k, d in self.forward_kwargs().items()}
            loss, top1 = self.weight_step(xt, yt, lambda x, kw=kw: net(x, **kw))
            sums["train_loss"] += loss
            sums["train_top1"] += top1
            n += 1
            bar.update()
        out = {k: v / max(n, 1) for k, v in sums.items()}
        if not search:
            del out["arch_loss"], out["arch_top1"]
        return out

    def table_weights(self) -> dict[str, np.ndarray]:
        return {k: torch.softmax(a.detach(), dim=-1).cpu().double().numpy() for k, a in self.alphas.items()}

    def edge_table_weights(self) -> dict[str, np.ndarray] | None:
        if not self.betas:
            return None
        return {
            k: v.detach().cpu().double().numpy()
            for k, v in self.supernet.normalised_edges(self.betas).items()
        }

    def derive(self) -> Arch:
        return self.supernet.derive(self.table_weights(), self.edge_table_weights())

    def method_state(self) -> dict[str, Any]:
        return {
            "alphas": {k: v.detach().cpu() for k, v in self.alphas.items()},
            "betas": {k: v.detach().cpu() for k, v in self.betas.items()},
            "a_opt": self.a_opt.state_dict(),
        }

    def load_method_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for k, v in state["alphas"].items():
                self.alphas[k].copy_(v)
            for k, v in state["betas"].items():
                self.betas[k].copy_(v)
        self.a_opt.load_state_dict(state["a_opt"])


@dataclass
class PCDartsOptions(DartsOptions):
    partial_channels: int = option(
        4, "PC-DARTS: 1/K of the channels go through the mixed operation (1: DARTS)"
    )
    edge_norm: bool = option(True, "PC-DARTS edge normalisation: a softmax weight per edge of a node")
    batch_size: int = option(256, "images per step")
    learning_rate: float = option(
        0.1, "weight learning rate at the start (SGD, cosine to --learning_rate_min per epoch)"
    )
    arch_lr: float = option(6e-4, "architecture learning rate (Adam, betas 0.5 / 0.999)")
    warmup_epochs: int = option(15, "epochs that train the weights only, before the architecture moves")


@STRATEGIES.register("pcdarts")
class PCDarts(Darts):
    """PC-DARTS: DARTS with partial channels, edge normalisation and a warm-up (its defaults)."""

    Options = PCDartsOptions
