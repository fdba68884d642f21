"""B9: gated networks against their ungated twins on the embedded CIFAR-10 (CPU).

.venv/bin/python benchmarks/b9_layer_skipping.py [--archs 3] [--sparsity 0.5 0.7] [--hidden 32]
    [--gate_type stable] [--epochs 4] [--steps 60] [--seed 0] [--latency_images 300]
    [--search] [--n_doe 20] [--n_iter 8] [--iterations 3] [--single DIR] [--set KEY=VALUE ...]
    [--gated_set KEY=VALUE ...] [--out benchmarks/results/b9]

1. A supernet trained as in the quickstart (``<out>/supernet``, re-used when present).
2. Twins: ``--archs`` backbones of ``mobilenetv3`` (the space's middle one, then seeded random
   ones), each trained from the inherited weights for ``--epochs`` x ``--steps`` steps as the
   ungated network (trainer ``single_exit``) and, for every ``--sparsity``, as a gated network
   (trainer ``layer_skipping``; every skippable block gated with that target and ``--hidden``).
   Reported: validation and test top-1, avg_macs on the validation and test splits as a share of
   the twin's MACs, and for the gated networks the batch-1 latency on ``--latency_images`` test
   images with real skipping against the same weights with every block run and no gates (the
   ungated computation): measured saving vs the saving avg_macs predicts. Goal: >= 30% fewer
   average MACs within 1 point of the twin's test top-1, measured saving >= 80% of the predicted.
   Each trained network is kept in ``<out>/twins/`` (a re-run skips it).
3. ``--search``: searches of ``skippingmobilenetv3`` (top-1 vs avg_macs) and ``mobilenetv3``
   (top-1 vs MACs; ``--single DIR`` re-uses a finished one, e.g. B8's) at the same budget and
   training per candidate; both fronts in ``fronts.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from nas.plugins import load_plugins, plugin_list  # noqa: E402

load_plugins()

from benchmarks.runs import front, plot_fronts, quickstart_supernet, rebuild, resumable_search  # noqa: E402
from LayerSkipping.latency import batch1_latency  # noqa: E402
from LayerSkipping.measures import collect_gates, gate_report  # noqa: E402
from LayerSkipping.spaces import SPARSITIES, skippable  # noqa: E402
from nas.config import parse_overrides  # noqa: E402
from nas.io import load_checkpoint, save_checkpoint, write_json  # noqa: E402
from nas.scoring import accuracy, batches_of, first_images  # noqa: E402
from nas.search.description import RunSpec  # noqa: E402
from nas.search.factory import build_evaluator  # noqa: E402
from nas.space import get_search_space  # noqa: E402
from NasSearchSpace.ofa_mbv3_layout import N_BLOCKS  # noqa: E402


def backbones(n: int, seed: int) -> list[dict]:
    base = get_search_space("mobilenetv3", lr=32, ur=32)
    archs = [base.middle(), *base.sample(4 * n, np.random.default_rng(seed))]
    unique = list({base.arch_id(a): a for a in archs}.values())
    return unique[:n]


def gated(arch: dict, sparsity: float, hidden: int) -> dict:
    return {
        **arch,
        "gate_hidden": [hidden] * N_BLOCKS,
        "sparsity": [sparsity if skippable(j) else 0.0 for j in range(N_BLOCKS)],
    }


def train_one(flat: dict, arch: dict, folder: Path) -> tuple[dict, Any, Any]:
    """(validation metrics, trained network, evaluator) of ``arch``; kept in ``folder``."""
    evaluator = build_evaluator(RunSpec.from_flat(flat, plugins=plugin_list()))
    evaluator.ensure_setup()
    done = folder / "metrics.json"
    if done.is_file():
        net = evaluator.build(arch).to(evaluator.ctx.device).to(memory_format=torch.channels_last)
        net.load_state_dict(load_checkpoint(folder / "ckpt.pth", "B9 network")["state_dict"])
        return json.loads(done.read_text()), net.eval(), evaluator
    net, metrics = evaluator.network(arch)
    save_checkpoint(folder / "ckpt.pth", {"state_dict": net.state_dict(), "arch": arch})
    write_json(done, metrics)
    return metrics, net.eval(), evaluator


def twins(args, common: dict, out: Path) -> list[dict]:
    rows = []
    for arch in backbones(args.archs, args.seed):
        space = get_search_space("mobilenetv3", lr=32, ur=32)
        aid = space.arch_id(arch)
        flat = {**common, "search_space": "mobilenetv3", "trainer": "single_exit", "measures": ["accuracy"]}
        metrics, net, ev = train_one(flat, arch, out / "twins" / aid)
        ctx = ev.ctx

        def test(ctx=ctx):
            return batches_of(ctx.data.test, 32, ctx.device, 200, 0, 0)

        macs = space.costs(arch, ctx.n_classes)["macs"]
        row: dict[str, Any] = {
            "id": aid, "arch": arch, "macs": macs, "valid_top1": metrics["top1"],
            "test_top1": accuracy(net, test())["top1"], "gated": [],
        }  # fmt: skip
        for s in args.sparsity:
            g = gated(arch, s, args.hidden)
            flat = {**common, "search_space": "skippingmobilenetv3", "gate_type": args.gate_type,
                    "trainer": "layer_skipping", "measures": ["accuracy", "gates"], **args.gated}  # fmt: skip
            gm, gnet, gev = train_one(flat, g, out / "twins" / f"{aid}-s{s}")
            rep = gate_report(gev.space, g, collect_gates(gnet, test()), ctx.n_classes)
            lat = batch1_latency(gnet, first_images(ctx.data.test, args.latency_images, 32, ctx.device))
            entry = {
                "sparsity": s, "valid_top1": gm["top1"], "valid_avg_macs": gm["avg_macs"],
                "test_top1": rep["top1"], "test_open_top1": rep["open_top1"],
                "test_avg_macs": rep["avg_macs"], "share_of_twin_macs": rep["avg_macs"] / macs,
                "open_rate": rep["open_rate"], "predicted_saving": rep["mac_saving"], "latency": lat,
                "measured_over_predicted": (
                    lat["measured_saving"] / rep["mac_saving"] if rep["mac_saving"] > 0 else None
                ),
            }  # fmt: skip
            row["gated"].append(entry)
            shown = {k: v for k, v in entry.items() if k not in ("open_rate", "latency")}
            shown["measured_saving"] = lat["measured_saving"]
            print(json.dumps({"id": aid, "twin_test_top1": row["test_top1"], **shown}))
        rows.append(row)
    return rows


def front_on_test(run: dict, cost: str) -> list[dict[str, Any]]:
    """Each network of the run's front (validation top-1 vs ``cost``) with the weights its evaluation
    trained, scored on the test split: top-1 and, gated, avg_macs from the test split's decisions.
    (The layer_skipping trainer keeps its best validation epoch, so its validation top-1 is the
    selected maximum; the test split is the unbiased comparison.)"""
    ok = list(run["archive"].ok())
    pts = np.array([[100 - r.metrics["top1"], r.metrics[cost]] for r in ok])
    rows = []
    for i in front(pts):
        r = ok[i]
        net, ev = rebuild(run, r)
        ctx = ev.ctx
        test = batches_of(ctx.data.test, r.arch["r"], ctx.device, 200, 0, 0)
        row = {"id": r.arch_id, "valid_top1": r.metrics["top1"], f"valid_{cost}": r.metrics[cost]}
        if cost == "avg_macs":
            rep = gate_report(ev.space, r.arch, collect_gates(net, test), ctx.n_classes)
            row.update(
                test_top1=rep["top1"], test_avg_macs=rep["avg_macs"], backbone_macs=r.metrics["backbone_macs"]
            )
        else:
            row.update(test_top1=accuracy(net, test)["top1"], macs=r.metrics["macs"])
        rows.append(row)
        print(json.dumps(row))
    return rows


def goal(rows: list[dict]) -> dict[str, Any]:
    """The best MAC saving within 1 point of the twin's test top-1, and its latency ratio."""
    best = None
    for row in rows:
        for g in row["gated"]:
            if g["test_top1"] >= row["test_top1"] - 1.0 and (
                best is None or g["share_of_twin_macs"] < best[1]["share_of_twin_macs"]
            ):
                best = (row, g)
    if best is None:
        return {"met": False, "within_1_point": None}
    row, g = best
    return {
        "id": row["id"], "sparsity": g["sparsity"], "share_of_twin_macs": g["share_of_twin_macs"],
        "saving": 1 - g["share_of_twin_macs"], "measured_over_predicted": g["measured_over_predicted"],
        "met": 1 - g["share_of_twin_macs"] >= 0.30 and (g["measured_over_predicted"] or 0) >= 0.8,
    }  # fmt: skip


def plot_twins(rows: list[dict], stem: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nas.analysis import save_figure

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for i, row in enumerate(rows):
        xs = [row["macs"], *(g["test_avg_macs"] for g in row["gated"])]
        ys = [row["test_top1"], *(g["test_top1"] for g in row["gated"])]
        ax.plot(xs, ys, "-", color=f"C{i}", alpha=0.5)
        ax.scatter(xs[:1], ys[:1], marker="s", color=f"C{i}", label=f"{row['id']} ungated")
        ax.scatter(xs[1:], ys[1:], marker="o", color=f"C{i}")
        for g in row["gated"]:
            ax.annotate(f"s={g['sparsity']}", (g["test_avg_macs"], g["test_top1"]), fontsize=7)
    ax.set_xlabel("M MACs (gated: avg_macs on the test split)")
    ax.set_ylabel("test top-1 %")
    ax.set_title("B9: gated networks (circles) vs their ungated twins (squares)")
    ax.legend(fontsize=7)
    save_figure(fig, str(stem))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", type=int, default=3, help="backbones compared (0: the searches only)")
    p.add_argument(
        "--sparsity", type=float, nargs="+", default=[0.5, 0.7], help="target sparsities of the gated twins"
    )
    p.add_argument("--hidden", type=int, default=32, help="gate hidden size")
    p.add_argument("--gate_type", default="stable")
    p.add_argument("--epochs", type=int, default=4, help="training epochs per network")
    p.add_argument("--steps", type=int, default=60, help="steps per epoch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--latency_images", type=int, default=300)
    p.add_argument("--search", action="store_true", help="also the two searches and their fronts")
    p.add_argument("--n_doe", type=int, default=20)
    p.add_argument("--n_iter", type=int, default=8)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--single", help="a finished mobilenetv3 search with the same settings to re-use")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more options for every network")
    p.add_argument(
        "--gated_set", nargs="*", default=[], metavar="KEY=VALUE",
        help="more options for the gated networks only (e.g. ramp_epochs=3)",
    )  # fmt: skip
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "b9"))
    args = p.parse_args(argv)
    bad = [s for s in args.sparsity if s not in SPARSITIES[1:]]
    if bad:
        p.error(f"--sparsity {bad} not in {list(SPARSITIES[1:])}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = dict(
        dataset="cifar10_embedded", vld_size=1000, lr=32, ur=32, supernet_path=quickstart_supernet(out),
        bn_batches=5, seed=args.seed, n_epochs=args.epochs, steps_per_epoch=args.steps, batch_size=64,
        base_lr=0.01,
    )  # fmt: skip
    common.update(parse_overrides(args.set))
    args.gated = parse_overrides(args.gated_set)
    report: dict[str, Any] = {"settings": {k: v for k, v in vars(args).items() if k != "out"}}
    if args.archs > 0:
        rows = twins(args, common, out)
        plot_twins(rows, out / "twins")
        report.update(twins=rows, goal=goal(rows))
    if args.search:
        budget = dict(n_doe=args.n_doe, n_iter=args.n_iter, iterations=args.iterations, predictor="as")
        single = {**common, **budget, "search_space": "mobilenetv3", "sec_obj": "macs"}
        runs = {"single": resumable_search(single, Path(args.single) if args.single else out / "single")}
        gated_flat = {**common, **budget, "search_space": "skippingmobilenetv3", "gate_type": args.gate_type,
                      "trainer": "layer_skipping", "measures": ["accuracy", "gates"],
                      "sec_obj": "avg_macs", **args.gated}  # fmt: skip
        runs["skipping"] = resumable_search(gated_flat, out / "skipping")
        plot_fronts([(runs["single"], "single", "macs"), (runs["skipping"], "skipping", "avg_macs")],
                    "M MACs (gated: avg_macs on the validation split)",
                    "B9: layer skipping vs ungated search, embedded CIFAR-10", out / "fronts")  # fmt: skip
        report["search"] = {
            name: {
                "evaluations": len(r["archive"]),
                "best_top1": max(x.metrics["top1"] for x in r["archive"].ok()),
                "front": front_on_test(r, cost),
            }
            for (name, r), cost in zip(runs.items(), ("macs", "avg_macs"), strict=True)
        }
    write_json(out / "b9.json", report)
    print(json.dumps(report.get("goal", report.get("search"))))
    return 0


if __name__ == "__main__":
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    sys.exit(main())
