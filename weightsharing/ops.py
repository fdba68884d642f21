"""Operations of weight-sharing supernets: the mixed operation of an edge, its partial-channel form
(PC-DARTS) and the channel shuffle.

A :class:`MixedOp` holds every candidate operation of one edge. Called with ``weights`` (one per
candidate, e.g. ``softmax(alpha)``) it returns their weighted sum (DARTS's continuous relaxation);
called with ``index`` it runs that one candidate only (a single path: SPOS, ENAS, ProxylessNAS's
binarised paths and the evaluation of a sampled cell), so a single path costs the time and memory of
one operation. Candidates that are :class:`Zero` are never run: their output is zero, and so is
their contribution to any gradient.

With ``partial = K > 1`` (PC-DARTS) only the first ``C / K`` channels go through the candidates; the
other channels bypass the edge unchanged, are concatenated after them, and the result is
channel-shuffled with ``K`` groups so that a different part of the channels is sampled by the next
edge. The candidates are built for ``C / K`` channels; on a reduction edge ``bypass`` (e.g. a 2x2
max pool) brings the bypassing channels to the candidates' output size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn


class Zero(nn.Module):
    """The ``none`` operation: zeros of the input's shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: channel ``g * (C / groups) + i`` moves to ``i * groups + g``."""
    b, c, h, w = x.shape
    if c % groups:
        raise ValueError(f"{c} channels cannot be shuffled in {groups} groups")
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class MixedOp(nn.Module):
    """The candidate operations of one edge (see the module docstring)."""

    def __init__(
        self, candidates: Sequence[nn.Module], partial: int = 1, bypass: nn.Module | None = None
    ) -> None:
        super().__init__()
        if partial < 1:
            raise ValueError(f"partial must be >= 1, got {partial}")
        self.candidates = nn.ModuleList(candidates)
        self.partial = int(partial)
        self.bypass = nn.Identity() if bypass is None else bypass

    def forward(
        self, x: torch.Tensor, weights: torch.Tensor | None = None, index: int | None = None
    ) -> torch.Tensor:
        k = self.partial
        part = x if k == 1 else x[:, : x.shape[1] // k]
        if index is not None:
            y = self.candidates[int(index)](part)
        elif weights is None:
            raise ValueError("a mixed operation needs weights (the relaxation) or index (one path)")
        else:
            y = None
            for w, op in zip(weights, self.candidates, strict=True):
                if isinstance(op, Zero):
                    continue
                term = w * op(part)
                y = term if y is None else y + term
            if y is None:
                y = part.mul(0.0)
        if k == 1:
            return y
        return channel_shuffle(torch.cat([y, self.bypass(x[:, x.shape[1] // k :])], dim=1), k)
