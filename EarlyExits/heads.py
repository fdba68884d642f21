"""Exit heads: the classifiers attached to the backbone's stage boundaries, and their exact costs.

Two kinds (``--exit_head``):

- ``nachos`` (NACHOS): [max-pool k] -> ReLU -> 3x3 conv C->32 -> ReLU -> 3x3 conv 32->64 -> ReLU
  -> 3x3 conv 64->128 -> ReLU -> flatten -> linear. No global pooling: the linear layer sees the
  whole 128 x H' x W' map, so the pooling kernel ``k`` (1, 2 or 4, see :func:`choose_pools`) sets
  most of the head's cost.
- ``edanas`` (EDANAS, 2023): 1x1 conv C->6C, BN, h-swish -> global average pooling -> 1x1 conv
  6C->8C, h-swish -> flatten -> linear.

A head has ``n_classes`` outputs, plus one confidence unit (a logit whose sigmoid is the exit
probability) in networks trained the NACHOS way. :func:`head_counts` gives params, MACs and
activations with the counting rules of :mod:`nas.costs` (exact integers), so the analytic cost of
an exit equals the hook count on the built network.
"""

from __future__ import annotations

import torch
import torch.nn as nn

HEADS = ("nachos", "edanas")
NACHOS_WIDTHS = (32, 64, 128)
POOLS = (1, 2, 4)


class NachosHead(nn.Sequential):
    """[MaxPool k] -> ReLU -> 3 x (3x3 conv, ReLU) -> flatten -> linear over the whole map."""

    def __init__(self, c_in: int, size: int, n_out: int, pool: int = 1) -> None:
        layers: list[nn.Module] = [nn.MaxPool2d(pool)] if pool > 1 else []
        layers.append(nn.ReLU())
        c = c_in
        for width in NACHOS_WIDTHS:
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU()]
            c = width
        side = size // pool
        layers += [nn.Flatten(), nn.Linear(c * side * side, n_out)]
        super().__init__(*layers)


class EdanasHead(nn.Module):
    """1x1 conv to 6C, BN, h-swish, global average pool, 1x1 conv to 8C, h-swish, linear."""

    def __init__(self, c_in: int, n_out: int) -> None:
        super().__init__()
        self.expand = nn.Sequential(
            nn.Conv2d(c_in, 6 * c_in, 1, bias=False), nn.BatchNorm2d(6 * c_in), nn.Hardswish()
        )
        self.mix = nn.Sequential(nn.Conv2d(6 * c_in, 8 * c_in, 1, bias=False), nn.Hardswish())
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(8 * c_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.expand(x).mean((2, 3), keepdim=True)
        return self.linear(self.flatten(self.mix(x)))


def make_head(kind: str, c_in: int, size: int, n_out: int, pool: int = 1) -> nn.Module:
    if kind == "nachos":
        return NachosHead(c_in, size, n_out, pool)
    if kind == "edanas":
        return EdanasHead(c_in, n_out)
    raise ValueError(f"unknown exit head {kind!r}; one of {HEADS}")


def head_counts(kind: str, c_in: int, size: int, n_out: int, pool: int = 1) -> dict[str, int]:
    """Exact integer params, MACs and activations (batch 1) of a head on a ``c_in x size x size`` map."""
    if kind == "nachos":
        side = size // pool
        area = side * side
        params = macs = act = 0
        if pool > 1:
            act += c_in * area  # MaxPool2d output
        c = c_in
        for width in NACHOS_WIDTHS:
            params += width * c * 9 + width
            macs += width * c * 9 * area
            act += width * area
            c = width
        flat = c * area
        params += flat * n_out + n_out
        macs += flat * n_out
        act += flat + n_out  # Flatten, Linear
        return {"params": params, "macs": macs, "activations": act}
    if kind == "edanas":
        area, c6, c8 = size * size, 6 * c_in, 8 * c_in
        params = c6 * c_in + 2 * c6 + c8 * c6 + c8 * n_out + n_out
        macs = c6 * c_in * area + c8 * c6 + c8 * n_out
        act = 2 * c6 * area + c8 + c8 + n_out  # conv + BN on the map; 1x1 conv, Flatten, Linear
        return {"params": params, "macs": macs, "activations": act}
    raise ValueError(f"unknown exit head {kind!r}; one of {HEADS}")


def choose_pools(
    prefix_macs: list[int], channels: list[int], sizes: list[int], final_macs: int, n_out: int
) -> list[int]:
    """NACHOS's pooling rule for its heads: from the deepest exit backwards, exit ``i``'s max-pool
    kernel doubles (1 -> 2 -> 4, while the pooled map keeps at least one pixel) as long as the exit
    would cost at least as much as the next one (its backbone prefix plus head; the final exit
    costs ``final_macs``), so that deeper exits are the dearer ones wherever pooling allows."""
    pools = [1] * len(prefix_macs)
    next_total = final_macs
    for i in reversed(range(len(prefix_macs))):
        k = 1

        def total(k: int, i: int = i) -> int:
            return prefix_macs[i] + head_counts("nachos", channels[i], sizes[i], n_out, k)["macs"]

        while k < POOLS[-1] and sizes[i] // (2 * k) >= 1 and total(k) >= next_total:
            k *= 2
        pools[i] = k
        next_total = total(k)
    return pools
