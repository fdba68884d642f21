"""Scoring a network on a split: BatchNorm recalibration and top-k accuracy.

A subnet inherits the supernet's BatchNorm running statistics, which were accumulated over
many differently sized subnets and do not match this one; OFA's remedy, used here, is to
re-estimate them on a few batches of training images before measuring accuracy.

Models may return several outputs (a list of logits, one per exit): accuracy is that of the
last one, the network's own classifier (:func:`final_output`); task measures score the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def final_output(out: Any) -> torch.Tensor:
    """The final logits of a model's output: the last of a list or tuple (one per exit), else itself."""
    return out[-1] if isinstance(out, (list, tuple)) else out


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
        logits = final_output(model(x))
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


def score_network(
    net: nn.Module,
    resolution: int,
    data: Any,
    split: Any,
    device: torch.device,
    bn_batches: int = 10,
    batch_size: int = 200,
    max_images: int | None = None,
    seed: int = 0,
    num_workers: int = 2,
) -> dict[str, float]:
    """Top-1/top-5 of ``net`` on ``split`` after recalibrating its BatchNorm on training images."""
    recalibrate(net, resolution, data, device, bn_batches, batch_size, seed, num_workers)
    if max_images is not None and max_images < len(split):
        split = split.subset(np.arange(max_images))
    return accuracy(net, batches_of(split, resolution, device, batch_size, seed, num_workers))


def recalibrate(
    net: nn.Module,
    resolution: int,
    data: Any,
    device: torch.device,
    bn_batches: int = 10,
    batch_size: int = 200,
    seed: int = 0,
    num_workers: int = 2,
) -> int:
    """Recalibrate ``net``'s BatchNorm on ``bn_batches`` batches of a random (seeded) sample of
    un-augmented training images (not the first ones: datasets are often stored class by class)."""
    n_calib = min(len(data.train), bn_batches * batch_size)
    pick = np.random.default_rng(seed).choice(len(data.train), n_calib, replace=False)
    calib = batches_of(data.train.subset(pick), resolution, device, batch_size, seed, num_workers)
    return recalibrate_bn(net, calib, bn_batches)


def first_images(split: Any, n: int, resolution: int, device: torch.device) -> torch.Tensor:
    """The first ``n`` images of ``split`` (all if fewer), un-augmented, as one batch: what batch-1
    latency measurements time image by image."""
    import numpy as np

    n = min(n, len(split))
    x, _ = next(iter(batches_of(split.subset(np.arange(n)), resolution, device, n, 0, 0)))
    return x


def batches_of(
    split: Any,
    resolution: int,
    device: torch.device,
    batch_size: int = 200,
    seed: int = 0,
    num_workers: int = 2,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Un-augmented batches of ``split`` in a fixed order, channels-last, on ``device``."""
    from nas.data import make_loader

    loader = make_loader(
        split, batch_size, resolution, train=False, device=device, seed=seed, num_workers=num_workers
    )
    for x, y in loader:
        yield x.contiguous(memory_format=torch.channels_last), y


def score_subnet(space: Any, supernet: nn.Module, arch: Any, data: Any, split: Any, device, **kwargs) -> dict:
    """Top-1/top-5 of ``arch`` with inherited weights and recalibrated BatchNorm, on ``split``.

    ``kwargs`` go to :func:`score_network` (``bn_batches``, ``batch_size``, ``max_images``, ``seed``).
    """
    net = space.build(arch, supernet).to(device).to(memory_format=torch.channels_last)
    return score_network(net, space.resolution(arch), data, split, device, **kwargs)
