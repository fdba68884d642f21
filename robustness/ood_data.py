"""Corrupted test sets (CIFAR-10-C, CIFAR-100-C): the published release, or generated offline and cached.

    >>> ood = open_ood_set("cifar10", data.test, corruptions=["fog", "snow"], data_dir="~/data/cifar10")
    >>> split = ood.split("fog", 3, data.test.mean, data.test.std)   # a TensorSplit, like data.test

**Registered sets** (:data:`OOD_DATASETS`, looked up by the clean dataset's name with
:func:`ood_spec`): ``cifar10_c`` (CIFAR-10-C, for ``cifar10`` and ``cifar10_embedded``) and
``cifar100_c`` (CIFAR-100-C, for ``cifar100``). They are not in :data:`nas.data.DATASETS`: that
registry holds datasets with a training split, and a corrupted set is 15 x 5 test splits of one.

**The release** (Hendrycks & Dietterich, Zenodo records 2535967 and 3555552): one
``<corruption>.npy`` per corruption, uint8 [5 N, H, W, 3] (N = 10,000 for CIFAR), severity s in rows
``[(s - 1) N, s N)``, and one ``labels.npy`` of 5 N labels. It is looked for in ``ood_dir`` when
given, else in ``<data_dir>/CIFAR-10-C/`` (where the archive unpacks when extracted in the clean
dataset's folder; without ``data_dir``: ``data/cache/cifar10/CIFAR-10-C/``, also for the embedded
CIFAR-10, and ``data/cache/cifar100/CIFAR-100-C/``).
A release found there is used whole or not at all: a missing or malformed file is a one-line
error naming it and where to put it, never a silent fall-back.

**Generated sets**: without a release (``source="auto"``) or with ``source="generate"``, the
first ``n_images`` images of the clean test split are corrupted with :mod:`robustness.corruptions`
(15 corruptions x 5 severities; that module's docstring says where they differ from the
release's) and cached in the release's layout under ``cache_dir`` (default ``data/cache/ood/``
relative to the working directory, which .gitignore covers), in a folder named by the set, the
seed, the number of images and a hash of the clean images:
``<cache_dir>/cifar10_c-seed0-n2000-<hash>/``. Images of corruption ``c``, severity ``s`` and chunk
``k`` of 1,000 images come from ``np.random.default_rng([seed, crc32(c), s, k])``, so the same
seed gives the same files, whichever corruptions are asked for first. Every file is written to a
temporary file and renamed, then described in ``<corruption>.json`` (generator version,
parameters, seed, source hash, the file's sha256); a file whose description is missing or does not
match, or whose bytes changed, is generated again (and said so), never used. The full CIFAR-10
test split gives 15 files of 154 MB (like the release) in 136 s on two CPU cores with other jobs
running; checking them before a re-use takes 2 s.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.data import DATASETS, Split, TensorSplit
from nas.errors import UserError
from nas.io import sha256_file, write_json
from nas.registry import Registry
from robustness.corruptions import CORRUPTIONS, SEVERITIES, check_corruptions, corrupt, corruption_rng

GENERATOR_VERSION = 1  # bump when a corruption's output changes: older cached files are then re-made
CHUNK = 1000  # images per random stream (and per call of a corruption)
SOURCES = ("auto", "release", "generate")
DEFAULT_CACHE = Path("data") / "cache" / "ood"


@dataclass(frozen=True)
class CorruptedSpec:
    """A corrupted version of a clean test set."""

    name: str  # registry name, e.g. "cifar10_c"
    title: str  # "CIFAR-10-C"
    clean: tuple[str, ...]  # the clean datasets (registry names) whose networks it evaluates
    home: str  # the clean dataset whose folder holds the release by default
    folder: str  # the release's folder name, as its archive unpacks
    archive: str  # the release's archive, for messages
    record: str  # where the release is published

    def where(self) -> str:
        return f"{self.archive} ({self.record})"


OOD_DATASETS: Registry[CorruptedSpec] = Registry("corrupted dataset")


def _register(spec: CorruptedSpec) -> CorruptedSpec:
    return OOD_DATASETS.register(spec.name)(spec)


_register(
    CorruptedSpec(
        "cifar10_c", "CIFAR-10-C", ("cifar10", "cifar10_embedded"), "cifar10", "CIFAR-10-C",
        "CIFAR-10-C.tar", "zenodo.org/records/2535967",
    )
)  # fmt: skip
_register(
    CorruptedSpec(
        "cifar100_c", "CIFAR-100-C", ("cifar100",), "cifar100", "CIFAR-100-C",
        "CIFAR-100-C.tar", "zenodo.org/records/3555552",
    )
)  # fmt: skip


def ood_spec(dataset: str) -> CorruptedSpec:
    """The corrupted set for clean dataset ``dataset`` (or by its own name, e.g. ``cifar10_c``)."""
    if dataset in OOD_DATASETS:
        return OOD_DATASETS.get(dataset)
    for name in OOD_DATASETS.names():
        if dataset in OOD_DATASETS.get(name).clean:
            return OOD_DATASETS.get(name)
    known = sorted(d for n in OOD_DATASETS.names() for d in OOD_DATASETS.get(n).clean)
    raise UserError(
        f"no corrupted test set is registered for dataset {dataset!r}; "
        f"OOD evaluation supports {', '.join(known)}"
    )


@dataclass
class OODSet:
    """Corrupted images in the release's layout: ``<path>/<corruption>.npy`` and ``labels.npy``."""

    spec: CorruptedSpec
    kind: str  # "release" or "generated"
    path: Path
    rows: int  # images per severity in the files (10,000 in the release)
    n_images: int  # images per severity used (the first ones of each severity)
    seed: int | None  # generated sets: the seed
    fingerprint: str | None  # generated sets: sha256 of the clean images and labels they come from
    corruptions: tuple[str, ...]  # the corruptions checked or generated

    def split(self, corruption: str, severity: int, mean: Any, std: Any) -> TensorSplit:
        """The ``n_images`` images of one corruption and severity, normalised with ``mean``/``std``."""
        if corruption not in self.corruptions or severity not in SEVERITIES:
            raise KeyError(f"{corruption} severity {severity} is not in this set")
        start = (severity - 1) * self.rows
        images = np.load(self.path / f"{corruption}.npy", mmap_mode="r")[start : start + self.n_images]
        labels = np.load(self.path / "labels.npy")[start : start + self.n_images]
        x = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2)  # a copy in memory, NHWC
        return TensorSplit(x, torch.from_numpy(labels.astype(np.int64)), mean, std)

    def describe(self) -> dict[str, Any]:
        """What these images are, for result files (two evaluations compare only on equal sets)."""
        return {
            "ood_dataset": self.spec.name,
            "title": self.spec.title,
            "kind": self.kind,
            "path": str(self.path.resolve()),
            "n_images": self.n_images,
            "seed": self.seed,
            "fingerprint": self.fingerprint,
            "generator": GENERATOR_VERSION if self.kind == "generated" else None,
        }


def open_ood_set(
    dataset: str,
    clean_test: Split,
    corruptions: Any = None,
    n_images: int | None = None,
    seed: int = 0,
    source: str = "auto",
    data_dir: str | os.PathLike | None = None,
    ood_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> OODSet:
    """The corrupted set of ``dataset``: its release (``source`` "release", or "auto" when one is
    found) or a set generated from ``clean_test`` ("generate", or "auto" without a release).

    ``n_images``: images per severity (default: all of the release, or of ``clean_test``); more
    than there are is an error. Missing or malformed release files are one-line errors.
    """
    spec = ood_spec(dataset)
    corruptions = check_corruptions(corruptions)
    if source not in SOURCES:
        raise UserError(f"unknown OOD source {source!r}; use one of {', '.join(SOURCES)}")
    if n_images is not None and (isinstance(n_images, bool) or int(n_images) < 1):
        raise UserError(f"the number of images {n_images!r} must be a positive integer")
    release = None
    if source != "generate":
        release = find_release(spec, data_dir, ood_dir, required=source == "release" or ood_dir is not None)
    if release is not None:
        n_classes = DATASETS.get(dataset).n_classes if dataset in DATASETS else None
        rows = check_release(spec, release, corruptions, n_classes)
        n = _images_wanted(n_images, rows, f"the {spec.title} release in {release}")
        return OODSet(spec, "release", release, rows, n, None, None, corruptions)
    if not isinstance(clean_test, TensorSplit):
        raise UserError(f"generating {spec.title} needs a test split held in memory, got {clean_test!r}")
    n = _images_wanted(n_images, len(clean_test), f"the clean test split of {dataset}")
    folder, fingerprint = generate_set(spec, clean_test, corruptions, n, seed, cache_dir, progress)
    return OODSet(spec, "generated", folder, n, n, int(seed), fingerprint, corruptions)


def _images_wanted(n_images: int | None, available: int, where: str) -> int:
    if n_images is None:
        return available
    if int(n_images) > available:
        raise UserError(
            f"{n_images} images per severity asked for, but {where} has {available}; ask for fewer"
        )
    return int(n_images)


# ---- the release ----------------------------------------------------------------------------


def release_dirs(spec: CorruptedSpec, data_dir: str | os.PathLike | None) -> list[Path]:
    """Where the release is looked for without ``ood_dir``: ``<data_dir>/<folder>``."""
    root = Path(data_dir).expanduser() if data_dir else DATASETS.get(spec.home).default_dir()
    return [root / spec.folder]


def find_release(
    spec: CorruptedSpec,
    data_dir: str | os.PathLike | None,
    ood_dir: str | os.PathLike | None,
    required: bool,
) -> Path | None:
    """The release folder (the first with a ``labels.npy``), ``None``, or an error when ``required``."""
    candidates = [Path(ood_dir).expanduser()] if ood_dir is not None else release_dirs(spec, data_dir)
    for folder in candidates:
        if (folder / "labels.npy").is_file():
            return folder
    if not required:
        return None
    folder = candidates[0]
    raise UserError(
        f"{spec.title} release not found: {folder / 'labels.npy'} does not exist; put labels.npy and the "
        f"<corruption>.npy files of {spec.where()} in {folder} (or generate the set: --ood_source generate)"
    )


def _load_npy(path: Path, spec: CorruptedSpec) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"{path} cannot be read as a .npy file ({first}); replace it with the file of {spec.where()}"
        ) from None


def check_release(
    spec: CorruptedSpec, folder: Path, corruptions: tuple[str, ...], n_classes: int | None
) -> int:
    """Check ``labels.npy`` and every ``<corruption>.npy`` of the release; returns the images per severity."""
    labels = _load_npy(folder / "labels.npy", spec)
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) % len(SEVERITIES) or not len(labels):
        raise UserError(
            f"{folder / 'labels.npy'} holds {labels.dtype} {labels.shape}, expected integer labels for "
            f"{len(SEVERITIES)} severities x N images; replace it with the file of {spec.where()}"
        )
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or (n_classes is not None and high >= n_classes):
        raise UserError(
            f"{folder / 'labels.npy'} has labels {low}..{high}, outside the {n_classes} classes; "
            f"is it the release of {spec.title}?"
        )
    for c in corruptions:
        path = folder / f"{c}.npy"
        if not path.is_file():
            raise UserError(
                f"{spec.title} release in {folder} lacks {c}.npy; put {c}.npy of {spec.where()} in {folder} "
                "(or leave the corruption out, or generate the set: --ood_source generate)"
            )
        images = _load_npy(path, spec)
        if (
            images.dtype != np.uint8
            or images.ndim != 4
            or images.shape[0] != len(labels)
            or images.shape[3] != 3
            or images.shape[1] != images.shape[2]
        ):
            raise UserError(
                f"{path} holds {images.dtype} {images.shape}, expected uint8 [{len(labels)}, H, H, 3] "
                f"(one image per label of labels.npy); replace it with the file of {spec.where()}"
            )
    return len(labels) // len(SEVERITIES)


# ---- generated sets -------------------------------------------------------------------------


def fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(str(images.shape).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    h.update(np.asarray(labels, dtype=np.int64).tobytes())
    return h.hexdigest()


def _description(spec: CorruptedSpec, what: str, seed: int, n: int, fp: str, side: int) -> dict[str, Any]:
    d = {"schema": 1, "generator": GENERATOR_VERSION, "set": spec.name, "file": f"{what}.npy", "seed": seed}
    d.update({"n_images": n, "image_size": side, "source_sha256": fp})
    if what in CORRUPTIONS:
        c = CORRUPTIONS.get(what)
        d.update({"params": [list(p) if isinstance(p, tuple) else p for p in c.params], "differs": c.differs})
    return d


def _valid(folder: Path, what: str, expected: dict[str, Any]) -> bool | None:
    """Whether ``<what>.npy`` is complete and as described (``None``: absent, nothing to say)."""
    path, meta_path = folder / f"{what}.npy", folder / f"{what}.json"
    if not path.exists() and not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        ok = {k: meta.get(k) for k in expected} == expected
        return bool(
            ok and meta.get("bytes") == path.stat().st_size and meta.get("sha256") == sha256_file(path)
        )
    except (OSError, ValueError, AttributeError):
        return False


def _write_npy(folder: Path, what: str, shape: tuple[int, ...], dtype: Any, fill) -> None:
    """``<what>.npy`` written through a temporary file (``fill(array)`` fills it), then its description."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{what}.", suffix=".npy.tmp")
    os.close(fd)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        fill(out)
        out.flush()
        del out
        os.chmod(tmp, 0o644)
        os.replace(tmp, folder / f"{what}.npy")
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def generate_set(
    spec: CorruptedSpec,
    clean_test: TensorSplit,
    corruptions: tuple[str, ...],
    n: int,
    seed: int,
    cache_dir: str | os.PathLike | None,
    progress: bool,
) -> tuple[Path, str]:
    """Make (or re-use) the cached set of the first ``n`` images of ``clean_test``.

    Returns ``(folder, fingerprint of the clean images)``."""
    images = clean_test.images[:n].permute(0, 2, 3, 1).contiguous().numpy()  # uint8 NHWC, as the release
    labels = clean_test.labels[:n].numpy()
    fp = fingerprint(images, labels)
    side = images.shape[1]
    root = Path(cache_dir).expanduser() if cache_dir else DEFAULT_CACHE
    folder = root / f"{spec.name}-seed{int(seed)}-n{n}-{fp[:12]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"cannot create the OOD cache folder {folder} ({e.strerror}); pass another --cache_dir"
        ) from None

    def describe(what: str) -> None:
        path = folder / f"{what}.npy"
        meta = {**_description(spec, what, int(seed), n, fp, side), "bytes": path.stat().st_size}
        write_json(folder / f"{what}.json", {**meta, "sha256": sha256_file(path)})

    def stale(what: str) -> bool:
        valid = _valid(folder, what, _description(spec, what, int(seed), n, fp, side))
        if valid is False:
            print(
                f"note: {folder / (what + '.npy')} is incomplete or out of date; making it again",
                file=sys.stderr,
            )
        return not valid

    dtype = np.uint8 if labels.max(initial=0) < 256 else np.int64
    if stale("labels"):
        _write_npy(
            folder,
            "labels",
            (len(SEVERITIES) * n,),
            dtype,
            lambda out: out.__setitem__(..., np.tile(labels, 5)),
        )
        describe("labels")
    todo = [c for c in corruptions if stale(c)]
    if todo:
        from tqdm import tqdm

        bar = tqdm(
            todo,
            desc=f"generating {spec.title} ({n} images)",
            disable=None if progress else True,
            dynamic_ncols=True,
        )
        for c in bar:
            bar.set_postfix_str(c)

            def fill(out: np.ndarray, c: str = c) -> None:
                for s in SEVERITIES:
                    for k, start in enumerate(range(0, n, CHUNK)):
                        stop = min(start + CHUNK, n)
                        rows = slice((s - 1) * n + start, (s - 1) * n + stop)
                        out[rows] = corrupt(images[start:stop], c, s, corruption_rng(seed, c, s, k))

            _write_npy(folder, c, (len(SEVERITIES) * n, *images.shape[1:]), np.uint8, fill)
            describe(c)
    return folder, fp
