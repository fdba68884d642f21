"""B7: how the search's own cost grows with the archive (OFA Note10 oracle, CPU, seconds).

.venv/bin/python benchmarks/b7_overhead.py [--sizes 100 1000 5000] [--repeats 1] [--set KEY=VALUE ...]
    [--out benchmarks/results/b7.json]

For each archive size N: an archive of N distinct random OFA MobileNetV3 w1.2 subnets scored by
the ``ofa_note10`` oracle (OFA's accuracy predictor, Note10 latency tables), then one ``msunas``
iteration's search overhead with the preset's settings (Adaptive Switching surrogate with its
5-fold cross-validation of five models, NSGA-II 100 x 60 on the predicted top-1 and the exact
latency, ``hvi`` subset selection of 8): the wall time of ``strategy.ask``, what the loop records
as ``search_s``. The surrogate fit alone is timed again separately for the breakdown.
Goal (BENCHMARKS.md): <= 10 s at 5,000 on 2 CPU cores, growing no faster than linearly from 1,000.
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
from nas.plugins import load_plugins, plugin_list  # noqa: E402

load_plugins()

from nas.config import parse_overrides  # noqa: E402
from nas.errors import UserError  # noqa: E402
from nas.result import Result  # noqa: E402
from nas.search.description import RunSpec  # noqa: E402
from nas.search.factory import build_run  # noqa: E402
from nas.surrogate import fit_surrogate  # noqa: E402


def overhead(n: int, seed: int, overrides: dict, tmp: str) -> dict:
    spec = RunSpec.from_flat(
        {"benchmark": "ofa_note10", "save": tmp, "seed": seed, **overrides}, plugin_list()
    )
    run = build_run(spec, log=lambda *_: None)
    space, ctx = run.space, run.ctx
    rng = np.random.default_rng([seed, 99])
    archs: dict[str, dict] = {}
    while len(archs) < n:
        for a in space.sample(n - len(archs), rng):
            archs.setdefault(space.arch_id(a), a)
    metrics = run.evaluator.measure_many(list(archs.values()))
    for (aid, arch), m in zip(archs.items(), metrics, strict=True):
        ctx.archive.add(Result(aid, arch, {**m, **run.costs.metrics(arch)}), 0)
    _, _, F = ctx.archive_scores()
    nadir = F.max(axis=0)
    ctx.hv_ref = (nadir + 0.01 * np.abs(nadir) + 1e-12).tolist()
    t0 = time.perf_counter()
    chosen = run.strategy.ask(np.random.default_rng([seed, 1]))
    ask_s = time.perf_counter() - t0
    X = np.stack([space.features(r.arch) for r in ctx.archive.ok()])
    y = np.array([r.metrics["top1"] for r in ctx.archive.ok()])
    t0 = time.perf_counter()
    _, quality = fit_surrogate(run.strategy.options.predictor, X, y, np.random.default_rng([seed, 1]))
    fit_s = time.perf_counter() - t0
    return {
        "n": n,
        "search_s": ask_s,
        "surrogate_fit_s": fit_s,
        "rest_s": max(0.0, ask_s - fit_s),
        "chosen": len(chosen),
        "surrogate": quality.get("chosen", run.strategy.options.predictor),
        "tau": quality.get("tau"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    p.add_argument(
        "--repeats", type=int, default=1, help="runs per size (seeds 0..R-1); the median is reported"
    )
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="more msunas.py options")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "b7.json"))
    args = p.parse_args(argv)
    try:
        overrides = parse_overrides(args.set)
    except UserError as e:
        p.error(str(e))
    rows = []
    with tempfile.TemporaryDirectory(prefix="b7_") as tmp:
        for n in args.sizes:
            runs = [
                overhead(n, seed, overrides, os.path.join(tmp, f"{n}_{seed}")) for seed in range(args.repeats)
            ]
            row = {
                k: float(np.median([r[k] for r in runs])) for k in ("search_s", "surrogate_fit_s", "rest_s")
            }
            row.update(n=n, runs=runs, surrogate=[r["surrogate"] for r in runs])
            rows.append(row)
            print(
                f"archive {n:5d}: search overhead {row['search_s']:6.2f} s (surrogate fit "
                f"{row['surrogate_fit_s']:.2f} s, NSGA-II + selection {row['rest_s']:.2f} s; "
                f"surrogate {', '.join(row['surrogate'])})",
                flush=True,
            )
    print("\n| archive | search overhead s | surrogate fit s | NSGA-II + selection s | per 1,000 archs s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['n']:,} | {r['search_s']:.2f} | {r['surrogate_fit_s']:.2f} | {r['rest_s']:.2f} | "
            f"{1000 * r['search_s'] / r['n']:.2f} |"
        )
    by_n = {r["n"]: r["search_s"] for r in rows}
    goal = None
    if 5000 in by_n and 1000 in by_n:
        goal = bool(by_n[5000] <= 10.0 and by_n[5000] / by_n[1000] <= 5.0)
        print(
            f"growth 1,000 -> 5,000: x{by_n[5000] / by_n[1000]:.2f} (linear: x5); goal (<= 10 s at 5,000, "
            f"no faster than linear): {'met' if goal else 'NOT met'}"
        )
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"schema": "b7/1", "overrides": overrides, "rows": rows, "goal_met": goal}, f, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
