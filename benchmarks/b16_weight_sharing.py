"""B16: weight-sharing and gradient-based NAS on NAS-Bench-201, the DARTS space and OFA MobileNetV3 (CPU).

    .venv/bin/python benchmarks/b16_weight_sharing.py [--seeds 0 1 2] [--variants darts darts-robust ...]
        [--tau_cells 200] [--out benchmarks/results/b16] [--figure docs/img/b16_weight_sharing.png]
        [--report_only]

Every variant runs ``train.py METHOD --space SPACE --preset cpu --seed S`` (plus the variant's
flags, :data:`VARIANTS`) as its own process, once per seed, into ``<out>/runs/<variant>-s<S>``;
a finished run (``final/net.stats``) is kept, an interrupted one is resumed (``--resume``), so the
script can be stopped and started again. Per run: the wall time, the derived cell, how many of its
6 edges are parameter-free (``none``, ``skip_connect``, ``avg_pool_3x3``: DARTS's collapse
signature), and the 12-epoch table's CIFAR-10 validation and test top-1 of that cell (with its
CIFAR-100 and ImageNet16-120 test top-1 for reference). ``darts-space`` and ``pcdarts-space``
search the DARTS cell space (no table): the derived genotype's skip connections and parameter-free
operations in its normal cell (the collapse signature) and the params of DARTS's CIFAR network
built from it, next to the published DARTS V2 and PC-DARTS cells'. ``proxyless`` searches OFA
MobileNetV3 under a Note10 latency target and is compared with ``msunas --benchmark ofa_note10`` at
the same latency.

Weight-sharing ranking: ``--tau_cells`` cells drawn uniformly (``np.random.default_rng(seed)``),
each scored by the ``oneshot`` evaluator (inherited weights, BatchNorm recalibrated, cross-entropy
and top-1 on held-out training images) in the supernet of the ``spos`` run of that seed (and of
``enas``); Kendall tau and Spearman of the loss (what SPOS ranks by: lower is better) against the
table's CIFAR-10 test column, the tau of inherited top-1, and #params (the issue's bar: tau >= 0.40;
#params reaches 0.38 on this table). Written to ``<out>/b16.json`` and
``<out>/b16.md``; the figure shows the derived cells' test top-1 per variant and the ranking scatter.
The tuning of the CPU presets used seed 100 and the table's validation column only.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.io import read_json, write_json  # noqa: E402
from nas.plugins import load_plugins  # noqa: E402

load_plugins()

from benchmarks.nb201 import get_dataset, load_table  # noqa: E402
from NasSearchSpace.nb201 import NB201Space, cell_ops  # noqa: E402

# variant -> (train.py mode, search space, extra flags)
VARIANTS: dict[str, tuple[str, str, list[str]]] = {
    "darts": ("darts", "nb201", []),
    "darts-robust": ("darts", "nb201", ["--robust"]),
    "darts-2nd": ("darts", "nb201", ["--order", "2"]),
    "pcdarts": ("pcdarts", "nb201", []),
    "pcdarts-robust": ("pcdarts", "nb201", ["--robust"]),
    "enas": ("enas", "nb201", []),
    "spos": ("spos", "nb201", []),
    "proxyless": ("proxyless", "mobilenetv3", []),
    "darts-space": ("darts", "darts", []),
    "darts-space-robust": ("darts", "darts", ["--robust"]),
    "pcdarts-space": ("pcdarts", "darts", []),
}
PARAMETER_FREE = ("none", "skip_connect", "avg_pool_3x3", "max_pool_3x3")  # the last: DARTS space only
ANCHORS = {  # 200-epoch NAS-Bench-201 C10 / C100 / IN16 test accuracy, from the papers (context only)
    "DARTS": (54.30, 15.61, 16.32),
    "PC-DARTS": (93.41, 67.48, 41.31),
    "DrNAS": (94.36, 73.51, 46.34),
    "ENAS": (53.89, 13.96, 14.84),
    "GDAS": (93.61, 70.70, 41.71),
}
TOP10, TOP1 = 85.6, 88.1  # CIFAR-10 12-epoch test: top 10% / top 1% of the table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--tau_cells", type=int, default=200, help="cells ranked by each supernet (0: skip)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "b16"))
    p.add_argument("--figure", default=str(ROOT / "docs" / "img" / "b16_weight_sharing.png"))
    p.add_argument("--report_only", action="store_true", help="report what is on disk, run nothing")
    p.add_argument(
        "--extra", default="", help="more train.py flags for every run, one string: --extra='--epochs 2'"
    )
    return p.parse_args(argv)


def table_value(arch: str, dataset: str, split: str) -> float:
    """The 12-epoch table's top-1 (%) of ``arch`` on ``dataset``'s ``split`` (val or test)."""
    table = load_table()
    return float(table.column(f"{get_dataset(dataset).prefix}-{split}")[table.row(arch)])


def run_one(variant: str, seed: int, out: str, extra: list[str]) -> dict[str, Any]:
    """Run (or resume, or read) one variant and seed; its row for the report."""
    mode, space_name, flags = VARIANTS[variant]
    save = os.path.join(out, "runs", f"{variant}-s{seed}")
    final = os.path.join(save, "final", "net.stats")
    timing = os.path.join(save, "b16_seconds.json")
    if not os.path.isfile(final):
        resume = os.path.isdir(save) and any(f.endswith(".stats") for f in os.listdir(save))
        fresh = ["--space", space_name, "--preset", "cpu", "--seed", str(seed)]
        args = ["--resume", save] if resume else fresh
        cmd = [sys.executable, str(ROOT / "train.py"), mode, *args, *([] if resume else [*flags, *extra])]
        cmd += [] if resume else ["--save", save, "--plot_every", "0"]
        print(" ".join(cmd), flush=True)
        t0 = time.time()
        subprocess.run(cmd, check=True, cwd=ROOT)
        before = read_json(timing, "timing")["seconds"] if os.path.isfile(timing) else 0.0
        write_json(timing, {"seconds": before + time.time() - t0})
    stats = read_json(final, "net.stats")
    arch = stats["arch"]
    row = {"variant": variant, "seed": seed, "space": space_name, "arch": arch, "run": save}
    row["seconds"] = read_json(timing, "timing")["seconds"] if os.path.isfile(timing) else None
    if space_name == "mobilenetv3":
        return {**row, **proxyless_row(stats, save, seed, out)}
    if space_name == "darts":
        return {**row, **genotype_row(arch)}
    row["parameter_free_edges"] = sum(op in PARAMETER_FREE for op in cell_ops(arch))
    for ds in ("cifar10", "cifar100", "imagenet16"):
        row[f"{ds}_test"] = table_value(arch, ds, "test")
    row["cifar10_val"] = table_value(arch, "cifar10", "val")
    return row


def genotype_row(arch: dict) -> dict[str, Any]:
    """A DARTS-space genotype's collapse signature (skip connections and parameter-free operations
    of its normal cell, of 8) and the params of DARTS's CIFAR network (36 channels, 20 cells) built
    from it (no table scores this space)."""
    from weightsharing.darts_space import DartsSpace

    normal = [op for op, _ in arch["normal"]]
    return {
        "normal_skips": normal.count("skip_connect"),
        "normal_parameter_free": sum(op in PARAMETER_FREE for op in normal),
        "params": DartsSpace().costs(arch)["params"],
    }


def proxyless_row(stats: dict, save: str, seed: int, out: str) -> dict[str, Any]:
    """The derived network's LUT latency against the run's target, its ``ofa_note10`` top-1, and the
    best top-1 of an ``msunas --benchmark ofa_note10`` run (same seed) at no more latency."""
    from nas.search.archive import read_stats
    from nas.search.loop import latest_stats, stats_description

    target = float(stats_description(read_stats(latest_stats(save))).strategy.options.target_latency)
    latency, top1 = float(stats["metrics"]["latency"]), float(stats["metrics"]["top1"])
    points = msunas_note10(seed, out)
    within = [p for p in points if p[0] <= latency]
    best = max(within, key=lambda p: p[1]) if within else (float("nan"), float("nan"))
    return {
        "target_latency": target,
        "latency": latency,
        "latency_ratio": latency / target,
        "top1": top1,
        "msunas_latency": best[0],
        "msunas_top1": best[1],
        "msunas_points": points,
    }


def msunas_note10(seed: int, out: str) -> list[list[float]]:
    """``[latency, top1]`` of every architecture an ``msunas --benchmark ofa_note10 --seed S`` run
    evaluated (run once, kept in ``<out>/runs/msunas-note10-s<S>/b16_points.json``)."""
    from benchmarks.runs import run_preset

    save = os.path.join(out, "runs", f"msunas-note10-s{seed}")
    done = os.path.join(save, "b16_points.json")
    if not os.path.isfile(done):
        shutil.rmtree(save, ignore_errors=True)  # an interrupted run starts again (about 3 minutes)
        print(f"msunas --benchmark ofa_note10 --seed {seed} --save {save}", flush=True)
        _, metrics, _, _ = run_preset("ofa_note10", save, {"seed": seed})
        write_json(done, {"points": [[float(m["latency"]), float(m["top1"])] for m in metrics]})
    return read_json(done, "points")["points"]


def supernet_ranking(run: str, seed: int, n: int) -> dict[str, Any]:
    """Kendall tau / Spearman of the run's inherited-weight loss (and top-1) against the table over
    ``n`` cells."""
    from scipy.stats import kendalltau, spearmanr

    from nas.search.cli import resolve
    from nas.search.factory import build_evaluator

    spec = resolve(
        ["--benchmark", "nb201", "--evaluator", "oneshot", "--supernet_path", run, "--seed", str(seed)]
    )
    evaluator = build_evaluator(spec)
    space = NB201Space()
    cells = list({space.arch_id(a): a for a in space.sample(n, np.random.default_rng(seed))}.values())
    t0 = time.time()
    scores = [evaluator.measure(a) for a in cells]
    seconds = (time.time() - t0) / len(cells)
    loss = np.array([s["inherited_loss"] for s in scores])
    top1 = np.array([s["top1"] for s in scores])
    test = np.array([table_value(a, "cifar10", "test") for a in cells])
    params = np.array([space.costs(a)["params"] for a in cells])
    return {
        "cells": len(cells),
        "kendall": float(kendalltau(-loss, test)[0]),
        "spearman": float(spearmanr(-loss, test)[0]),
        "top1_kendall": float(kendalltau(top1, test)[0]),
        "params_kendall": float(kendalltau(params, test)[0]),
        "seconds_per_cell": seconds,
        "points": [[float(a), float(b)] for a, b in zip(loss, test, strict=True)],
    }


def _minutes(row: dict) -> str:
    return f"{row['seconds'] / 60:.1f}" if row["seconds"] else "-"


def report(rows: list[dict], ranking: dict[str, dict], out: str, figure: str) -> None:
    cells = [r for r in rows if r["space"] == "nb201"]
    macro = [r for r in rows if r["space"] == "mobilenetv3"]
    genotypes = [r for r in rows if r["space"] == "darts"]
    lines = []
    if cells:
        lines += [
            "| variant | seed | C10 test | C10 val | C100 test | IN16 test | param-free edges | minutes "
            "| cell |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in cells:
            lines.append(
                f"| {r['variant']} | {r['seed']} | {r['cifar10_test']:.2f} | {r['cifar10_val']:.2f} | "
                f"{r['cifar100_test']:.2f} | {r['imagenet16_test']:.2f} | {r['parameter_free_edges']}/6 | "
                f"{_minutes(r)} | `{r['arch']}` |"
            )
        lines += ["", "| variant | mean C10 test | seeds in the top 10% (>= 85.6) |", "|---|---|---|"]
    by_variant: dict[str, list[dict]] = {}
    for r in cells:
        by_variant.setdefault(r["variant"], []).append(r)
    for v, rs in by_variant.items():
        top = sum(r["cifar10_test"] >= TOP10 for r in rs)
        lines.append(f"| {v} | {np.mean([r['cifar10_test'] for r in rs]):.2f} | {top}/{len(rs)} |")
    if macro:
        lines += [
            "",
            "| proxyless seed | target ms | derived ms (ratio) | within 5% | ofa_note10 top-1 | "
            "msunas top-1 at <= derived ms (its ms) | minutes |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in macro:
            ok = "yes" if abs(r["latency_ratio"] - 1) <= 0.05 else "no"
            lines.append(
                f"| {r['seed']} | {r['target_latency']:.1f} | {r['latency']:.2f} ({r['latency_ratio']:.3f}) "
                f"| {ok} | {r['top1']:.2f} | {r['msunas_top1']:.2f} ({r['msunas_latency']:.2f}) "
                f"| {_minutes(r)} |"
            )
    if genotypes:
        from weightsharing.darts_space import DARTS_V2, PC_DARTS

        published = ", ".join(
            f"{k} {genotype_row(a)['params']:.2f} M"
            for k, a in (("DARTS_V2", DARTS_V2), ("PC_DARTS", PC_DARTS))
        )
        lines += [
            "",
            "| DARTS space variant | seed | normal cell: skips / parameter-free of 8 "
            f"| params at 36 ch, 20 cells (M; published: {published}) | minutes |",
            "|---|---|---|---|---|",
        ]
        for r in genotypes:
            lines.append(
                f"| {r['variant']} | {r['seed']} | {r['normal_skips']} / {r['normal_parameter_free']} | "
                f"{r['params']:.2f} | {_minutes(r)} |"
            )
    if ranking:
        lines += [
            "",
            "| supernet | cells | Kendall tau (loss) | Spearman (loss) | Kendall tau (top-1) | #params tau "
            "| s/cell |",
            "|---|---|---|---|---|---|---|",
        ]
        for key, r in ranking.items():
            lines.append(
                f"| {key} | {r['cells']} | {r['kendall']:.3f} | {r['spearman']:.3f} | "
                f"{r['top1_kendall']:.3f} | {r['params_kendall']:.3f} | {r['seconds_per_cell']:.2f} |"
            )
    text = "\n".join(lines) + "\n"
    Path(out, "b16.md").write_text(text)
    write_json(os.path.join(out, "b16.json"), {"runs": rows, "ranking": ranking, "anchors": ANCHORS})
    print(text)
    _figure(by_variant, ranking, macro, figure)


def _figure(
    by_variant: dict[str, list[dict]], ranking: dict[str, dict], macro: list[dict], path: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p, shown in (("cells", by_variant), ("ranking", ranking), ("macro", macro)) if shown]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    axes = dict(zip(panels, axes[0], strict=True))
    if "cells" in axes:
        ax = axes["cells"]
        for i, rs in enumerate(by_variant.values()):
            ys = [r["cifar10_test"] for r in rs]
            ax.scatter([i] * len(ys), ys, color="C0", zorder=3)
            ax.hlines(np.mean(ys), i - 0.3, i + 0.3, color="C3")
        ax.axhline(TOP10, color="grey", ls="--", lw=1, label="top 10% of the table (85.6)")
        ax.axhline(36.84, color="grey", ls=":", lw=1, label="all-skip cell (36.84)")
        ax.set_xticks(range(len(by_variant)), list(by_variant), rotation=20)
        ax.set_ylabel("derived cell: CIFAR-10 12-epoch test top-1 (%)")
        ax.set_title("derived cells (dots: seeds, red: mean)", fontsize=10)
        ax.legend(fontsize=8)
    if "ranking" in axes:
        ax = axes["ranking"]
        for i, (key, r) in enumerate(ranking.items()):
            pts = np.array(r["points"])
            ax.scatter(
                pts[:, 0], pts[:, 1], s=6, alpha=0.5, color=f"C{i}", label=f"{key}: tau {r['kendall']:.2f}"
            )
        ax.set_xlabel("inherited-weight held-out loss (lower is better)")
        ax.invert_xaxis()
        ax.set_ylabel("table CIFAR-10 test top-1 (%)")
        ax.set_title("weight-sharing ranking", fontsize=10)
        ax.legend(fontsize=7)
    if "macro" in axes:
        ax = axes["macro"]
        for i, r in enumerate(macro):
            pts = np.array(r["msunas_points"])
            ax.scatter(pts[:, 0], pts[:, 1], s=5, alpha=0.3, color=f"C{i}", label=f"msunas seed {r['seed']}")
            ax.scatter(r["latency"], r["top1"], marker="*", s=140, color=f"C{i}", edgecolor="k", zorder=3)
        ax.axvline(macro[0]["target_latency"], color="grey", ls="--", lw=1, label="target")
        ax.set_xlabel("Note10 LUT latency (ms)")
        ax.set_ylabel("ofa_note10 ImageNet top-1 (%)")
        ax.set_title("ProxylessNAS (stars) vs msunas archives", fontsize=10)
        ax.legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for variant in args.variants:
        for seed in args.seeds:
            save = os.path.join(args.out, "runs", f"{variant}-s{seed}")
            if args.report_only and not os.path.isfile(os.path.join(save, "final", "net.stats")):
                continue
            rows.append(run_one(variant, seed, args.out, shlex.split(args.extra)))
    ranking = {}
    if args.tau_cells > 0:
        cache = os.path.join(args.out, "ranking.json")
        done = read_json(cache, "ranking") if os.path.isfile(cache) else {}
        for variant in ("spos", "enas"):
            for seed in args.seeds:
                key, run = f"{variant}-s{seed}", os.path.join(args.out, "runs", f"{variant}-s{seed}")
                if (
                    key not in done
                    and os.path.isfile(os.path.join(run, "final", "net.stats"))
                    and not args.report_only
                ):
                    done[key] = supernet_ranking(run, seed, args.tau_cells)
                    write_json(cache, done)
        ranking = {k: v for k, v in done.items()}
    report(rows, ranking, args.out, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
