"""Splits of a dataset: in-memory uint8 tensors or lists of image files, plus the validation carve."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nas.errors import UserError

Stats = tuple[float, float, float]  # per-channel mean or std of pixel values in [0, 1]


def _as_index(indices: Sequence[int] | np.ndarray | torch.Tensor, n: int) -> torch.Tensor:
    """Indices -> int64 tensor, checked against ``n`` (negative indices are refused, not wrapped)."""
    idx = torch.as_tensor(np.asarray(indices) if not isinstance(indices, torch.Tensor) else indices)
    if idx.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    if idx.dtype.is_floating_point or idx.dtype == torch.bool or idx.dim() != 1:
        raise ValueError("subset indices must be a 1-D sequence of integers")
    idx = idx.long()
    if int(idx.min()) < 0 or int(idx.max()) >= n:
        raise IndexError(f"subset index out of range for a split of {n} images")
    return idx


class Split(ABC):
    """Labelled images of one split. ``len(split)``, ``split.labels`` and ``split.subset(indices)``."""

    labels: torch.Tensor  # int64 [N], on the CPU
    mean: Stats
    std: Stats
    image_size: int  # native side of the images (nominal training side for streamed datasets)
    in_memory: bool

    def __len__(self) -> int:
        return len(self.labels)

    @abstractmethod
    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> Split:
        """A new split holding the images at ``indices`` (in that order)."""

    def class_counts(self, n_classes: int) -> list[int]:
        return torch.bincount(self.labels, minlength=n_classes).tolist()


class TensorSplit(Split):
    """A split held in memory: ``images`` uint8 [N, 3, H, H], ``labels`` int64 [N]."""

    in_memory = True

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: Stats, std: Stats) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        if images.shape[2] != images.shape[3]:
            raise ValueError(f"images must be square, got {tuple(images.shape[2:])}")
        labels = torch.as_tensor(labels, dtype=torch.long)
        if labels.shape != (images.shape[0],):
            raise ValueError(f"{images.shape[0]} images but labels of shape {tuple(labels.shape)}")
        self.images = images
        self.labels = labels
        self.mean, self.std = tuple(mean), tuple(std)
        self.image_size = int(images.shape[-1])
        self._on_device: tuple[torch.device, torch.Tensor, torch.Tensor] | None = None

    def subset(self, indices) -> TensorSplit:
        idx = _as_index(indices, len(self))
        return TensorSplit(self.images[idx], self.labels[idx], self.mean, self.std)

    def on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images, labels)`` on ``device``; the copy for the last device asked for is kept, so
        every epoch's loader reuses it (a whole CIFAR-sized split is 150 MB of uint8)."""
        device = torch.device(device)
        if device.type == "cpu":
            return self.images, self.labels
        if self._on_device is None or self._on_device[0] != device:
            self._on_device = (device, self.images.to(device), self.labels.to(device))
        return self._on_device[1], self._on_device[2]

    def __repr__(self) -> str:
        return f"TensorSplit({len(self)} images {self.image_size}x{self.image_size})"


class FileSplit(Split):
    """A split streamed from image files (ImageNet-sized data): ``paths`` and ``labels``."""

    in_memory = False

    def __init__(
        self, paths: Sequence[str], labels: torch.Tensor, mean: Stats, std: Stats, image_size: int
    ) -> None:
        labels = torch.as_tensor(labels, dtype=torch.long)
        if labels.shape != (len(paths),):
            raise ValueError(f"{len(paths)} files but labels of shape {tuple(labels.shape)}")
        self.paths = list(paths)
        self.labels = labels
        self.mean, self.std = tuple(mean), tuple(std)
        self.image_size = int(image_size)

    def subset(self, indices) -> FileSplit:
        idx = _as_index(indices, len(self))
        return FileSplit(
            [self.paths[i] for i in idx.tolist()], self.labels[idx], self.mean, self.std, self.image_size
        )

    def __repr__(self) -> str:
        return f"FileSplit({len(self)} files)"


@dataclass
class DataSplits:
    """A dataset loaded for training: train (minus validation), optional validation, test."""

    name: str  # registry name, e.g. "cifar10"
    n_classes: int
    classes: list[str]  # class names; label i is classes[i]
    train: Split  # training images (minus the validation ones when vld_size > 0)
    valid: Split | None  # vld_size images carved from train, balanced per class; None when vld_size == 0
    test: Split  # the dataset's test split (its "val" folder for ImageNet-style layouts)
    image_size: int  # native image side (32 for CIFAR; nominal 224 for streamed ImageNet)

    @property
    def mean(self) -> Stats:
        return self.train.mean

    @property
    def std(self) -> Stats:
        return self.train.std


def check_vld_size(vld_size: int) -> int:
    """``vld_size`` as an int, refusing non-integers and negative numbers."""
    if isinstance(vld_size, bool) or not isinstance(vld_size, int | np.integer):
        raise UserError(f"--vld_size must be an integer, got {vld_size!r}")
    if vld_size < 0:
        raise UserError(f"--vld_size {vld_size} is negative; use 0 (no validation split) or more")
    return int(vld_size)


def carve_valid(train: Split, vld_size: int, n_classes: int, seed: int) -> tuple[Split, Split | None]:
    """Split ``vld_size`` images off ``train``, balanced per class, reproducible from ``seed``.

    Every class gives ``vld_size // n_classes`` images; the remainder goes one each to the first
    classes (in label order). Which images a class gives is drawn with
    ``np.random.default_rng(seed)``. Returns ``(train minus valid, valid)``; both keep the
    original order of the images.
    """
    vld_size = check_vld_size(vld_size)
    if vld_size == 0:
        return train, None
    if vld_size >= len(train):
        raise UserError(
            f"--vld_size {vld_size} is not smaller than the training set ({len(train)} images); "
            "lower it so that some images remain for training"
        )
    labels = train.labels.numpy()
    base, extra = divmod(vld_size, n_classes)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(n_classes):
        members = np.flatnonzero(labels == c)
        k = base + (1 if c < extra else 0)
        if k > len(members):
            raise UserError(
                f"--vld_size {vld_size} asks for {k} validation images of class {c}, which has only "
                f"{len(members)} training images; lower --vld_size"
            )
        chosen.append(rng.choice(members, size=k, replace=False))
    valid_idx = np.sort(np.concatenate(chosen))
    keep = np.ones(len(labels), dtype=bool)
    keep[valid_idx] = False
    return train.subset(np.flatnonzero(keep)), train.subset(valid_idx)
