"""Make the embedded CIFAR-10 subset in data/cifar10_embedded/ from the full JPEG set.

    python scripts/make_embedded_cifar10.py --source ../shared/data/cifar10-jpeg.tar.gz \\
        --out data/cifar10_embedded

The source holds ``cifar10/{train,test}/<class>/*.jpg``. A seeded, class-balanced choice of
files is written, byte for byte, into one deterministic ``cifar10_embedded.tar.gz``
(``train/<class>/<file>.jpg``, ``test/<class>/<file>.jpg``; zero timestamps and owners, so the
same inputs give the same sha256). JPEGs barely compress, but every CIFAR JPEG starts with the
same ~600 header bytes, which gzip removes: 12,000 images take 3.8 MB instead of 11 MB.
Also written: ``manifest.json`` (counts, seed, sha256; the loader checks the sha256) and ``README.md``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import sys
import tarfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from nas.cli import run_cli  # noqa: E402
from nas.data.datasets import EMBEDDED_ARCHIVE, EMBEDDED_MANIFEST  # noqa: E402
from nas.errors import UserError  # noqa: E402
from nas.io import atomic_write_bytes, write_json  # noqa: E402

SPLITS = ("train", "test")


def read_source(source: Path) -> dict[tuple[str, str], dict[str, bytes]]:
    """``{(split, class): {name: bytes}}`` from a tar(.gz) or a folder of {train,test}/<class>/*.jpg."""
    found: dict[tuple[str, str], dict[str, bytes]] = {}

    def add(parts: tuple[str, ...], data: bytes) -> None:
        if len(parts) >= 3 and parts[-3] in SPLITS and parts[-1].lower().endswith(".jpg"):
            found.setdefault((parts[-3], parts[-2]), {})[parts[-1]] = data

    if source.is_dir():
        for path in source.rglob("*.jpg"):
            add(path.relative_to(source).parts, path.read_bytes())
    elif source.is_file():
        with tarfile.open(source, "r:*") as tf:
            for m in tf:
                if m.isfile():
                    add(tuple(m.name.split("/")), tf.extractfile(m).read())
    else:
        raise UserError(f"--source {source} does not exist; pass cifar10-jpeg.tar.gz or its extracted folder")
    if not found:
        raise UserError(f"--source {source} holds no {{train,test}}/<class>/*.jpg files")
    return found


def choose(files: dict[tuple[str, str], dict[str, bytes]], counts: dict[str, int], seed: int):
    """Seeded choice of ``counts[split]`` files per class; returns sorted (member name, bytes) pairs."""
    rng = np.random.default_rng(seed)
    classes = sorted({c for _, c in files})
    chosen = []
    for split in SPLITS:  # fixed order of draws: train classes a..z, then test classes a..z
        for c in classes:
            names = sorted(files.get((split, c), {}))
            if len(names) < counts[split]:
                raise UserError(
                    f"{split}/{c} has {len(names)} images, fewer than the {counts[split]} asked for"
                )
            for i in np.sort(rng.choice(len(names), size=counts[split], replace=False)):
                chosen.append((f"{split}/{c}/{names[i]}", files[(split, c)][names[i]]))
    return classes, chosen


def deterministic_tar_gz(members: list[tuple[str, bytes]]) -> bytes:
    """A gzipped ustar archive whose bytes depend only on ``members``."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tf:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


README = """# Embedded CIFAR-10 subset

A class-balanced subset of CIFAR-10 shipped with the repository so that the quickstart and the
tests run offline with no `--data`. Load it with `nas.data.load_dataset("cifar10_embedded")`.

| split | per class | images |
|---|---|---|
| train | {n_train} | {t_train} |
| test | {n_test} | {t_test} |

Classes (label order): {classes}.

## Files

- `{archive}` ({size} bytes), sha256 `{sha256}`:
  the chosen JPEGs, byte for byte as in the source, as `train/<class>/<file>.jpg` and
  `test/<class>/<file>.jpg` in a deterministic gzipped tar (zero timestamps and owners). Extracted,
  it is an ImageFolder that `--data` also accepts.
- `{manifest}`: the same facts in machine-readable form; the loader refuses an archive whose sha256
  differs from it.

## How it was made

```
{command}
```

- source: `{source_name}` (sha256 `{source_sha256}`), CIFAR-10 as JPEG folders
  `cifar10/{{train,test}}/<class>/*.jpg`, 50,000 + 10,000 images of 32x32 pixels. These are JPEG
  re-encodings of the original CIFAR-10 images (the original is distributed as raw pixel arrays),
  so pixel values differ slightly from torchvision's CIFAR-10.
- selection: `numpy.random.default_rng({seed})`; for each split (train, then test) and each class in
  alphabetical order, `rng.choice(n_files, size=per_class, replace=False)` over the class's file
  names sorted alphabetically. Test images come from the CIFAR-10 test set only, so the subset's
  test split is disjoint from its train split.
- Re-running the command with the same source gives a byte-identical archive (gzip output can
  differ between zlib versions; the member files are identical in any case).

## Licence and citation

CIFAR-10 was collected by Alex Krizhevsky, Vinod Nair and Geoffrey Hinton from the 80 Million Tiny
Images collection. It is published at https://www.cs.toronto.edu/~kriz/cifar.html without a formal
licence; its authors ask that work using it cite the technical report:

> Alex Krizhevsky. *Learning Multiple Layers of Features from Tiny Images.* Technical report,
> University of Toronto, 2009.

```bibtex
@techreport{{krizhevsky2009learning,
  author      = {{Alex Krizhevsky}},
  title       = {{Learning Multiple Layers of Features from Tiny Images}},
  institution = {{University of Toronto}},
  year        = {{2009}}
}}
```

The subset is included for research and testing only; the toolkit's own licence does not apply to
the images.
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--source",
        type=Path,
        default=REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz",
        help="cifar10-jpeg.tar.gz, or a folder holding {train,test}/<class>/*.jpg",
    )
    p.add_argument("--out", type=Path, default=REPO / "data" / "cifar10_embedded")
    p.add_argument("--train_per_class", type=int, default=1000)
    p.add_argument("--test_per_class", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--max_mb", type=float, default=8.0, help="refuse to write a larger archive (MB = 1e6 bytes)"
    )
    args = p.parse_args(argv)

    source_bytes = args.source.read_bytes() if args.source.is_file() else None
    files = read_source(args.source)
    counts = {"train": args.train_per_class, "test": args.test_per_class}
    classes, chosen = choose(files, counts, args.seed)
    blob = deterministic_tar_gz(chosen)
    if len(blob) > args.max_mb * 1e6:
        raise UserError(
            f"the archive would be {len(blob) / 1e6:.1f} MB, above --max_mb {args.max_mb}; "
            "lower --train_per_class/--test_per_class"
        )
    sha = hashlib.sha256(blob).hexdigest()
    source_sha = hashlib.sha256(source_bytes).hexdigest() if source_bytes is not None else "(a folder)"
    command = (
        f"python scripts/make_embedded_cifar10.py --source {args.source} --out {args.out} "
        f"--train_per_class {args.train_per_class} --test_per_class {args.test_per_class} --seed {args.seed}"
    )
    atomic_write_bytes(args.out / EMBEDDED_ARCHIVE, blob)
    write_json(
        args.out / EMBEDDED_MANIFEST,
        {
            "schema": 1,
            "archive": EMBEDDED_ARCHIVE,
            "sha256": sha,
            "size_bytes": len(blob),
            "classes": classes,
            "per_class": counts,
            "n_images": {s: counts[s] * len(classes) for s in SPLITS},
            "seed": args.seed,
            "source": args.source.name,
            "source_sha256": source_sha,
            "command": command,
        },
    )
    readme = README.format(
        n_train=counts["train"], t_train=counts["train"] * len(classes),
        n_test=counts["test"], t_test=counts["test"] * len(classes),
        classes=", ".join(classes), archive=EMBEDDED_ARCHIVE, size=len(blob), sha256=sha,
        manifest=EMBEDDED_MANIFEST, command=command, source_name=args.source.name,
        source_sha256=source_sha, seed=args.seed,
    )  # fmt: skip
    atomic_write_bytes(args.out / "README.md", readme.encode())
    print(f"wrote {args.out / EMBEDDED_ARCHIVE}: {len(chosen)} images, {len(blob)} bytes, sha256 {sha}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
