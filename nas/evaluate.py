"""Accuracy of a network, and BatchNorm recalibration for subnets cut from a supernet.

A subnet inherits the supernet's BatchNorm running statistics, which were accumulated over
many differently sized subnets and do not match this one; OFA's remedy, used here, is to
re-estimate them on a few batches of training images before measuring accuracy.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable, n_batches: int) -> int:
    """Reset every BatchNorm's running statistics and re-estimate them as an exact average.

    ``batches`` yields ``(x, y)`` on the model's device. Returns the number of batches used.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
    was_training = model.training
    model.train()
    used = 0
    for x, _ in batches:
        if used >= n_batches:
            break
        model(x)
        used += 1
    for m, momentum in zip(bns, saved, strict=True):
        m.momentum = momentum
    model.train(was_training)
    return used


@torch.no_grad()
def accuracy(model: nn.Module, batches: Iterable, topk: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Top-k accuracy in percent and mean cross-entropy of ``model`` over ``batches``."""
    was_training = model.training
    model.eval()
    correct = {k: 0 for k in topk}
    loss_sum, n = 0.0, 0
    for x, y in batches:
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        top = logits.topk(max(topk), dim=1).indices
        hit = top == y[:, None]
        for k in topk:
            correct[k] += hit[:, :k].any(dim=1).sum().item()
        n += len(y)
    model.train(was_training)
    if n == 0:
        raise ValueError("accuracy() got no batches")
    out = {f"top{k}": 100.0 * correct[k] / n for k in topk}
    out["loss"] = loss_sum / n
    return out
