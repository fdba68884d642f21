"""Image files -> uint8 tensors: ImageFolder scanning, parallel decoding, tar archives.

Decoding uses ``torchvision.io`` (libjpeg-turbo / libpng) in a few threads: the 60,000 CIFAR-10
JPEGs decode in about 2 s on 2 CPU cores, so decoded images are not cached on disk.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from nas.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")  # what torchvision.io decodes
TEST_FOLDERS = ("test", "val")  # an ImageFolder's evaluation split, first match wins
_CHUNK = 2048  # images per decode task
_THREADS = max(1, min(4, os.cpu_count() or 1))


def is_image_folder(root: Path) -> bool:
    """Whether ``root`` looks like ``root/train/<class>/...`` plus ``root/{test,val}/<class>/...``."""
    return (root / "train").is_dir() and any((root / t).is_dir() for t in TEST_FOLDERS)


def find_classes(split_dir: Path) -> list[str]:
    """Sorted names of the class folders in ``split_dir`` (hidden folders ignored)."""
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))


def _image_files(folder: Path) -> list[str]:
    """Image files anywhere below ``folder`` (Tiny-ImageNet nests them in ``images/``), sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [os.path.join(dirpath, f) for f in filenames if f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


def scan_split(split_dir: Path, classes: Sequence[str]) -> tuple[list[str], torch.Tensor]:
    """Files and labels of ``split_dir/<class>/**/*.{jpg,png,...}``; classes must be known ones."""
    index = {c: i for i, c in enumerate(classes)}
    unknown = [c for c in find_classes(split_dir) if c not in index]
    if unknown:
        raise UserError(
            f"{split_dir} has class folders that train/ lacks ({', '.join(unknown[:5])}); "
            "train/ and the test folder must use the same class names"
        )
    paths, labels = [], []
    for c in classes:
        if not (split_dir / c).is_dir():
            continue
        files = _image_files(split_dir / c)
        paths += files
        labels += [index[c]] * len(files)
    if not paths:
        raise UserError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {split_dir}/<class>/")
    return paths, torch.tensor(labels, dtype=torch.long)


def image_folder_files(
    root: Path,
) -> tuple[list[str], tuple[list[str], torch.Tensor], tuple[list[str], torch.Tensor]]:
    """``(classes, (train paths, labels), (test paths, labels))`` of an ImageFolder at ``root``."""
    train_dir = root / "train"
    test_dir = next(root / t for t in TEST_FOLDERS if (root / t).is_dir())
    classes = find_classes(train_dir)
    if not classes:
        raise UserError(f"{train_dir} has no class folders; expected {train_dir}/<class>/<image files>")
    return classes, scan_split(train_dir, classes), scan_split(test_dir, classes)


def read_files(paths: Sequence[str]) -> list[bytearray]:
    """The bytes of many small files, read by a few threads."""

    def read(p: str) -> bytearray:
        with open(p, "rb") as f:
            return bytearray(f.read())

    with ThreadPoolExecutor(_THREADS) as pool:
        return list(pool.map(read, paths, chunksize=256))


def _decode_one(blob: torch.Tensor, size: int, name: str) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_image  # torchvision loads in 2 s: only when decoding
    from torchvision.transforms.v2 import functional as TF

    try:
        img = decode_image(blob, mode=ImageReadMode.RGB)
    except RuntimeError as e:
        raise UserError(
            f"cannot decode image {name} ({str(e).splitlines()[0]}); remove or replace it"
        ) from None
    if img.shape[-2:] != (size, size):
        img = TF.resize(img, [size, size], antialias=True)
    return img


def _decode_chunk(blobs: Sequence[bytearray], names: Sequence[str], size: int, out: torch.Tensor) -> None:
    from torchvision.io import ImageReadMode, decode_jpeg
    from torchvision.transforms.v2 import functional as TF

    tensors = [torch.frombuffer(b, dtype=torch.uint8) for b in blobs]
    jpeg = [i for i, b in enumerate(blobs) if b[:3] == b"\xff\xd8\xff"]
    decoded: dict[int, torch.Tensor] = {}
    if jpeg:
        try:  # one call for all JPEGs of the chunk is about twice as fast as one call per image
            for i, img in zip(
                jpeg, decode_jpeg([tensors[i] for i in jpeg], mode=ImageReadMode.RGB), strict=True
            ):
                decoded[i] = img
        except RuntimeError:
            decoded = {}  # one bad file: fall back to one call per image, which names it
    for i, t in enumerate(tensors):
        img = decoded.get(i)
        if img is None or img.shape[-2:] != (size, size):
            img = (
                _decode_one(t, size, names[i])
                if img is None
                else TF.resize(img, [size, size], antialias=True)
            )
        out[i] = img


def decode_images(blobs: Sequence[bytearray], names: Sequence[str], size: int) -> torch.Tensor:
    """Encoded images -> uint8 [N, 3, size, size] (RGB; other sizes resized to ``size``)."""
    out = torch.empty((len(blobs), 3, size, size), dtype=torch.uint8)
    starts = range(0, len(blobs), _CHUNK)
    with ThreadPoolExecutor(_THREADS) as pool:
        jobs = [
            pool.submit(
                _decode_chunk, blobs[s : s + _CHUNK], names[s : s + _CHUNK], size, out[s : s + _CHUNK]
            )
            for s in starts
        ]
        for j in jobs:
            j.result()
    return out


def load_images(paths: Sequence[str], size: int) -> torch.Tensor:
    """Image files -> uint8 [N, 3, size, size]."""
    return decode_images(read_files(paths), paths, size)


def read_tar_members(path: Path) -> dict[str, bytearray]:
    """``{member name: bytes}`` of the regular files in a (possibly gzipped) tar archive."""
    try:
        with tarfile.open(path, "r:*") as tf:
            return {m.name: bytearray(tf.extractfile(m).read()) for m in tf if m.isfile()}
    except (tarfile.TarError, OSError, EOFError) as e:
        raise UserError(
            f"cannot read the archive {path} ({type(e).__name__}: {e}); restore or re-create it"
        ) from None
