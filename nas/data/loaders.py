"""Batch loaders: augmentation on whole batches on the compute device, or streamed files.

Randomness comes only from ``torch.Generator`` objects seeded from ``(seed, epoch)`` (and the
image index for streamed files), so an epoch's batches are the same on any machine and whatever
else touched the global random state.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from nas.data.splits import FileSplit, Split, TensorSplit
from nas.errors import UserError

CROP_PADDING = 4  # zero padding of the random crop of small images, in native pixels
RRC_SCALE = (0.08, 1.0)  # RandomResizedCrop area range of streamed (ImageNet) training images
RRC_RATIO = (3 / 4, 4 / 3)  # and its aspect-ratio range
EVAL_CROP = 0.875  # streamed test images: resize the short side to resolution / 0.875, centre crop


def derive_seed(*keys: int) -> int:
    """A 63-bit seed for ``torch.Generator.manual_seed`` from non-negative integers."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _generator(*keys: int) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(*keys))


class BatchLoader(ABC):
    """Iterable of ``(x, y)``: x float32 normalised [B, 3, r, r] and y int64 [B], both on ``device``.

    ``len(loader)`` is the number of batches. Each pass over the loader uses the current epoch and
    then advances it by one; ``set_epoch(e)`` chooses the epoch of the next pass, whose shuffle and
    augmentation depend only on ``(seed, e)``. Test loaders (``train=False``) have a fixed order and
    no augmentation.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        resolution: int,
        train: bool,
        device: torch.device,
        seed: int,
        drop_last: bool,
    ) -> None:
        self.split = split
        self.batch_size = batch_size
        self.resolution = resolution
        self.train = train
        self.device = device
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        std = torch.tensor(split.std, dtype=torch.float32).view(1, 3, 1, 1)
        mean = torch.tensor(split.mean, dtype=torch.float32).view(1, 3, 1, 1)
        # uint8 pixel p -> (p / 255 - mean) / std, as one multiply-add
        self._scale = (1.0 / (255.0 * std)).to(device)
        self._shift = (-mean / std).to(device)

    def __len__(self) -> int:
        n = len(self.split)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def _next_epoch(self) -> int:
        epoch, self.epoch = self.epoch, self.epoch + 1
        return epoch

    def _order(self, epoch: int) -> torch.Tensor:
        n = len(self.split)
        if not self.train:
            return torch.arange(n)
        return torch.randperm(n, generator=_generator(self.seed, epoch))

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().mul_(self._scale).add_(self._shift)

    @abstractmethod
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


class TensorLoader(BatchLoader):
    """Loader of an in-memory split: gather, crop, flip, normalise and resize whole batches on the device.

    Training batches get a random crop with ``CROP_PADDING`` zero pixels of padding (at native
    size) and a random horizontal flip, per image, done as a single gather from the uint8 images;
    then normalisation, then bilinear resizing when ``resolution`` differs from the native size.
    """

    split: TensorSplit

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self._next_epoch()
        images, labels = self.split.on(self.device)
        n, size, pad = len(self.split), self.split.image_size, CROP_PADDING
        order = self._order(epoch)
        if self.train:
            # drawn on the CPU so that CPU and GPU runs see the same augmentation
            g = _generator(self.seed, epoch, 1)
            dy = torch.randint(-pad, pad + 1, (n,), generator=g)
            dx = torch.randint(-pad, pad + 1, (n,), generator=g)
            flip = torch.randint(0, 2, (n,), generator=g).bool()
            dy, dx, flip = dy.to(self.device), dx.to(self.device), flip.to(self.device)
        order = order.to(self.device)
        ramp = torch.arange(size, device=self.device)
        channels = torch.arange(3, device=self.device).view(1, 3, 1, 1)
        for b in range(len(self)):
            sl = slice(b * self.batch_size, (b + 1) * self.batch_size)
            idx = order[sl]
            if self.train:
                # output pixel (i, j) comes from source pixel (i + dy, j + dx), or (i + dy, size-1-j + dx)
                # when flipped; sources outside the image are the zero padding
                rows = dy[sl, None] + ramp
                cols = dx[sl, None] + torch.where(flip[sl, None], size - 1 - ramp, ramp)
                inside = ((rows >= 0) & (rows < size))[:, :, None] & ((cols >= 0) & (cols < size))[:, None, :]
                x = images[
                    idx.view(-1, 1, 1, 1),
                    channels,
                    rows.clamp(0, size - 1)[:, None, :, None],
                    cols.clamp(0, size - 1)[:, None, None, :],
                ]
                x = x * inside[:, None]
            else:
                x = images[sl]  # fixed order: a view, no gather
            x = self._normalise(x)
            if self.resolution != size:
                x = F.interpolate(
                    x,
                    size=(self.resolution, self.resolution),
                    mode="bilinear",
                    align_corners=False,
                    antialias=self.resolution < size,
                )
            yield x, labels[idx]


def _random_resized_box(height: int, width: int, g: torch.Generator) -> tuple[int, int, int, int]:
    """``(top, left, h, w)`` of a random crop covering RRC_SCALE of the area at an RRC_RATIO aspect."""
    area = height * width
    log_lo, log_hi = math.log(RRC_RATIO[0]), math.log(RRC_RATIO[1])
    for _ in range(10):
        u = torch.rand(4, generator=g).tolist()
        target = area * (RRC_SCALE[0] + (RRC_SCALE[1] - RRC_SCALE[0]) * u[0])
        aspect = math.exp(log_lo + (log_hi - log_lo) * u[1])
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(u[2] * (height - h + 1)), int(u[3] * (width - w + 1)), h, w
    # no luck (extreme aspect ratios): the largest centred box within the allowed aspect range
    aspect = min(max(width / height, RRC_RATIO[0]), RRC_RATIO[1])
    w, h = (width, round(width / aspect)) if width / height <= aspect else (round(height * aspect), height)
    w, h = min(w, width), min(h, height)
    return (height - h) // 2, (width - w) // 2, h, w


class _FileDataset(Dataset):
    """Decodes and crops one image file; randomness from ``(seed, epoch, index)`` only."""

    def __init__(self, split: FileSplit, resolution: int, train: bool, seed: int, epoch: int) -> None:
        self.paths, self.labels = split.paths, split.labels
        self.resolution, self.train, self.seed, self.epoch = resolution, train, seed, epoch

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision.io import ImageReadMode, decode_image, read_file  # loaded once, when first used
        from torchvision.transforms.v2 import functional as TF

        img = decode_image(read_file(self.paths[i]), mode=ImageReadMode.RGB)
        r = self.resolution
        if self.train:
            g = _generator(self.seed, self.epoch, i)
            top, left, h, w = _random_resized_box(img.shape[-2], img.shape[-1], g)
            img = TF.resized_crop(img, top, left, h, w, [r, r], antialias=True)
            if torch.rand(1, generator=g).item() < 0.5:
                img = TF.horizontal_flip(img)
        else:
            img = TF.center_crop(TF.resize(img, [round(r / EVAL_CROP)], antialias=True), [r, r])
        return img, self.labels[i]


class StreamLoader(BatchLoader):
    """Loader of a file split through a torch ``DataLoader`` with worker processes.

    Workers decode and crop (RandomResizedCrop + flip for training, resize + centre crop for
    testing) to uint8; batches are moved to the device and normalised there.
    """

    split: FileSplit

    def __init__(self, *args, num_workers: int = 2, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.num_workers = num_workers

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self._next_epoch()
        dataset = _FileDataset(self.split, self.resolution, self.train, self.seed, epoch)
        loader = DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=self._order(epoch).tolist(),
            num_workers=self.num_workers,
            drop_last=self.drop_last,
            pin_memory=self.device.type == "cuda",
            generator=_generator(self.seed, epoch, 2),  # keeps the DataLoader off the global RNG
        )
        for x, y in loader:
            x = x.to(self.device, non_blocking=True)
            yield self._normalise(x), y.to(self.device, non_blocking=True)


def make_loader(
    split: Split,
    batch_size: int,
    resolution: int,
    train: bool,
    device: torch.device,
    seed: int = 0,
    drop_last: bool | None = None,
    num_workers: int = 2,
) -> BatchLoader:
    """A :class:`BatchLoader` over ``split`` (see there). ``drop_last`` defaults to ``train``.

    In-memory splits are processed on ``device`` in the calling process (``num_workers`` is not
    used); file splits are decoded by ``num_workers`` worker processes.
    """
    if not isinstance(split, Split):
        raise TypeError(f"make_loader needs a Split, got {type(split).__name__}")
    for flag, value in (("batch size", batch_size), ("resolution", resolution)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise UserError(f"{flag} must be a positive integer, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}")
    device = torch.device(device)
    drop_last = bool(train) if drop_last is None else bool(drop_last)
    kwargs = dict(
        batch_size=int(batch_size),
        resolution=int(resolution),
        train=bool(train),
        device=device,
        seed=int(seed),
        drop_last=drop_last,
    )
    if isinstance(split, TensorSplit):
        loader: BatchLoader = TensorLoader(split, **kwargs)
    elif isinstance(split, FileSplit):
        loader = StreamLoader(split, num_workers=num_workers, **kwargs)
    else:
        raise TypeError(f"no loader for {type(split).__name__}")
    if len(loader) == 0 and len(split) > 0:
        raise UserError(
            f"batch size {batch_size} is larger than the split ({len(split)} images) and drop_last is on, "
            "so there would be no batch; lower the batch size"
        )
    return loader
