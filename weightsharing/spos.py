"""Single-path weight sharing: SPOS (``--strategy spos``) and the ranking of cells by inherited weights.

SPOS (Guo et al., ECCV 2020): every step trains the supernet along one path drawn uniformly (every
edge's operation independently), on one half of the training images. A cell is then judged by its
*inherited weights*: the supernet run along the cell's path, BatchNorm statistics recalibrated on
``--bn_batches`` training batches of that path (the running statistics of a weight-sharing supernet
belong to no single cell), then cross-entropy and top-1 on ``--rank_images`` images of the other
half, which the weights never trained on (:func:`inherited_scores`). ``--rank_by`` orders cells by
the loss (default) or by top-1. SPOS ranks by top-1; on seed 100 the loss ranked NAS-Bench-201
cells as well with the CPU preset and better after 20 epochs on the full CIFAR-10 (Kendall tau
against the table's validation column over 200 cells, 3 / 10 BatchNorm batches and 500 / 2,000
images: 0.446 / 0.424 vs top-1's 0.448 / 0.418, and 0.401 / 0.430 vs 0.288 / 0.355), and it does
not come in steps of one image. It also puts parameter-free cells at the very top (they make less
confident mistakes), so the derived cell is often a poor one (B16 in ``benchmarks/README.md``).

``--sampling fair`` trains FairNAS's strictly fair paths instead (Chu et al., ICCV 2021): per batch
one path per operation, every edge's operations permuted across the paths, their gradients summed
into one step, so every operation of every edge trains equally often. On seed 100 it ranked worse
at the same compute (20 fair epochs against 100 uniform ones, the same number of path steps: loss
tau 0.378 vs 0.448, top-1 0.232 vs 0.386, the validation column); it stays an option.

The method derives, after each chunk of epochs, the best of ``--rank_candidates`` cells drawn
uniformly (seeded by the epoch) and proposes the best-ranked ones to the loop. The same ranking is
what the ``oneshot`` evaluator (:mod:`weightsharing.evaluator`) reports for any cell, so a run with
``--strategy random --evaluator oneshot`` measures how well the supernet ranks cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from nas.config import option
from nas.data import make_loader
from nas.data.loaders import derive_seed
from nas.errors import UserError
from nas.search.strategies import STRATEGIES
from nas.space import Arch
from strategies.common import new_unique
from weightsharing.method import WeightSharingOptions, WeightSharingStrategy
from weightsharing.supernet import SUPERNETS


@torch.no_grad()
def inherited_scores(
    supernet: nn.Module, path: dict[str, list[int]], bn_batches: list[torch.Tensor], valid: list[tuple]
) -> dict[str, float]:
    """``top1`` (%) and mean cross-entropy ``loss`` of the supernet along ``path`` on the ``valid``
    batches, after recalibrating every BatchNorm's statistics on ``bn_batches`` (cumulative averages
    over them, as SPOS does)."""
    norms = [m for m in supernet.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    supernet.train()
    for x in bn_batches:
        supernet(x, path=path)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    supernet.eval()
    correct = total = 0
    loss = 0.0
    for x, y in valid:
        logits = supernet(x, path=path)
        correct += int((logits.argmax(1) == y).sum())
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        total += len(y)
    supernet.train()
    return {"top1": 100.0 * correct / max(total, 1), "loss": loss / max(total, 1)}


def ranking_batches(
    halves: dict, batch_size: int, resolution: int, device, seed: int, bn_batches: int, rank_images: int
) -> tuple[list[torch.Tensor], list[tuple]]:
    """``bn_batches`` fixed augmented batches of the weights' half (BatchNorm recalibration) and the
    first ``rank_images`` images of the held-out half (the ranking), as tensors on ``device``."""
    bn_loader = make_loader(halves["weights"], batch_size, resolution, True, device, seed=seed)
    bn_loader.set_epoch(0)
    bn = [x for (x, _), _ in zip(bn_loader, range(bn_batches), strict=False)]
    held = halves["arch"].subset(np.arange(min(rank_images, len(halves["arch"]))))
    return bn, list(make_loader(held, 256, resolution, False, device))


RANK_KEYS = {"loss": lambda s: s["loss"], "top1": lambda s: -s["top1"]}  # smaller ranks first


@dataclass
class RankingOptions:
    rank_candidates: int = option(100, "cells ranked by inherited weights (--rank_by) to derive one")
    rank_images: int = option(1000, "held-out training images of the ranking (never the test split)")
    bn_batches: int = option(5, "training batches that recalibrate BatchNorm for each ranked cell")
    rank_by: str = option("loss", "what orders the ranked cells: loss (held-out cross-entropy) or top1")


class RankingStrategy(WeightSharingStrategy):
    """A method that derives by ranking candidate cells with inherited weights (SPOS, ENAS)."""

    weights_every_epoch = False  # table_weights ranks the candidates: at the end of a chunk only

    def check(self) -> None:
        super().check()
        o = self.options
        for flag in ("rank_candidates", "rank_images", "bn_batches"):
            if getattr(o, flag) < 1:
                raise UserError(f"--{flag} {getattr(o, flag)} must be >= 1")
        if o.rank_by not in RANK_KEYS:
            raise UserError(f"--rank_by {o.rank_by!r}: choose {' or '.join(RANK_KEYS)}")

    def candidates(self, n: int, rng: np.random.Generator) -> list[Arch]:
        """``n`` cells to rank (default: uniform draws of the space)."""
        return self.ctx.space.sample(n, rng)

    def ranking(self) -> list[tuple[dict[str, float], Arch]]:
        """``(inherited scores, cell)`` of this epoch's candidates, best first by ``--rank_by``
        (computed once per epoch)."""
        cached = getattr(self, "_ranking", None)
        if cached is not None and cached[0] == self.epoch:
            return cached[1]
        o = self.options
        rng = np.random.default_rng(derive_seed(self.ctx.seed, 23, self.epoch))
        seen, archs = set(), []
        for arch in self.candidates(o.rank_candidates, rng):
            aid = self.ctx.space.arch_id(arch)
            if aid not in seen:
                seen.add(aid)
                archs.append(arch)
        bn, valid = self.rank_data()
        scored = [(inherited_scores(self.supernet, self.supernet.path_of(a), bn, valid), a) for a in archs]
        key = RANK_KEYS[o.rank_by]
        order = sorted(range(len(scored)), key=lambda i: (key(scored[i][0]), i))
        self._ranking = (self.epoch, [scored[i] for i in order])
        return self._ranking[1]

    def rank_data(self) -> tuple[list[torch.Tensor], list[tuple]]:
        """Fixed BatchNorm batches (of the weights' half) and ranking images (of the other half)."""
        if getattr(self, "_rank_data", None) is None:
            o = self.options
            halves = {k: loader.split for k, loader in self.loaders.items()}
            self._rank_data = ranking_batches(
                halves, o.batch_size, o.resolution, self.device, self.ctx.seed, o.bn_batches, o.rank_images
            )
        return self._rank_data

    def derive(self) -> Arch:
        return self.ranking()[0][1]

    def derived_summary(self) -> dict[str, float]:
        scores = self.ranking()[0][0]
        return {"derived_inherited_top1": scores["top1"], "derived_inherited_loss": scores["loss"]}

    def proposals(self, n: int, rng: np.random.Generator) -> list[Arch]:
        return new_unique(self.ctx, [a for _, a in self.ranking()])[:n]

    def table_weights(self) -> dict[str, np.ndarray]:
        """How often each operation appears on each edge among the 10 best-ranked cells."""
        top = [a for _, a in self.ranking()[:10]]
        shapes = self.supernet.arch_shapes()
        out = {k: np.zeros(shape) for k, shape in shapes.items()}
        for arch in top:
            for k, ops in self.supernet.path_of(arch).items():
                out[k][np.arange(len(ops)), ops] += 1.0 / len(top)
        return out


@dataclass
class SposOptions(WeightSharingOptions, RankingOptions):
    affine: bool = option(False, "learnable BatchNorm scale and shift inside the cells")
    sampling: str = option(
        "uniform",
        "paths per step: uniform (SPOS: one, every edge's operation drawn independently) or fair "
        "(FairNAS: one per operation, each edge's operations permuted across them, gradients summed; "
        "an epoch costs as many uniform epochs as an edge has operations)",
    )


@STRATEGIES.register("spos")
class Spos(RankingStrategy):
    """Single-path one-shot: uniform single-path training, then ranking by inherited weights."""

    Options = SposOptions

    def check(self) -> None:
        super().check()
        sampling, space = self.options.sampling, self.ctx.space.name
        if sampling not in ("uniform", "fair"):
            raise UserError(f"--sampling {sampling!r}: choose uniform or fair")
        if sampling == "fair" and not SUPERNETS.get(space).independent_edges:
            raise UserError(
                f"--sampling fair permutes every edge's operations, which the {space} space's cells "
                "do not allow; use uniform"
            )

    def supernet_options(self) -> dict[str, Any]:
        return {"affine": self.options.affine}

    def train_epoch(self, epoch: int, gen: torch.Generator, bar: tqdm) -> dict[str, float]:
        net, loss_sum, top1_sum, n = self.supernet, 0.0, 0.0, 0
        for x, y in self.loaders["weights"]:
            paths = net.fair_paths(gen) if self.options.sampling == "fair" else [net.random_path(gen)]
            loss, top1 = self.weight_step(x, y, *(lambda x, path=path: net(x, path=path) for path in paths))
            loss_sum += loss
            top1_sum += top1
            n += 1
            bar.update()
        return {"train_loss": loss_sum / max(n, 1), "train_top1": top1_sum / max(n, 1)}
