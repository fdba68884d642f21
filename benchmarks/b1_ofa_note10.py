"""B1: search efficiency on the OFA ImageNet predictor + Note10 latency, against OFA's EvolutionFinder.

.venv/bin/python benchmarks/b1_ofa_note10.py [--seeds 1] [--constraints 15 20 25 30 35 40]
    [--predictor as] [--peer_population 100] [--peer_generations 500] [--runs_dir DIR]
    [--out benchmarks/results/b1.json]

Per seed: msunas in-process with the ``--benchmark ofa_note10`` preset (100 + 25 x 8 = 300
evaluations, one multi-objective run: predicted top-1 vs Note10 latency); for each latency
constraint the best predicted top-1 among the evaluated archs within it. Peer: OFA's
``EvolutionFinder`` (``run_evolution_finder``, population 100, 500 generations, ~50k evaluations)
once per constraint. Second baseline: random search with as many distinct random archs
(``space.sample``) as the search evaluated. Hypervolume (pymoo) of (100 - top1, latency) of our
archive and of the random one with a common reference point, 1.01 x the nadir of their union.
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
from pymoo.indicators.hv import HV

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from nas.plugins import load_plugins  # noqa: E402

load_plugins()

from benchmarks.ofa_note10 import OFANote10Evaluator, run_evolution_finder  # noqa: E402
from benchmarks.runs import run_preset  # noqa: E402
from nas.config import parse_overrides  # noqa: E402
from nas.errors import UserError  # noqa: E402
from nas.surrogate import list_surrogates  # noqa: E402


def best_within(points: list[dict], constraint: float) -> dict | None:
    ok = [m for m in points if m["latency"] <= constraint]
    return max(ok, key=lambda m: m["top1"]) if ok else None


def run_search(
    seed: int, predictor: str, runs_dir: str, overrides: dict | None = None
) -> tuple[list[dict], int, float, list[str]]:
    save = os.path.join(runs_dir, f"b1_{predictor}_seed{seed}")
    evaluator = OFANote10Evaluator()
    flat = {"predictor": predictor, "seed": seed, **(overrides or {})}
    _, metrics, wall, lines = run_preset("ofa_note10", save, flat, evaluator)
    return metrics, evaluator.n_evals, wall, lines


def random_search(n: int, seed: int) -> tuple[list[dict], float]:
    evaluator = OFANote10Evaluator()
    space, rng = evaluator.space, np.random.default_rng([seed, 12345])
    t0 = time.time()
    archs: dict[str, dict] = {}
    while len(archs) < n:
        for a in space.sample(n - len(archs), rng):
            archs.setdefault(space.arch_id(a), a)
    metrics = evaluator.measure_many(list(archs.values()))
    return metrics, time.time() - t0


def objectives(metrics: list[dict]) -> np.ndarray:
    return np.array([[100.0 - m["top1"], m["latency"]] for m in metrics], dtype=float)


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1")
    p.add_argument("--constraints", type=float, nargs="+", default=[15, 20, 25, 30, 35, 40], help="Note10 ms")
    p.add_argument("--predictor", default="as", choices=list_surrogates())
    p.add_argument("--peer_population", type=int, default=100)
    p.add_argument("--peer_generations", type=int, default=500)
    p.add_argument("--no_peer", action="store_true", help="skip OFA's EvolutionFinder")
    p.add_argument(
        "--set", nargs="+", default=[], metavar="KEY=VALUE", help="override msunas settings: pop_size=100"
    )
    p.add_argument("--runs_dir", default=None, help="run directories (default: a temporary directory)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "b1.json"))
    args = p.parse_args(argv)
    try:
        overrides = parse_overrides(args.set)
    except UserError as e:
        p.error(str(e))

    t_start = time.time()
    runs = []
    with tempfile.TemporaryDirectory(prefix="b1_") as tmp:
        runs_dir = args.runs_dir or tmp
        for seed in range(args.seeds):
            ours, n_ours, wall_ours, lines = run_search(seed, args.predictor, runs_dir, overrides)
            print(
                f"seed {seed}: msunas {len(ours)} archs ({n_ours} evaluations) in {wall_ours:.1f}s",
                flush=True,
            )
            rand, wall_rand = random_search(len(ours), seed)
            union = np.vstack([objectives(ours), objectives(rand)])
            ref = 1.01 * union.max(axis=0)
            hv = HV(ref_point=ref)
            hv_ours, hv_rand = float(hv(objectives(ours))), float(hv(objectives(rand)))
            # normalised by the (ideal, reference) box, for readability
            box = float(np.prod(ref - union.min(axis=0)))
            per_c = []
            for c in args.constraints:
                o, r = best_within(ours, c), best_within(rand, c)
                row = {
                    "constraint": c,
                    "ours_top1": o and o["top1"],
                    "ours_latency": o and o["latency"],
                    "random_top1": r and r["top1"],
                    "random_latency": r and r["latency"],
                }
                if not args.no_peer:
                    t0 = time.time()
                    try:
                        pr = run_evolution_finder(
                            c,
                            population_size=args.peer_population,
                            generations=args.peer_generations,
                            seed=seed,
                        )
                        row.update(peer_top1=pr.top1, peer_latency=pr.latency, peer_evals=pr.n_evals)
                    except UserError as e:
                        row.update(peer_top1=None, peer_latency=None, peer_evals=0, peer_error=str(e))
                    row["peer_wall_s"] = time.time() - t0
                per_c.append(row)
                print(
                    f"  <= {c:g} ms: ours {fmt(row['ours_top1'])} @ {fmt(row['ours_latency'])}  "
                    f"peer {fmt(row.get('peer_top1'))} @ {fmt(row.get('peer_latency'))} "
                    f"({row.get('peer_evals', 0)} evals, {row.get('peer_wall_s', 0):.1f}s)  "
                    f"random {fmt(row['random_top1'])}",
                    flush=True,
                )
            runs.append(
                {
                    "seed": seed,
                    "n_archs": len(ours),
                    "n_evals": n_ours,
                    "search_wall_s": wall_ours,
                    "random_n": len(rand),
                    "random_wall_s": wall_rand,
                    "hv_ref": ref.tolist(),
                    "hv_ours": hv_ours,
                    "hv_random": hv_rand,
                    "hv_ours_norm": hv_ours / box,
                    "hv_random_norm": hv_rand / box,
                    "constraints": per_c,
                    "log": lines,
                }
            )
    wall = time.time() - t_start

    print()
    print(f"B1 ofa_note10 (predictor {args.predictor}, {args.seeds} seed(s))")
    for run in runs:
        print(f"seed {run['seed']}: ours {run['n_evals']} evaluations, search {run['search_wall_s']:.1f}s")
        print(
            "| Note10 <= ms | ours top-1 | (ms) | peer top-1 | (ms) | peer evals | peer s "
            "| ours - peer | random top-1 |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for r in run["constraints"]:
            diff = (
                r["ours_top1"] - r["peer_top1"]
                if r["ours_top1"] is not None and r.get("peer_top1") is not None
                else None
            )
            print(
                f"| {r['constraint']:g} | {fmt(r['ours_top1'])} | {fmt(r['ours_latency'])} | "
                f"{fmt(r.get('peer_top1'))} | {fmt(r.get('peer_latency'))} | {r.get('peer_evals', '-')} | "
                f"{fmt(r.get('peer_wall_s'), '.1f')} | {fmt(diff, '+.2f')} | {fmt(r['random_top1'])} |"
            )
        print(
            f"hypervolume (100 - top1, latency), ref {np.round(run['hv_ref'], 3).tolist()}: "
            f"ours {run['hv_ours']:.3f} "
            f"({run['hv_ours_norm']:.4f} of the box), random {run['random_n']} archs {run['hv_random']:.3f} "
            f"({run['hv_random_norm']:.4f}); ratio {run['hv_ours'] / run['hv_random']:.4f}"
        )
        peer_evals = sum(r.get("peer_evals", 0) for r in run["constraints"])
        met = all(
            r.get("peer_top1") is None or (r["ours_top1"] is not None and r["ours_top1"] >= r["peer_top1"])
            for r in run["constraints"]
        )
        has_peer = any(r.get("peer_top1") is not None for r in run["constraints"])
        verdict = ("met" if met else "NOT met") if has_peer else "n/a (no peer)"
        print(
            f"evaluations: ours {run['n_evals']} in total; peer {peer_evals} over {len(run['constraints'])} "
            f"constraints; goal (>= peer at every constraint): {verdict}"
        )
        run["goal_met"] = met if has_peer else None
    print(f"wall time {wall:.1f}s")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"schema": "b1/1", "args": vars(args), "runs": runs, "wall_s": wall}, f, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
