"""Flatness of a trained network (FlatNAS): how much its top-1 moves under weight noise.

The noise model is multiplicative Gaussian: every perturbed parameter becomes
``theta + sigma * theta * eps`` with ``eps ~ N(0, 1)`` drawn per element, so each weight moves by
``sigma`` times its own size and weights that are zero stay zero. It is applied to a copy of the
network; the network itself is never touched. Which parameters (``--perturb``): ``weights``
(convolutions, linear layers and any other parameter not in a normalisation layer), ``biases``
(their biases) and ``bn`` (the affine scale and shift of BatchNorm, GroupNorm and LayerNorm);
BatchNorm's running statistics are buffers and are never perturbed. The default perturbs all
three, as the reference (FlatNAS's ``perturb.py``) does.

The ``robustness`` measure, on the validation split, with the network in evaluation mode:
``robustness = mean over M draws of |top1_0 - top1_perturbed|`` in points of top-1 of the
network's final output, as the ``accuracy`` measure scores it (M = ``--n_draws``, default 20;
sigma = the first of ``--sigma``, default 0.05). Every sigma of
``--sigma`` gives one point of the curve, reported as ``robustness@<sigma>`` (``robustness@0.05``;
``robustness`` repeats the first); ``robustness_std`` is the standard deviation over the draws at
the first sigma. Draw ``d`` uses a generator seeded with ``(run seed, d)`` on the CPU: the same
noise on every device, a re-run gives the same numbers, and every sigma of the curve sees the same
``eps`` (the curve is not made noisier by new draws per sigma).

Where we differ from the reference: it scores on its validation loader, which is the test split
when no validation split is asked for (the FlatNAS scripts ask for none); we score on the
validation split only. It measures every sigma of its list but uses the first; so do we, and the
``top1_robust`` objective can name another (``--robust_sigma``). It rounds to 2 decimals; we don't.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from nas.config import option
from nas.errors import UserError
from nas.measures import MEASURES, EvalContext, Measure
from nas.scoring import accuracy

PARAM_KINDS = ("weights", "biases", "bn")
NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def robustness_metric(sigma: float | None) -> str:
    """The metric name of the robustness at ``sigma`` (``robustness`` for the measure's first sigma)."""
    return "robustness" if sigma is None else f"robustness@{float(sigma):g}"


def parameters_of(model: nn.Module, kinds: Iterable[str] = PARAM_KINDS) -> list[nn.Parameter]:
    """The parameters of ``model`` of the ``kinds`` asked (each once, in the model's order)."""
    kinds = set(kinds)
    seen: set[int] = set()
    out = []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            kind = "bn" if isinstance(module, NORM_LAYERS) else "biases" if name == "bias" else "weights"
            if kind in kinds:
                out.append(p)
    return out


def noise_generator(seed: int, draw: int) -> torch.Generator:
    """The CPU generator of draw ``draw``: the same ``eps`` for a seed on every device."""
    state = np.random.SeedSequence([int(seed), int(draw)]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def draw_noise(params: Sequence[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
    """``eps ~ N(0, 1)``, one tensor per parameter (float32, on the parameter's device)."""
    return [torch.randn(p.shape, generator=generator).to(p.device) for p in params]


@torch.no_grad()
def perturb_(
    params: Sequence[torch.Tensor],
    originals: Sequence[torch.Tensor],
    eps: Sequence[torch.Tensor],
    sigma: float,
) -> None:
    """``p <- p0 + sigma * p0 * eps`` for every parameter ``p`` (in place), from its original ``p0``."""
    for p, p0, e in zip(params, originals, eps, strict=True):
        p.copy_(torch.addcmul(p0, p0, e.to(p0.dtype), value=sigma))


def perturbed(
    model: nn.Module, sigma: float, generator: torch.Generator, kinds: Iterable[str] = PARAM_KINDS
) -> nn.Module:
    """A copy of ``model`` with multiplicative Gaussian noise on its parameters of ``kinds``."""
    noisy = copy.deepcopy(model)
    params = parameters_of(noisy, kinds)
    originals = [p.detach().clone() for p in params]
    perturb_(params, originals, draw_noise(params, generator), sigma)
    return noisy


def top1(model: nn.Module, batches: Iterable) -> float:
    return accuracy(model, batches, topk=(1,))["top1"]


def accuracy_drops(
    model: nn.Module,
    batches: Callable[[], Iterable],
    sigmas: Sequence[float],
    n_draws: int,
    seed: int,
    kinds: Iterable[str] = PARAM_KINDS,
) -> tuple[float, np.ndarray]:
    """Top-1 of ``model`` on ``batches()`` and ``|top1_0 - top1_perturbed|`` [sigma, draw] (points).

    One copy of the network is perturbed again for every draw and sigma from the saved originals;
    ``model`` itself is not touched.
    """
    noisy = copy.deepcopy(model)
    params = parameters_of(noisy, kinds)
    originals = [p.detach().clone() for p in params]
    top1_0 = top1(noisy, batches())
    drops = np.zeros((len(sigmas), n_draws))
    for d in range(n_draws):
        eps = draw_noise(originals, noise_generator(seed, d))
        for i, sigma in enumerate(sigmas):
            perturb_(params, originals, eps, sigma)
            drops[i, d] = abs(top1_0 - top1(noisy, batches()))
    return top1_0, drops


@MEASURES.register("robustness")
class Robustness(Measure):
    """Mean top-1 change under multiplicative weight noise, on the validation split (module docstring)."""

    provides = ("robustness", "robustness_std")

    @dataclass
    class Options:
        sigma: list[float] = option(
            (0.05,),
            "robustness: relative std of the multiplicative weight noise; several values give the curve "
            "(robustness@<sigma>), the first is the robustness metric",
        )
        n_draws: int = option(20, "robustness: noise draws averaged per sigma")
        perturb: list[str] = option(
            PARAM_KINDS,
            "robustness: parameters perturbed: weights, biases, bn (BatchNorm's affine terms; its running "
            "statistics never)",
            choices=list(PARAM_KINDS),
        )

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        o = self.options
        sigmas = [o.sigma] if isinstance(o.sigma, (int, float)) else list(o.sigma)  # one value from YAML
        self.sigmas = tuple(dict.fromkeys(float(s) for s in sigmas))
        if not self.sigmas or min(self.sigmas) <= 0:
            shown = " ".join(f"{s:g}" for s in self.sigmas) or "(none)"
            raise UserError(f"--sigma {shown}: every noise sigma must be > 0")
        if o.n_draws < 1:
            raise UserError(f"--n_draws {o.n_draws} must be >= 1")
        self.kinds = tuple(dict.fromkeys([o.perturb] if isinstance(o.perturb, str) else o.perturb))
        if not self.kinds or any(k not in PARAM_KINDS for k in self.kinds):
            raise UserError(
                f"--perturb {' '.join(map(str, self.kinds)) or '(none)'}: choose one or more of "
                f"{', '.join(PARAM_KINDS)}"
            )
        self.provides = (*type(self).provides, *(robustness_metric(s) for s in self.sigmas))

    def measure(self, model: nn.Module, arch: Any, ctx: EvalContext) -> dict[str, Any]:
        _, drops = accuracy_drops(
            model, lambda: ctx.valid_batches(arch), self.sigmas, self.options.n_draws, ctx.seed, self.kinds
        )
        out = {"robustness": float(drops[0].mean()), "robustness_std": float(drops[0].std())}
        out.update({robustness_metric(s): float(d.mean()) for s, d in zip(self.sigmas, drops, strict=True)})
        return out
