"""How a trained gated network uses its gates, on the test split with hard gates.

    python tools/analyze_gates.py --model_path net/ckpt.pth --subnet net/net.subnet \\
        --dataset cifar10_embedded --n_classes 10 [--data DIR] [--device auto] [--output_dir DIR]

The network of ``--subnet`` (a ``skippingmobilenetv3`` subnet) is built with the gate type and
temperature recorded in the ``net.stats`` next to it (by a search's ``gates`` measure or by
``train.py layer_skipping``; ``--gate_type`` / ``--temperature`` override, and without a record
``--gate_type`` is required: no default is assumed) and the weights of ``--model_path`` (without
it: the supernet's weights from ``--supernet_path`` and fresh gates, the state before training).
Every test image goes through it once with hard gates (every block computed, so the gate values
of every block are seen; the decisions are those of real skipping). Outputs, in
``results/analysis/gates/<experiment>[-k]/`` (a new folder every time) or ``--output_dir``:

- ``gate_usage_summary.json``: per gate (block slot, target sparsity, mean open probability, hard
  open fraction), per class (accuracy, open fraction per gate, share of gated blocks run), the
  gate x gate correlation matrix, skip rate per softmax-confidence bin, the per-image MACs
  (mean = avg_macs on the test split, percentiles), top-1, and the 10 test images that skip
  most and least (fewest / most MACs, ties broken by the gates' mean open probability);
- figures (PNG + PDF): ``gate_open`` (probability and hard fraction per gate, target marked),
  ``class_gate_heatmap``, ``gate_correlation``, ``class_usage_vs_accuracy``,
  ``skip_vs_confidence``, ``mac_distribution``, ``images_most_skip`` and ``images_least_skip``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from nas.cli import run_cli  # noqa: E402
from nas.errors import UserError  # noqa: E402

TOOL = "gates"
N_SHOWN = 10  # images that skip most / least
CONF_BINS = 10


def load_network(args: argparse.Namespace, n_classes: int) -> tuple[Any, Any, Any]:
    """(space, arch, network with its weights) of ``--subnet``."""
    from LayerSkipping.train_ls import gate_space_options
    from LayerSkipping.trainer import require_gated_space
    from nas.io import load_checkpoint
    from nas.training.subnet import read_subnet_file

    options = gate_space_options(args.subnet, args.gate_type, args.temperature)
    space, arch = read_subnet_file(args.subnet, args.search_space, options)
    require_gated_space(space, "analyze_gates.py")
    if args.model_path is None and args.supernet_path is None:
        raise UserError("give --model_path (the trained network's ckpt.pth) or --supernet_path")
    supernet = space.make_supernet(n_classes)
    if args.model_path is None:
        space.load_weights(supernet, args.supernet_path)
    net = space.build(arch, supernet)
    if args.model_path is not None:
        ckpt = load_checkpoint(args.model_path, "--model_path")
        state = ckpt.get("state_dict", ckpt)
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise UserError(
                f"--model_path {args.model_path!r} does not fit the network of --subnet "
                f"({str(e).splitlines()[0]}); pass the checkpoint trained for that net.subnet"
            ) from None
    return space, arch, net


def analyse(space, arch, net, data, device, batch_size: int, max_images: int | None) -> dict[str, Any]:
    """Per-image gate decisions, probabilities, predictions and MACs on the test split."""
    import torch

    from LayerSkipping.measures import collect_gates
    from nas.scoring import batches_of

    split = data.test if max_images is None else data.test.subset(np.arange(min(max_images, len(data.test))))
    out = collect_gates(
        net.to(device).eval(), batches_of(split, space.resolution(arch), device, batch_size, 0, 0)
    )
    counts = space.gate_block_counts(arch, data.n_classes)
    costs = space.costs(arch, data.n_classes)
    base = round(costs["backbone_macs"] * 1e6)
    closed = 1.0 - out.open.numpy()
    macs = (base + sum(counts["gate_macs"]) - closed @ np.asarray(counts["block_macs"], dtype=float)) / 1e6
    probs = torch.softmax(out.logits, 1)
    return {
        "split": split,
        "open": out.open.numpy(),
        "prob": out.prob.numpy(),
        "labels": out.labels.numpy(),
        "pred": out.logits.argmax(1).numpy(),
        "confidence": probs.max(1).values.numpy(),
        "macs": macs,
        "backbone_macs": costs["backbone_macs"],
    }


def summarise(space, arch, a: dict[str, Any], classes: list[str]) -> dict[str, Any]:
    plan = space.gate_plan(arch)
    opened, labels, right = a["open"], a["labels"], a["pred"] == a["labels"]
    n, k = opened.shape
    skip_share = (1.0 - opened).mean(1) if k else np.zeros(n)  # share of gated blocks skipped per image
    per_class = []
    for c, name in enumerate(classes):
        m = labels == c
        if not m.any():
            continue
        per_class.append({
            "class": name, "images": int(m.sum()), "accuracy": float(100 * right[m].mean()),
            "open_fraction": opened[m].mean(0).tolist(), "blocks_run": float(1 - skip_share[m].mean()),
        })  # fmt: skip
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(opened.T) if k > 1 else np.ones((k, k))
    corr = np.where(np.isfinite(corr), corr, 0.0)  # a gate that never changes has no correlation
    edges = np.linspace(0, 1, CONF_BINS + 1)
    bins = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (a["confidence"] >= lo) & ((a["confidence"] < hi) | (hi == 1.0))
        if m.any():
            bins.append({
                "confidence": [float(lo), float(hi)], "images": int(m.sum()),
                "skip_share": float(skip_share[m].mean()), "accuracy": float(100 * right[m].mean()),
            })  # fmt: skip
    # fewest MACs first; among equal decisions, the gates' mean open probability breaks the tie
    order = np.lexsort((a["prob"].mean(1) if k else np.zeros(n), a["macs"]))
    return {
        "images": int(n),
        "top1": float(100 * right.mean()),
        "gate_type": space.options.gate_type,
        "temperature": space.options.temperature,
        "gates": [
            {
                "slot": s,
                "block": b,
                "target_sparsity": t,
                "open_prob": float(a["prob"][:, i].mean()),
                "open_fraction": float(opened[:, i].mean()),
            }
            for i, (s, b, t) in enumerate(zip(plan.slots, plan.at, plan.targets, strict=True))
        ],  # fmt: skip
        "skip_rate": float((skip_share > 0).mean()),
        "per_class": per_class,
        "gate_correlation": corr.tolist(),
        "skip_vs_confidence": bins,
        "macs": {
            "avg_macs": float(a["macs"].mean()),
            "backbone_macs": a["backbone_macs"],
            "mac_saving": float(1 - a["macs"].mean() / a["backbone_macs"]),
            "min": float(a["macs"].min()),
            "max": float(a["macs"].max()),
            "percentiles": {str(q): float(np.percentile(a["macs"], q)) for q in (5, 25, 50, 75, 95)},
        },  # fmt: skip
        "most_skip": [int(i) for i in order[:N_SHOWN]],
        "least_skip": [int(i) for i in order[::-1][:N_SHOWN]],
    }


def plot(summary: dict[str, Any], a: dict[str, Any], classes: list[str], out: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nas.analysis import save_figure

    files: list[str] = []
    gates = summary["gates"]
    names = [f"s{g['slot'] // 4}.b{g['slot'] % 4}" for g in gates]
    x = np.arange(len(gates))

    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(gates) + 2), 3.5))
    ax.bar(x - 0.2, [g["open_prob"] for g in gates], 0.4, label="mean open probability")
    ax.bar(x + 0.2, [g["open_fraction"] for g in gates], 0.4, label="hard open fraction")
    ax.scatter(
        x,
        [1 - g["target_sparsity"] for g in gates],
        color="k",
        marker="_",
        s=300,
        label="target (1 - sparsity)",
    )
    ax.set_xticks(x, names, rotation=45)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of test images")
    ax.set_title("gate usage per gated block (stage.block)")
    ax.legend(fontsize=8)
    files += save_figure(fig, os.path.join(out, "gate_open"))

    pc = summary["per_class"]
    heat = np.array([c["open_fraction"] for c in pc]) if gates else np.zeros((len(pc), 0))
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(gates) + 3), max(3, 0.3 * len(pc) + 1.5)))
    im = ax.imshow(heat, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(x, names, rotation=45)
    ax.set_yticks(np.arange(len(pc)), [c["class"] for c in pc])
    fig.colorbar(im, ax=ax, label="open fraction")
    ax.set_title("gate usage per class")
    files += save_figure(fig, os.path.join(out, "class_gate_heatmap"))

    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(gates) + 2), max(3.5, 0.5 * len(gates) + 1.5)))
    im = ax.imshow(
        np.array(summary["gate_correlation"]).reshape(len(gates), len(gates)),
        vmin=-1,
        vmax=1,
        cmap="coolwarm",
    )
    ax.set_xticks(x, names, rotation=45)
    ax.set_yticks(x, names)
    fig.colorbar(im, ax=ax, label="correlation of hard decisions")
    ax.set_title("gate x gate correlation")
    files += save_figure(fig, os.path.join(out, "gate_correlation"))

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter([c["blocks_run"] for c in pc], [c["accuracy"] for c in pc])
    for c in pc:
        ax.annotate(c["class"], (c["blocks_run"], c["accuracy"]), fontsize=7)
    ax.set_xlabel("share of gated blocks run")
    ax.set_ylabel("class top-1 %")
    ax.set_title("gate usage vs accuracy per class")
    files += save_figure(fig, os.path.join(out, "class_usage_vs_accuracy"))

    bins = summary["skip_vs_confidence"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    mids = [np.mean(b["confidence"]) for b in bins]
    ax.plot(mids, [b["skip_share"] for b in bins], "o-")
    ax.set_xlabel("softmax confidence of the prediction")
    ax.set_ylabel("share of gated blocks skipped")
    ax.set_title("skipping vs confidence")
    files += save_figure(fig, os.path.join(out, "skip_vs_confidence"))

    m = summary["macs"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist(a["macs"], bins=30)
    ax.axvline(m["backbone_macs"], color="k", ls="--", label="ungated backbone")
    ax.axvline(m["avg_macs"], color="C3", label="mean (avg_macs)")
    ax.set_xlabel("M MACs per image")
    ax.set_ylabel("test images")
    ax.legend(fontsize=8)
    ax.set_title("MACs per image")
    files += save_figure(fig, os.path.join(out, "mac_distribution"))

    for key, title in (("most_skip", "skip most"), ("least_skip", "skip least")):
        files += _image_grid(
            a,
            summary[key],
            classes,
            f"the {N_SHOWN} test images that {title}",
            os.path.join(out, f"images_{key}"),
        )
    return files


def _image_grid(a: dict[str, Any], idx: list[int], classes: list[str], title: str, stem: str) -> list[str]:
    import matplotlib.pyplot as plt
    import torch

    from nas.analysis import save_figure
    from nas.scoring import batches_of

    split = a["split"].subset(idx)
    x, _ = next(iter(batches_of(split, split.image_size, torch.device("cpu"), len(idx), 0, 0)))
    mean = torch.tensor(split.mean).view(1, 3, 1, 1)
    std = torch.tensor(split.std).view(1, 3, 1, 1)
    imgs = (x.float() * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    skipped = 1.0 - a["open"][idx].mean(1) if a["open"].shape[1] else np.zeros(len(idx))
    fig, axes = plt.subplots(2, (len(idx) + 1) // 2, figsize=(2 * ((len(idx) + 1) // 2), 4.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, i, s in zip(axes.flat, imgs, idx, skipped, strict=False):
        ax.imshow(img)
        ax.set_title(f"{classes[a['labels'][i]]}\nskips {100 * s:.0f}%", fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, stem)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--model_path", help="the trained network's checkpoint (ckpt.pth of train.py or post_search.py)"
    )
    p.add_argument("--subnet", required=True, help="its net.subnet (skippingmobilenetv3)")
    p.add_argument(
        "--supernet_path", help="without --model_path: the supernet whose weights the network inherits"
    )
    p.add_argument("--search_space", default="skippingmobilenetv3", help="space of the net.subnet file")
    p.add_argument("--gate_type", help="gate network (default: the one net.stats records)")
    p.add_argument("--temperature", type=float, help="gate temperature (default: the one net.stats records)")
    p.add_argument("--dataset", default="cifar10_embedded", help="dataset name")
    p.add_argument("--n_classes", type=int, help="classes of the network (checked against the dataset)")
    p.add_argument("--data", help="dataset folder (default: the dataset's own location)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch_size", type=int, default=200, help="test images per forward pass")
    p.add_argument("--max_images", type=int, help="the first N test images only (default: all)")
    p.add_argument("--output_dir", help="write here instead of results/analysis/gates/<experiment>[-k]/")
    args = p.parse_args(argv)
    from nas.analysis import experiment_name, output_dir, save_numbers
    from nas.data import load_dataset
    from nas.device import resolve_device

    if args.max_images is not None and args.max_images < N_SHOWN:
        raise UserError(f"--max_images {args.max_images} must be at least {N_SHOWN}")
    data = load_dataset(args.dataset, args.data)
    if args.n_classes is not None and args.n_classes != data.n_classes:
        raise UserError(f"--n_classes {args.n_classes} but {args.dataset} has {data.n_classes} classes")
    space, arch, net = load_network(args, data.n_classes)
    a = analyse(space, arch, net, data, resolve_device(args.device), args.batch_size, args.max_images)
    summary = summarise(space, arch, a, list(data.classes))
    out = output_dir(TOOL, experiment_name(args.model_path or args.subnet), args.output_dir)
    save_numbers(os.path.join(out, "gate_usage_summary.json"), summary)
    files = plot(summary, a, list(data.classes), out)
    m = summary["macs"]
    print(
        f"{summary['images']} test images, top-1 {summary['top1']:.2f}%, {len(summary['gates'])} gates "
        f"({summary['gate_type']}), avg_macs {m['avg_macs']:.3f} M of {m['backbone_macs']:.3f} M "
        f"({100 * m['mac_saving']:.1f}% saved), images skipping a block {100 * summary['skip_rate']:.1f}%"
    )
    print(f"wrote {out}/gate_usage_summary.json and {len(files)} figure files")


if __name__ == "__main__":
    sys.exit(run_cli(main))
