"""The dataset registry: what each dataset is, where its files may be and how to read them.

``load_dataset(name, data_dir)`` looks in ``data_dir`` (``--data``; default ``./data/cache/<name>``
relative to the working directory, which this repository's .gitignore covers) for, in order:

1. torchvision's own files, for the datasets torchvision knows (CIFAR-10/100 pickles, SVHN .mat);
2. an ImageFolder: ``DIR/train/<class>/*`` plus ``DIR/test/<class>/*`` (or ``DIR/val/<class>/*``);
   files are found recursively below each class folder and may be JPEG, PNG or WebP;
3. torchvision's download into ``DIR``, where torchvision offers one (CIFAR-10/100, SVHN).

When none works the error says which files to put where. Small-image datasets are decoded into
memory as uint8 tensors; ImageNet is streamed from its files.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from nas.data.folders import (
    decode_images,
    find_classes,
    image_folder_files,
    is_image_folder,
    load_images,
    read_tar_members,
    scan_split,
)
from nas.data.splits import DataSplits, FileSplit, Split, Stats, TensorSplit, carve_valid, check_vld_size
from nas.errors import UserError
from nas.io import atomic_write_bytes
from nas.registry import Registry

REPO_ROOT = Path(__file__).resolve().parents[2]
EMBEDDED_DIR = REPO_ROOT / "data" / "cifar10_embedded"
DECODED_CACHE = REPO_ROOT / "data" / "cache" / "decoded"  # decoded embedded archives (gitignored)
EMBEDDED_ARCHIVE = "cifar10_embedded.tar.gz"
EMBEDDED_MANIFEST = "manifest.json"

# (classes, train, test) read from a root folder; ``download`` says whether fetching is allowed
Reader = Callable[["DatasetSpec", Path, bool], tuple[list[str], Split, Split]]


@dataclass(frozen=True)
class DatasetSpec:
    """What the toolkit knows about a dataset."""

    name: str  # registry name
    title: str  # name in messages, e.g. "CIFAR-10"
    n_classes: int  # expected number of classes; a folder with another count is refused
    image_size: int  # native side (nominal training side for streamed datasets)
    mean: Stats  # per-channel pixel mean in [0, 1], for normalisation
    std: Stats
    reader: Reader
    layout: str  # the files this dataset accepts, for error messages
    in_memory: bool = True  # decoded into uint8 tensors (False: streamed from files)
    home: Path | None = None  # where the files are when no data_dir is given (None: data/cache/<name>)

    def default_dir(self) -> Path:
        return self.home if self.home is not None else Path("data") / "cache" / self.name


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def list_datasets() -> list[str]:
    return DATASETS.names()


def load_dataset(
    name: str, data_dir: str | None = None, vld_size: int = 0, seed: int = 0, download: bool = True
) -> DataSplits:
    """Load dataset ``name`` from ``data_dir`` and carve a validation split of ``vld_size`` images.

    The validation images are ``vld_size // n_classes`` per class (the remainder one each to the
    first classes), drawn with ``np.random.default_rng(seed)`` from the training images and removed
    from them. Missing files are downloaded when ``download`` and torchvision can; otherwise, and
    when the download fails, :class:`UserError` says which files to put where.
    """
    spec = DATASETS.get(name)
    check_vld_size(vld_size)  # before reading anything: a typo should not cost a dataset load
    root = Path(data_dir).expanduser() if data_dir else spec.default_dir()
    if root.exists() and not root.is_dir():
        raise UserError(f"--data {root} is a file; pass the folder that holds the {spec.title} files")
    classes, train, test = spec.reader(spec, root, download)
    if len(classes) != spec.n_classes:
        raise UserError(
            f"{spec.title} has {spec.n_classes} classes but {root} holds {len(classes)} "
            f"({', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''}); "
            "check --data and the dataset name"
        )
    train, valid = carve_valid(train, vld_size, spec.n_classes, seed)
    return DataSplits(spec.name, spec.n_classes, list(classes), train, valid, test, spec.image_size)


# ---- readers -------------------------------------------------------------------------------


def _missing(spec: DatasetSpec, root: Path, why: str) -> UserError:
    return UserError(f"{spec.title} not found in DIR={root} {why}; {spec.layout}")


def _read_image_folder(spec: DatasetSpec, root: Path) -> tuple[list[str], Split, Split]:
    classes, (train_paths, train_labels), (test_paths, test_labels) = image_folder_files(root)
    return (
        classes,
        _files_to_split(spec, train_paths, train_labels),
        _files_to_split(spec, test_paths, test_labels),
    )


def _files_to_split(spec: DatasetSpec, paths: list[str], labels: torch.Tensor) -> Split:
    if not spec.in_memory:
        return FileSplit(paths, labels, spec.mean, spec.std, spec.image_size)
    return TensorSplit(load_images(paths, spec.image_size), labels, spec.mean, spec.std)


def _folder_only(spec: DatasetSpec, root: Path, download: bool) -> tuple[list[str], Split, Split]:
    """Datasets without a download: an ImageFolder or nothing."""
    if is_image_folder(root):
        return _read_image_folder(spec, root)
    raise _missing(spec, root, "(it has no automatic download)")


def _torchvision_reader(
    files_present: Callable[[Path], bool],
    read: Callable[[DatasetSpec, Path, bool], tuple[list[str], Split, Split]],
) -> Reader:
    """torchvision's files if present, else an ImageFolder, else torchvision's download."""

    def reader(spec: DatasetSpec, root: Path, download: bool) -> tuple[list[str], Split, Split]:
        if files_present(root):
            try:
                return read(spec, root, False)
            except (RuntimeError, OSError, ValueError) as e:
                raise UserError(
                    f"{spec.title} files in DIR={root} are incomplete or corrupt ({type(e).__name__}: "
                    f"{str(e).splitlines()[0] if str(e) else ''}); "
                    f"delete them to download again, or {spec.layout}"
                ) from None
        if is_image_folder(root):
            return _read_image_folder(spec, root)
        if not download:
            raise _missing(spec, root, "(download disabled)")
        try:
            return read(spec, root, True)
        except Exception as e:  # urllib, http, integrity and file-system errors alike
            raise _missing(spec, root, f"and download failed ({type(e).__name__})") from None

    return reader


def _read_cifar(cls_name: str) -> Callable[[DatasetSpec, Path, bool], tuple[list[str], Split, Split]]:
    def read(spec: DatasetSpec, root: Path, download: bool) -> tuple[list[str], Split, Split]:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        splits = []
        for train in (True, False):
            ds = cls(root=str(root), train=train, download=download)
            images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
            splits.append(TensorSplit(images, torch.tensor(ds.targets), spec.mean, spec.std))
            classes = list(ds.classes)
        return classes, splits[0], splits[1]

    return read


def _read_svhn(spec: DatasetSpec, root: Path, download: bool) -> tuple[list[str], Split, Split]:
    import torchvision.datasets as tvd

    splits = []
    for split in ("train", "test"):  # the "extra" split is not used
        ds = tvd.SVHN(root=str(root), split=split, download=download)
        images = torch.from_numpy(ds.data).contiguous()  # already [N, 3, 32, 32]
        splits.append(TensorSplit(images, torch.from_numpy(ds.labels).long(), spec.mean, spec.std))
    return [str(d) for d in range(10)], splits[0], splits[1]


def _tiny_imagenet_root(root: Path) -> Path:
    nested = root / "tiny-imagenet-200"
    return nested if not (root / "train").is_dir() and (nested / "train").is_dir() else root


def _read_tiny_imagenet(spec: DatasetSpec, root: Path, download: bool) -> tuple[list[str], Split, Split]:
    """The official ``tiny-imagenet-200`` layout (val labels from val_annotations.txt) or an ImageFolder.

    The official test images have no labels, so the val images serve as the test split.
    """
    root = _tiny_imagenet_root(root)
    annotations = root / "val" / "val_annotations.txt"
    if not ((root / "train").is_dir() and annotations.is_file()):
        return _folder_only(spec, root, download)
    classes = find_classes(root / "train")
    train_paths, train_labels = scan_split(root / "train", classes)
    index = {c: i for i, c in enumerate(classes)}
    test_paths, test_labels = [], []
    for line_no, line in enumerate(annotations.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise UserError(f"{annotations} line {line_no} is not '<file>\\t<wnid>...' with a known wnid")
        test_paths.append(str(root / "val" / "images" / fields[0]))
        test_labels.append(index[fields[1]])
    return (
        classes,
        _files_to_split(spec, train_paths, train_labels),
        _files_to_split(spec, test_paths, torch.tensor(test_labels, dtype=torch.long)),
    )


def _read_embedded(spec: DatasetSpec, root: Path, download: bool) -> tuple[list[str], Split, Split]:
    """The CIFAR-10 subset shipped in the repository: one tar.gz of the original JPEGs."""
    archive = root / EMBEDDED_ARCHIVE
    if not archive.is_file():
        if is_image_folder(root):
            return _read_image_folder(spec, root)
        raise _missing(spec, root, f"(no {EMBEDDED_ARCHIVE})")
    st = archive.stat()
    classes, tensors = _decode_embedded(str(archive.resolve()), st.st_size, st.st_mtime_ns, spec.image_size)
    return list(classes), *(TensorSplit(x, y, spec.mean, spec.std) for x, y in tensors)


@functools.lru_cache(maxsize=2)
def _decode_embedded(
    path: str, size: int, mtime_ns: int, image_size: int
) -> tuple[tuple[str, ...], tuple[tuple[torch.Tensor, torch.Tensor], ...]]:
    """The archive's classes and (images, labels) of train and test, decoded once per process and
    file version (``size``, ``mtime_ns``): the splits handed out share these tensors, which nothing
    writes to (a split's ``subset`` copies).

    The decoded tensors are also kept on disk, in ``DECODED_CACHE/<sha256 of the archive>-<px>.pt``:
    decoding 12,000 JPEGs (and importing torchvision to do it) costs every process about 5 s, reading
    the 37 MB of tensors a few milliseconds. A cache that cannot be written (a read-only checkout)
    or read is decoded again."""
    archive = Path(path)
    blob = archive.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    manifest_path = archive.parent / EMBEDDED_MANIFEST
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if digest != manifest.get("sha256"):
            raise UserError(
                f"{archive} is damaged (sha256 {digest[:12]}..., "
                f"expected {str(manifest.get('sha256'))[:12]}...); "
                "restore it with `git checkout -- data/cifar10_embedded` (a Git LFS pointer is not the file)"
            )
    cached = DECODED_CACHE / f"{digest}-{image_size}.pt"
    try:
        state = torch.load(cached, weights_only=True)
        return tuple(state["classes"]), tuple((x, y) for x, y in state["splits"])
    except (OSError, RuntimeError, KeyError, ValueError, EOFError):
        pass  # absent, half-written by an older version or unreadable: decode
    members = read_tar_members(archive)
    classes = sorted({name.split("/")[1] for name in members if name.count("/") == 2})
    index = {c: i for i, c in enumerate(classes)}
    splits = []
    for split in ("train", "test"):
        names = sorted(n for n in members if n.startswith(split + "/") and n.count("/") == 2)
        if not names:
            raise UserError(f"{archive} has no {split}/<class>/*.jpg members; re-create it with the script")
        labels = torch.tensor([index[n.split("/")[1]] for n in names], dtype=torch.long)
        splits.append((decode_images([members[n] for n in names], names, image_size), labels))
    buf = io.BytesIO()
    torch.save({"classes": classes, "splits": splits}, buf)
    try:
        atomic_write_bytes(cached, buf.getvalue())
    except OSError:
        pass  # a read-only checkout decodes in every process
    return tuple(classes), tuple(splits)


# ---- the registered datasets ---------------------------------------------------------------

_FOLDER = "or an ImageFolder DIR/train/<class>/*.png plus DIR/test/<class>/*.png (or DIR/val/<class>/*)"
_CIFAR10_MEAN, _CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def _register(**kwargs) -> DatasetSpec:
    spec = DatasetSpec(**kwargs)
    return DATASETS.register(spec.name)(spec)


_register(
    name="cifar10", title="CIFAR-10", n_classes=10, image_size=32, mean=_CIFAR10_MEAN, std=_CIFAR10_STD,
    reader=_torchvision_reader(lambda r: (r / "cifar-10-batches-py").is_dir(), _read_cifar("CIFAR10")),
    layout=f"put the cifar-10-batches-py/ folder of cifar-10-python.tar.gz in DIR, {_FOLDER}",
)  # fmt: skip
_register(
    name="cifar100", title="CIFAR-100", n_classes=100, image_size=32,
    mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
    reader=_torchvision_reader(lambda r: (r / "cifar-100-python").is_dir(), _read_cifar("CIFAR100")),
    layout=f"put the cifar-100-python/ folder of cifar-100-python.tar.gz in DIR, {_FOLDER}",
)  # fmt: skip
_register(
    name="svhn", title="SVHN", n_classes=10, image_size=32,
    mean=(0.4377, 0.4438, 0.4728), std=(0.1980, 0.2010, 0.1970),
    reader=_torchvision_reader(
        lambda r: (r / "train_32x32.mat").is_file() and (r / "test_32x32.mat").is_file(), _read_svhn
    ),
    layout=f"put train_32x32.mat and test_32x32.mat (ufldl.stanford.edu/housenumbers) in DIR, {_FOLDER}",
)  # fmt: skip
_register(
    name="cinic10", title="CINIC-10", n_classes=10, image_size=32,
    mean=(0.4789, 0.4723, 0.4305), std=(0.2421, 0.2383, 0.2587),
    reader=_folder_only,
    layout="extract CINIC-10.tar.gz so that DIR/train/<class>/*.png and DIR/test/<class>/*.png exist "
    "(its valid/ folder is not used: the validation split is carved from train/)",
)  # fmt: skip
_register(
    name="tinyimagenet", title="Tiny-ImageNet", n_classes=200, image_size=64,
    mean=(0.4802, 0.4481, 0.3975), std=(0.2302, 0.2265, 0.2262),
    reader=_read_tiny_imagenet,
    layout="unzip tiny-imagenet-200.zip and pass its tiny-imagenet-200/ folder "
    "(train/<wnid>/images/*.JPEG, val/images/*.JPEG, val/val_annotations.txt), "
    "or an ImageFolder DIR/train/<wnid>/* plus DIR/val/<wnid>/*",
)  # fmt: skip
_register(
    name="imagenet", title="ImageNet", n_classes=1000, image_size=224,
    mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
    reader=_folder_only, in_memory=False,
    layout="it must be an ImageFolder DIR/train/<wnid>/*.JPEG plus DIR/val/<wnid>/*.JPEG "
    "(the validation images sorted into class folders)",
)  # fmt: skip
_register(
    name="cifar10_embedded", title="Embedded CIFAR-10 subset", n_classes=10, image_size=32,
    mean=_CIFAR10_MEAN, std=_CIFAR10_STD,
    reader=_read_embedded, home=EMBEDDED_DIR,
    layout=f"it ships with the repository as data/cifar10_embedded/{EMBEDDED_ARCHIVE}; "
    "restore it with git, or re-create it with scripts/make_embedded_cifar10.py",
)  # fmt: skip
