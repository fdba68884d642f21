"""Score random architectures of a search space with zero-cost proxies, against accuracy if known.

    python tools/score_proxies.py --space nb201 --dataset cifar10 --n 200 --out results/zc-nb201
    python tools/score_proxies.py --space mobilenetv3 --n 50 --batch_size 8 --out results/zc-ofa
    python tools/score_proxies.py --space mobilenetv3 --supernet results/quickstart/supernet/supernet.pth \\
        --n 30 --out results/zc-qs
    python tools/score_proxies.py --space eemobilenetv3 --space_options lr=32 ur=32 --n 5 --out results/zc-ee

``--n`` distinct architectures are drawn with ``--seed``; each is built freshly initialised
(seeded) and scored by ``--proxies`` (default: all of ``proxies.PROXIES``) on one fixed batch of
``--batch_size`` training images of ``--images`` (default: the embedded CIFAR-10), with a progress
bar. Rows go to ``OUT/proxies.csv`` as they are scored (arch id, arch, each proxy, its seconds,
the accuracy when there is a source); a re-run with the same settings skips the architectures
already there. Then, when an accuracy is known: Spearman and Kendall of each proxy (printed and
saved as ``OUT/correlations.json``) and ``OUT/correlations.png``/``.pdf`` (one panel per proxy,
its rank vs accuracy, rho in the title).

Accuracy sources:

- ``nb201``: the NAS-Bench-201 12-epoch table (``data/nasbench201``), the ``-test`` column of
  ``--dataset`` ``cifar10``, ``cifar100`` or ``imagenet16``. Only CIFAR-10 images are held here,
  so ``cifar100`` scores 100-class networks on CIFAR-10 images at 32 px and ``imagenet16`` scores
  120-class networks on CIFAR-10 images resized to 16 px (recorded in ``correlations.json``).
- ``mobilenetv3`` without ``--supernet``: OFA's ImageNet accuracy predictor (the ``ofa_note10``
  oracle, from ``data/ofa`` or ``../shared/data/ofa``) on the oracle's space (w1.2, 160-224 px,
  1000-class networks, images upsampled to each subnet's resolution).
- ``mobilenetv3 --supernet PATH`` (an OFA-format supernet trained on the images' dataset, e.g. the
  quickstart's): the subnet's top-1 with inherited weights and recalibrated BatchNorm on
  ``--vld_size`` validation images (use the supernet training's ``--vld_size`` and ``--seed``), in
  a space of the supernet's resolution ``--resolution`` (default 32).
- other spaces: none (the proxies only).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nas.cli import positive_int, run_cli  # noqa: E402
from nas.errors import UserError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    p.add_argument("--space", default="nb201", help="registered search space (nb201, mobilenetv3, ...)")
    p.add_argument("--space_options", nargs="+", default=[], metavar="KEY=VALUE", help="options of the space")
    p.add_argument("--n", default="100", help="number of distinct architectures to score (default: 100)")
    p.add_argument("--proxies", nargs="+", default=None, help="proxies to compute (default: all registered)")
    p.add_argument(
        "--dataset", default="cifar10", help="nb201: cifar10, cifar100 or imagenet16 (accuracy column)"
    )
    p.add_argument("--images", default="cifar10_embedded", help="registered dataset the images come from")
    p.add_argument("--data", default=None, help="folder of --images (default: the dataset's own)")
    p.add_argument(
        "--seed", default="0", help="seed of the architectures, images and initialisation (default: 0)"
    )
    p.add_argument("--batch_size", default="64", help="images per proxy batch (default: 64)")
    p.add_argument(
        "--supernet", default=None, help="mobilenetv3: supernet whose inherited-weight top-1 is the accuracy"
    )
    p.add_argument(
        "--resolution", default="32", help="with --supernet: the subnets' resolution (default: 32)"
    )
    p.add_argument("--vld_size", default="1000", help="with --supernet: validation images (default: 1000)")
    p.add_argument(
        "--out", required=True, help="output folder (resumed when it holds a run of the same settings)"
    )
    return p


class Accuracy:
    """Where the accuracy of an architecture comes from (``None`` when there is no source)."""

    label: str | None = None
    note: str = ""

    def __call__(self, archs: list[Any]) -> list[float] | None:
        return None


def nb201_setup(args: argparse.Namespace, space: Any) -> tuple[dict[str, Any], Accuracy, list[Any]]:
    from benchmarks.nb201 import get_dataset, load_table

    ds = get_dataset(args.dataset)
    table = load_table()
    n = args.n_int
    if n > len(table.archs):
        raise UserError(f"--n {n} is more than the {len(table.archs)} NAS-Bench-201 cells")
    archs = [
        table.archs[i]
        for i in np.random.default_rng(args.seed_int).choice(len(table.archs), n, replace=False)
    ]
    test = table.column(f"{ds.prefix}-test")

    class Table(Accuracy):
        label = f"NAS-Bench-201 12-epoch {ds.prefix}-test top-1 (%)"
        note = {
            "cifar10": "CIFAR-10 images at 32 px, 10-class networks",
            "cifar100": "CIFAR-10 images at 32 px scored by 100-class networks (no CIFAR-100 images here)",
            "imagenet16": "CIFAR-10 images resized to 16 px scored by 120-class networks "
            "(no ImageNet16-120 here)",
        }[ds.name]

        def __call__(self, archs: list[Any]) -> list[float]:
            return [float(test[table.row(a)]) for a in archs]

    return {"resolution": ds.resolution, "n_classes": ds.n_classes}, Table(), archs


def ofa_setup(args: argparse.Namespace) -> tuple[Any, dict[str, Any], Accuracy]:
    from benchmarks.ofa_note10 import DEFAULT_DATA_DIR, OFANote10Evaluator

    dirs = (DEFAULT_DATA_DIR, ROOT.parent / "shared" / "data" / "ofa")
    data_dir = next((d for d in dirs if (d / "acc_predictor.pth").is_file()), None)
    if data_dir is None:
        return None, {}, Accuracy()
    oracle = OFANote10Evaluator(data_dir=str(data_dir))

    class Oracle(Accuracy):
        label = "OFA predictor ImageNet top-1 (%)"
        note = "1000-class networks on CIFAR-10 images upsampled to each subnet's resolution"

        def __call__(self, archs: list[Any]) -> list[float]:
            return [m["top1"] for m in oracle.measure_many(archs)]

    return oracle.space, {"n_classes": 1000}, Oracle()


def supernet_setup(args: argparse.Namespace, space_name: str) -> tuple[Any, dict[str, Any], Accuracy]:
    import torch

    from nas.data import load_dataset
    from nas.scoring import score_subnet
    from nas.space import get_search_space

    if not os.path.isfile(args.supernet):
        raise UserError(f"--supernet {args.supernet!r} does not exist; check the path")
    r = positive_int(args.resolution, "--resolution")
    vld = positive_int(args.vld_size, "--vld_size")
    space = get_search_space(space_name, lr=r, ur=r, rstep=1)
    data = load_dataset(args.images, args.data, vld_size=vld, seed=args.seed_int)
    supernet = space.make_supernet(data.n_classes)
    space.load_weights(supernet, args.supernet)
    device = torch.device("cpu")

    class Inherited(Accuracy):
        label = f"inherited-weight top-1 (%) on {vld} validation images"
        note = f"{data.n_classes}-class subnets of {args.supernet} at {r} px"

        def __call__(self, archs: list[Any]) -> list[float]:
            return [
                score_subnet(space, supernet, a, data, data.valid, device, num_workers=0, seed=args.seed_int)[
                    "top1"
                ]
                for a in archs
            ]

    return space, {"n_classes": data.n_classes, "data": data}, Inherited()


def sample_distinct(space: Any, n: int, seed: int) -> list[Any]:
    """``n`` architectures of distinct ids, drawn with ``np.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for _ in range(100):
        for a in space.sample(n, rng):
            out.setdefault(space.arch_id(a), a)
            if len(out) == n:
                return list(out.values())
    raise UserError(f"could not draw {n} distinct architectures of {space.name!r}; lower --n")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from tqdm import tqdm

    from nas.config import parse_overrides
    from nas.io import read_json, write_json
    from nas.space import SEARCH_SPACES, get_search_space
    from proxies.report import ResultsCSV, arch_text, correlations, format_correlations, plot_correlations
    from proxies.scorer import ProxyScorer, check_names
    from proxies.scores import PROXIES

    args.n_int = positive_int(args.n, "--n")
    args.seed_int = int(args.seed) if args.seed.isdigit() else -1
    if args.seed_int < 0:
        raise UserError(f"--seed {args.seed!r} must be a non-negative integer")
    batch_size = positive_int(args.batch_size, "--batch_size")
    if batch_size < 2:
        raise UserError("--batch_size must be at least 2 (BatchNorm and the kernels need two images)")
    names = check_names(args.proxies or PROXIES.names())
    SEARCH_SPACES.get(args.space)  # an unknown space: one line with the choices
    options = parse_overrides(args.space_options)
    scorer_kw: dict[str, Any] = {}
    accuracy: Accuracy = Accuracy()
    archs = None
    if args.supernet is not None:
        if args.space != "mobilenetv3" or options:
            raise UserError("--supernet scores subnets of the mobilenetv3 space (without --space_options)")
        space, scorer_kw, accuracy = supernet_setup(args, args.space)
        data = scorer_kw.pop("data")
        scorer_kw["data"] = data
    elif args.space == "mobilenetv3" and not options:
        space, scorer_kw, accuracy = ofa_setup(args)
        space = space or get_search_space("mobilenetv3")
    else:
        space = get_search_space(args.space, **options)
    if args.space == "nb201":
        scorer_kw, accuracy, archs = nb201_setup(args, space)
    elif args.dataset != "cifar10":
        raise UserError(f"--dataset names a NAS-Bench-201 table column; the {args.space} space has none")
    if archs is None:
        archs = sample_distinct(space, args.n_int, args.seed_int)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {
        "space": args.space, "space_options": options, "dataset": args.dataset, "images": args.images,
        "seed": args.seed_int, "batch_size": batch_size, "proxies": names, "supernet": args.supernet,
    }  # fmt: skip
    if (out / "settings.json").is_file():
        old = read_json(out / "settings.json", "settings file")
        if old != settings:
            changed = sorted(k for k in settings if old.get(k) != settings[k])
            raise UserError(f"{out} holds a run with other {', '.join(changed)}; use another --out")
    write_json(out / "settings.json", settings)
    acc_col = ["accuracy"] if accuracy.label else []
    store = ResultsCSV(out / "proxies.csv", ["arch", *names, *[f"{n}_s" for n in names], *acc_col])

    scorer = ProxyScorer(
        space, names, dataset=args.images, data=scorer_kw.pop("data", args.data), batch_size=batch_size,
        seed=args.seed_int, **scorer_kw,
    )  # fmt: skip
    todo = [a for a in archs if space.arch_id(a) not in store.done()]
    for arch in tqdm(todo, desc=f"proxies of {args.space}", unit="arch", disable=not todo):
        s, t = scorer.score(arch), scorer.seconds(arch)
        acc = accuracy([arch])
        row = {
            "arch_id": space.arch_id(arch),
            "arch": arch_text(arch),
            **s,
            **{f"{k}_s": v for k, v in t.items()},
        }
        if acc is not None:
            row["accuracy"] = acc[0]
        store.append(row)
    ids = [space.arch_id(a) for a in archs]
    seconds = {n: float(np.median(store.column(f"{n}_s", ids))) for n in names}
    print(f"{len(ids)} architectures of {args.space} in {out / 'proxies.csv'}")
    if not accuracy.label:
        print("no accuracy source for this space: proxies only")
        return 0
    target = store.column("accuracy", ids)
    values = {n: store.column(n, ids) for n in names}
    table = correlations(values, target)
    print(f"against {accuracy.label} ({accuracy.note}):")
    print(format_correlations(table, seconds))
    write_json(
        out / "correlations.json",
        {
            "accuracy": accuracy.label,
            "images": accuracy.note,
            **settings,
            "n": len(ids),
            "correlations": table,
            "median_seconds": seconds,
        },
    )
    plot_correlations(values, target, table, "accuracy (%)", out / "correlations")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
