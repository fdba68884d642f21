"""B2: multi-objective search on NAS-Bench-201 (validation error vs FLOPs), HV ratio per seed.

.venv/bin/python benchmarks/b2_nb201.py [--seeds 5] [--dataset cifar10] [--predictor as]
    [--random_seeds 100] [--set KEY=VALUE ...] [--runs_dir DIR]
    [--out benchmarks/results/b2_<dataset>_<predictor>.json]

Runs msunas (``--benchmark nb201`` preset: 50 + 10 x 10 = 150 evaluations) in-process once per
seed, scores all evaluated (val error %, flops) points with ``benchmarks.nb201.hv_ratio`` and
compares with random search at the same number of evaluations (``random_search_hv_ratios``).
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

from benchmarks.nb201 import NB201Evaluator, hv_ratio, random_search_hv_ratios  # noqa: E402
from benchmarks.runs import run_preset  # noqa: E402
from nas.config import parse_overrides  # noqa: E402
from nas.errors import UserError  # noqa: E402
from nas.surrogate import list_surrogates  # noqa: E402


def run_seed(seed: int, dataset: str, predictor: str, runs_dir: str, overrides: dict | None = None) -> dict:
    save = os.path.join(runs_dir, f"b2_{dataset}_{predictor}_seed{seed}")
    evaluator = NB201Evaluator(dataset=dataset)
    flat = {"dataset": dataset, "predictor": predictor, "seed": seed, **(overrides or {})}
    # the archive as the run directory's last stats recorded it
    _, search_ok, wall, lines = run_preset("nb201", save, flat, evaluator)
    points = np.array([[100.0 - m["top1"], m["flops"]] for m in search_ok])
    best = max(search_ok, key=lambda m: m["top1"])  # best by validation accuracy
    return {
        "seed": seed,
        "n_evals": len(search_ok),
        "n_measured": evaluator.n_evals,
        "hv_ratio": hv_ratio(points, dataset),
        "best_val": best["top1"],
        "best_val_test": best["top1_test"],
        "best_test_seen": max(m["top1_test"] for m in search_ok),
        "wall_s": wall,
        "log_tail": lines[-1] if lines else "",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    p.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100", "imagenet16"])
    p.add_argument("--predictor", default="as", choices=list_surrogates())
    p.add_argument("--random_seeds", type=int, default=100, help="random-search seeds for the baseline")
    p.add_argument(
        "--set", nargs="+", default=[], metavar="KEY=VALUE", help="override msunas settings: selection=spread"
    )
    p.add_argument("--runs_dir", default=None, help="run directories (default: a temporary directory)")
    p.add_argument(
        "--out", default=None, help="JSON output (default benchmarks/results/b2_<dataset>_<predictor>.json)"
    )
    args = p.parse_args(argv)
    try:
        overrides = parse_overrides(args.set)
    except UserError as e:
        p.error(str(e))
    out = args.out or str(ROOT / "benchmarks" / "results" / f"b2_{args.dataset}_{args.predictor}.json")

    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="b2_") as tmp:
        runs_dir = args.runs_dir or tmp
        rows = []
        for seed in range(args.seeds):
            r = run_seed(seed, args.dataset, args.predictor, runs_dir, overrides)
            rows.append(r)
            print(
                f"seed {seed}: evals {r['n_evals']}  HV ratio {r['hv_ratio']:.4f}  "
                f"best val {r['best_val']:.2f} "
                f"(test {r['best_val_test']:.2f})  {r['wall_s']:.1f}s",
                flush=True,
            )
    n_evals = int(np.median([r["n_evals"] for r in rows]))
    rand = random_search_hv_ratios(n_evals, seeds=range(args.random_seeds), dataset=args.dataset)
    hv = np.array([r["hv_ratio"] for r in rows])
    test = np.array([r["best_val_test"] for r in rows])
    wall = time.time() - t_start

    print()
    print(f"B2 NAS-Bench-201 {args.dataset}, predictor {args.predictor}, {args.seeds} seeds")
    print("| seed | evals | HV ratio | best val top-1 | its test top-1 | wall s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['seed']} | {r['n_evals']} | {r['hv_ratio']:.4f} | {r['best_val']:.2f} | "
            f"{r['best_val_test']:.2f} | {r['wall_s']:.1f} |"
        )
    print(
        f"| median | {n_evals} | {np.median(hv):.4f} | | {np.median(test):.2f} | "
        f"{np.median([r['wall_s'] for r in rows]):.1f} |"
    )
    print(
        f"random search, {n_evals} evals, {args.random_seeds} seeds: HV ratio median {np.median(rand):.4f}, "
        f"mean {np.mean(rand):.4f}, max {np.max(rand):.4f}"
    )
    goal = bool(np.median(hv) >= 0.99 and max(r["n_evals"] for r in rows) <= 150)
    print(f"goal (median HV ratio >= 0.99 with <= 150 evaluations): {'met' if goal else 'NOT met'}")
    print(f"wall time {wall:.1f}s")

    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        json.dump(
            {
                "schema": "b2/1",
                "dataset": args.dataset,
                "predictor": args.predictor,
                "overrides": overrides,
                "runs": rows,
                "median_hv_ratio": float(np.median(hv)),
                "min_hv_ratio": float(hv.min()),
                "median_best_val_test": float(np.median(test)),
                "random": {
                    "n_evals": n_evals,
                    "seeds": args.random_seeds,
                    "hv_ratios": rand,
                    "median": float(np.median(rand)),
                    "mean": float(np.mean(rand)),
                },
                "goal_met": goal,
                "wall_s": wall,
            },
            f,
            indent=1,
        )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
