"""B4: surrogate quality on the ofa_note10 oracle (Kendall tau on held-out random archs).

.venv/bin/python benchmarks/b4_surrogates.py [--n_train 100] [--n_test 1000] [--seeds 3]
    [--surrogates as gp ...] [--out benchmarks/results/b4.json]

Per seed: n_train + n_test distinct random archs (``space.sample`` with ``default_rng(seed)``),
features ``space.features(arch)``, target top-1 error (100 - predicted top-1 %). Each surrogate of
``list_surrogates()`` is fitted on the training archs and scored (Kendall tau-b, Spearman rho,
rmse) on the test archs; the table shows the mean (and std) over seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from nas.plugins import load_plugins  # noqa: E402

load_plugins()

from benchmarks.ofa_note10 import OFANote10Evaluator  # noqa: E402
from nas.surrogate import get_surrogate, list_surrogates, quality  # noqa: E402


def sample_distinct(space, n: int, rng: np.random.Generator) -> list:
    archs: dict[str, dict] = {}
    while len(archs) < n:
        for a in space.sample(n - len(archs), rng):
            archs.setdefault(space.arch_id(a), a)
    return list(archs.values())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n_train", type=int, default=100)
    p.add_argument("--n_test", type=int, default=1000)
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    p.add_argument("--surrogates", nargs="+", default=None, help="default: every registered one")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "b4.json"))
    args = p.parse_args(argv)
    names = args.surrogates or list_surrogates()

    t_start = time.time()
    evaluator = OFANote10Evaluator()
    space = evaluator.space
    rows: dict[str, list[dict]] = {n: [] for n in names}
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        archs = sample_distinct(space, args.n_train + args.n_test, rng)
        X = np.stack([space.features(a) for a in archs])
        y = np.array([100.0 - m["top1"] for m in evaluator.measure_many(archs)])
        Xtr, ytr, Xte, yte = X[: args.n_train], y[: args.n_train], X[args.n_train :], y[args.n_train :]
        for name in names:
            t0 = time.time()
            model = get_surrogate(name, np.random.default_rng([seed, 1])).fit(Xtr, ytr)
            fit_s = time.time() - t0
            q = quality(yte, model.predict(Xte))
            q.update(seed=seed, fit_s=fit_s, chosen=getattr(model, "chosen", None))
            rows[name].append(q)
            extra = f" (chose {q['chosen']})" if q["chosen"] else ""
            print(
                f"seed {seed} {name:6s} tau {q['tau']:.4f}  rho {q['rho']:.4f}  fit {fit_s:.1f}s{extra}",
                flush=True,
            )
    wall = time.time() - t_start

    summary = {}
    print()
    print(f"B4 surrogates on ofa_note10: train {args.n_train}, test {args.n_test}, {args.seeds} seeds")
    print("| surrogate | Kendall tau (mean +- std) | Spearman rho | rmse (error %) | fit s |")
    print("|---|---|---|---|---|")
    for name in names:
        r = rows[name]
        tau = np.array([q["tau"] for q in r])
        summary[name] = {
            "tau_mean": float(tau.mean()),
            "tau_std": float(tau.std()),
            "rho_mean": float(np.mean([q["rho"] for q in r])),
            "rmse_mean": float(np.mean([q["rmse"] for q in r])),
            "fit_s_mean": float(np.mean([q["fit_s"] for q in r])),
        }
        s = summary[name]
        print(
            f"| {name} | {s['tau_mean']:.3f} +- {s['tau_std']:.3f} | {s['rho_mean']:.3f} | "
            f"{s['rmse_mean']:.3f} | {s['fit_s_mean']:.1f} |"
        )
    goal = summary.get("as", {}).get("tau_mean")
    if goal is not None:
        print(f"goal (as tau >= 0.85): {'met' if goal >= 0.85 else 'NOT met'} ({goal:.3f})")
    print(f"wall time {wall:.1f}s")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(
            {
                "schema": "b4/1",
                "n_train": args.n_train,
                "n_test": args.n_test,
                "seeds": args.seeds,
                "summary": summary,
                "runs": rows,
                "wall_s": wall,
            },
            f,
            indent=1,
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
