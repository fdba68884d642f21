"""ProxylessNAS (``--strategy proxyless``) on the OFA MobileNetV3 space, with a look-up-table latency.

Cai, Zhu and Han, ICLR 2019, on OFA's dynamic ``OFAMobileNetV3`` supernet (``space.make_supernet``),
as a strategy of the search loop (:mod:`weightsharing.method`).

**Architecture parameters.** Every block slot ``j`` (20 = 5 stages x 4) has logits ``alpha[j]``
over the 9 choices kernel {3, 5, 7} x expand {3, 4, 6} (:data:`CHOICES`); every stage ``s`` has
logits ``beta[s]`` over its depth {2, 3, 4}. The depth is a categorical per stage rather than zero
operations on slots 2 and 3 because OFA's depth is a prefix (slot 3 cannot run without slot 2): a
categorical over the depths is that constraint exactly, with no invalid combination to mask. Slot
``i`` of stage ``s`` runs with probability ``P(d_s > i)`` (1 for slots 0 and 1). REINFORCE's
``log p(path)`` counts the depths and the choices of the active slots only: the choices of slots the
depth switches off do not change the reward, so their score-function term would be noise.

**Binarised paths.** Every weight step samples ONE path (a choice per slot, a depth per stage) from
the current probabilities, ``space.activate(supernet, path)`` sets it and only that path runs (OFA's
dynamic layers slice the active kernel and expand width; blocks beyond the depth are not called), so
memory and time are those of one subnet. The shared weights train with SGD on one half of the
training images (the base class's cosine schedule).

**Architecture update.** After every weight step (once ``--warmup_epochs`` are over), on a batch of
the other half: REINFORCE over ``--arch_samples`` paths sampled the same way, reward = the path's
top-1 (fraction) on the batch under the shared weights (BatchNorm on the batch's statistics, as
ENAS), advantage against an exponential moving-average baseline (``--baseline_decay``), plus the
differentiable latency loss::

    E[lat] = fixed + sum_j P(slot j active) * sum_c p_j(c) * lat_j(c)
    loss   = -mean_m (R_m - b) log p(path_m) + --latency_weight * (log E[lat] - log --target_latency)^2

``lat_j(c)`` is the look-up table's entry of slot ``j`` with choice ``c`` and ``fixed`` the stem, the
fixed first block and the head (:func:`block_latencies`); since a block's entry depends only on its
stage, position, kernel and expand, ``E[lat]`` is exactly the expected LUT latency of a sampled path
(:func:`expected_latency`). The squared log-ratio (rather than ProxylessNAS's multiplicative
``CE x (log E / log T)^beta``, which needs a differentiable CE term that REINFORCE does not have) is
zero at the target and pulls ``E[lat]`` toward it from either side, in relative terms: its gradient
w.r.t. ``log E`` is ``2 w log(E / T)``. The architecture parameters use Adam (ProxylessNAS: lr
``--arch_lr`` 1e-3, betas (0, 0.999)).

**Resolution.** The supernet trains at ``--resolution`` pixels (CIFAR: 32) while latency is
priced at ``--lut_resolution``,
one of the table's resolutions (Note10: 160..224) and of the run's space: the derived architecture's
``r`` is ``--lut_resolution``, so the ``ofa_note10`` oracle and the ``lut_latency`` cost provider
score exactly the network whose latency the search constrained. ``--lut_dir`` / ``--lut_device``
have the names of the ``lut_latency`` cost provider's options, so one flag sets both.

**Derive.** The most probable architecture whose LUT latency lies in the band ``[(1 -
--latency_tolerance) x --target_latency, --target_latency]``, an architecture being ranked by the
probability of its most probable path, ``prod_s p(d_s) prod_{active j} p_j(c_j) prod_{inactive j} max_c
p_j(c)``: without a budget, ProxylessNAS's argmax of every decision (each stage's depth, each slot's
choice). Ranking canonical architectures by their total probability instead (summed over the choices of
the slots switched off) would favour shallow stages whenever the choices are uncertain, each active slot
multiplying it by at most ``max_c p_j(c)`` (about 1/9 at the start): a counting effect, not the search's
preference. The budget makes it a multiple-choice knapsack over the stages (a depth, then a choice per
active slot), solved by dynamic programming over the budget left after the fixed layers in
:data:`BUDGET_BINS` steps, every block's latency rounded *up* to the grid
(:func:`most_probable_under_budget`), so every answer meets the budget; it is exact up to that grid (an
architecture can be missed only when its latency is within 20 grid steps, 0.5% of the blocks' budget,
below the target); the band's lower end drops the grid cells below it, and the table's latency of every
answer is checked against both ends. The lower end is ours: a budget is there to be spent. After a short
search the probabilities are still flat, and the most probable architecture under the budget alone can
be far below it (11-14 ms of an 18 ms target on our CPU preset) while the latency loss holds ``E[lat]``
near the target: ProxylessNAS's argmax meets its target once the probabilities have converged.
``--latency_tolerance 1`` is the budget alone. Its LUT latency and the ratio to the target go to the log
(``derived_latency``, ``latency_ratio``). Proposals: the derived architecture first, then the next most
probable ones in the band (the same dynamic programme keeping the ``k`` best per budget cell), none
already evaluated.

**Plot.** :meth:`Proxyless.table_weights` is one table, ``blocks`` (20 x 10): per slot, ``P(active)
p(choice)`` for the 9 choices and ``1 - P(active)`` for ``zero``, drawn as
``plots/arch_weights.png``.

The channel options of cell supernets (``--channels``, ``--cells``) do not apply: the OFA supernet's
widths and depths are the space's; they must stay 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from nas.config import option
from nas.data.loaders import derive_seed
from nas.errors import UserError
from nas.search.strategies import STRATEGIES
from nas.space import Arch
from NasSearchSpace.ofa_mbv3_latency import LatencyTable
from NasSearchSpace.ofa_mbv3_layout import D_OPTIONS, E_OPTIONS, KS_OPTIONS, MAX_DEPTH, N_BLOCKS, N_STAGES
from strategies.common import new_unique
from weightsharing.method import (
    WeightSharingOptions,
    WeightSharingStrategy,
    accuracy,
    endless,
)

CHOICES: tuple[tuple[int, int], ...] = tuple((k, e) for k in KS_OPTIONS for e in E_OPTIONS)
OP_NAMES: tuple[str, ...] = (*(f"k{k}e{e}" for k, e in CHOICES), "zero")
DEFAULT_LUT_DIR = Path(__file__).resolve().parents[1] / "data" / "ofa"
BUDGET_BINS = 4000  # grid of the derivation's knapsack over the blocks' latency budget


# ---- latency -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockLatencies:
    """A look-up table's latency of OFA MobileNetV3 at one resolution, split for the search."""

    fixed: float  # ms: first conv, fixed first block, final expand, pooling, feature mix, logits
    blocks: np.ndarray  # (20, 9) ms: slot j with choice c (kernel, expand) = CHOICES[c]
    resolution: int


def block_latencies(table: LatencyTable, resolution: int) -> BlockLatencies:
    """The table's entries at ``resolution``: the fixed layers' sum and every slot x choice."""
    blocks = np.zeros((N_BLOCKS, len(CHOICES)))
    fixed = None
    for c, (k, e) in enumerate(CHOICES):
        arch = {"ks": [k] * N_BLOCKS, "e": [e] * N_BLOCKS, "d": [MAX_DEPTH] * N_STAGES, "r": resolution}
        entries = [ms for _, ms in table.entries(arch)]  # 2 fixed, 20 blocks, 4 fixed
        blocks[:, c] = entries[2 : 2 + N_BLOCKS]
        fixed = sum(entries[:2]) + sum(entries[2 + N_BLOCKS :])
    return BlockLatencies(float(fixed), blocks, int(resolution))


def active_probabilities(depth_probs: torch.Tensor, depth_options: Sequence[int] = D_OPTIONS) -> torch.Tensor:
    """``(stages, 4)``: the probability that slot ``i`` of each stage runs, ``P(d > i)``."""
    d = torch.as_tensor(list(depth_options), device=depth_probs.device)
    runs = (d[:, None] > torch.arange(MAX_DEPTH, device=depth_probs.device)[None, :]).to(depth_probs.dtype)
    return depth_probs @ runs


def expected_latency(
    block_probs: torch.Tensor,
    depth_probs: torch.Tensor,
    lat: BlockLatencies,
    depth_options: Sequence[int] = D_OPTIONS,
) -> torch.Tensor:
    """``E[lat] = fixed + sum_j P(slot j active) sum_c p_j(c) lat_j(c)`` (ms), differentiable in both
    probability tables: ``block_probs`` (20, 9), ``depth_probs`` (5, len(depth_options))."""
    blocks = torch.as_tensor(lat.blocks, dtype=block_probs.dtype, device=block_probs.device)
    per_slot = (block_probs * blocks).sum(-1)
    active = active_probabilities(depth_probs, depth_options).reshape(-1)
    return lat.fixed + (active * per_slot).sum()


def latency_loss(expected: torch.Tensor, target: float, weight: float) -> torch.Tensor:
    """``weight * (log E[lat] - log target)^2``: zero at the target, pulls ``E[lat]`` toward it."""
    return weight * (torch.log(expected) - math.log(target)) ** 2


# ---- the derivation's knapsack -------------------------------------------------------------------


def path_depth_scores(
    depth_logp: np.ndarray, block_logp: np.ndarray, depth_options: Sequence[int]
) -> np.ndarray:
    """``(stages, depths)``: ``log p(d) + sum over the slots beyond d of max_c log p_j(c)``, the score
    of depth ``d`` when architectures are ranked by their most probable path (the slots a depth
    switches off take their most probable choice, which costs no latency)."""
    best = block_logp.max(-1)  # (stages, slots)
    tails = np.stack([best[:, d:].sum(-1) for d in depth_options], axis=1)
    return depth_logp + tails


def _add_group(
    values: np.ndarray, costs: np.ndarray, logp: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One more slot: ``values[b, r]`` the r-th best log-probability at cost ``b``; returns the new
    table and, per cell, the choice and the rank in ``values`` it came from."""
    n_bins, n_choices = values.shape[0], len(costs)
    cand = np.full((n_bins, n_choices, k), -np.inf)
    for c in range(n_choices):
        w = int(costs[c])
        if w < n_bins:
            cand[w:, c, :] = values[: n_bins - w] + logp[c]
    flat = cand.reshape(n_bins, n_choices * k)
    order = np.argsort(-flat, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(flat, order, 1), (order // k).astype(np.int16), (order % k).astype(np.int32)


def most_probable_under_budget(
    fixed: float,
    block_lat: np.ndarray,
    block_logp: np.ndarray,
    depth_logp: np.ndarray,
    depth_options: Sequence[int],
    budget: float,
    k: int = 1,
    bins: int = BUDGET_BINS,
    least: float | None = None,
) -> list[tuple[float, list[int], list[list[int]]]]:
    """The ``k`` most probable architectures of latency ``<= budget`` (and, given ``least``, of
    rounded latency ``>= least``), best first, as ``(log p, depths, choices of the active slots per
    stage)``.

    ``block_lat`` and ``block_logp`` are ``(stages, slots, choices)``, ``depth_logp`` is ``(stages,
    len(depth_options))``; an architecture's latency is ``fixed`` plus its active slots' entries,
    its log-probability the sum of its depths' and its active slots' entries. Dynamic programming
    over the budget left after ``fixed`` in ``bins`` steps, each entry rounded up to the grid: every
    answer's latency is within the budget, and the answers are the ``k`` best of the architectures
    whose rounded latency fits (every architecture within ``budget - slots x step`` is among them).
    """
    depth_options = [int(d) for d in depth_options]
    n_stages, n_slots, _ = block_lat.shape
    if max(depth_options) > n_slots or min(depth_options) < 1:
        raise ValueError(f"depth options {depth_options} must lie in 1..{n_slots}")
    room = budget - fixed
    if room < 0 or k < 1:
        return []
    step = room / bins if room > 0 else 1.0
    cost = np.maximum(np.ceil(block_lat / step - 1e-9), 0).astype(np.int64)
    n_bins = bins + 1
    values = np.full((n_bins, k), -np.inf)
    values[0, 0] = 0.0
    trace = []
    for s in range(n_stages):
        h, slots, ends = values, [], []
        for i in range(max(depth_options)):
            h, choice, rank = _add_group(h, cost[s, i], block_logp[s, i], k)
            slots.append((choice, rank))
            if i + 1 in depth_options:
                ends.append(h + depth_logp[s, depth_options.index(i + 1)])
        flat = np.concatenate(ends, axis=1)
        order = np.argsort(-flat, axis=1, kind="stable")[:, :k]
        values = np.take_along_axis(flat, order, 1)
        trace.append((slots, order // k, order % k))
    ends_depth = [d for d in range(1, max(depth_options) + 1) if d in depth_options]
    if least is not None:  # rounded latencies below the band: out
        values[: max(0, min(n_bins, math.ceil((least - fixed) / step - 1e-9)))] = -np.inf
    flat = values.reshape(-1)
    found = []
    for idx in np.argsort(-flat, kind="stable")[:k]:
        if not np.isfinite(flat[idx]):
            break
        b, r = divmod(int(idx), k)
        depths, choices = [0] * n_stages, [[] for _ in range(n_stages)]
        for s in reversed(range(n_stages)):
            slots, which, rank = trace[s]
            d = ends_depth[int(which[b, r])]
            r = int(rank[b, r])
            picked = []
            for i in reversed(range(d)):
                choice, prev = slots[i]
                c = int(choice[b, r])
                r = int(prev[b, r])
                b -= int(cost[s, i, c])
                picked.append(c)
            depths[s], choices[s] = d, picked[::-1]
        found.append((float(flat[idx]), depths, choices))
    return found


# ---- the strategy --------------------------------------------------------------------------------


@dataclass
class ProxylessOptions(WeightSharingOptions):
    channels: int = option(0, "not used by proxyless (the OFA supernet's widths are the space's); leave 0")
    cells: int = option(0, "not used by proxyless (the OFA supernet's depths are the space's); leave 0")
    epochs: int = option(50, "training epochs of the search in all")
    lut_resolution: int = option(
        160, "resolution the latency is priced at and the derived arch's r (a table's and the space's)"
    )
    lut_dir: str | None = option(
        None, "folder of OFA-format latency tables <device>_<r>_lookup_table.yaml (default: data/ofa)"
    )
    lut_device: str | None = option(None, "device of the tables (default: the only one in --lut_dir)")
    target_latency: float = option(18.0, "latency budget in ms of the derived architecture (the LUT's)")
    latency_tolerance: float = option(
        0.05, "the derived architecture's latency lies in [(1 - this) x target, target] (1: any below it)"
    )
    latency_weight: float = option(
        5.0, "weight of the latency loss (log E[lat] - log target)^2 of the architecture step"
    )
    arch_lr: float = option(1e-3, "architecture learning rate (Adam, betas 0 / 0.999; ProxylessNAS: 1e-3)")
    arch_samples: int = option(1, "paths sampled and rewarded per architecture step (REINFORCE)")
    baseline_decay: float = option(0.9, "decay of the reward's moving-average baseline")
    warmup_epochs: int = option(
        10, "epochs that train the weights only (paths from the initial probabilities)"
    )


@STRATEGIES.register("proxyless")
class Proxyless(WeightSharingStrategy):
    """ProxylessNAS over OFA MobileNetV3 (see the module docstring)."""

    Options = ProxylessOptions

    # ---- checks and setup ---------------------------------------------------------------------

    def check_supernet(self) -> None:
        o = self.options
        space = self.ctx.space
        if space.name != "mobilenetv3":
            raise UserError(
                f"strategy 'proxyless' searches the OFA MobileNetV3 space, not {space.name!r}; "
                "use --search_space mobilenetv3"
            )
        for flag in ("channels", "cells"):
            if getattr(o, flag) != 0:
                raise UserError(
                    f"--{flag} does not apply to proxyless (the OFA supernet's widths and depths are the "
                    "space's); leave it out"
                )

    def check(self) -> None:
        super().check()
        o = self.options
        space = self.ctx.space
        if o.arch_samples < 1:
            raise UserError(f"--arch_samples {o.arch_samples} must be >= 1")
        if not 0 <= o.warmup_epochs < o.epochs:
            raise UserError(f"--warmup_epochs {o.warmup_epochs} must be in [0, --epochs {o.epochs})")
        if o.arch_lr <= 0 or o.latency_weight < 0:
            raise UserError(f"--arch_lr {o.arch_lr} must be > 0 and --latency_weight {o.latency_weight} >= 0")
        if not 0 <= o.baseline_decay < 1:
            raise UserError(f"--baseline_decay {o.baseline_decay} must be in [0, 1)")
        if o.lut_resolution not in space.resolutions:
            raise UserError(
                f"--lut_resolution {o.lut_resolution} is not a resolution of the search space "
                f"{list(space.resolutions)}; change it or the space's resolution range"
            )
        if not 0 < o.latency_tolerance <= 1:
            raise UserError(f"--latency_tolerance {o.latency_tolerance} must be in (0, 1]")
        fastest = self._fastest_blocks()
        floor = self.latencies().fixed + fastest
        if not o.target_latency >= floor + fastest * 20 / BUDGET_BINS:  # the knapsack's grid slack
            raise UserError(
                f"--target_latency {o.target_latency} ms is below the fastest subnet's {floor:.3f} ms at "
                f"--lut_resolution {o.lut_resolution} (plus 0.5% of its blocks'); no architecture meets it"
            )
        slowest = floor - fastest + float(self.latencies().blocks.max(1).sum())
        if self.least_latency > slowest:
            raise UserError(
                f"--target_latency {o.target_latency} ms with --latency_tolerance {o.latency_tolerance} asks "
                f"for at least {self.least_latency:.3f} ms, above the slowest subnet's {slowest:.3f} ms at "
                f"--lut_resolution {o.lut_resolution}; lower the target or raise the tolerance"
            )

    @property
    def least_latency(self) -> float:
        """The lower end of the derived architecture's latency band (ms)."""
        return (1 - self.options.latency_tolerance) * self.options.target_latency

    def latencies(self) -> BlockLatencies:
        """The look-up table's entries at ``--lut_resolution`` (loaded once)."""
        if getattr(self, "_latencies", None) is None:
            o = self.options
            folder = DEFAULT_LUT_DIR if o.lut_dir is None else Path(o.lut_dir)
            self.table = LatencyTable(
                folder,
                device=o.lut_device,
                resolutions=[o.lut_resolution],
                width_mult=self.ctx.space.width_mult,
            )
            try:
                self._latencies = block_latencies(self.table, o.lut_resolution)
            except UserError:
                raise UserError(
                    f"the latency tables in {str(folder)!r} have no entries for this space's "
                    f"w{self.ctx.space.width_mult} blocks (OFA's Note10 tables are for --width_mult 1.2)"
                ) from None
        return self._latencies

    def _fastest_blocks(self) -> float:
        fastest = self.latencies().blocks.min(1).reshape(N_STAGES, MAX_DEPTH)
        return float(sum(min(fastest[s, :d].sum() for d in D_OPTIONS) for s in range(N_STAGES)))

    def make_supernet(self) -> torch.nn.Module:
        """OFA's dynamic MobileNetV3 (not a cell supernet); a path is a subnet set active."""
        return self.ctx.space.make_supernet(self.n_classes, dropout_rate=0.0)

    @property
    def op_names(self) -> tuple[str, ...]:
        return OP_NAMES

    def build(self, gen: torch.Generator) -> None:
        o = self.options
        self.alpha = (
            (1e-3 * torch.randn(N_BLOCKS, len(CHOICES), generator=gen, dtype=torch.float64))
            .to(self.device)
            .requires_grad_()
        )
        self.beta = (
            (1e-3 * torch.randn(N_STAGES, len(D_OPTIONS), generator=gen, dtype=torch.float64))
            .to(self.device)
            .requires_grad_()
        )
        self.a_opt = torch.optim.Adam([self.alpha, self.beta], lr=o.arch_lr, betas=(0.0, 0.999), eps=1e-8)
        self.baseline: float | None = None

    # ---- probabilities and paths ----------------------------------------------------------------

    def probabilities(self) -> tuple[np.ndarray, np.ndarray]:
        """``(20, 9)`` choice and ``(5, 3)`` depth probabilities now (float64 NumPy)."""
        with torch.no_grad():
            return (
                torch.softmax(self.alpha, -1).cpu().numpy(),
                torch.softmax(self.beta, -1).cpu().numpy(),
            )

    def expected_latency(self) -> torch.Tensor:
        """``E[lat]`` (ms) under the current probabilities, differentiable in ``alpha`` and ``beta``."""
        return expected_latency(torch.softmax(self.alpha, -1), torch.softmax(self.beta, -1), self.latencies())

    @staticmethod
    def sample_path(probs: tuple[np.ndarray, np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """One path ``(choice per slot, depth index per stage)`` drawn from ``probs``."""
        out = []
        for p in probs:
            u = rng.random(len(p))
            out.append(np.minimum((np.cumsum(p, 1) <= u[:, None]).sum(1), p.shape[1] - 1))
        return tuple(out)

    def arch_of(self, path: tuple[np.ndarray, ...]) -> Arch:
        """The architecture of a path (``r``: ``--lut_resolution``)."""
        choices, depths = path
        return {
            "ks": [CHOICES[c][0] for c in choices],
            "e": [CHOICES[c][1] for c in choices],
            "d": [D_OPTIONS[i] for i in depths],
            "r": self.options.lut_resolution,
            "w": self.ctx.space.width_mult,
        }

    def log_prob(self, path: tuple[np.ndarray, ...]) -> torch.Tensor:
        """``log p(path)``: its depths' and its active slots' log-probabilities (differentiable)."""
        choices, depths = (torch.as_tensor(np.asarray(v), device=self.device) for v in path)
        d = torch.as_tensor(D_OPTIONS, device=self.device)[depths]
        active = (torch.arange(MAX_DEPTH, device=self.device)[None, :] < d[:, None]).reshape(-1)
        logp_c = torch.log_softmax(self.alpha, -1).gather(1, choices[:, None])[:, 0]
        logp_d = torch.log_softmax(self.beta, -1).gather(1, depths[:, None])[:, 0]
        return logp_d.sum() + (logp_c * active).sum()

    def run_path(self, path: tuple[np.ndarray, ...], x: torch.Tensor) -> torch.Tensor:
        self.ctx.space.activate(self.supernet, self.arch_of(path))
        return self.supernet(x)

    # ---- training -----------------------------------------------------------------------------

    def train_epoch(self, epoch: int, gen: torch.Generator, bar: tqdm) -> dict[str, float]:
        o = self.options
        rng = np.random.default_rng(derive_seed(self.ctx.seed, 37, epoch))
        search = epoch >= o.warmup_epochs
        sums = {"train_loss": 0.0, "train_top1": 0.0, "arch_top1": 0.0, "latency_loss": 0.0}
        n = 0
        batches = endless(self.loaders["arch"]) if search else None
        for xt, yt in self.loaders["weights"]:
            path = self.sample_path(self.probabilities(), rng)
            loss, top1 = self.weight_step(xt, yt, lambda x, path=path: self.run_path(path, x))
            sums["train_loss"] += loss
            sums["train_top1"] += top1
            if batches is not None:
                xv, yv = next(batches)
                reward, lat_loss = self.arch_step(xv, yv, rng)
                sums["arch_top1"] += reward
                sums["latency_loss"] += lat_loss
            n += 1
            bar.update()
        out = {k: v / max(n, 1) for k, v in sums.items()}
        if not search:
            del out["arch_top1"], out["latency_loss"]
        out["expected_latency"] = float(self.expected_latency().detach())
        return out

    def arch_step(self, x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator) -> tuple[float, float]:
        """One REINFORCE + latency-loss step of the architecture parameters; returns the mean reward
        and the latency loss."""
        o = self.options
        probs = self.probabilities()
        paths = [self.sample_path(probs, rng) for _ in range(o.arch_samples)]
        with torch.no_grad():
            rewards = [accuracy(self.run_path(p, x), y) for p in paths]
        mean = float(np.mean(rewards))
        if self.baseline is None:
            self.baseline = mean
        advantage = torch.as_tensor(rewards, dtype=torch.float64, device=self.device) - self.baseline
        logp = torch.stack([self.log_prob(p) for p in paths])
        lat_loss = latency_loss(self.expected_latency(), o.target_latency, o.latency_weight)
        loss = -(advantage * logp).mean() + lat_loss
        self.a_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.a_opt.step()
        self.baseline = o.baseline_decay * self.baseline + (1 - o.baseline_decay) * mean
        return mean, float(lat_loss.detach())

    # ---- what the method reports ----------------------------------------------------------------

    def table_weights(self) -> dict[str, np.ndarray]:
        """``blocks`` (20 x 10): per slot ``P(active) p(choice)`` of the 9 choices, then ``1 - P(active)``."""
        pb, pd = self.probabilities()
        active = active_probabilities(torch.as_tensor(pd)).numpy().reshape(-1)
        zero = np.clip(1 - active[:, None], 0.0, 1.0)
        return {"blocks": np.concatenate([active[:, None] * pb, zero], axis=1)}

    def ranked(self, k: int) -> list[Arch]:
        """The ``k`` most probable architectures in the latency band (LUT), best first."""
        o = self.options
        lat = self.latencies()
        pb, pd = self.probabilities()
        key = (pb.tobytes(), pd.tobytes(), o.target_latency, o.latency_tolerance)
        cached = getattr(self, "_ranked", None)
        if cached is not None and cached[0] == key and len(cached[1]) >= k:
            return cached[1][:k]
        logp = np.log(np.clip(pb, 1e-300, None)).reshape(N_STAGES, MAX_DEPTH, len(CHOICES))
        found = most_probable_under_budget(
            lat.fixed,
            lat.blocks.reshape(N_STAGES, MAX_DEPTH, len(CHOICES)),
            logp,
            path_depth_scores(np.log(np.clip(pd, 1e-300, None)), logp, D_OPTIONS),
            D_OPTIONS,
            o.target_latency,
            k=k + 20,  # spares for latencies the grid rounded into the band (or 1e-9 out of the budget)
            least=self.least_latency,
        )
        space, out = self.ctx.space, []
        for _, depths, choices in found:
            full = pb.argmax(1)  # slots the depth switches off: canonical() resets them
            for s, picked in enumerate(choices):
                full[s * MAX_DEPTH : s * MAX_DEPTH + len(picked)] = picked
            arch = self.arch_of((full, np.array([D_OPTIONS.index(d) for d in depths])))
            if self.least_latency <= self.table.latency(arch) <= o.target_latency:
                out.append(space.canonical(arch))
        self._ranked = (key, out[:k])
        return out[:k]

    def derive(self) -> Arch:
        found = self.ranked(1)
        if not found:  # check() refuses such a target; a guard for a target changed afterwards
            o = self.options
            raise UserError(
                f"no architecture within [{self.least_latency:.3f}, {o.target_latency}] ms "
                f"(--target_latency, --latency_tolerance {o.latency_tolerance})"
            )
        return found[0]

    def derived_summary(self) -> dict[str, float]:
        ms = self.table.latency(self.derive())
        return {"derived_latency": ms, "latency_ratio": ms / self.options.target_latency}

    def proposals(self, n: int, rng: np.random.Generator) -> list[Arch]:
        """The derived architecture first, then the next most probable ones in the latency band."""
        return new_unique(self.ctx, self.ranked(n + len(self.ctx.archive)))[:n]

    def method_state(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha.detach().cpu(),
            "beta": self.beta.detach().cpu(),
            "a_opt": self.a_opt.state_dict(),
            "baseline": self.baseline,
        }

    def load_method_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.alpha.copy_(state["alpha"])
            self.beta.copy_(state["beta"])
        self.a_opt.load_state_dict(state["a_opt"])
        self.baseline = state["baseline"]
