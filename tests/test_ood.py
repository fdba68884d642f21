"""OOD robustness data and evaluation: the CIFAR-C corruptions, the release reader, generated sets and
their cache, the mCE, and ``tools/evaluate_ood.py`` end to end on a few images."""

import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.data import TensorSplit
from nas.errors import UserError
from robustness.corruptions import (
    BENCHMARK,
    CORRUPTIONS,
    SEVERITIES,
    clipped_zoom,
    corrupt,
    corruption_rng,
    glass_swaps,
    motion_kernel,
)
from robustness.ood import check_comparable, corruption_summary, ood_errors
from robustness.ood_data import open_ood_set

ROOT = Path(__file__).resolve().parents[1]
EMBEDDED = ROOT / "data" / "cifar10_embedded" / "cifar10_embedded.tar.gz"
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # CIFAR-10's, as the DatasetSpec has them
CELL = "|nor_conv_1x1~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"  # small: one conv per cell


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Batches of 20 tiny images: a second torch thread costs more in synchronisation than it saves
    (as in the suite, where conftest gives every xdist worker one thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def real():
    """The first images per class of the embedded CIFAR-10 (decoded from its archive without the rest):
    ``{"train": (uint8 NHWC, labels), "test": (...), "classes": [...]}``, 1 train and 2 test per class."""
    from PIL import Image

    want = {"train": 1, "test": 2}
    found: dict[str, dict[str, list]] = {"train": {}, "test": {}}
    with tarfile.open(EMBEDDED) as tf:
        for m in tf:
            parts = m.name.split("/")
            if not m.isfile() or len(parts) != 3 or parts[0] not in want:
                continue
            per_class = found[parts[0]].setdefault(parts[1], [])
            if len(per_class) < want[parts[0]]:
                per_class.append(np.asarray(Image.open(io.BytesIO(tf.extractfile(m).read())).convert("RGB")))
    classes = sorted(found["test"])
    assert len(classes) == 10
    out = {"classes": classes}
    for split, per in found.items():
        images = [img for c in classes for img in per[c]]
        labels = [i for i, c in enumerate(classes) for _ in per[c]]
        out[split] = (np.stack(images), np.array(labels))
    return out


def as_split(images: np.ndarray, labels: np.ndarray) -> TensorSplit:
    return TensorSplit(
        torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels), MEAN, STD
    )


# ---- the corruptions ------------------------------------------------------------------------


def test_registry_holds_the_15_benchmark_corruptions_with_cifar_parameters():
    assert len(BENCHMARK) == 15 and set(BENCHMARK) <= set(CORRUPTIONS.names())
    for name in BENCHMARK:
        assert len(CORRUPTIONS.get(name).params) == len(SEVERITIES)
    # spot checks against make_cifar_c.py (not ImageNet-C's values)
    assert CORRUPTIONS.get("gaussian_noise").params == (0.04, 0.06, 0.08, 0.09, 0.10)
    assert CORRUPTIONS.get("jpeg_compression").params == (80, 65, 58, 50, 40)
    assert [len(z) for z in CORRUPTIONS.get("zoom_blur").params] == [7, 12, 16, 21, 26]
    # the substitutes say how they differ
    for name in ("motion_blur", "snow", "frost", "glass_blur"):
        assert CORRUPTIONS.get(name).differs
    with pytest.raises(UserError, match="unknown corruption 'smoke'"):
        corrupt(np.zeros((1, 32, 32, 3), np.uint8), "smoke", 1, np.random.default_rng(0))


@pytest.mark.parametrize("name", BENCHMARK)
def test_corruption_changes_images_keeps_shape_dtype_and_is_seeded(real, name):
    x = real["test"][0][:8]
    for s in SEVERITIES:
        y = corrupt(x, name, s, corruption_rng(0, name, s))
        assert y.shape == x.shape and y.dtype == np.uint8
        assert (y != x).any(axis=(1, 2, 3)).all(), f"{name} severity {s} left an image unchanged"
        assert np.array_equal(y, corrupt(x, name, s, corruption_rng(0, name, s)))  # same seed, same images


def _mad(x, y):
    return float(np.abs(y.astype(float) - x.astype(float)).mean())


def _one_minus_corr(x, y):
    a, b = (v.reshape(len(v), -1).astype(float) for v in (x, y))
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    return float(1 - np.mean((a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))))


def _non_affine_residual(images):
    """RMS residual of a plane fitted to the centre of each (warped) ramp image."""
    yy, xx = np.mgrid[6:26, 6:26]
    a = np.stack([xx.ravel(), yy.ravel(), np.ones(xx.size)], 1)
    res = []
    for im in images[..., 0].astype(float):
        b = im[6:26, 6:26].ravel()
        res.append(np.sqrt(np.mean((a @ np.linalg.lstsq(a, b, rcond=None)[0] - b) ** 2)))
    return float(np.mean(res))


@pytest.mark.parametrize("name", BENCHMARK)
def test_corruption_grows_with_severity(real, name):
    """Mean absolute difference to the clean images is non-decreasing over severities 1-5 (each
    severity with the same random numbers; motion_blur's severities 3 and 4 are nearly the same blur:
    sigma 2 with radius 6 or 8, which only cuts weights below 1e-9), except
    where make_cifar_c.py's own parameters do not make it so; those are checked by what their
    parameters do grow:

    - frost: the image's weight falls and the frost's rises (1/0.2 ... 0.75/0.45), but a bright
      layer added to a dimmed image can land closer to it: the correlation with the clean image falls;
    - glass_blur: severities 1-3 and 4-5 trade more blur (which hides swapped pixels) for the same
      swaps, so only a second pass of swaps at equal blur (2 -> 4, 3 -> 5) must add difference;
    - elastic_transform: the random affine part shrinks with severity (2.56 -> 0.96 pixels) while the
      elastic part grows (none at severity 1): the non-affine distortion of a linear ramp grows.
    """
    x = real["test"][0]
    if name == "elastic_transform":
        yy, xx = np.mgrid[0:32, 0:32]
        ramp = (6 * xx + yy + 20).astype(np.uint8)
        x = np.repeat(np.repeat(ramp[None, :, :, None], 3, 3), 20, 0)
    ys = [corrupt(x, name, s, np.random.default_rng(1)) for s in SEVERITIES]  # the same random draws
    if name == "frost":
        m = [_one_minus_corr(x, y) for y in ys]
    elif name == "glass_blur":
        m = [_mad(x, y) for y in ys]
        assert m[3] > m[1] and m[4] > m[2], m
        return
    elif name == "elastic_transform":
        m = [_non_affine_residual(y) for y in ys]
        assert m[0] < 0.5 < m[4], m  # severity 1 is affine only (uint8 rounding left)
    else:
        m = [_mad(x, y) for y in ys]
    assert all(b >= a - 0.02 for a, b in zip(m, m[1:], strict=False)), m


def test_glass_blur_swaps_equal_the_sequential_per_image_loop():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(3, 10, 10, 3), dtype=np.uint8)
    positions = len(range(9, 1, -1)) ** 2
    offsets = rng.integers(-1, 1, size=(2, positions, 2, 3))
    want = x.copy()
    for n in range(3):  # the reference's loop, one image at a time
        for shifts in offsets:
            k = 0
            for h in range(9, 1, -1):
                for w in range(9, 1, -1):
                    dx, dy = shifts[k, :, n]
                    a, b = want[n, h, w].copy(), want[n, h + dy, w + dx].copy()
                    want[n, h, w], want[n, h + dy, w + dx] = b, a
                    k += 1
    assert np.array_equal(glass_swaps(x.copy(), 1, offsets), want)


def test_clipped_zoom_equals_scipy_zoom_per_image(real):
    from scipy import ndimage

    x = real["test"][0][:4].astype(np.float32) / 255
    for f in (1.06, 1.25, 2.25):
        ch = int(np.ceil(32 / f))
        top = (32 - ch) // 2
        want = np.stack([ndimage.zoom(im[top : top + ch, top : top + ch], (f, f, 1), order=1) for im in x])
        t = (want.shape[1] - 32) // 2
        np.testing.assert_allclose(clipped_zoom(x, f), want[:, t : t + 32, t : t + 32], atol=1e-6)


def test_motion_kernel_follows_imagemagick():
    weights, dy, dx = motion_kernel(6, 2.0, np.array([0.0, 90.0, 45.0]))
    assert len(weights) == 13 and np.isclose(weights.sum(), 1) and (np.diff(weights) < 0).all()
    np.testing.assert_allclose(weights[1] / weights[0], np.exp(-1 / 8))
    assert dx[0].tolist() == list(range(13)) and not dy[0].any()  # 0 degrees: along +x
    assert dy[1].tolist() == list(range(13)) and not dx[1].any()  # 90 degrees: along +y
    assert (dx[2] == dy[2]).all() and dx[2, -1] == 8  # 45 degrees: ceil(12 cos 45 - 0.5)


# ---- the release ----------------------------------------------------------------------------


def fake_release(folder: Path, corruptions=("fog", "contrast"), n=3, n_labels=None):
    """A release in the published layout: image (corruption k, severity s, i) is all 10k + s,
    labels (i + s) % 10."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.array([(i + s) % 10 for s in SEVERITIES for i in range(n)], dtype=np.uint8)
    np.save(folder / "labels.npy", labels[:n_labels] if n_labels else labels)
    for k, c in enumerate(corruptions):
        images = np.zeros((5 * n, 32, 32, 3), np.uint8)
        for s in SEVERITIES:
            images[(s - 1) * n : s * n] = 10 * k + s
        np.save(folder / f"{c}.npy", images)
    return folder


def test_release_is_read_by_severity_rows(tmp_path):
    fake_release(tmp_path / "data" / "CIFAR-10-C")
    # found in <data>/CIFAR-10-C by default, used whole
    ood = open_ood_set("cifar10", None, ["fog", "contrast"], data_dir=tmp_path / "data")
    assert ood.kind == "release" and ood.rows == 3 and ood.n_images == 3
    split = ood.split("contrast", 4, MEAN, STD)
    assert len(split) == 3 and (split.images == 14).all() and split.labels.tolist() == [4, 5, 6]
    assert split.mean == MEAN
    first = open_ood_set("cifar10", None, ["fog"], n_images=2, ood_dir=tmp_path / "data" / "CIFAR-10-C")
    split = first.split("fog", 5, MEAN, STD)
    assert len(split) == 2 and (split.images == 5).all() and split.labels.tolist() == [5, 6]
    with pytest.raises(UserError, match="3 images per severity asked for|ask for fewer"):
        open_ood_set("cifar10", None, ["fog"], n_images=4, ood_dir=tmp_path / "data" / "CIFAR-10-C")


@pytest.mark.parametrize(
    "case, message",
    [
        (
            "no release",
            r"CIFAR-10-C release not found: .*labels\.npy does not exist; put labels\.npy .*zenodo",
        ),
        ("missing file", r"release in .* lacks snow\.npy; put snow\.npy of CIFAR-10-C\.tar \(zenodo"),
        ("bad shape", r"contrast\.npy holds uint8 \(15, 32, 32, 3\), expected uint8 \[10, H, H, 3\]"),
        ("not npy", r"fog\.npy cannot be read as a \.npy file"),
    ],
)
def test_release_errors_name_the_file_and_where_to_put_it(tmp_path, case, message):
    folder = tmp_path / "c10c"
    if case != "no release":
        fake_release(folder)
    if case == "bad shape":
        fake_release(folder, n=2, corruptions=("fog",))  # labels for 2 images per severity, contrast for 3
    if case == "not npy":
        (folder / "fog.npy").write_bytes(b"not a numpy file")
    with pytest.raises(UserError, match=message):
        open_ood_set("cifar10", None, ["fog", "contrast", "snow"], source="release", ood_dir=folder)


# ---- generated sets -------------------------------------------------------------------------


def test_generated_set_is_seeded_cached_and_never_uses_a_damaged_file(real, tmp_path, capsys, monkeypatch):
    images, labels = real["test"]
    clean = as_split(images[:6], labels[:6])
    kw = {"source": "generate", "cache_dir": tmp_path, "progress": False}
    ood = open_ood_set("cifar10_embedded", clean, ["fog", "shot_noise"], seed=3, **kw)
    assert ood.kind == "generated" and ood.n_images == 6 and ood.spec.name == "cifar10_c"
    fog = np.load(ood.path / "fog.npy")
    assert fog.shape == (30, 32, 32, 3) and fog.dtype == np.uint8
    assert np.load(ood.path / "labels.npy").tolist() == np.tile(labels[:6], 5).tolist()  # labels kept
    for s in SEVERITIES:  # severity s in rows [(s - 1) n, s n), as the release
        assert np.array_equal(
            fog[(s - 1) * 6 : s * 6], corrupt(images[:6], "fog", s, corruption_rng(3, "fog", s))
        )
    split = ood.split("shot_noise", 2, MEAN, STD)
    assert split.labels.tolist() == labels[:6].tolist() and split.mean == MEAN

    # re-used as it is: nothing is generated again
    import robustness.ood_data as od

    monkeypatch.setattr(od, "corrupt", lambda *a: pytest.fail("a valid cached file was generated again"))
    assert open_ood_set("cifar10_embedded", clean, ["fog"], seed=3, **kw).path == ood.path
    monkeypatch.undo()

    # a damaged file (or a leftover temporary file) is never used: it is made again, the same
    (ood.path / "fog.npy").write_bytes((ood.path / "fog.npy").read_bytes()[:-100])
    (ood.path / ".fog.x.npy.tmp").write_bytes(b"partial")
    again = open_ood_set("cifar10_embedded", clean, ["fog"], seed=3, **kw)
    assert "fog.npy is incomplete or out of date" in capsys.readouterr().err
    assert np.array_equal(np.load(again.path / "fog.npy"), fog)

    # another seed: another folder and other images; other clean images: another folder
    other = open_ood_set("cifar10_embedded", clean, ["fog"], seed=4, **kw)
    assert other.path != ood.path and not np.array_equal(np.load(other.path / "fog.npy"), fog)
    fewer = open_ood_set("cifar10_embedded", clean.subset(np.arange(5)), ["fog"], seed=3, **kw)
    assert fewer.path != ood.path and fewer.n_images == 5


# ---- evaluation and mCE ---------------------------------------------------------------------


def test_mce_and_relative_mce_follow_hendrycks_and_dietterich():
    where = {"ood_dataset": "cifar10_c", "kind": "release", "n_images": 10, "seed": None}
    net = {"set": where, "clean_error": 10.0, "mean_error": 0.0, "corruption_error": {},
           "errors": {"fog": {"1": 20.0, "2": 30.0}, "snow": {"1": 15.0, "2": 25.0}}}  # fmt: skip
    ref = {"set": where, "clean_error": 5.0, "mean_error": 0.0, "corruption_error": {},
           "errors": {"fog": {"1": 40.0, "2": 60.0}, "snow": {"1": 5.0, "2": 5.0}}}  # fmt: skip
    s = corruption_summary(net, ref, "alexnet")
    assert s["reference"]["name"] == "alexnet" and s["reference"]["mean_error"] == pytest.approx(27.5)
    assert s["ce"] == {"fog": pytest.approx(50.0), "snow": pytest.approx(400.0)}  # 50/100, 40/10
    assert s["mce"] == pytest.approx(225.0)
    assert s["relative_ce"]["fog"] == pytest.approx(100 * 30 / 90)  # (10 + 20) / (35 + 55)
    assert s["relative_ce"]["snow"] is None and s["relative_mce"] is None  # the reference did not degrade
    assert s["undefined"] == ["snow"]
    with pytest.raises(UserError, match="other corrupted images .*n_images 20 vs 10"):
        check_comparable(net, {**ref, "set": {**where, "n_images": 20}})
    with pytest.raises(UserError, match="no error for fog at severity 2"):
        check_comparable(net, {**ref, "errors": {"fog": {"1": 1.0}, "snow": {"1": 1.0, "2": 1.0}}})


class MeanColour(torch.nn.Module):
    """A fixed classifier of the mean colour: cheap, and its errors depend on the images."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 10)
        torch.nn.init.normal_(self.linear.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, x):
        return self.linear(x.mean((2, 3)))


def test_ood_errors_api_on_a_generated_set(real, tmp_path):
    images, labels = real["test"]
    result = ood_errors(
        MeanColour(), "cifar10_embedded", None, as_split(images, labels), torch.device("cpu"), 32,
        corruptions=["contrast", "brightness"], severities=[1, 5], n_images=12, seed=0,
        cache_dir=tmp_path, progress=False,
    )  # fmt: skip
    assert result["schema"] == "ood_errors/1" and result["dataset"] == "cifar10_c"
    assert result["set"]["kind"] == "generated" and result["n_images"] == 12 and result["clean_images"] == 12
    assert set(result["errors"]) == {"contrast", "brightness"} and set(result["errors"]["contrast"]) == {
        "1",
        "5",
    }
    values = [v for e in result["errors"].values() for v in e.values()]
    assert all(0 <= v <= 100 and v * 12 / 100 == pytest.approx(round(v * 12 / 100)) for v in values)
    assert result["mean_error"] == pytest.approx(np.mean(values))
    assert result["corruption_error"]["contrast"] == pytest.approx(
        np.mean(list(result["errors"]["contrast"].values()))
    )
    assert corruption_summary(result)["reference"] is None
    json.dumps(result)  # JSON-ready


# ---- tools/evaluate_ood.py ------------------------------------------------------------------


def evaluate(*args):
    from tests.cli_here import run_main

    return run_main("tools.evaluate_ood", *args)


@pytest.fixture(scope="module")
def setup(real, tmp_path_factory):
    """A tiny CIFAR-10 ImageFolder of real images (1 train + 2 test per class) and two small
    NB201 networks with BatchNorm statistics from data (their outputs depend on the input)."""
    from PIL import Image

    from nas.space import get_search_space

    d = tmp_path_factory.mktemp("ood")
    for split in ("train", "test"):
        for i, (img, label) in enumerate(zip(*real[split], strict=True)):
            folder = d / "c10" / split / real["classes"][label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{i}.png")
    space = get_search_space("nb201")
    for name, seed in (("net", 1), ("ref", 2)):
        torch.manual_seed(seed)
        net = space.build(CELL, n_classes=10)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None
        with torch.no_grad():
            net.train()(torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(seed)))
            a, b = net.eval()(torch.randn(2, 3, 32, 32)).numpy()
        assert np.abs(a - b).max() > 0.01  # its outputs depend on the input
        (d / name).mkdir()
        space.write_subnet(d / name / "net.subnet", CELL)
        torch.save({"state_dict": net.state_dict()}, d / name / "ckpt.pth")
    return d


def common(d, *extra):
    return [
        "--search_space", "nb201", "--dataset", "cifar10", "--data", d / "c10", "--cache_dir", d / "cache",
        "--n_images", "20", "--corruptions", "fog", "contrast", "--severities", "1", "3", *extra,
    ]  # fmt: skip


def test_evaluate_ood_end_to_end_with_a_reference_network_then_its_json(setup):
    d = setup
    net = ["--subnet", d / "net" / "net.subnet", "--ckpt", d / "net" / "ckpt.pth"]
    ref = ["--ref_subnet", d / "ref" / "net.subnet", "--ref_ckpt", d / "ref" / "ckpt.pth"]
    p = evaluate(*net, *ref, *common(d, "--output_dir", d / "out1"))
    assert p.returncode == 0, p.stderr
    doc = json.loads((d / "out1" / "ood_errors.json").read_text())
    result, summary = doc["result"], doc["summary"]
    assert doc["schema"] == "evaluate_ood/1" and doc["network"]["name"] == "net"
    assert result["set"]["kind"] == "generated" and result["n_images"] == 20  # no release in c10/CIFAR-10-C
    assert result["corruptions"] == ["fog", "contrast"] and result["severities"] == [1, 3]
    assert set(result["errors"]["fog"]) == {"1", "3"} and 0 <= result["clean_error"] <= 100
    assert doc["reference"]["name"] == "ref" and doc["reference"]["from"] == "network"
    ref_result = doc["reference"]["result"]
    for c in ("fog", "contrast"):
        want = 100 * sum(result["errors"][c].values()) / sum(ref_result["errors"][c].values())
        assert summary["ce"][c] == pytest.approx(want)
    assert summary["mce"] == pytest.approx(np.mean(list(summary["ce"].values())))
    for stem in ("ood_heatmap", "ood_bars"):
        assert (d / "out1" / f"{stem}.png").stat().st_size > 0 and (d / "out1" / f"{stem}.pdf").is_file()
    assert "mCE" in p.stdout and "vs ref" in p.stdout and "fog" in p.stdout

    # the reference's errors from the JSON of a previous run: the roles swapped, CE inverted
    p = evaluate(
        "--subnet", d / "ref" / "net.subnet", "--ckpt", d / "ref" / "ckpt.pth",
        "--ref_json", d / "out1" / "ood_errors.json", *common(d, "--output_dir", d / "out2"),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    doc2 = json.loads((d / "out2" / "ood_errors.json").read_text())
    assert doc2["reference"]["name"] == "net" and doc2["reference"]["from"] == "json"
    assert doc2["result"]["errors"] == ref_result["errors"]  # the same generated images, re-used
    for c in ("fog", "contrast"):
        assert doc2["summary"]["ce"][c] == pytest.approx(100 * 100 / summary["ce"][c])


def test_evaluate_ood_reads_a_release(setup, tmp_path):
    d = setup
    fake_release(tmp_path / "release", n=20)
    p = evaluate(
        "--subnet", d / "net" / "net.subnet", "--ckpt", d / "net" / "ckpt.pth", *common(d),
        "--ood_data", tmp_path / "release", "--output_dir", tmp_path / "out", "--no_progress",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    result = json.loads((tmp_path / "out" / "ood_errors.json").read_text())["result"]
    assert result["set"]["kind"] == "release" and result["set"]["path"] == str(
        (tmp_path / "release").resolve()
    )
    # every image of a severity is one flat colour: the network predicts one class for all of them
    for c in ("fog", "contrast"):
        for s, e in result["errors"][c].items():
            labels = np.array([(i + int(s)) % 10 for i in range(20)])
            assert e in {100 * (1 - np.mean(labels == k)) for k in range(10)}


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--ood_source", "release"],
            r"CIFAR-10-C release not found: .*c10/CIFAR-10-C/labels\.npy does not exist",
        ),
        (
            ["--ood_data", "MISSING_FILE"],
            r"release in .* lacks contrast\.npy; put contrast\.npy of CIFAR-10-C\.tar",
        ),
        (["--corruptions", "smoke"], "unknown corruption 'smoke'"),
        (["--severities", "6"], "severity '6' must be one of 1, 2, 3, 4, 5"),
        (["--n_images", "0"], "--n_images '0' must be a positive integer"),
        (["--dataset", "svhn"], "no corrupted test set is registered for dataset 'svhn'"),
        (["--ref_ckpt", "x.pth"], "--ref_ckpt / --ref_supernet_path need --ref_subnet"),
        (["--ref_json", "NOT_JSON"], "--ref_json .* is not valid JSON"),
    ],
)
def test_evaluate_ood_bad_input_exits_2_with_one_line(setup, tmp_path, extra, message):
    d = setup
    if "MISSING_FILE" in extra:
        extra = ["--ood_data", fake_release(tmp_path / "rel", corruptions=("fog",), n=20)]
    if "NOT_JSON" in extra:
        (tmp_path / "bad.json").write_text("{")
        extra = ["--ref_json", tmp_path / "bad.json"]
    args = ["--subnet", d / "net" / "net.subnet", "--ckpt", d / "net" / "ckpt.pth", *common(d), *extra]
    p = evaluate(*args, "--output_dir", tmp_path / "out")
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert re.search(message, lines[0]), lines[0]


def test_evaluate_ood_help_documents_the_flags():
    p = evaluate("--help")
    assert p.returncode == 0
    flags = "--subnet --ckpt --dataset --data --ood_data --ood_source --corruptions --severities --n_images"
    for flag in (*flags.split(), "--ref_subnet", "--ref_ckpt", "--ref_json", "--output_dir"):
        assert flag in p.stdout


def test_train_py_ood_eval_writes_the_corruption_errors_into_net_stats(setup, tmp_path):
    """``train.py subnet --ood_eval``: the after-training evaluation of the flatness plug-in scores the
    trained network on the generated corrupted set and writes it into net.stats; bad options fail
    before any training."""
    from nas.train_cli import main

    d = setup
    args = ["subnet", "--search_space", "nb201", "--subnet", str(d / "net" / "net.subnet")]
    args += ["--init", str(d / "net" / "ckpt.pth"), "--dataset", "cifar10", "--data", str(d / "c10")]
    args += ["--epochs", "1", "--batch_size", "5", "--device", "cpu", "--save", str(tmp_path / "run")]
    ood = ["--ood_eval", "--ood_images", "20", "--ood_corruptions", "fog", "--ood_severities", "1", "5"]
    ood += ["--ood_cache", str(d / "cache")]
    with pytest.raises(UserError, match="unknown corruption 'smog'"):
        main([*args, *ood, "--ood_corruptions", "smog"])
    assert not (tmp_path / "run" / "checkpoint.pth").exists()
    assert main([*args, *ood]) == 0
    stats = json.loads((tmp_path / "run" / "net.stats").read_text())
    got = stats["ood"]
    assert got["corruptions"] == ["fog"] and got["severities"] == [1, 5] and got["n_images"] == 20
    assert set(got["errors"]["fog"]) == {"1", "5"} and 0 <= got["mean_error"] <= 100
    assert got["clean_error"] == pytest.approx(100 - stats["trained"]["top1"], abs=1e-6)  # the same 20 images
