"""The zero-cost proxies: training-free scores of a network at initialisation (higher = better).

Every proxy is a function ``(net, batch) -> float`` registered in :data:`PROXIES`; ``batch`` is a
:class:`ProxyBatch` (images ``x`` ``(N, 3, H, W)``, labels ``y``, the class count). A proxy may
leave gradients and BatchNorm running statistics changed in ``net`` (``synflow`` restores its
weights); :func:`proxies.scorer.score_network` runs each proxy on its own fresh copy.

"Weight layers" below are the ``nn.Conv2d`` and ``nn.Linear`` modules (the layers pruning-at-init
scores rank in Abdelfattah et al. 2021); "activations" are ``nn.ReLU``, ``nn.ReLU6``,
``nn.Hardswish`` and OFA's ``Hswish`` modules, whose *input* sign is the unit's on/off state
(``hswish(x) > 0`` exactly when ``x > 0``), read by a forward pre-hook so in-place activations do
not hide it. Networks that return one output per exit are scored on the last (the final
classifier), as :func:`nas.scoring.final_output` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.costs import count_costs, count_params
from nas.errors import UserError
from nas.registry import Registry
from nas.scoring import final_output

WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardswish)
ACTIVATION_NAMES = frozenset({"Hswish"})  # OFA's own h-swish module (ofa.utils.pytorch_modules)

Proxy = Callable[[nn.Module, "ProxyBatch"], float]
PROXIES: Registry[Proxy] = Registry("zero-cost proxy")


@dataclass
class ProxyBatch:
    """One fixed batch the proxies score a network on: images ``x`` (N, 3, H, W), labels ``y`` (N,)
    in ``0..n_classes-1`` (images may come from another dataset than the network's classes: the
    labels then only have to be valid class indices)."""

    x: torch.Tensor
    y: torch.Tensor
    n_classes: int

    def __post_init__(self) -> None:
        if not isinstance(self.x, torch.Tensor) or self.x.dim() != 4 or not self.x.is_floating_point():
            raise UserError("a proxy batch needs float images x of shape (N, C, H, W)")
        if not isinstance(self.y, torch.Tensor) or self.y.shape != (self.x.shape[0],):
            raise UserError(f"a proxy batch of {self.x.shape[0]} images needs {self.x.shape[0]} labels y")
        if isinstance(self.n_classes, bool) or not isinstance(self.n_classes, int) or self.n_classes < 1:
            raise UserError(f"n_classes {self.n_classes!r} must be a positive integer")
        if len(self.y) and (int(self.y.min()) < 0 or int(self.y.max()) >= self.n_classes):
            raise UserError(f"proxy batch labels must lie in 0..{self.n_classes - 1}")

    @property
    def resolution(self) -> int:
        return int(self.x.shape[-1])

    def __len__(self) -> int:
        return int(self.x.shape[0])


# ---- helpers ------------------------------------------------------------------------------


def weight_layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, WEIGHT_LAYERS)]


def is_activation(m: nn.Module) -> bool:
    return isinstance(m, ACTIVATIONS) or type(m).__name__ in ACTIVATION_NAMES


def _model_dtype(net: nn.Module) -> torch.dtype:
    p = next((p for p in net.parameters() if p.is_floating_point()), None)
    return p.dtype if p is not None else torch.float32


def _model_device(net: nn.Module) -> torch.device:
    p = next(net.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@contextmanager
def _mode(net: nn.Module, train: bool) -> Iterator[None]:
    """``net`` in train or eval mode for the block, its own mode afterwards; grads cleared at the end."""
    was = net.training
    net.train(train)
    net.zero_grad(set_to_none=True)
    try:
        yield
    finally:
        net.train(was)
        net.zero_grad(set_to_none=True)


@contextmanager
def _activation_inputs(net: nn.Module, fn: Callable[[torch.Tensor], None]) -> Iterator[int]:
    """Call ``fn`` on the input of every activation module (before an in-place one changes it)."""
    handles = [
        m.register_forward_pre_hook(lambda _m, inp: fn(inp[0].detach()))
        for m in net.modules()
        if is_activation(m)
    ]
    try:
        yield len(handles)
    finally:
        for h in handles:
            h.remove()


def _loss_backward(net: nn.Module, batch: ProxyBatch) -> torch.Tensor:
    """Cross-entropy of ``net`` on ``batch`` (train mode, as at initialisation), back-propagated."""
    dev = _model_device(net)
    out = final_output(net(batch.x.to(dev, _model_dtype(net))))
    loss = F.cross_entropy(out, batch.y.to(dev))
    loss.backward()
    return loss


def _no_activations(name: str) -> UserError:
    return UserError(
        f"proxy {name!r} reads ReLU / h-swish modules and the network has none (functional activations "
        "are not seen)"
    )


# ---- costs --------------------------------------------------------------------------------


@PROXIES.register("params")
def params(net: nn.Module, batch: ProxyBatch) -> float:
    """#params in millions (:func:`nas.costs.count_params`); a baseline, larger = better."""
    return count_params(net) / 1e6


@PROXIES.register("flops")
def flops(net: nn.Module, batch: ProxyBatch) -> float:
    """Multiply-accumulates (NAS-Bench-201's "FLOPs", our ``macs``) in millions of one image at
    the batch's resolution (:func:`nas.costs.count_costs`); a baseline, larger = better."""
    return count_costs(net, batch.resolution, device=_model_device(net))["macs"] / 1e6


# ---- pruning-at-initialisation saliencies (Abdelfattah et al., ICLR 2021) -----------------


@PROXIES.register("synflow")
def synflow(net: nn.Module, batch: ProxyBatch) -> float:
    """SynFlow (Tanaka et al., NeurIPS 2020): ``sum |theta * dR/dtheta|`` over the weight layers,
    with ``R = sum(f(1))`` the output summed on an all-ones input and every weight (and buffer)
    replaced by its absolute value, in float64 (no overflow), in eval mode (a fresh BatchNorm's
    running statistics are 0 and 1: it has no effect). The weights, dtype and mode are restored.
    Only the batch's shape is used."""
    dtype = _model_dtype(net)
    state = net.state_dict(keep_vars=True)
    signs = {k: torch.sign(v.detach()) for k, v in state.items() if v.is_floating_point()}
    with _mode(net, train=False):
        try:
            with torch.no_grad():
                for k in signs:
                    state[k].detach().abs_()
            net.double()
            ones = torch.ones((1, *batch.x.shape[1:]), dtype=torch.float64, device=_model_device(net))
            final_output(net(ones)).sum().backward()
            total = 0.0
            for m in weight_layers(net):
                if m.weight.grad is not None:
                    total += float((m.weight.detach() * m.weight.grad).abs().sum())
        finally:
            net.to(dtype)
            state = net.state_dict(keep_vars=True)
            with torch.no_grad():
                for k, s in signs.items():
                    state[k].detach().mul_(s)
    return total


@PROXIES.register("snip")
def snip(net: nn.Module, batch: ProxyBatch) -> float:
    """SNIP (Lee et al., ICLR 2019): ``sum |theta * dL/dtheta|`` over the weight layers, ``L`` the
    cross-entropy of the batch in train mode."""
    with _mode(net, train=True):
        _loss_backward(net, batch)
        return float(
            sum(
                (m.weight.detach() * m.weight.grad).abs().sum()
                for m in weight_layers(net)
                if m.weight.grad is not None
            )
        )


@PROXIES.register("grad_norm")
def grad_norm(net: nn.Module, batch: ProxyBatch) -> float:
    """Sum over the weight layers of the Euclidean norm of ``dL/dW`` (Abdelfattah et al. 2021)."""
    with _mode(net, train=True):
        _loss_backward(net, batch)
        return float(sum(m.weight.grad.norm() for m in weight_layers(net) if m.weight.grad is not None))


@PROXIES.register("fisher")
def fisher(net: nn.Module, batch: ProxyBatch) -> float:
    """Fisher (Theis et al. 2018, as in Abdelfattah et al. 2021): for every output channel ``c`` of
    every weight layer, ``0.5 * mean_n (sum_hw a * dL/da)^2`` with ``a`` the layer's output;
    summed over all channels (the saliency of removing each channel, to second order)."""
    acts: list[torch.Tensor] = []

    def keep(_m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        if out.requires_grad:
            out.retain_grad()
            acts.append(out)

    handles = [m.register_forward_hook(keep) for m in weight_layers(net)]
    try:
        with _mode(net, train=True):
            _loss_backward(net, batch)
            total = 0.0
            for a in acts:
                if a.grad is None:
                    continue
                s = (a.detach() * a.grad).flatten(2).sum(2) if a.dim() > 2 else a.detach() * a.grad
                total += float(0.5 * s.pow(2).mean(0).sum())
    finally:
        for h in handles:
            h.remove()
    return total


# ---- scores of the input-output map (Mellor et al.) ---------------------------------------


def jacob_cov_of(jacobian: np.ndarray, k: float = 1e-5) -> float:
    """``-sum_i (log(l_i + k) + 1 / (l_i + k))`` of the eigenvalues ``l`` of the correlation matrix
    of the rows of ``jacobian`` (one flattened input Jacobian per sample); ``-inf`` when a row is
    constant (the correlation is undefined: a degenerate network ranks last)."""
    j = np.asarray(jacobian, dtype=np.float64).reshape(len(jacobian), -1)
    if len(j) < 2 or np.any(j.std(axis=1) == 0) or not np.all(np.isfinite(j)):
        return -math.inf
    lam = np.clip(np.linalg.eigvalsh(np.corrcoef(j)), 0.0, None)  # PSD: tiny negatives are round-off
    return float(-np.sum(np.log(lam + k) + 1.0 / (lam + k)))


@PROXIES.register("jacob_cov")
def jacob_cov(net: nn.Module, batch: ProxyBatch) -> float:
    """Jacobian covariance (Mellor et al., "Neural Architecture Search without Training", arXiv v1
    2020): ``J_n = d(sum of outputs)/d x_n`` per image, the correlation matrix of the ``J_n``,
    and ``-sum (log(l + k) + 1/(l + k))`` of its eigenvalues with ``k = 1e-5`` (train mode)."""
    with _mode(net, train=True):
        x = batch.x.to(_model_device(net), _model_dtype(net)).clone().requires_grad_(True)
        final_output(net(x)).sum().backward()
        jac = x.grad.detach().flatten(1).double().cpu().numpy()
    return jacob_cov_of(jac)


def hamming_kernel(codes: list[torch.Tensor]) -> torch.Tensor:
    """``K[i, j] = N_A - d_H(c_i, c_j)`` (float64) of binary codes given as ``(N, D_l)`` blocks:
    the number of units on which images ``i`` and ``j`` agree, computed as ``(D + s s^T) / 2``
    with ``s = 2c - 1`` block by block (each block's product is exact in float32 below 2^24)."""
    n = codes[0].shape[0]
    k = torch.zeros(n, n, dtype=torch.float64)
    for c in codes:
        s = c.float().mul(2).sub(1)
        k += (s @ s.T).double().cpu()
        k += c.shape[1]
    return k / 2


@PROXIES.register("naswot")
def naswot(net: nn.Module, batch: ProxyBatch) -> float:
    """NASWOT (Mellor et al., ICML 2021): ``log|det K|`` of the kernel ``K = N_A - Hamming`` of the
    images' binary activation codes (which units are on, over every activation module; train
    mode). ``-inf`` when ``K`` is singular (two images with the same code)."""
    n = len(batch)
    k = torch.zeros(n, n, dtype=torch.float64)

    def add(inp: torch.Tensor) -> None:
        nonlocal k
        k += hamming_kernel([(inp > 0).flatten(1)])

    with _mode(net, train=True), torch.no_grad(), _activation_inputs(net, add) as n_hooks:
        if n_hooks == 0:
            raise _no_activations("naswot")
        net(batch.x.to(_model_device(net), _model_dtype(net)))
    sign, logdet = torch.linalg.slogdet(k)
    return float(logdet) if float(sign) != 0 else -math.inf


# ---- the recent proxy ---------------------------------------------------------------------


def swap_of(codes: list[torch.Tensor]) -> int:
    """The number of distinct sample-wise activation patterns: each unit's on/off vector over the
    ``N <= 64`` images (columns of the ``(N, D_l)`` binary blocks), counted over all blocks."""
    keys = []
    for c in codes:
        n = c.shape[0]
        if n > 64:
            raise UserError(f"SWAP packs at most 64 images into a pattern, got {n}")
        bits = torch.ones((), dtype=torch.int64) << torch.arange(n, dtype=torch.int64)  # wraps at 63
        keys.append((c.to(torch.int64) * bits[:, None]).sum(0))
    return int(torch.unique(torch.cat(keys)).numel()) if keys else 0


@PROXIES.register("swap")
def swap(net: nn.Module, batch: ProxyBatch) -> float:
    """SWAP (Peng et al., "SWAP-NAS: Sample-Wise Activation Patterns for Ultra-fast NAS", ICLR 2024):
    the number of distinct sample-wise activation patterns, i.e. of distinct on/off vectors of a
    unit over the images, counted over every unit of every activation module (train mode).

    Chosen among the recent proxies by measurement (B15's tuning cells, not in its reported set:
    Spearman 0.78 on NAS-Bench-201 CIFAR-10 at 16 images against MeCo's 0.43-0.49 in four variants;
    AZ-NAS-style rank aggregations are reported by B15 from the proxies' columns, since they rank a
    population rather than score one network). Where it differs from the paper: the plain score,
    without SWAP-reg's parameter-count regulariser (whose mean and width are tuned per space); the
    patterns are read on the inputs of ReLU / h-swish modules (the paper: ReLU outputs of the
    cells), at most 64 images.
    """
    codes: list[torch.Tensor] = []
    with _mode(net, train=True), torch.no_grad():
        with _activation_inputs(net, lambda inp: codes.append((inp > 0).flatten(1))) as n_hooks:
            if n_hooks == 0:
                raise _no_activations("swap")
            net(batch.x[:64].to(_model_device(net), _model_dtype(net)))
    return float(swap_of(codes))
