"""Gates: small networks that decide, per input, whether a residual block runs.

A gate reads the block's input ``x`` (``C x S x S``) and returns one logit per sample; the gate is
open with probability ``p = sigmoid(logit / T)`` and, hard, when ``p > 0.5``. Three kinds
(``--gate_type``), each with the searched hidden size ``h``:

- ``stable``: global average pool -> linear C->h -> BatchNorm1d -> ReLU -> dropout 0.1 -> linear h->1.
- ``conv``: [2x2 max-pool while the map is at least 2 pixels] -> 3x3 conv C->h, BN, ReLU -> 3x3 conv
  h->h stride 2, BN, ReLU -> 1x1 conv h->1 -> global average pool. (The reference's conv gate
  ignored ``h`` and used C channels, so its hidden-size genes did nothing.)
- ``attention``: channel attention (pool -> linear C->r -> ReLU -> linear r->C -> sigmoid, r =
  max(4, C // 16)) and spatial attention (channel max and mean -> 7x7 conv -> sigmoid) applied to
  ``x``; the attended map's pooled channels and the spatial map's mean -> linear C+1->h -> ReLU ->
  linear h->1.

The last layer's bias starts at ``init_bias`` (the space's ``--gate_bias``). Each gate's ``fused()``
is its inference form (eval-mode statistics): BatchNorm folded into the layer before it, no dropout,
the same logits; the stable gate's is a few functional calls (at batch size 1 on a CPU the module
calls cost more than the arithmetic). :func:`gate_counts`
gives params, MACs and activations with the counting rules of :mod:`nas.costs` (exact integers),
so the analytic cost equals the hook count.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

GATE_TYPES = ("stable", "conv", "attention")
HIDDEN_SIZES = (16, 32, 64)


def attention_width(c: int) -> int:
    return max(4, c // 16)


def conv_sides(size: int) -> tuple[int, int]:
    """The conv gate's map sides: after the optional max-pool, after the stride-2 conv."""
    pooled = size // 2 if size >= 2 else size
    return pooled, (pooled - 1) // 2 + 1


class StableGate(nn.Module):
    def __init__(self, c: int, hidden: int, init_bias: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(c, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.drop = nn.Dropout(0.1)
        self.fc2 = nn.Linear(hidden, 1)
        nn.init.normal_(self.fc1.weight, 0.0, 0.01)
        nn.init.normal_(self.fc2.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc1.bias)
        nn.init.constant_(self.fc2.bias, init_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(torch.relu(self.bn(self.fc1(x.mean((2, 3))))))
        return self.fc2(h).squeeze(1)

    def fused(self) -> nn.Module:
        return FusedStableGate(fuse_linear_bn_eval(self.fc1.eval(), self.bn.eval()), self.fc2)


class FusedStableGate(nn.Module):
    """The stable gate for inference: pool -> linear (BatchNorm folded in) -> ReLU -> linear."""

    def __init__(self, fc1: nn.Linear, fc2: nn.Linear) -> None:
        super().__init__()
        self.fc1, self.fc2 = fc1, fc2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(F.linear(x.mean((2, 3)), self.fc1.weight, self.fc1.bias))
        return F.linear(h, self.fc2.weight, self.fc2.bias).squeeze(1)

    def fused(self) -> nn.Module:
        return self


class ConvGate(nn.Module):
    def __init__(self, c: int, hidden: int, size: int, init_bias: float) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2) if size >= 2 else nn.Identity()
        self.body = nn.Sequential(
            nn.Conv2d(c, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
        )
        self.out = nn.Conv2d(hidden, 1, 1)
        nn.init.constant_(self.out.bias, init_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(self.pool(x))).mean((1, 2, 3))

    def fused(self) -> nn.Module:
        gate = copy.deepcopy(self).eval()
        b = gate.body
        gate.body = nn.Sequential(fuse_conv_bn_eval(b[0], b[1]), b[2], fuse_conv_bn_eval(b[3], b[4]), b[5])
        return gate


class AttentionGate(nn.Module):
    def __init__(self, c: int, hidden: int, init_bias: float) -> None:
        super().__init__()
        r = attention_width(c)
        self.channel = nn.Sequential(nn.Linear(c, r), nn.ReLU(), nn.Linear(r, c))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)
        self.fc1 = nn.Linear(c + 1, hidden)
        self.fc2 = nn.Linear(hidden, 1)
        nn.init.constant_(self.fc2.bias, init_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x * torch.sigmoid(self.channel(x.mean((2, 3))))[:, :, None, None]
        s = torch.sigmoid(self.spatial(torch.cat([a.amax(1, keepdim=True), a.mean(1, keepdim=True)], 1)))
        feat = torch.cat([(a * s).mean((2, 3)), s.mean((1, 2, 3))[:, None]], 1)
        return self.fc2(torch.relu(self.fc1(feat))).squeeze(1)

    def fused(self) -> nn.Module:
        return self  # no BatchNorm, no dropout


def make_gate(kind: str, c: int, size: int, hidden: int, init_bias: float = 0.7) -> nn.Module:
    """A gate of ``kind`` for a block whose input is ``c x size x size``."""
    if kind == "stable":
        return StableGate(c, hidden, init_bias)
    if kind == "conv":
        return ConvGate(c, hidden, size, init_bias)
    if kind == "attention":
        return AttentionGate(c, hidden, init_bias)
    raise ValueError(f"unknown gate type {kind!r}; one of {GATE_TYPES}")


def gate_counts(kind: str, c: int, size: int, hidden: int) -> dict[str, int]:
    """Exact integer params, MACs and activations (batch 1) of a gate on a ``c x size x size`` map."""
    h = hidden
    if kind == "stable":
        return {
            "params": c * h + h + 2 * h + h + 1,
            "macs": c * h + h,
            "activations": h + 1,  # the two Linear outputs (BatchNorm1d is not counted)
        }
    if kind == "conv":
        pooled, out = conv_sides(size)
        a1, a2 = pooled * pooled, out * out
        return {
            "params": 9 * c * h + 2 * h + 9 * h * h + 2 * h + h + 1,
            "macs": 9 * c * h * a1 + 9 * h * h * a2 + h * a2,
            "activations": (c * a1 if size >= 2 else 0) + 2 * h * a1 + 2 * h * a2 + a2,
        }
    if kind == "attention":
        r, area = attention_width(c), size * size
        return {
            "params": c * r + r + r * c + c + 2 * 49 + 1 + (c + 1) * h + h + h + 1,
            "macs": 2 * c * r + 2 * 49 * area + (c + 1) * h + h,
            "activations": r + c + area + h + 1,
        }
    raise ValueError(f"unknown gate type {kind!r}; one of {GATE_TYPES}")
