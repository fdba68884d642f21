"""B2': single-objective search on NAS-Bench-201: test top-1 of the best-by-validation cell.

.venv/bin/python benchmarks/b2_single_nb201.py [--seeds 10] [--datasets cifar10 cifar100 imagenet16]
    [--strategies msunas re random] [--set KEY=VALUE ...] [--out benchmarks/results/b2_single.json]

Per strategy, dataset and seed: msunas.py's ``--benchmark nb201`` preset made single-objective
with 100 evaluations (``--sec_obj none --n_doe 20 --n_iter 10 --iterations 8``), in this
process; the figure is the test top-1 (``-test`` column) of the cell with the best validation
top-1 (``-val`` column) among those evaluated: what a search can pick without seeing the test
split. Median over the seeds. Anchors (BENCHMARKS.md, means of 300 seeds on cifar10): random
search 88.11, regularised evolution 88.35 (P10, S3) to 88.57 (P30, S10), local search 88.76,
random-forest BO with Thompson sampling 88.88; best possible 89.03 (cifar100 61.04, imagenet16
38.27). Goal: the default strategy (msunas) >= 88.95 on cifar10 and above every anchor on the others.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from nas.plugins import load_plugins  # noqa: E402

load_plugins()

from benchmarks.nb201 import get_dataset, load_table  # noqa: E402
from benchmarks.runs import run_preset  # noqa: E402
from nas.config import parse_overrides  # noqa: E402
from nas.errors import UserError  # noqa: E402

BUDGET = {"sec_obj": "none", "n_doe": 20, "n_iter": 10, "iterations": 8}  # 20 + 8 x 10 = 100
ANCHORS = {"random": 88.11, "re": 88.35, "ls": 88.76, "bo": 88.88}  # cifar10, BENCHMARKS.md


def best_possible(dataset: str) -> float:
    """Test top-1 of the cell with the best validation top-1 over the whole table."""
    table, ds = load_table(), get_dataset(dataset)
    val, test = table.column(f"{ds.prefix}-val"), table.column(f"{ds.prefix}-test")
    return float(test[np.argmax(val)])


def run_one(strategy: str, dataset: str, seed: int, runs_dir: str, overrides: dict) -> dict:
    save = os.path.join(runs_dir, f"b2s_{strategy}_{dataset}_seed{seed}")
    flat = {**BUDGET, "strategy": strategy, "dataset": dataset, "seed": seed, **overrides}
    _, metrics, wall, _ = run_preset("nb201", save, flat)
    best = max(metrics, key=lambda m: m["top1"])
    return {"n_evals": len(metrics), "best_val": best["top1"], "test": best["top1_test"], "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1")
    p.add_argument("--datasets", nargs="+", default=["cifar10", "cifar100", "imagenet16"])
    p.add_argument("--strategies", nargs="+", default=["msunas", "re", "random"])
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="more msunas.py options")
    p.add_argument("--runs_dir", default=None, help="run directories (default: a temporary directory)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "b2_single.json"))
    args = p.parse_args(argv)
    try:
        overrides = parse_overrides(args.set)
    except UserError as e:
        p.error(str(e))
    t0 = time.time()
    results: dict[str, dict[str, list[dict]]] = {}
    with tempfile.TemporaryDirectory(prefix="b2s_") as tmp:
        for dataset in args.datasets:
            for strategy in args.strategies:
                rows = []
                for seed in range(args.seeds):
                    rows.append(run_one(strategy, dataset, seed, args.runs_dir or tmp, overrides))
                results.setdefault(dataset, {})[strategy] = rows
                tests = [r["test"] for r in rows]
                print(
                    f"{dataset} {strategy}: median test top-1 {np.median(tests):.2f} "
                    f"(min {min(tests):.2f}, max {max(tests):.2f}) over {len(rows)} seeds, "
                    f"{np.median([r['wall_s'] for r in rows]):.1f} s per run",
                    flush=True,
                )
    print(f"\nB2' NAS-Bench-201, 100 evaluations, test top-1 of the best-by-val cell, {args.seeds} seeds")
    print("| strategy | " + " | ".join(args.datasets) + " |")
    print("|---|" + "---|" * len(args.datasets))
    summary: dict[str, dict[str, float]] = {}
    for strategy in args.strategies:
        cells = []
        for dataset in args.datasets:
            med = float(np.median([r["test"] for r in results[dataset][strategy]]))
            summary.setdefault(strategy, {})[dataset] = med
            cells.append(f"{med:.2f}")
        print(f"| {strategy} | " + " | ".join(cells) + " |")
    best = {d: best_possible(d) for d in args.datasets}
    print("| best possible | " + " | ".join(f"{best[d]:.2f}" for d in args.datasets) + " |")
    if "cifar10" in args.datasets and "msunas" in summary:
        goal = summary["msunas"]["cifar10"] >= 88.95
        print(f"goal (msunas >= 88.95 on cifar10): {'met' if goal else 'NOT met'}")
    print(f"wall time {time.time() - t0:.0f} s")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(
            {
                "schema": "b2_single/1",
                "budget": BUDGET,
                "overrides": overrides,
                "seeds": args.seeds,
                "median_test_top1": summary,
                "best_possible": best,
                "anchors_cifar10": ANCHORS,
                "runs": results,
                "wall_s": time.time() - t0,
            },
            f,
            indent=1,
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
