"""Out-of-distribution error of a network on CIFAR-10-C / CIFAR-100-C: per corruption and severity, mCE.

    python tools/evaluate_ood.py --subnet NET/net.subnet --ckpt NET/ckpt.pth --dataset cifar10 \\
        [--data DIR] [--ref_subnet REF/net.subnet --ref_ckpt REF/ckpt.pth | --ref_json OLD/ood_errors.json]

The network of ``--subnet`` (its space from ``--search_space``, default the default preset's, and
``--space_options``) gets the weights of ``--ckpt`` (train.py's or post_search.py's ckpt.pth; or,
without it, the supernet's weights from ``--supernet_path`` with BatchNorm recalibrated on
training images, as the search scored it). It is scored on the clean test images and on every
corruption and severity of the dataset's corrupted set: the published release when found
(``--ood_data DIR``, else ``<--data>/CIFAR-10-C/``; ``<corruption>.npy`` and ``labels.npy`` from
Zenodo) or, offline, a seeded set generated from the test split and cached (``--cache_dir``;
see ``robustness/ood_data.py``). Images are resized and normalised exactly as the clean test split.

Outputs, in ``results/analysis/ood/<experiment>[-k]/`` (a new folder every time) or
``--output_dir``: ``ood_errors.json`` (the network, every error, the summary: clean error, mean
corruption error, and with a reference its CE per corruption, mCE, relative mCE, and which
reference), ``ood_heatmap`` (error per corruption x severity; with a reference also the difference)
and ``ood_bars`` (mean error per corruption, with the reference's), each as PNG and PDF.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from nas.cli import positive_int, run_cli  # noqa: E402
from nas.errors import UserError  # noqa: E402

TOOL = "ood"
SCHEMA = "evaluate_ood/1"


def load_network(
    subnet: str,
    ckpt: str | None,
    supernet_path: str | None,
    search_space: str | None,
    space_options: list[str],
    data: Any,
    device: Any,
    bn_batches: int,
    batch_size: int,
    seed: int,
    flag: str = "--",
) -> tuple[Any, Any, Any, int, str]:
    """``(space, arch, network in eval mode on device, resolution, where the weights came from)``."""
    import torch

    from nas.config import parse_overrides
    from nas.io import load_checkpoint, read_json
    from nas.scoring import recalibrate
    from nas.search.description import default_space_name
    from nas.space import SEARCH_SPACES

    if ckpt is None and supernet_path is None:
        raise UserError(f"give {flag}ckpt (the trained network's ckpt.pth) or {flag}supernet_path")
    if ckpt is not None and supernet_path is not None:
        raise UserError(f"give either {flag}ckpt or {flag}supernet_path: both set the weights")
    raw = read_json(subnet, f"{flag}subnet file")
    try:
        cls = SEARCH_SPACES.get(search_space or default_space_name())
        space = cls.for_arch(raw, **parse_overrides(space_options, cls.Options))
        arch = space.validate(raw)
    except UserError as e:
        raise UserError(f"{flag}subnet {subnet!r}: {e}") from None
    with torch.random.fork_rng(devices=[]):  # fresh layers initialise from the global generator
        torch.manual_seed(seed)
        if ckpt is not None:
            state = load_checkpoint(ckpt, f"{flag}ckpt")
            state = state.get("state_dict", state)
            net = space.build(arch, n_classes=data.n_classes)
            try:
                net.load_state_dict(state)
            except (RuntimeError, TypeError, AttributeError) as e:
                raise UserError(
                    f"{flag}ckpt {ckpt!r} does not fit the network of {flag}subnet with {data.n_classes} "
                    f"classes ({str(e).strip().splitlines()[0]}); "
                    "pass the checkpoint trained for that net.subnet"
                ) from None
            weights = f"checkpoint {ckpt}"
        else:
            space.require("supernet", f"{flag}supernet_path")
            supernet = space.make_supernet(data.n_classes)
            if space.load_weights(supernet, supernet_path):
                raise UserError(
                    f"{flag}supernet_path {supernet_path} has a classifier for another class count than the "
                    f"dataset ({data.n_classes}); evaluate on the dataset it was trained on"
                )
            net = space.build(arch, supernet)
            weights = f"inherited from {supernet_path}, BatchNorm recalibrated"
    resolution = int(space.resolution(arch) or data.image_size)
    net = net.to(device).to(memory_format=torch.channels_last)
    if ckpt is None:
        recalibrate(net, resolution, data, device, bn_batches, batch_size, seed, 0)
    return space, arch, net.eval(), resolution, weights


def read_reference(path: str) -> tuple[dict[str, Any], str | None]:
    """``(ood_errors result, network name)`` of a previous evaluate_ood.py JSON (or a bare result)."""
    from nas.io import read_json

    doc = read_json(path, "--ref_json")
    if isinstance(doc, dict) and isinstance(doc.get("result"), dict) and doc.get("schema") == SCHEMA:
        return doc["result"], (doc.get("network") or {}).get("name")
    if isinstance(doc, dict) and str(doc.get("schema", "")).startswith("ood_errors/"):
        return doc, None
    raise UserError(f"--ref_json {path!r} is not an ood_errors.json of tools/evaluate_ood.py; pass one")


# ---- figures --------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def plot(
    result: dict[str, Any], summary: dict[str, Any], ref: dict[str, Any] | None, name: str, out: str
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nas.analysis import save_figure

    corruptions, severities = result["corruptions"], [str(s) for s in result["severities"]]
    err = np.array([[result["errors"][c][s] for s in severities] for c in corruptions])
    files: list[str] = []

    panels = [(err, f"{name}: error %", "viridis", None)]
    if ref is not None:
        diff = err - np.array([[ref["errors"][c][s] for s in severities] for c in corruptions])
        bound = max(1e-9, float(np.abs(diff).max()))
        panels.append((diff, f"minus {summary['reference']['name']} (points)", "coolwarm", bound))
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(
            2.2 + 0.9 * len(severities) * len(panels) + 0.8 * (len(panels) - 1),
            0.42 * len(corruptions) + 1.6,
        ),
        squeeze=False,
    )
    for k, (ax, (values, title, cmap, bound)) in enumerate(zip(axes[0], panels, strict=True)):
        kw = (
            {"vmin": 0, "vmax": max(1.0, float(err.max()))}
            if bound is None
            else {"vmin": -bound, "vmax": bound}
        )
        im = ax.imshow(values, cmap=cmap, aspect="auto", **kw)
        for (i, j), v in np.ndenumerate(values):
            ax.text(
                j,
                i,
                f"{v:.1f}",
                ha="center",
                va="center",
                fontsize=7,
                color="w" if bound is None and v < 0.6 * kw["vmax"] else "k",
            )
        ax.set_xticks(np.arange(len(severities)), severities)
        ax.set_yticks(np.arange(len(corruptions)), corruptions if k == 0 else [])  # the same rows
        ax.set_xlabel("severity")
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax)
    fig.suptitle(
        f"{result['set']['title']} ({result['set']['kind']}, {result['n_images']} images per severity)",
        fontsize=10,
    )
    files += save_figure(fig, os.path.join(out, "ood_heatmap"))

    x = np.arange(len(corruptions))
    width = 0.4 if ref is not None else 0.7
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(corruptions) + 2), 4))
    ax.bar(
        x - (width / 2 if ref is not None else 0),
        err.mean(1),
        width,
        label=f"{name} (clean {result['clean_error']:.1f}%)",
    )
    ax.axhline(result["clean_error"], color="C0", ls="--", lw=1)
    title = f"mean corruption error {summary['mean_error']:.1f}%"
    if ref is not None:
        ref_err = np.array([[ref["errors"][c][s] for s in severities] for c in corruptions]).mean(1)
        r = summary["reference"]
        ax.bar(x + width / 2, ref_err, width, label=f"{r['name']} (reference, clean {r['clean_error']:.1f}%)")
        ax.axhline(r["clean_error"], color="C1", ls="--", lw=1)
        title += f"; mCE {_fmt(summary['mce'])}, relative mCE {_fmt(summary['relative_mce'])} vs {r['name']}"
    ax.set_xticks(x, corruptions, rotation=45, ha="right")
    ax.set_ylabel(f"error % (mean over severities {', '.join(severities)})")
    ax.set_title(title, fontsize=9)
    ax.set_ylim(0, 125)  # room for the legend above the bars
    ax.set_yticks(range(0, 101, 20))
    ax.legend(fontsize=8, loc="upper left", ncol=2)
    files += save_figure(fig, os.path.join(out, "ood_bars"))
    return files


def print_table(result: dict[str, Any], summary: dict[str, Any]) -> None:
    severities = [str(s) for s in result["severities"]]
    ce = summary.get("ce") or {}
    head = (
        f"{'corruption':18s}"
        + "".join(f"{'s' + s:>7s}" for s in severities)
        + f"{'mean':>8s}"
        + ("   CE" if ce else "")
    )
    print(head)
    for c in result["corruptions"]:
        row = "".join(f"{result['errors'][c][s]:7.2f}" for s in severities)
        extra = f"{_fmt(ce[c]):>7s}" if ce else ""
        print(f"{c:18s}{row}{result['corruption_error'][c]:8.2f}{extra}")


# ---- command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from robustness.corruptions import BENCHMARK, SEVERITIES
    from robustness.ood_data import DEFAULT_CACHE, SOURCES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subnet", required=True, help="the network's net.subnet")
    p.add_argument("--ckpt", help="its trained weights: ckpt.pth of train.py or post_search.py")
    p.add_argument(
        "--supernet_path",
        help="without --ckpt: the supernet whose weights it inherits "
        "(BatchNorm recalibrated on training images)",
    )
    p.add_argument("--search_space", help="space of the net.subnet files (default: the default preset's)")
    p.add_argument(
        "--space_options",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="options of the space, e.g. exit_head=nachos",
    )
    p.add_argument(
        "--dataset",
        default="cifar10_embedded",
        help="the clean dataset the network was trained on (default cifar10_embedded)",
    )
    p.add_argument(
        "--data",
        help="clean dataset folder (default: the dataset's own); the release is looked for in DIR/CIFAR-10-C",
    )
    p.add_argument("--ood_data", help="folder of the corrupted release (<corruption>.npy + labels.npy)")
    p.add_argument(
        "--ood_source",
        default="auto",
        choices=SOURCES,
        help="auto (default): the release when found, else a generated set; "
        "release: the release or an error; generate: a generated set even when the release is there",
    )
    p.add_argument(
        "--cache_dir",
        default=str(DEFAULT_CACHE),
        help=f"where generated corrupted sets are kept (default {DEFAULT_CACHE})",
    )
    p.add_argument(
        "--corruptions",
        nargs="+",
        metavar="NAME",
        help=f"corruptions to evaluate (default: all 15: {' '.join(BENCHMARK)})",
    )
    p.add_argument(
        "--severities",
        nargs="+",
        metavar="S",
        help=f"severities to evaluate (default: {' '.join(map(str, SEVERITIES))})",
    )
    p.add_argument("--n_images", help="the first N images of each severity (default: all)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of a generated set and of the BatchNorm calibration sample (default 0)",
    )
    p.add_argument("--name", help="the network's name in outputs (default: the folder of --ckpt or --subnet)")
    ref = p.add_argument_group("reference network (CE, mCE, relative mCE)")
    ref.add_argument("--ref_subnet", help="the reference's net.subnet, evaluated on the same images")
    ref.add_argument("--ref_ckpt", help="the reference's ckpt.pth")
    ref.add_argument(
        "--ref_supernet_path", help="without --ref_ckpt: the supernet the reference inherits from"
    )
    ref.add_argument("--ref_search_space", help="space of --ref_subnet (default: --search_space)")
    ref.add_argument(
        "--ref_space_options",
        nargs="+",
        default=None,
        metavar="KEY=VALUE",
        help="options of its space (default: --space_options)",
    )
    ref.add_argument("--ref_json", help="instead: the ood_errors.json of an earlier run of this tool")
    ref.add_argument(
        "--ref_name", help="the reference's name in outputs (default: its folder or recorded name)"
    )
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--batch_size", type=int, default=200, help="images per forward pass (default 200)")
    p.add_argument(
        "--bn_batches",
        type=int,
        default=10,
        help="with --supernet_path: BatchNorm calibration batches (default 10)",
    )
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    p.add_argument("--output_dir", help="write here instead of results/analysis/ood/<experiment>[-k]/")
    args = p.parse_args(argv)

    from nas.analysis import experiment_name, output_dir, save_numbers
    from nas.data import load_dataset
    from nas.device import resolve_device
    from robustness.corruptions import check_corruptions, check_severities
    from robustness.ood import SCHEMA as RESULT_SCHEMA
    from robustness.ood import corruption_summary, evaluate_set
    from robustness.ood_data import ood_spec, open_ood_set

    # ---- every flag checked before the slow work
    corruptions, severities = check_corruptions(args.corruptions), check_severities(args.severities)
    n_images = positive_int(args.n_images, "--n_images")
    spec = ood_spec(args.dataset)
    if args.ref_json and (args.ref_subnet or args.ref_ckpt or args.ref_supernet_path):
        raise UserError(
            "give the reference either as --ref_json or as --ref_subnet with --ref_ckpt, not both"
        )
    if (args.ref_ckpt or args.ref_supernet_path) and not args.ref_subnet:
        raise UserError("--ref_ckpt / --ref_supernet_path need --ref_subnet (the reference's net.subnet)")
    reference, ref_name = None, args.ref_name
    if args.ref_json:
        reference, recorded = read_reference(args.ref_json)
        ref_name = ref_name or recorded or experiment_name(args.ref_json)
        if reference.get("dataset") != spec.name:
            raise UserError(
                f"--ref_json {args.ref_json!r} holds {reference.get('dataset')} errors, not {spec.name}"
            )
    if reference is not None and reference.get("schema") != RESULT_SCHEMA:
        raise UserError(
            f"--ref_json {args.ref_json!r} has schema {reference.get('schema')!r}, not {RESULT_SCHEMA}"
        )
    device = resolve_device(args.device)
    progress = not args.no_progress

    data = load_dataset(args.dataset, args.data, seed=args.seed)
    name = args.name or experiment_name(args.ckpt or args.subnet)
    space, arch, net, resolution, weights = load_network(
        args.subnet, args.ckpt, args.supernet_path, args.search_space, args.space_options,
        data, device, args.bn_batches, args.batch_size, args.seed,
    )  # fmt: skip
    ref_net = None
    if args.ref_subnet:
        ref_net = load_network(
            args.ref_subnet, args.ref_ckpt, args.ref_supernet_path,
            args.ref_search_space or args.search_space,
            args.space_options if args.ref_space_options is None else args.ref_space_options,
            data, device, args.bn_batches, args.batch_size, args.seed, "--ref_",
        )  # fmt: skip
        ref_name = ref_name or experiment_name(args.ref_ckpt or args.ref_subnet)
    ood = open_ood_set(
        args.dataset, data.test, corruptions, n_images, args.seed, args.ood_source,
        args.data, args.ood_data, args.cache_dir, progress,
    )  # fmt: skip
    if reference is not None:  # a JSON reference must be on these very images: say so before the work
        from robustness.ood import check_comparable

        errors = {c: dict.fromkeys(map(str, severities), 0.0) for c in corruptions}
        check_comparable(
            {"set": ood.describe(), "errors": errors}, reference, f"--ref_json {args.ref_json!r}"
        )
    result = evaluate_set(net, ood, data.test, device, resolution, severities, args.batch_size, progress)
    ref_info = None
    if ref_net is not None:
        r_space, r_arch, r_model, r_resolution, r_weights = ref_net
        reference = evaluate_set(
            r_model, ood, data.test, device, r_resolution, severities, args.batch_size, progress
        )
        ref_info = {
            "name": ref_name, "from": "network", "subnet": os.path.abspath(args.ref_subnet),
            "weights": r_weights,
            "search_space": r_space.name, "arch": r_arch, "arch_id": r_space.arch_id(r_arch),
            "resolution": r_resolution, "result": reference,
        }  # fmt: skip
    elif reference is not None:
        ref_info = {
            "name": ref_name,
            "from": "json",
            "json": os.path.abspath(args.ref_json),
            "result": reference,
        }
    summary = corruption_summary(result, reference, ref_name)

    out = output_dir(TOOL, experiment_name(args.ckpt or args.subnet), args.output_dir)
    doc = {
        "schema": SCHEMA,
        "network": {
            "name": name,
            "subnet": os.path.abspath(args.subnet),
            "weights": weights,
            "search_space": space.name,
            "arch": arch,
            "arch_id": space.arch_id(arch),
            "resolution": resolution,
        },
        "dataset": args.dataset,
        "result": result,
        "summary": summary,
        "reference": ref_info,
    }
    save_numbers(os.path.join(out, "ood_errors.json"), doc)
    files = plot(result, summary, reference, name, out)

    s = result["set"]
    print(
        f"{name} on {s['title']} ({s['kind']}: {s['path']}; {result['n_images']} images per severity, "
        f"input {resolution} px)"
    )
    print_table(result, summary)
    line = f"clean error {result['clean_error']:.2f}%, mean corruption error {result['mean_error']:.2f}%"
    if summary["reference"] is not None:
        r = summary["reference"]
        line += (
            f"; vs {r['name']} (clean {r['clean_error']:.2f}%, mean {r['mean_error']:.2f}%): "
            f"mCE {_fmt(summary['mce'])}, relative mCE {_fmt(summary['relative_mce'])}"
        )
    print(line)
    print(f"wrote {out}/ood_errors.json and {len(files)} figure files")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
