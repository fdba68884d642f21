"""B14: every search strategy on the NAS-Bench-201 12-epoch table, single objective.

.venv/bin/python benchmarks/b14_strategies.py [--seeds 100] [--datasets cifar10 cifar100 imagenet16]
    [--strategies random re ls bo rl pnas] [--budget 300] [--n_doe 10] [--n_iter 10]
    [--set STRATEGY:KEY=VALUE ...] [--multi_seeds 10] [--out benchmarks/results/b14]

Per strategy, dataset and seed: msunas.py's ``--benchmark nb201`` preset made single-objective
(``--sec_obj none``), ``--n_doe`` initial cells then ``--n_iter`` per iteration up to ``--budget``
evaluations, in this process, without plots. After ``b`` evaluations the figure is the test
top-1 (``-test`` column) of the evaluated cell with the best validation top-1 (``-val``; ties:
the first evaluated), what a search can pick without seeing the test split; reported at 50, 100
and ``--budget`` evaluations as mean, standard deviation and 95% interval of the mean over the
seeds, with the anytime curve in ``docs/img/b14_strategies.png``. Every strategy is anytime (none
plans for its total budget), so one run of ``--budget`` evaluations gives every smaller budget.
Runs are cached one JSON line each in ``OUT/runs.jsonl``: an interrupted benchmark resumes.

Multi-objective (``--multi_seeds`` > 0): ``bo`` (Thompson sampling, non-dominated sorting,
hypervolume gain) against ``msunas`` on B2 (validation error vs FLOPs, 150 evaluations, cifar10),
HV ratio per seed (``benchmarks/b2_nb201.py``'s run).

Anchors (cifar10, 100 evaluations, means of 300 seeds): random 88.11, REA 88.57, local search
88.76, random-forest BO with Thompson sampling 88.88; best possible 89.03 (cifar100 61.04,
imagenet16 38.27). Goals: at 100 evaluations >= 88.90 / 60.75 / 37.80; at 300 within 0.05 of the
best possible on cifar10.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from nas.plugins import load_plugins  # noqa: E402

load_plugins()

from benchmarks.b2_single_nb201 import best_possible  # noqa: E402
from benchmarks.runs import run_preset  # noqa: E402
from nas.config import parse_overrides  # noqa: E402
from nas.errors import UserError  # noqa: E402

STRATEGIES = ["random", "re", "ls", "bo", "rl", "pnas"]
DATASETS = ["cifar10", "cifar100", "imagenet16"]
GOALS_100 = {"cifar10": 88.90, "cifar100": 60.75, "imagenet16": 37.80}
ANCHORS_C10_100 = {"random": 88.11, "re": 88.57, "ls": 88.76, "bo (RF, TS)": 88.88}


def anytime(metrics: list[dict]) -> list[float]:
    """After each evaluation: the test top-1 of the best-by-validation cell so far."""
    out, best_val, test = [], -np.inf, np.nan
    for m in metrics:
        if m["top1"] > best_val:
            best_val, test = m["top1"], m["top1_test"]
        out.append(float(test))
    return out


def run_one(strategy: str, dataset: str, seed: int, args, options: dict, runs_dir: str) -> dict:
    iterations = -(-(args.budget - args.n_doe) // args.n_iter)
    flat = {
        "sec_obj": "none", "n_doe": args.n_doe, "n_iter": args.n_iter, "iterations": iterations,
        "plot_every": -1, "strategy": strategy, "dataset": dataset, "seed": seed, **options,
    }  # fmt: skip
    save = os.path.join(runs_dir, f"{strategy}_{dataset}_{seed}")
    _, metrics, wall, _ = run_preset("nb201", save, flat)
    shutil.rmtree(save)  # 1,800 run directories would take 8 GB: the curve is all that is kept
    return {
        "strategy": strategy, "dataset": dataset, "seed": seed, "options": options,
        "curve": anytime(metrics[: args.budget]), "wall_s": wall,
    }  # fmt: skip


def summarise(rows: list[dict], budgets: list[int]) -> dict:
    out = {}
    for b in budgets:
        v = np.array([r["curve"][min(b, len(r["curve"])) - 1] for r in rows])
        out[str(b)] = {
            "mean": float(v.mean()),
            "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "ci95": float(1.96 * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0,
            "n": len(v),
        }
    return out


def plot(rows: list[dict], datasets: list[str], strategies: list[str], best: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, d in zip(axes[0], datasets, strict=True):
        for s in strategies:
            curves = [r["curve"] for r in rows if r["dataset"] == d and r["strategy"] == s]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            mean = np.mean([c[:n] for c in curves], axis=0)
            ax.plot(np.arange(1, n + 1), mean, label=f"{s} ({len(curves)} seeds)")
        ax.axhline(best[d], color="k", ls=":", lw=1, label="best possible")
        ax.axhline(GOALS_100[d], color="r", ls="--", lw=0.8, label="goal at 100")
        ax.axvline(100, color="0.7", lw=0.8)
        ax.set(
            title=f"NAS-Bench-201 12 epochs, {d}",
            xlabel="evaluations",
            ylabel="test top-1 of best-by-val (%)",
        )
        lo = np.percentile([r["curve"][49] for r in rows if r["dataset"] == d and len(r["curve"]) >= 50], 10)
        ax.set_ylim(lo, best[d] + 0.3 * (best[d] - lo))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def multi_objective(seeds: int, out: str, runs_dir: str) -> dict:
    from benchmarks.b2_nb201 import run_seed

    res = {}
    for strategy, options in (("msunas", {}), ("bo", {"strategy": "bo", "acquisition": "ts"})):
        rows = [
            run_seed(s, "cifar10", "as" if strategy == "msunas" else "gp", runs_dir, options)
            for s in range(seeds)
        ]
        hv = np.array([r["hv_ratio"] for r in rows])
        res[strategy] = {
            "hv_ratio_mean": float(hv.mean()), "hv_ratio_median": float(np.median(hv)),
            "hv_ratio_min": float(hv.min()),
            "n_evals": [r["n_evals"] for r in rows], "wall_s": float(np.mean([r["wall_s"] for r in rows])),
        }  # fmt: skip
        print(
            f"B2 multi-objective {strategy}: HV ratio mean {hv.mean():.4f} median {np.median(hv):.4f} "
            f"min {hv.min():.4f} over {seeds} seeds, {res[strategy]['wall_s']:.1f} s a run",
            flush=True,
        )
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=100, help="seeds 0..N-1 per strategy and dataset")
    p.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS)
    p.add_argument("--strategies", nargs="+", default=STRATEGIES)
    p.add_argument(
        "--budget", type=int, default=300, help="evaluations per run (reported at 50, 100 and this)"
    )
    p.add_argument("--n_doe", type=int, default=10, help="initial random cells")
    p.add_argument("--n_iter", type=int, default=10, help="cells evaluated per iteration")
    p.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="STRATEGY:KEY=VALUE",
        help="a strategy's options, e.g. bo:acquisition=ts",
    )
    p.add_argument(
        "--multi_seeds", type=int, default=10, help="seeds of the multi-objective comparison (0: skip)"
    )
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "b14"))
    p.add_argument("--figure", default=str(ROOT / "docs" / "img" / "b14_strategies.png"))
    args = p.parse_args(argv)
    options: dict[str, dict] = {s: {} for s in args.strategies}
    try:
        for item in args.set:
            strategy, _, kv = item.partition(":")
            if strategy not in options or not kv:
                raise UserError(
                    f"--set {item!r}: expected STRATEGY:KEY=VALUE with a strategy of --strategies"
                )
            options[strategy].update(parse_overrides([kv]))
    except UserError as e:
        p.error(str(e))
    if args.budget < max(100, args.n_doe + 1) or args.n_doe < 3 or args.n_iter < 1:
        p.error("--budget must be >= 100 and > --n_doe, --n_doe >= 3, --n_iter >= 1")
    os.makedirs(args.out, exist_ok=True)
    cache = os.path.join(args.out, "runs.jsonl")
    done: dict[tuple, dict] = {}
    if os.path.exists(cache):
        with open(cache) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    done[
                        (r["strategy"], r["dataset"], r["seed"], json.dumps(r["options"], sort_keys=True))
                    ] = r
    t0 = time.time()
    rows = []
    with tempfile.TemporaryDirectory(prefix="b14_") as tmp:
        for dataset in args.datasets:
            for strategy in args.strategies:
                key_opts = json.dumps(options[strategy], sort_keys=True)
                for seed in range(args.seeds):
                    key = (strategy, dataset, seed, key_opts)
                    if key not in done or len(done[key]["curve"]) < args.budget:
                        done[key] = run_one(strategy, dataset, seed, args, options[strategy], tmp)
                        with open(cache, "a") as f:
                            f.write(json.dumps(done[key]) + "\n")
                    rows.append(done[key])
                s = summarise(
                    [r for r in rows if r["dataset"] == dataset and r["strategy"] == strategy], [100]
                )
                print(f"{dataset} {strategy}: mean at 100 {s['100']['mean']:.2f}", flush=True)
        budgets = sorted({50, 100, args.budget})
        best = {d: best_possible(d) for d in args.datasets}
        table = {
            d: {
                s: summarise([r for r in rows if r["dataset"] == d and r["strategy"] == s], budgets)
                for s in args.strategies
            }
            for d in args.datasets
        }
        multi = multi_objective(args.multi_seeds, args.out, tmp) if args.multi_seeds > 0 else None
    print(
        f"\nB14 NAS-Bench-201 (12 epochs), test top-1 of the best-by-val cell, mean +- 95% CI, "
        f"{args.seeds} seeds"
    )
    for b in budgets:
        print(f"\n{b} evaluations\n| strategy | " + " | ".join(args.datasets) + " |")
        print("|---|" + "---|" * len(args.datasets))
        for s in args.strategies:
            cells = [
                f"{table[d][s][str(b)]['mean']:.2f} +- {table[d][s][str(b)]['ci95']:.2f}"
                for d in args.datasets
            ]
            print(f"| {s} | " + " | ".join(cells) + " |")
        print("| best possible | " + " | ".join(f"{best[d]:.2f}" for d in args.datasets) + " |")
    goals = {}
    for d in args.datasets:
        top = max(args.strategies, key=lambda s: table[d][s]["100"]["mean"])
        goals[f"{d}@100"] = {"strategy": top, "mean": table[d][top]["100"]["mean"], "goal": GOALS_100[d]}
        goals[f"{d}@100"]["met"] = goals[f"{d}@100"]["mean"] >= GOALS_100[d]
    if "cifar10" in args.datasets:
        top = max(args.strategies, key=lambda s: table["cifar10"][s][str(args.budget)]["mean"])
        m = table["cifar10"][top][str(args.budget)]["mean"]
        key = f"cifar10@{args.budget} (best possible - 0.05)"
        goal = best["cifar10"] - 0.05
        goals[key] = {"strategy": top, "mean": m, "goal": goal, "met": m >= goal}
    for name, g in goals.items():
        verdict = "met" if g["met"] else "NOT met"
        print(f"goal {name} >= {g['goal']:.2f}: best {g['strategy']} {g['mean']:.2f}: {verdict}")
    plot(rows, args.datasets, args.strategies, best, args.figure)
    summary = {
        "schema": "b14/1",
        "budget": args.budget, "n_doe": args.n_doe, "n_iter": args.n_iter, "seeds": args.seeds,
        "options": options, "table": table, "best_possible": best, "goals": goals,
        "anchors_cifar10_100": ANCHORS_C10_100, "multi_objective": multi, "wall_s": time.time() - t0,
    }  # fmt: skip
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"wall time {time.time() - t0:.0f} s; wrote {args.out}/summary.json and {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
