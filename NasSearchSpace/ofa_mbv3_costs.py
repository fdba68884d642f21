"""Analytic cost model of OFA MobileNetV3 subnets: params, MACs and activations from the arch alone.

It mirrors, layer by layer, the stand-alone network that ``OFAMobileNetV3.get_active_subnet``
returns (``ofa`` 0.1.0), and counts exactly what :mod:`nas.costs` counts with hooks, so the two
agree with ``==``. Pure Python integers; no network is built and torch is not imported.

The subnet, for width multiplier ``w`` and ``c(x) = make_divisible(x * w, 8)``::

    first_conv          3x3 conv stride 2, 3 -> c(16), BN, h_swish
    first block         MBConv expand 1 (no 1x1 expansion): 3x3 depthwise c(16), BN, ReLU,
                        1x1 conv c(16) -> c(16), BN; identity shortcut
    5 stages            widths c(24), c(40), c(80), c(112), c(160); first-block strides 2, 2, 2, 1, 2;
                        SE in stages 1, 3, 4; d[s] blocks each, block j = 4*s + i (i < d[s]):
                          1x1 conv in -> mid, BN, act            mid = make_divisible(round(in*e), 8)
                          kxk depthwise mid (stride on block 0), BN, act
                          [SE: mean pool (not a module), 1x1 conv mid -> se (bias), ReLU,
                               1x1 conv se -> mid (bias), h_sigmoid; se = make_divisible(mid // 4, 8)]
                          1x1 conv mid -> out, BN
    final_expand_layer  1x1 conv c(160) -> c(960), BN, h_swish
    global pool         x.mean(3).mean(2) (not a module: no activation counted)
    feature_mix_layer   1x1 conv c(960) -> c(1280) on the 1x1 map, no bias, no BN, h_swish
    classifier          dropout, Linear c(1280) -> n_classes with bias

Convolutions use "same" padding ``k // 2``, so a stride-2 layer maps ``h`` to ``ceil(h / 2)``
(odd sizes round up). Convs have no bias except in SE; every BN has 2 parameters per channel
(running statistics are buffers, not parameters).

A block's params and its MACs / activations per pixel depend only on (channels in, channels
out, kernel, expand ratio, SE), so they are computed once and cached; a call then only adds
them up at the block's map sizes (about 15 us per subnet in CPython).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from NasSearchSpace.ofa_mbv3_layout import (
    MAX_DEPTH,
    N_STAGES,
    SE_REDUCTION,
    STAGE_SE,
    STAGE_STRIDES,
    make_divisible,
    stage_widths,
)


def same_out(size: int, stride: int) -> int:
    """Spatial output size of an odd-kernel conv with padding ``k // 2``: ``ceil(size / stride)``."""
    return -(-size // stride)


def stage_sides(resolution: int) -> list[int]:
    """Side of the feature map at the end of each of the 5 stages (after the stride-2 first conv)."""
    hw, sides = same_out(resolution, 2), []
    for stride in STAGE_STRIDES:
        hw = same_out(hw, stride)
        sides.append(hw)
    return sides


# A layer's cost is a constant (params) plus terms proportional to the area of the map it runs on.
# Maps: IN = the block's input resolution, OUT = its output resolution, ONE = a 1x1 map (pooled).
IN, OUT, ONE = 0, 1, 2


class _Terms:
    """Integer params, and MACs / activations per pixel of the IN, OUT and ONE maps."""

    __slots__ = ("params", "macs", "activations")

    def __init__(self) -> None:
        self.params = 0
        self.macs = [0, 0, 0]
        self.activations = [0, 0, 0]

    def conv(self, c_in: int, c_out: int, k: int, at: int, groups: int = 1, bias: bool = False) -> None:
        """A square ``k x k`` conv with ``c_out`` output channels on map ``at``."""
        per_out = (c_in // groups) * k * k
        self.params += c_out * per_out + (c_out if bias else 0)
        self.macs[at] += c_out * per_out
        self.activations[at] += c_out

    def bn(self, c: int, at: int) -> None:
        self.params += 2 * c
        self.activations[at] += c

    def linear(self, n_in: int, n_out: int) -> None:
        self.params += n_in * n_out + n_out
        self.macs[ONE] += n_in * n_out
        self.activations[ONE] += n_out

    def frozen(self) -> tuple[int, int, int, int, int, int, int]:
        return (self.params, *self.macs, *self.activations)


@cache
def _stem_terms(c_stem: int, c_first: int) -> tuple[int, ...]:
    """first_conv (IN = its output map, stride 2 applied by the caller) and the first block."""
    t = _Terms()
    t.conv(3, c_stem, 3, IN)  # 3x3 stride 2, BN, h_swish
    t.bn(c_stem, IN)
    mid = round(c_stem * 1)  # expand ratio 1: no 1x1 expansion
    t.conv(mid, mid, 3, IN, groups=mid)  # 3x3 depthwise, BN, ReLU
    t.bn(mid, IN)
    t.conv(mid, c_first, 1, IN)  # 1x1 projection, BN
    t.bn(c_first, IN)
    return t.frozen()


@cache
def _block_terms(c_in: int, c_out: int, k: int, e: float, se: bool) -> tuple[int, ...]:
    """One MBConv block: the stride (if any) is in its depthwise conv, between IN and OUT."""
    t = _Terms()
    mid = make_divisible(round(c_in * e))
    if e != 1:  # the 1x1 expansion exists only for expand ratios above 1
        t.conv(c_in, mid, 1, IN)
        t.bn(mid, IN)
    t.conv(mid, mid, k, OUT, groups=mid)
    t.bn(mid, OUT)
    if se:  # mean pool (a function, not a module), reduce and expand 1x1 convs with bias
        c_se = make_divisible(mid // SE_REDUCTION)
        t.conv(mid, c_se, 1, ONE, bias=True)
        t.conv(c_se, mid, 1, ONE, bias=True)
    t.conv(mid, c_out, 1, OUT)
    t.bn(c_out, OUT)
    return t.frozen()


@cache
def _head_terms(c_in: int, c_final: int, c_last: int, n_classes: int) -> tuple[int, ...]:
    """final_expand_layer on IN, then the pooled feature_mix_layer (no BN) and the classifier."""
    t = _Terms()
    t.conv(c_in, c_final, 1, IN)
    t.bn(c_final, IN)
    t.conv(c_final, c_last, 1, ONE)
    t.linear(c_last, n_classes)
    return t.frozen()


KEYS = ("params", "macs", "activations")


def _parts(arch: dict, n_classes: int, width_mult: float | None) -> list[tuple[int | None, tuple[int, ...]]]:
    """``(block or None, (params, macs, activations))`` of the stem, each active block, the head."""
    w = float(arch.get("w", 1.0)) if width_mult is None else float(width_mult)
    if "w" in arch and float(arch["w"]) != w:
        raise ValueError(f"arch has width w={arch['w']} but width_mult={width_mult} was given")
    ks, es, ds, r = arch["ks"], arch["e"], arch["d"], arch["r"]
    _check(ks, es, ds, r, n_classes)
    widths = stage_widths(w)

    hw = same_out(r, 2)  # first_conv has stride 2
    parts = [(None, _count(_stem_terms(widths[0], widths[1]), hw, hw))]
    ch = widths[1]
    for s, (stride, se) in enumerate(zip(STAGE_STRIDES, STAGE_SE, strict=True)):
        for i in range(min(ds[s], MAX_DEPTH)):
            j = s * MAX_DEPTH + i
            hw_out = same_out(hw, stride if i == 0 else 1)
            parts.append((j, _count(_block_terms(ch, widths[2 + s], ks[j], es[j], se), hw, hw_out)))
            ch, hw = widths[2 + s], hw_out
    parts.append((None, _count(_head_terms(ch, widths[7], widths[8], n_classes), hw, hw)))
    return parts


def _count(terms: tuple[int, ...], h_in: int, h_out: int) -> tuple[int, int, int]:
    p, m_in, m_out, m_one, a_in, a_out, a_one = terms
    area_in, area_out = h_in * h_in, h_out * h_out
    return p, m_in * area_in + m_out * area_out + m_one, a_in * area_in + a_out * area_out + a_one


def _total(parts: list[tuple[int, int, int]]) -> dict[str, int]:
    return (
        dict(zip(KEYS, (sum(c) for c in zip(*parts, strict=True)), strict=True))
        if parts
        else dict.fromkeys(KEYS, 0)
    )


def analytic_counts(arch: dict, n_classes: int, width_mult: float | None = None) -> dict[str, int]:
    """Exact integer ``{"params", "macs", "activations"}`` of the subnet ``arch`` (batch 1)."""
    return _total([c for _, c in _parts(arch, n_classes, width_mult)])


def analytic_block_counts(
    arch: dict, n_classes: int, width_mult: float | None = None
) -> list[dict[str, int]]:
    """Exact integer costs of each of the 20 blocks (all zero for a block the depth switches off)."""
    out = [dict.fromkeys(KEYS, 0) for _ in range(N_STAGES * MAX_DEPTH)]
    for j, c in _parts(arch, n_classes, width_mult):
        if j is not None:
            out[j] = dict(zip(KEYS, c, strict=True))
    return out


def analytic_stage_counts(
    arch: dict, n_classes: int, width_mult: float | None = None
) -> list[dict[str, int]]:
    """Exact integer costs of the network up to the end of each of the 5 stages (first conv, first
    block and every active block of stages ``0..s``; no head): what an early exit after stage ``s``
    runs before its own head."""
    parts = _parts(arch, n_classes, width_mult)
    out = []
    for s in range(N_STAGES):
        prefix = [c for j, c in parts[:-1] if j is None or j // MAX_DEPTH <= s]
        out.append(_total(prefix))
    return out


def millions(counts: dict[str, int]) -> dict[str, float]:
    """Integer counts -> the same keys in millions (``n / 1e6``, the one rounding step)."""
    return {key: counts[key] / 1e6 for key in KEYS}


def analytic_costs(arch: dict, n_classes: int, width_mult: float | None = None) -> dict[str, float]:
    """``{"params", "macs", "activations"}`` in millions of the subnet ``arch`` = {"ks","e","d","r"[,"w"]}.

    ``width_mult`` defaults to ``arch["w"]`` (1.0 when absent); giving one that contradicts
    ``arch["w"]`` raises ``ValueError``. Equal (``==``) to :func:`nas.costs.measure_costs` on
    the network the space builds.
    """
    return millions(analytic_counts(arch, n_classes, width_mult))


def _check(ks: Sequence[int], es: Sequence[int], ds: Sequence[int], r: int, n_classes: int) -> None:
    n_blocks = N_STAGES * MAX_DEPTH
    if len(ks) != n_blocks or len(es) != n_blocks or len(ds) != N_STAGES:
        raise ValueError(f"arch needs {n_blocks} ks, {n_blocks} e and {N_STAGES} d values")
    if any(d < 1 for d in ds) or any(k < 1 or k % 2 == 0 for k in ks) or any(e < 1 for e in es):
        raise ValueError("arch has a depth < 1, an even kernel size or an expand ratio < 1")
    if r < 1 or n_classes < 1:
        raise ValueError(f"resolution {r} and n_classes {n_classes} must be positive")
