"""The layout of OFA's MobileNetV3 (``OFAMobileNetV3`` in the ``ofa`` package), defined once.

5 searchable stages of up to 4 MBConv blocks each (20 blocks); block ``j`` is block ``j % 4`` of
stage ``j // 4`` and runs when ``j % 4 < d[j // 4]``. The space module, the analytic cost model,
the latency look-up tables and the benchmark oracles all read these constants.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

N_STAGES = 5
MAX_DEPTH = 4
N_BLOCKS = N_STAGES * MAX_DEPTH
KS_OPTIONS = (3, 5, 7)  # kernel sizes of the d234_e346_k357 space
E_OPTIONS = (3, 4, 6)  # expand ratios
D_OPTIONS = (2, 3, 4)  # stage depths

CHANNEL_DIVISIBLE = 8  # OFA's MyNetwork.CHANNEL_DIVISIBLE
SE_REDUCTION = 4  # OFA's SEModule.REDUCTION
# base widths: first conv, first block, the 5 stages, final expand layer, feature mix layer
BASE_STAGE_WIDTH = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
STAGE_STRIDES = (2, 2, 2, 1, 2)  # first-block stride of the 5 searchable stages
STAGE_SE = (False, True, False, True, True)  # squeeze-and-excitation in stages 1, 3, 4
STAGE_HSWISH = (False, False, True, True, True)  # ReLU in the first two stages, h-swish after


def make_divisible(v: float, divisor: int = CHANNEL_DIVISIBLE) -> int:
    """The channel rounding of OFA/MobileNet: nearest multiple of ``divisor`` (at least ``divisor``),
    bumped up one step when rounding down would lose more than 10%."""
    rounded = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * v else rounded


@cache
def stage_widths(width_mult: float) -> tuple[int, ...]:
    """``BASE_STAGE_WIDTH`` scaled by ``width_mult`` and rounded like OFA does."""
    return tuple(make_divisible(b * width_mult) for b in BASE_STAGE_WIDTH)


def is_active(depths: Sequence[int], block: int) -> bool:
    """Whether block ``block`` (0..19) runs for stage depths ``depths``."""
    return block % MAX_DEPTH < depths[block // MAX_DEPTH]


def active_blocks(depths: Sequence[int]) -> list[int]:
    """The blocks (0..19) that run for stage depths ``depths``, in network order."""
    return [s * MAX_DEPTH + i for s in range(N_STAGES) for i in range(min(depths[s], MAX_DEPTH))]
