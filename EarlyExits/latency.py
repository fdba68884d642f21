"""Measured batch-1 latency of an early-exit network against the same backbone without exits.

What early exits claim to save is timed for real: each image goes through the backbone alone
(the single-exit twin) and through the early-exit runtime
(:meth:`~EarlyExits.network.EarlyExitNet.runtime`), which stops at the first exit whose policy
fires. The two are interleaved image by image (the order alternating) so that drifts of the
machine's speed hit both alike; the saving measured is
``1 - mean(early-exit ms) / mean(backbone ms)``, reported next to the saving avg_macs predicts,
``1 - avg_macs / backbone MACs``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch

from EarlyExits.policies import ExitPolicy


@torch.inference_mode()
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
    backbone = net.backbone
    runtime = net.runtime(policy.name, thresholds).eval()  # built once: only inference is timed
    xs = [images[i : i + 1].contiguous(memory_format=torch.channels_last) for i in range(len(images))]
    sync = torch.cuda.synchronize if images.is_cuda else (lambda: None)
    for x in xs[:warmup]:
        backbone(x)
        runtime(x)

    def timed(fn, x) -> float:
        sync()
        t0 = time.perf_counter()
        fn(x)
        sync()
        return 1e3 * (time.perf_counter() - t0)

    full, early = [], []
    for i, x in enumerate(xs):
        runs = [(full, backbone), (early, runtime)]
        for out, fn in runs if i % 2 == 0 else runs[::-1]:
            out.append(timed(fn, x))
    mean_full, mean_early = statistics.fmean(full), statistics.fmean(early)
    return {
        "images": len(xs),
        "backbone_ms": mean_full,
        "early_exit_ms": mean_early,
        "backbone_ms_median": statistics.median(full),
        "early_exit_ms_median": statistics.median(early),
        "measured_saving": 1.0 - mean_early / mean_full,
        "device": str(images.device),
        "threads": torch.get_num_threads(),
    }
