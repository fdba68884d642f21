"""Batch-1 latency of several variants of a network, timed interleaved.

What a task claims to save (early exits, skipped blocks) is timed for real against its full twin:
every image goes through each variant in turn, at batch size 1, the order rotating from image to
image, so that drifts of the machine's speed hit every variant alike. Reported per variant: mean
and median milliseconds per image. The images go in channels_last, the engine's memory format: a
module timed should be in it too (``.to(memory_format=torch.channels_last)``); mixing the two
formats makes PyTorch copy tensors between them and slows small layers most.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch


@torch.inference_mode()
def interleaved_latency(
    variants: Mapping[str, Callable[[torch.Tensor], Any]], images: torch.Tensor, warmup: int = 10
) -> dict[str, dict[str, float]]:
    """``{name: {"ms", "ms_median"}}`` over ``images`` [n, 3, r, r], one image at a time, on the
    images' device (CUDA synchronised around each call)."""
    xs = [images[i : i + 1].contiguous(memory_format=torch.channels_last) for i in range(len(images))]
    if not xs:
        raise ValueError("no images to time")
    sync = torch.cuda.synchronize if images.is_cuda else (lambda: None)
    names = list(variants)
    for x in xs[:warmup]:
        for name in names:
            variants[name](x)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i, x in enumerate(xs):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            sync()
            t0 = time.perf_counter()
            variants[name](x)
            sync()
            times[name].append(1e3 * (time.perf_counter() - t0))
    return {n: {"ms": statistics.fmean(t), "ms_median": statistics.median(t)} for n, t in times.items()}
