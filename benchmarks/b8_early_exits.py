"""B8: early-exit networks against single-exit ones on the embedded CIFAR-10 (CPU).

.venv/bin/python benchmarks/b8_early_exits.py [--n_doe 24] [--n_iter 8] [--iterations 4] [--epochs 1]
    [--steps 60] [--seed 0] [--latency_images 300] [--set KEY=VALUE ...] [--out benchmarks/results/b8]

1. A supernet trained as in the quickstart (3 epochs of the sandwich rule on the embedded data,
   1,000 training images held out), re-used when present (``<out>/supernet``).
2. Three searches at the same evaluation budget and the same training per candidate (``--epochs``
   epochs of ``--steps`` steps from the inherited weights): ``mobilenetv3`` (single exit, trainer
   ``single_exit``, top-1 vs MACs), ``eemobilenetv3`` (EDANAS: ``ee_joint``, top-1 vs avg_macs) and
   ``cbnmobilenetv3`` (NACHOS: ``nachos`` with the backbone trained too, top-1 vs NACHOS's
   penalised avg_macs with ``mmax`` = half the MACs of the single-exit search's most accurate
   network and the threshold repair's ``top1min`` = that network's top-1 minus 1). Every search
   resumes when re-run.
3. Figures: the fronts in one plot (``fronts.png``: early exits top-1 vs avg_macs, single exit
   top-1 vs MACs); at the single-exit front's best validation top-1, the lowest avg_macs of an
   early-exit network within 1 point of it, as a share of that single-exit network's MACs (goal
   <= 50%); for that early-exit network, rebuilt with the weights its search trained, the test
   split's exit statistics with the search's thresholds (genes, or tuned on the validation split)
   and the batch-1 latency against its backbone alone: measured saving vs predicted (goal >= 80%);
   the same for the network of each archive whose exits save the most (``most_saving``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from nas.plugins import load_plugins  # noqa: E402

load_plugins()

from benchmarks.runs import plot_fronts, quickstart_supernet, rebuild, resumable_search  # noqa: E402
from EarlyExits.latency import batch1_latency  # noqa: E402
from EarlyExits.measures import ExitOptions, collect_outputs, default_policy, exit_report  # noqa: E402
from EarlyExits.policies import get_policy  # noqa: E402
from nas.config import parse_overrides  # noqa: E402
from nas.scoring import accuracy, batches_of, first_images  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n_doe", type=int, default=24)
    p.add_argument("--n_iter", type=int, default=8)
    p.add_argument("--iterations", type=int, default=4)
    p.add_argument("--epochs", type=int, default=1, help="training epochs per candidate")
    p.add_argument("--steps", type=int, default=60, help="steps per epoch per candidate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--latency_images", type=int, default=300)
    p.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="more msunas options for every search"
    )
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "b8"))
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = dict(
        dataset="cifar10_embedded", vld_size=1000, lr=32, ur=32, supernet_path=quickstart_supernet(out),
        bn_batches=5, n_doe=args.n_doe, n_iter=args.n_iter, iterations=args.iterations, seed=args.seed,
        predictor="as", n_epochs=args.epochs, steps_per_epoch=args.steps, batch_size=64, base_lr=0.01,
    )  # fmt: skip
    common.update(parse_overrides(args.set))
    runs = {
        "single": resumable_search(
            {**common, "search_space": "mobilenetv3", "sec_obj": "macs"}, out / "single"
        )
    }
    single = runs["single"]["archive"].ok()
    best_single = max(single, key=lambda r: r.metrics["top1"])
    mmax = 0.5 * best_single.metrics["macs"]
    ee = dict(measures=["accuracy", "exits"], sec_obj="avg_macs")
    runs["edanas"] = resumable_search(
        {**common, **ee, "search_space": "eemobilenetv3", "trainer": "ee_joint"}, out / "edanas"
    )
    runs["nachos"] = resumable_search(
        {**common, **ee, "search_space": "cbnmobilenetv3", "trainer": "nachos", "freeze_backbone": False,
         "mmax": mmax, "top1min": best_single.metrics["top1"] - 1.0, "sec_obj": "nachos"},
        out / "nachos",
    )  # fmt: skip

    report: dict[str, Any] = {
        "settings": {**{k: v for k, v in vars(args).items() if k != "out"}, "mmax": mmax,
                     "top1min": best_single.metrics["top1"] - 1.0},
        "single": {"best_top1": best_single.metrics["top1"], "macs": best_single.metrics["macs"],
                   "id": best_single.arch_id, "evaluations": len(runs["single"]["archive"])},
    }  # fmt: skip
    plot_fronts(
        [(runs["single"], "single", "macs"), (runs["edanas"], "edanas", "avg_macs"),
         (runs["nachos"], "nachos", "avg_macs")],
        "M MACs (early exits: avg_macs on the validation split)",
        "B8: early exits vs single exit, embedded CIFAR-10",
        out / "fronts",
    )  # fmt: skip

    for name in ("edanas", "nachos"):
        ok = runs[name]["archive"].ok()
        near = [r for r in ok if r.metrics["top1"] >= best_single.metrics["top1"] - 1.0]
        entry: dict[str, Any] = {"evaluations": len(runs[name]["archive"]), "within_1_point": len(near)}
        if near:
            pick = min(near, key=lambda r: r.metrics["avg_macs"])
            entry.update(
                id=pick.arch_id, arch=pick.arch, top1=pick.metrics["top1"], avg_macs=pick.metrics["avg_macs"],
                share_of_single_macs=pick.metrics["avg_macs"] / best_single.metrics["macs"],
            )  # fmt: skip
            entry["test"] = measure_on_test(runs[name], pick, args.latency_images)
        # the runtime's fidelity also on the network whose exits save the most (validation split)
        most = max(ok, key=lambda r: 1.0 - r.metrics["avg_macs"] / r.metrics["backbone_macs"])
        entry["most_saving"] = {
            "id": most.arch_id, "top1": most.metrics["top1"], "avg_macs": most.metrics["avg_macs"],
            "test": measure_on_test(runs[name], most, args.latency_images),
        }  # fmt: skip
        report[name] = entry
    single_net, ev = rebuild(runs["single"], best_single)
    res = accuracy(single_net, batches_of(ev.ctx.data.test, 32, ev.ctx.device, 200, 0, 0))
    report["single"]["test_top1"] = res["top1"]
    (out / "b8.json").write_text(json.dumps(report, indent=1, default=str))
    print(
        json.dumps(
            {k: {kk: vv for kk, vv in v.items() if kk != "arch"} for k, v in report.items()},
            indent=1,
            default=str,
        )
    )
    return 0


def measure_on_test(run: dict, result, latency_images: int) -> dict[str, Any]:
    """Exit statistics on the test split with the search's thresholds, and batch-1 latency."""
    net, ev = rebuild(run, result)
    ctx, space, arch = ev.ctx, ev.space, result.arch
    options = next(m.options for m in ev.measures if m.name == "exits") if ev.measures else ExitOptions()

    def outputs(split):
        return collect_outputs(net, batches_of(split, ctx.resolution(arch), ctx.device, 200, 0, 0))

    thresholds = result.metrics["thresholds"]  # as the search chose them (validation split)
    test = exit_report(space, arch, outputs(ctx.data.test), ctx.n_classes, options, thresholds=thresholds)
    x = first_images(ctx.data.test, latency_images, ctx.resolution(arch), ctx.device)
    policy = default_policy(space) if options.policy == "auto" else options.policy
    lat = batch1_latency(net, x, get_policy(policy), thresholds)
    backbone = space.costs(arch, ctx.n_classes)["backbone_macs"]
    predicted = 1.0 - test["avg_macs"] / backbone
    return {
        **{k: test[k] for k in ("top1", "backbone_top1", "exit_ratio", "avg_macs", "thresholds")},
        "backbone_macs": backbone, "predicted_saving": predicted, "latency": lat,
        "measured_over_predicted": lat["measured_saving"] / predicted if predicted > 0 else None,
    }  # fmt: skip


if __name__ == "__main__":
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    sys.exit(main())
