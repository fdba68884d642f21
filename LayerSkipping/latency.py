"""Measured batch-1 latency of a gated network: real skipping against every block run.

Three variants of the same weights, timed interleaved image by image
(:func:`nas.timing.interleaved_latency`): ``skip`` (gates computed in their fused inference form,
:meth:`GatedNet.fused`; closed blocks not run), ``open`` (the same gates computed, every block run:
what the gates cost on top) and ``twin`` (no gates, every block
run: the computation of the ungated network with the same genes). The saving measured,
``1 - skip ms / twin ms``, is reported next to the one avg_macs predicts, ``1 - avg_macs /
backbone MACs``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from nas.timing import interleaved_latency


def batch1_latency(net: Any, images: torch.Tensor, warmup: int = 10) -> dict[str, Any]:
    """Per-image latency (ms) of the three variants over ``images`` [n, 3, r, r], at batch size 1."""
    fused = net.fused().to(memory_format=torch.channels_last)  # as the images (and the engine's networks)
    variants = {mode: copy.deepcopy(fused).set_mode(mode) for mode in ("skip", "open")}
    variants["off"] = copy.deepcopy(net).eval().to(memory_format=torch.channels_last).set_mode("off")
    t = interleaved_latency(variants, images, warmup)
    return {
        "images": len(images),
        "skip_ms": t["skip"]["ms"],
        "open_ms": t["open"]["ms"],
        "twin_ms": t["off"]["ms"],
        "skip_ms_median": t["skip"]["ms_median"],
        "twin_ms_median": t["off"]["ms_median"],
        "measured_saving": 1.0 - t["skip"]["ms"] / t["off"]["ms"],
        "gate_overhead": t["open"]["ms"] / t["off"]["ms"] - 1.0,
        "device": str(images.device),
        "threads": torch.get_num_threads(),
    }
