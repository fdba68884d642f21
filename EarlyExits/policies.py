"""Exit policies, the simulated evaluation, avg_macs and threshold tuning.

A policy turns an exit's outputs into a score per sample; the sample leaves at the first early
exit whose score reaches that exit's threshold, else at the final classifier. Every policy is a
"score >= threshold" rule, so lowering a threshold always lets more samples out early:

- ``score_margin`` (EDANAS): top-1 minus top-2 softmax probability;
- ``cumulative`` (NACHOS): the cumulative exit probability ``Q_i = sum_{j<=i} q_j`` with
  ``q_i = p_i * prod_{j<i} (1 - p_j)`` and ``p_i`` the sigmoid of the head's confidence unit;
- ``entropy``: one minus the softmax entropy divided by ``log(n_classes)`` (1 = certain), i.e.
  "entropy below a threshold" with the threshold on the same 0..1 scale as the others.

The same :meth:`ExitPolicy.step` decides in the simulated evaluation (:func:`simulate`: every head
on every sample) and in the real early-exit forward (:meth:`EarlyExits.network.EarlyExitNet.
exit_forward`), so both give the same exits.

``avg_macs = sum_b ratio_b * exit_macs[b]``, where ``exit_macs[b]`` is what a sample leaving at exit
``b`` paid: the backbone up to ``b`` and every head evaluated up to and including ``b`` (the
reference counts only the head a sample left at, so its avg_macs are too low).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from EarlyExits.runtime import cumulative_score, entropy_score, margin_score
from nas.components import Component
from nas.registry import Registry

EXIT_POLICIES: Registry = Registry("exit policy")
GRID = (0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8)  # NACHOS's threshold grid


class ExitPolicy(Component):
    """Scores per sample at exit ``i``; ``carry`` is per-sample state passed from exit to exit."""

    needs_confidence: ClassVar[bool] = False

    def start(self, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """The carry before the first exit, one row per sample."""
        return torch.zeros(n, 2, device=device)

    def step(
        self, logits: torch.Tensor, conf: torch.Tensor | None, carry: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(score, carry)`` of the samples in ``logits`` at this exit."""
        raise NotImplementedError


@EXIT_POLICIES.register("score_margin")
class ScoreMargin(ExitPolicy):
    """Top-1 minus top-2 softmax probability (EDANAS)."""

    def step(self, logits, conf, carry):
        return margin_score(logits), carry


@EXIT_POLICIES.register("entropy")
class Entropy(ExitPolicy):
    """``1 - H(softmax) / log(n_classes)``: exits when the entropy is low."""

    def step(self, logits, conf, carry):
        return entropy_score(logits), carry


@EXIT_POLICIES.register("cumulative")
class Cumulative(ExitPolicy):
    """Cumulative exit probability from the heads' confidence units (NACHOS)."""

    needs_confidence = True

    def start(self, n, device="cpu"):
        carry = torch.zeros(n, 2, device=device)
        carry[:, 1] = 1.0  # columns: Q so far, prod (1 - p) so far
        return carry

    def step(self, logits, conf, carry):
        if conf is None:
            raise ValueError("the cumulative policy needs heads with a confidence unit (cbnmobilenetv3)")
        score, q_total, survive = cumulative_score(conf, carry[:, 0], carry[:, 1])
        return score, torch.stack([q_total, survive], dim=1)


def get_policy(name: str) -> ExitPolicy:
    return EXIT_POLICIES.get(name)()


@dataclass
class Outputs:
    """Every exit's outputs on a split: ``logits[i]`` [n, classes] and ``conf[i]`` [n] (early exits
    with a confidence unit), ``labels`` [n]."""

    logits: list[torch.Tensor]
    conf: list[torch.Tensor] | None
    labels: torch.Tensor

    @property
    def n_exits(self) -> int:
        """Early exits (the final classifier not counted)."""
        return len(self.logits) - 1


def scores(out: Outputs, policy: ExitPolicy) -> torch.Tensor:
    """Policy scores [n, early exits], computed once (thresholds do not change them)."""
    n = len(out.labels)
    carry = policy.start(n, out.labels.device)
    cols = []
    for i in range(out.n_exits):
        s, carry = policy.step(out.logits[i], None if out.conf is None else out.conf[i], carry)
        cols.append(s)
    return torch.stack(cols, dim=1) if cols else torch.zeros(n, 0)


def exit_index(score: torch.Tensor, thresholds: Sequence[float]) -> torch.Tensor:
    """The exit each sample leaves at: the first early exit whose score reaches its threshold, else
    the final one (index = number of early exits)."""
    n, k = score.shape
    if len(thresholds) != k:
        raise ValueError(f"{len(thresholds)} thresholds for {k} early exits")
    fires = score >= torch.as_tensor(list(thresholds), dtype=score.dtype, device=score.device)[None, :]
    fires = torch.cat([fires, torch.ones(n, 1, dtype=torch.bool, device=score.device)], dim=1)
    return fires.to(torch.uint8).argmax(dim=1)  # the first True


@dataclass
class ExitStats:
    """What a set of thresholds gives on a split."""

    top1: float  # percent, of the early-exit network
    ratio: list[float]  # share of samples leaving at each exit (sums to 1)
    acc_taken: list[float | None]  # top-1 of the samples leaving at each exit (None: nobody)
    avg_macs: float
    exits: torch.Tensor  # exit index per sample

    def row(self) -> dict:
        return {
            "top1": self.top1,
            "exit_ratio": self.ratio,
            "exit_acc": self.acc_taken,
            "avg_macs": self.avg_macs,
        }


def evaluate(
    out: Outputs, score: torch.Tensor, thresholds: Sequence[float], exit_macs: Sequence[float]
) -> ExitStats:
    """Top-1, exit ratios, per-exit accuracy and avg_macs of ``thresholds``."""
    idx = exit_index(score, thresholds)
    n = len(out.labels)
    pred = torch.stack([lg.argmax(dim=1) for lg in out.logits], dim=1).gather(1, idx[:, None])[:, 0]
    correct = pred == out.labels
    counts = torch.bincount(idx, minlength=out.n_exits + 1).tolist()
    ratio = [c / n for c in counts]
    acc = [
        100.0 * correct[idx == b].float().mean().item() if counts[b] else None for b in range(out.n_exits + 1)
    ]
    return ExitStats(100.0 * correct.float().mean().item(), ratio, acc, avg_macs(ratio, exit_macs), idx)


def avg_macs(ratio: Sequence[float], exit_macs: Sequence[float]) -> float:
    """``sum_b ratio_b * exit_macs[b]`` (``exit_macs`` cumulative: prefix + every head run)."""
    if len(ratio) != len(exit_macs):
        raise ValueError(f"{len(ratio)} exit ratios for {len(exit_macs)} exits")
    return float(sum(r * m for r, m in zip(ratio, exit_macs, strict=True)))


def tune(
    out: Outputs,
    score: torch.Tensor,
    exit_macs: Sequence[float],
    mmax: float | None = None,
    top1min: float | None = None,
    grid: Sequence[float] = GRID,
    step: float = 0.1,
) -> list[float]:
    """Thresholds chosen on ``out`` (the validation split): the grid value (one for every early
    exit) with the best top-1 (ties: the lower avg_macs); then, if avg_macs exceeds ``mmax`` while
    top-1 is at least ``top1min``, the repair rule lowers thresholds by ``step``, from the last
    early exit backwards, while the constraint is violated and top-1 stays at or above
    ``top1min`` (a step that drops below it is undone and the next exit tried)."""
    k = out.n_exits
    if k == 0:
        return []
    best, best_key = None, None
    for g in grid:
        st = evaluate(out, score, [g] * k, exit_macs)
        key = (st.top1, -st.avg_macs)
        if best_key is None or key > best_key:
            best, best_key = [float(g)] * k, key
    thr = list(best)
    st = evaluate(out, score, thr, exit_macs)
    if mmax is None or st.avg_macs <= mmax or (top1min is not None and st.top1 < top1min):
        return thr
    for i in reversed(range(k)):
        while st.avg_macs > mmax and thr[i] - step >= min(grid) - 1e-9:
            trial = list(thr)
            trial[i] = round(thr[i] - step, 10)
            st_trial = evaluate(out, score, trial, exit_macs)
            if top1min is not None and st_trial.top1 < top1min:
                break
            thr, st = trial, st_trial
        if st.avg_macs <= mmax:
            break
    return thr


def ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Expected calibration error (percent) of the top-1 confidence, equal-width bins."""
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).float()
    edges = np.linspace(0, 1, n_bins + 1)
    total, n = 0.0, len(labels)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.sum().item() / n * abs(conf[m].mean().item() - correct[m].mean().item())
    return 100.0 * total
