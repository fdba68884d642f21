"""ENAS (``--strategy enas``): an LSTM controller trained with REINFORCE over a shared-weight supernet.

Pham et al. (ICML 2018). Every epoch alternates two phases:

1. the shared weights train for one pass over their half of the training images, each step along
   one cell the controller samples (the controller is not updated);
2. the controller trains for ``--controller_steps`` steps: each samples ``--controller_batch`` cells,
   rewards each with its top-1 on one batch of the other half under the shared weights (BatchNorm on
   the batch's statistics, as ENAS), and ascends ``mean((reward - baseline) log p(cell)) +
   --controller_entropy x entropy`` with Adam (``--controller_lr``); the baseline is an exponential
   moving average of the rewards (``--controller_baseline``).

The controller is :class:`strategies.reinforce.LSTMPolicy` (the LSTM that emits the space's genes in
order, each conditioned on the ones before it), so it works on every space with a supernet. To
derive, ENAS samples ``--rank_candidates`` cells from the controller and keeps the best by
inherited weights (``--rank_by``, :class:`weightsharing.spos.RankingStrategy`). Sampling draws only from NumPy
generators seeded by ``(seed, epoch)``, so a resumed run samples exactly what the uninterrupted one
did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from nas.config import option
from nas.data.loaders import derive_seed
from nas.errors import UserError
from nas.search.strategies import STRATEGIES
from nas.space import Arch
from strategies.reinforce import LSTMPolicy
from weightsharing.method import WeightSharingOptions, accuracy, endless
from weightsharing.spos import RankingOptions, RankingStrategy


@dataclass
class EnasOptions(WeightSharingOptions, RankingOptions):
    learning_rate: float = option(
        0.05, "weight learning rate at the start (SGD, cosine to --learning_rate_min per epoch; ENAS: 0.05)"
    )
    learning_rate_min: float = option(0.0005, "weight learning rate at the end")
    controller_steps: int = option(20, "controller updates per epoch")
    controller_batch: int = option(10, "cells sampled per controller update (ENAS aggregates 10)")
    controller_lr: float = option(3.5e-3, "controller learning rate (Adam; ENAS: 0.0035)")
    controller_entropy: float = option(1e-4, "weight of the controller's entropy bonus (ENAS: 1e-4)")
    controller_baseline: float = option(0.99, "decay of the reward's moving-average baseline (ENAS: 0.99)")
    controller_hidden: int = option(64, "LSTM hidden size of the controller")
    affine: bool = option(False, "learnable BatchNorm scale and shift inside the cells")


@STRATEGIES.register("enas")
class Enas(RankingStrategy):
    """ENAS (see the module docstring)."""

    Options = EnasOptions
    weights_every_epoch = True  # the controller's frequencies, not a ranking

    def check(self) -> None:
        super().check()
        o = self.options
        for flag in ("controller_steps", "controller_batch", "controller_hidden"):
            if getattr(o, flag) < 1:
                raise UserError(f"--{flag} {getattr(o, flag)} must be >= 1")
        if not 0 <= o.controller_baseline < 1 or o.controller_lr <= 0:
            raise UserError(
                f"--controller_baseline {o.controller_baseline} must be in [0, 1) and --controller_lr > 0"
            )

    def supernet_options(self) -> dict[str, Any]:
        return {"affine": self.options.affine}

    def build(self, gen: torch.Generator) -> None:
        o = self.options
        space = self.ctx.space
        with torch.random.fork_rng():
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            self.controller = LSTMPolicy(space.xu - space.xl + 1, o.controller_hidden)
        self.c_opt = torch.optim.Adam(self.controller.parameters(), lr=o.controller_lr)
        self.baseline: float | None = None

    def sample_cells(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[Arch]]:
        """``n`` gene vectors (offsets from ``xl``) drawn from the controller, and their cells."""
        space = self.ctx.space
        genes = self.controller.sample(n, rng)
        return genes, [space.decode(space.repair(g + space.xl)) for g in genes]

    def candidates(self, n: int, rng: np.random.Generator) -> list[Arch]:
        return self.sample_cells(n, rng)[1]

    def train_epoch(self, epoch: int, gen: torch.Generator, bar: tqdm) -> dict[str, float]:
        o = self.options
        net = self.supernet
        rng = np.random.default_rng(derive_seed(self.ctx.seed, 29, epoch))
        loss_sum = top1_sum = 0.0
        n = 0
        for x, y in self.loaders["weights"]:
            _, (arch,) = self.sample_cells(1, rng)
            path = net.path_of(arch)
            loss, top1 = self.weight_step(x, y, lambda x, path=path: net(x, path=path))
            loss_sum += loss
            top1_sum += top1
            n += 1
            bar.update()
        rewards = []
        batches = endless(self.loaders["arch"])
        for _ in range(o.controller_steps):
            xv, yv = next(batches)
            genes, archs = self.sample_cells(o.controller_batch, rng)
            with torch.no_grad():
                reward = torch.tensor(
                    [accuracy(net(xv, path=net.path_of(a)), yv) for a in archs], dtype=torch.float64
                )
            mean = float(reward.mean())
            self.baseline = (
                mean
                if self.baseline is None
                else (o.controller_baseline * self.baseline + (1 - o.controller_baseline) * mean)
            )
            logp, entropy = self.controller.log_probs(torch.as_tensor(genes))
            loss = -((reward - self.baseline) * logp).mean() - o.controller_entropy * entropy.mean()
            self.c_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.c_opt.step()
            rewards.append(mean)
        return {
            "train_loss": loss_sum / max(n, 1),
            "train_top1": top1_sum / max(n, 1),
            "controller_reward": float(np.mean(rewards)),
            "controller_entropy": float(entropy.mean().detach()),
        }

    def table_weights(self) -> dict[str, np.ndarray]:
        """The controller's operation frequencies per edge over 200 cells it samples (fixed draws)."""
        _, archs = self.sample_cells(200, np.random.default_rng(derive_seed(self.ctx.seed, 31)))
        shapes = self.supernet.arch_shapes()
        out = {k: np.zeros(shape) for k, shape in shapes.items()}
        for arch in archs:
            for k, ops in self.supernet.path_of(arch).items():
                out[k][np.arange(len(ops)), ops] += 1.0 / len(archs)
        return out

    def method_state(self) -> dict[str, Any]:
        return {
            "controller": self.controller.state_dict(),
            "c_opt": self.c_opt.state_dict(),
            "baseline": self.baseline,
        }

    def load_method_state(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.c_opt.load_state_dict(state["c_opt"])
        self.baseline = state["baseline"]
