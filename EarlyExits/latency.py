"""Measured batch-1 latency of an early-exit network against the same backbone without exits.

What early exits claim to save is timed for real: each image goes through the backbone alone
(the single-exit twin) and through the early-exit runtime
(:meth:`~EarlyExits.network.EarlyExitNet.runtime`), which stops at the first exit whose policy
fires, interleaved image by image (:func:`nas.timing.interleaved_latency`); the saving measured is
``1 - mean(early-exit ms) / mean(backbone ms)``, reported next to the saving avg_macs predicts,
``1 - avg_macs / backbone MACs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from EarlyExits.policies import ExitPolicy
from nas.timing import interleaved_latency


def batch1_latency(
    net: Any,
    images: torch.Tensor,
    policy: ExitPolicy,
    thresholds: Sequence[float],
    warmup: int = 10,
) -> dict[str, Any]:
    """Per-image latency (ms) of the backbone alone and of the early-exit network over ``images``
    [n, 3, r, r], at batch size 1, on the images' device."""
    net.eval()
    runtime = net.runtime(policy.name, thresholds).eval()  # built once: only inference is timed
    t = interleaved_latency({"backbone": net.backbone, "early_exit": runtime}, images, warmup)
    return {
        "images": len(images),
        "backbone_ms": t["backbone"]["ms"],
        "early_exit_ms": t["early_exit"]["ms"],
        "backbone_ms_median": t["backbone"]["ms_median"],
        "early_exit_ms_median": t["early_exit"]["ms_median"],
        "measured_saving": 1.0 - t["early_exit"]["ms"] / t["backbone"]["ms"],
        "device": str(images.device),
        "threads": torch.get_num_threads(),
    }
