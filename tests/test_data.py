"""nas.data: datasets (embedded subset, ImageFolder, torchvision layouts), validation carve, loaders."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.io import encode_jpeg, encode_png

from nas.data import (
    DATASETS,
    DataSplits,
    FileSplit,
    TensorSplit,
    carve_valid,
    list_datasets,
    load_dataset,
    make_loader,
)
from nas.data.datasets import EMBEDDED_ARCHIVE, EMBEDDED_DIR, EMBEDDED_MANIFEST
from nas.data.loaders import CROP_PADDING
from nas.errors import UserError

# torchvision 0.29 deprecates its image codecs (in favour of TorchCodec) but they still work
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")

CPU = torch.device("cpu")
FULL_CIFAR10 = Path(__file__).resolve().parents[2] / "shared/data/cifar10-jpeg.tar.gz"
ALL = ["cifar10", "cifar100", "cifar10_embedded", "cinic10", "imagenet", "svhn", "tinyimagenet"]


@pytest.fixture
def offline(monkeypatch):
    """No network: every urllib request fails as it does on a machine without internet."""

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network disabled by the test")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture(scope="module")
def embedded() -> DataSplits:
    return load_dataset("cifar10_embedded")


def fingerprints(images: torch.Tensor) -> list[int]:
    """One integer per image (a fixed random projection of its pixels) to compare sets of images."""
    w = torch.randint(0, 2**20, (images[0].numel(),), generator=torch.Generator().manual_seed(0))
    return (images.reshape(len(images), -1).long() * w).sum(1).tolist()


def normalised(images: torch.Tensor, split) -> torch.Tensor:
    mean = torch.tensor(split.mean).view(1, 3, 1, 1)
    std = torch.tensor(split.std).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def batches(loader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone()) for x, y in loader]


# ---- registry ------------------------------------------------------------------------------


def test_registry_lists_every_dataset_and_refuses_duplicates():
    assert list_datasets() == sorted(ALL)
    with pytest.raises(ValueError, match="registered twice"):
        DATASETS.register("cifar10")(object())


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(UserError, match="unknown dataset 'cifar11'.*cifar10_embedded"):
        load_dataset("cifar11")


@pytest.mark.parametrize("name", ALL)
def test_every_dataset_explains_missing_files_in_one_line(name, tmp_path, offline):
    with pytest.raises(UserError) as err:
        load_dataset(name, data_dir=str(tmp_path / "nothing_here"), download=False)
    msg = str(err.value)
    assert "\n" not in msg and "not found in DIR=" in msg and str(tmp_path / "nothing_here") in msg


# ---- the embedded subset -------------------------------------------------------------------


def test_embedded_subset_loads_offline(offline):
    t = time.perf_counter()
    data = load_dataset("cifar10_embedded")
    assert time.perf_counter() - t < 10
    assert (data.name, data.n_classes, data.image_size, data.valid) == ("cifar10_embedded", 10, 32, None)
    assert data.classes[:3] == ["airplane", "automobile", "bird"] and len(data.classes) == 10
    assert data.train.images.shape == (10000, 3, 32, 32) and data.train.images.dtype == torch.uint8
    assert data.test.images.shape == (2000, 3, 32, 32) and data.test.images.dtype == torch.uint8
    assert data.train.labels.dtype == torch.int64 and data.test.labels.dtype == torch.int64
    assert data.train.class_counts(10) == [1000] * 10
    assert data.test.class_counts(10) == [200] * 10
    assert 80 < data.train.images.float().mean() < 150  # real pictures, not zeros
    assert not set(fingerprints(data.train.images)) & set(fingerprints(data.test.images))


def test_embedded_manifest_matches_the_archive():
    import hashlib
    import json

    manifest = json.loads((EMBEDDED_DIR / EMBEDDED_MANIFEST).read_text())
    blob = (EMBEDDED_DIR / EMBEDDED_ARCHIVE).read_bytes()
    assert hashlib.sha256(blob).hexdigest() == manifest["sha256"]
    assert len(blob) == manifest["size_bytes"] <= 8_000_000
    assert manifest["sha256"] in (EMBEDDED_DIR / "README.md").read_text()


def test_damaged_embedded_archive_is_refused(tmp_path):
    shutil.copy(EMBEDDED_DIR / EMBEDDED_MANIFEST, tmp_path / EMBEDDED_MANIFEST)
    (tmp_path / EMBEDDED_ARCHIVE).write_bytes((EMBEDDED_DIR / EMBEDDED_ARCHIVE).read_bytes()[:1000])
    with pytest.raises(UserError, match="damaged"):
        load_dataset("cifar10_embedded", data_dir=str(tmp_path))


def test_decoded_embedded_archive_is_cached_on_disk(tmp_path, monkeypatch):
    import nas.data.datasets as datasets

    monkeypatch.setattr(datasets, "DECODED_CACHE", tmp_path / "decoded")
    archive, decode = EMBEDDED_DIR / EMBEDDED_ARCHIVE, datasets._decode_embedded.__wrapped__
    first = decode(str(archive), 0, 0, 32)
    (cached,) = (tmp_path / "decoded").iterdir()
    assert cached.name.startswith(json.loads((EMBEDDED_DIR / EMBEDDED_MANIFEST).read_text())["sha256"])

    def no_decoding(*_):
        raise AssertionError("decoded although the cache holds the archive")

    monkeypatch.setattr(datasets, "decode_images", no_decoding)
    again = decode(str(archive), 0, 0, 32)
    assert again[0] == first[0]
    for (xa, ya), (xb, yb) in zip(first[1], again[1], strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    cached.write_bytes(cached.read_bytes()[:1000])  # a damaged cache is decoded again
    with pytest.raises(AssertionError, match="decoded although"):
        decode(str(archive), 0, 0, 32)


# ---- validation split ----------------------------------------------------------------------


def test_valid_split_is_balanced_disjoint_and_seeded(embedded):
    a = load_dataset("cifar10_embedded", vld_size=1000, seed=0)
    assert len(a.valid) == 1000 and len(a.train) == 9000
    assert a.valid.class_counts(10) == [100] * 10 and a.train.class_counts(10) == [900] * 10
    fa_train, fa_valid = fingerprints(a.train.images), fingerprints(a.valid.images)
    assert not set(fa_train) & set(fa_valid)
    assert sorted(fa_train + fa_valid) == sorted(fingerprints(embedded.train.images))
    again = load_dataset("cifar10_embedded", vld_size=1000, seed=0)
    assert torch.equal(again.valid.images, a.valid.images) and torch.equal(again.train.images, a.train.images)
    other = load_dataset("cifar10_embedded", vld_size=1000, seed=1)
    assert set(fingerprints(other.valid.images)) != set(fa_valid)


def test_valid_remainder_goes_to_the_first_classes_and_indices_are_exact():
    n_classes, per_class = 4, 10
    labels = torch.arange(n_classes).repeat(per_class)
    images = torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 2, 2).contiguous()
    split = TensorSplit(images, labels, (0.5,) * 3, (0.25,) * 3)
    train, valid = carve_valid(split, 6, n_classes, seed=3)
    assert valid.class_counts(n_classes) == [2, 2, 1, 1]
    ids_train, ids_valid = train.images[:, 0, 0, 0].tolist(), valid.images[:, 0, 0, 0].tolist()
    assert sorted(ids_train + ids_valid) == list(range(len(labels))) and not set(ids_train) & set(ids_valid)
    assert ids_valid == sorted(ids_valid)  # original order kept
    assert torch.equal(valid.labels, labels[ids_valid])


@pytest.mark.parametrize("bad", [10000, 20000, -1, 2.5, True])
def test_bad_vld_size_is_a_user_error(bad):
    with pytest.raises(UserError, match="vld_size"):
        load_dataset("cifar10_embedded", vld_size=bad)


def test_subset_checks_indices(embedded):
    sub = embedded.test.subset([5, 0, 5])
    assert torch.equal(sub.images, embedded.test.images[[5, 0, 5]]) and len(sub) == 3
    assert len(embedded.test.subset([])) == 0
    with pytest.raises(IndexError):
        embedded.test.subset([2000])
    with pytest.raises(IndexError):
        embedded.test.subset([-1])


# ---- loaders -------------------------------------------------------------------------------


@pytest.mark.parametrize("resolution", [32, 24, 40, 64])
@pytest.mark.parametrize("train", [True, False])
def test_batch_shapes_and_types(embedded, resolution, train):
    loader = make_loader(embedded.test.subset(range(100)), 32, resolution, train, CPU)
    x, y = next(iter(loader))
    assert x.shape == (32, 3, resolution, resolution) and x.dtype == torch.float32 and x.device == CPU
    assert y.shape == (32,) and y.dtype == torch.int64


def test_test_batches_are_exactly_normalised_in_order(embedded):
    split = embedded.test
    out = batches(make_loader(split, 500, 32, False, CPU))
    x = torch.cat([b[0] for b in out])
    assert torch.equal(torch.cat([b[1] for b in out]), split.labels)
    assert torch.allclose(x, normalised(split.images, split), atol=1e-5)
    mean, std = x.mean((0, 2, 3)), x.std((0, 2, 3))
    assert mean.abs().max() < 0.1 and (std - 1).abs().max() < 0.1


def test_resizing_is_bilinear_after_normalisation(embedded):
    split = embedded.test.subset(range(16))
    (x, _), = batches(make_loader(split, 16, 48, False, CPU))  # fmt: skip
    expected = F.interpolate(
        normalised(split.images, split), size=(48, 48), mode="bilinear", align_corners=False
    )
    assert torch.allclose(x, expected, atol=1e-5)


def _all_augmentations(image: torch.Tensor, split) -> torch.Tensor:
    """Every crop (zero padding CROP_PADDING) and flip of one image, normalised: [(2p+1)^2 * 2, 3, H, W]."""
    p, size = CROP_PADDING, image.shape[-1]
    padded = F.pad(image, (p, p, p, p))
    crops = [padded[:, i : i + size, j : j + size] for i in range(2 * p + 1) for j in range(2 * p + 1)]
    crops += [c.flip(-1) for c in crops]
    return normalised(torch.stack(crops), split)


def test_train_augmentation_is_a_padded_crop_and_flip_per_sample(embedded):
    one = embedded.train.subset([7] * 64)  # one image 64 times: shuffling cannot hide the augmentation
    (x, _), = batches(make_loader(one, 64, 32, True, CPU, seed=5))  # fmt: skip
    (plain, _), = batches(make_loader(one, 64, 32, False, CPU))  # fmt: skip
    assert torch.equal(plain, plain[:1].expand_as(plain))  # test batches: no augmentation
    candidates = _all_augmentations(embedded.train.images[7], one)
    dist = (x[:, None] - candidates[None]).abs().flatten(2).amax(2)  # [64, candidates]
    assert (dist.min(1).values < 1e-5).all()  # each sample is exactly one crop/flip of the image
    which = dist.argmin(1)
    n_crops = (2 * CROP_PADDING + 1) ** 2
    assert len(set(which.tolist())) > 20 and (which >= n_crops).any() and (which < n_crops).any()


def test_train_batches_differ_from_test_batches(embedded):
    split = embedded.train.subset(range(256))
    train = torch.cat([b[0] for b in batches(make_loader(split, 64, 32, True, CPU))])
    test = torch.cat([b[0] for b in batches(make_loader(split, 64, 32, False, CPU))])
    assert train.shape == test.shape and not torch.allclose(train, test)
    assert (train.amin((1, 2, 3)) < test.amin((1, 2, 3)) - 1e-6).any()  # zero padding shows up


def test_shuffle_and_augmentation_are_deterministic_per_seed_and_epoch(embedded):
    split = embedded.train.subset(range(300))
    state = torch.random.get_rng_state()
    a = make_loader(split, 100, 32, True, CPU, seed=1)
    a.set_epoch(3)
    torch.manual_seed(123)  # global random state must not matter
    first = batches(a)
    b = make_loader(split, 100, 32, True, CPU, seed=1)
    b.set_epoch(3)
    torch.manual_seed(456)
    assert all(
        torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(first, batches(b), strict=True)
    )
    c = make_loader(split, 100, 32, True, CPU, seed=2)
    c.set_epoch(3)
    assert not torch.equal(first[0][0], batches(c)[0][0])
    b.set_epoch(4)
    assert not torch.equal(first[0][0], batches(b)[0][0])
    torch.random.set_rng_state(state)
    # each pass advances the epoch: the second pass of a fresh loader is epoch 1
    d = make_loader(split, 100, 32, True, CPU, seed=1)
    batches(d)
    second = batches(d)
    d.set_epoch(1)
    assert torch.equal(second[0][0], batches(d)[0][0])
    # one epoch sees every image once
    d.set_epoch(9)
    assert sorted(torch.cat([y for _, y in batches(d)]).tolist()) == sorted(split.labels.tolist())


def test_test_loader_is_the_same_every_epoch(embedded):
    loader = make_loader(embedded.test.subset(range(50)), 16, 32, False, CPU, seed=4)
    first = batches(loader)
    loader.set_epoch(7)
    assert all(torch.equal(p[0], q[0]) for p, q in zip(first, batches(loader), strict=True))


@pytest.mark.parametrize(
    ("train", "drop_last", "n_batches", "last"),
    [(True, None, 7, 128), (True, False, 8, 104), (False, None, 8, 104), (False, True, 7, 128)],
)
def test_len_and_drop_last(embedded, train, drop_last, n_batches, last):
    loader = make_loader(embedded.train.subset(range(1000)), 128, 32, train, CPU, drop_last=drop_last)
    sizes = [len(x) for x, _ in loader]
    assert len(loader) == len(sizes) == n_batches and sizes[-1] == last


def test_bad_loader_arguments(embedded):
    with pytest.raises(UserError, match="larger than the split"):
        make_loader(embedded.test.subset(range(10)), 64, 32, True, CPU)
    assert len(make_loader(embedded.test.subset(range(10)), 64, 32, False, CPU)) == 1
    for kwargs in ({"batch_size": 0}, {"resolution": 0}, {"seed": -1}):
        args = {"batch_size": 8, "resolution": 32, "train": False, "device": CPU, **kwargs}
        with pytest.raises(UserError):
            make_loader(embedded.test, **args)


# ---- ImageFolder layouts -------------------------------------------------------------------


def _pixels(seed: int, size: int = 32) -> torch.Tensor:
    return torch.randint(
        0, 256, (3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
    )


def _write_folder(root: Path, split: str, classes: list[str], per_class: int, jpeg_every: int = 0) -> dict:
    """PNG images (and a JPEG every ``jpeg_every``) in ``root/split/<class>/``; returns {path: pixels}."""
    written = {}
    for c_i, c in enumerate(classes):
        (root / split / c).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            img = _pixels(1000 * c_i + k + (0 if split == "train" else 500))
            if jpeg_every and k % jpeg_every == 0:
                path = root / split / c / f"{k:03d}.jpg"
                path.write_bytes(encode_jpeg(img).numpy().tobytes())
            else:
                path = root / split / c / f"{k:03d}.png"
                path.write_bytes(encode_png(img).numpy().tobytes())
                written[str(path)] = img
    return written


CLASSES = [f"class{i}" for i in range(10)]


@pytest.mark.parametrize("test_folder", ["test", "val"])
def test_image_folder_layout(tmp_path, test_folder, offline):
    train_px = _write_folder(tmp_path, "train", CLASSES, 3)
    test_px = _write_folder(tmp_path, test_folder, CLASSES, 2)
    (tmp_path / "train" / CLASSES[0] / "notes.txt").write_text("not an image")
    data = load_dataset("cifar10", data_dir=str(tmp_path))
    assert data.classes == CLASSES and data.n_classes == 10
    assert len(data.train) == 30 and len(data.test) == 20
    assert data.train.class_counts(10) == [3] * 10 and data.test.class_counts(10) == [2] * 10
    # PNG is lossless: the pixels come back exactly, in sorted file order
    assert torch.equal(data.train.images[0], train_px[str(tmp_path / "train/class0/000.png")])
    assert torch.equal(data.test.images[-1], test_px[str(tmp_path / test_folder / "class9/001.png")])
    loader = make_loader(data.train, 8, 32, True, CPU)
    assert next(iter(loader))[0].shape == (8, 3, 32, 32)


def test_image_folder_mixed_formats_and_sizes(tmp_path):
    _write_folder(tmp_path, "train", CLASSES, 4, jpeg_every=2)
    _write_folder(tmp_path, "test", CLASSES, 1)
    odd = tmp_path / "train" / "class3" / "zz_big.png"
    odd.write_bytes(encode_png(_pixels(9, size=48)).numpy().tobytes())
    gray = tmp_path / "test" / "class5" / "gray.png"
    gray.write_bytes(encode_png(torch.full((1, 32, 32), 77, dtype=torch.uint8)).numpy().tobytes())
    data = load_dataset("cifar10", data_dir=str(tmp_path), vld_size=10, seed=0)
    assert data.train.images.shape == (31, 3, 32, 32) and len(data.valid) == 10
    assert data.test.images.shape == (11, 3, 32, 32)
    assert (data.test.images[data.test.labels == 5][-1] == 77).all()  # grey -> RGB


def test_image_folder_with_a_wrong_class_count_is_refused(tmp_path):
    _write_folder(tmp_path, "train", CLASSES[:4], 1)
    _write_folder(tmp_path, "test", CLASSES[:4], 1)
    with pytest.raises(UserError, match="10 classes but .* holds 4"):
        load_dataset("cifar10", data_dir=str(tmp_path))


def test_image_folder_test_classes_must_exist_in_train(tmp_path):
    _write_folder(tmp_path, "train", CLASSES, 1)
    _write_folder(tmp_path, "test", CLASSES[:9] + ["stranger"], 1)
    with pytest.raises(UserError, match="stranger"):
        load_dataset("cinic10", data_dir=str(tmp_path))


def test_corrupt_image_is_named(tmp_path):
    _write_folder(tmp_path, "train", CLASSES, 1)
    _write_folder(tmp_path, "test", CLASSES, 1)
    bad = tmp_path / "train" / "class2" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(UserError, match="broken.png"):
        load_dataset("cifar10", data_dir=str(tmp_path))


def test_tiny_imagenet_official_layout(tmp_path):
    root = tmp_path / "tiny-imagenet-200"  # as unzipped; --data may point at its parent
    wnids = [f"n{i:08d}" for i in range(200)]
    lines = []
    (root / "val" / "images").mkdir(parents=True)
    for i, w in enumerate(wnids):
        (root / "train" / w / "images").mkdir(parents=True)
        (root / "train" / w / "images" / f"{w}_0.JPEG").write_bytes(
            encode_jpeg(_pixels(i, 64)).numpy().tobytes()
        )
        if i % 50 == 0:
            (root / "val" / "images" / f"val_{i}.JPEG").write_bytes(
                encode_png(_pixels(i, 64)).numpy().tobytes()
            )
            lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
    (root / "train" / wnids[0] / f"{wnids[0]}_boxes.txt").write_text("ignored")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (root / "test" / "images").mkdir(parents=True)  # unlabelled; must be ignored
    data = load_dataset("tinyimagenet", data_dir=str(tmp_path))
    assert data.n_classes == 200 and data.image_size == 64 and data.classes == wnids
    assert data.train.images.shape == (200, 3, 64, 64)
    assert data.test.labels.tolist() == [0, 50, 100, 150]
    assert torch.equal(data.test.images[1], _pixels(50, 64))


def test_streamed_split_loader_is_deterministic_across_worker_counts(tmp_path):
    paths, labels = [], []
    for i in range(12):
        h, w = 40 + 4 * (i % 3), 56 - 4 * (i % 2)  # various sizes and aspect ratios
        img = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(i))
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(encode_jpeg(img).numpy().tobytes())
        paths.append(str(path))
        labels.append(i % 3)
    split = FileSplit(paths, torch.tensor(labels), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 32)
    assert len(split) == 12 and len(split.subset([1, 2])) == 2
    for train in (True, False):
        runs = []
        for workers in (0, 2):
            loader = make_loader(split, 5, 32, train, CPU, seed=3, num_workers=workers)
            loader.set_epoch(2)
            runs.append(batches(loader))
        assert len(runs[0]) == len(loader) == (2 if train else 3)
        assert runs[0][0][0].shape == (5, 3, 32, 32) and runs[0][0][1].dtype == torch.int64
        assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(*runs, strict=True))
    loader = make_loader(split, 12, 32, True, CPU, seed=3, num_workers=0)
    assert not torch.equal(batches(loader)[0][0], batches(loader)[0][0])  # epochs 0 and 1 differ


def test_imagenet_needs_its_thousand_classes(tmp_path):
    _write_folder(tmp_path, "train", CLASSES[:3], 1)
    _write_folder(tmp_path, "val", CLASSES[:3], 1)
    with pytest.raises(UserError, match="1000 classes"):
        load_dataset("imagenet", data_dir=str(tmp_path))


# ---- missing or damaged data ---------------------------------------------------------------


def test_missing_cifar10_offline_says_what_to_put_where(tmp_path, offline):
    with pytest.raises(UserError) as err:
        load_dataset("cifar10", data_dir=str(tmp_path / "c10"))
    msg = str(err.value)
    assert "download failed (URLError)" in msg and "cifar-10-batches-py" in msg and "DIR/train/<class>" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(("name", "hint"), [("cifar100", "cifar-100-python"), ("svhn", "train_32x32.mat")])
def test_missing_downloadable_datasets_offline(tmp_path, offline, name, hint):
    with pytest.raises(UserError, match=f"download failed.*{hint}"):
        load_dataset(name, data_dir=str(tmp_path))


@pytest.mark.parametrize(("name", "hint"), [("cinic10", "CINIC-10"), ("tinyimagenet", "val_annotations.txt"),
                                            ("imagenet", "DIR/val/<wnid>")])  # fmt: skip
def test_datasets_without_download(tmp_path, name, hint):
    with pytest.raises(UserError, match=f"no automatic download.*{hint}"):
        load_dataset(name, data_dir=str(tmp_path))


def test_corrupt_torchvision_files(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(UserError, match="incomplete or corrupt"):
        load_dataset("cifar10", data_dir=str(tmp_path))


def test_data_dir_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        load_dataset("cifar10", data_dir=str(tmp_path / "f"))


# ---- the full CIFAR-10 as JPEG folders -----------------------------------------------------


@pytest.fixture(scope="session")
def full_cifar10(tmp_path_factory):
    if not FULL_CIFAR10.is_file():
        pytest.skip(f"{FULL_CIFAR10} is not on this machine")
    out = tmp_path_factory.mktemp("cifar10_full")
    if shutil.which("tar"):  # GNU tar unpacks the 60,000 files in ~1 s, Python's tarfile in ~8 s
        subprocess.run(["tar", "-xzf", str(FULL_CIFAR10), "-C", str(out)], check=True)
    else:
        with tarfile.open(FULL_CIFAR10) as tf:
            tf.extractall(out, filter="data")
    yield out / "cifar10"
    shutil.rmtree(out)  # 60,000 files: do not leave them to pytest's tmp rotation


def test_full_cifar10_image_folder(full_cifar10):
    t = time.perf_counter()
    data = load_dataset("cifar10", data_dir=str(full_cifar10), vld_size=5000)
    seconds = time.perf_counter() - t
    assert data.n_classes == 10 and len(data.classes) == 10
    assert len(data.train) + len(data.valid) == 50000 and len(data.test) == 10000
    assert data.test.class_counts(10) == [1000] * 10 and data.valid.class_counts(10) == [500] * 10
    assert data.train.images.shape[1:] == (3, 32, 32)
    assert seconds < 60, f"decoding 60,000 JPEGs took {seconds:.1f} s"
    assert np.isclose(float(data.train.images.float().mean() / 255), 0.473, atol=0.01)
