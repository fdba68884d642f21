"""B3: the analytic cost model of OFA MobileNetV3 is exact and >= 1000x faster than build + hooks.

    python benchmarks/b3_cost_model.py [--n 1000] [--n_hooks 100] [--out benchmarks/results/b3.json]

Random subnets cycle through every (width, class count, resolution) combination. The analytic
model (``space.costs``: validation + arithmetic) runs on all ``--n``; the first ``--n_hooks``
are also built with ``space.build`` (a fresh supernet each, as a user would) and measured with
forward hooks and with ``torch.utils.flop_counter.FlopCounterMode``. A mismatch is any subnet
whose analytic params, MACs or activations differ (``!=``) from the hooks', or whose hook MACs
differ from FlopCounterMode / 2.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from nas.plugins import load_plugins  # noqa: E402

load_plugins()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from nas.cli import run_cli  # noqa: E402
from nas.costs import count_costs, to_millions  # noqa: E402
from nas.device import resolve_device  # noqa: E402
from nas.io import write_json  # noqa: E402
from nas.space import get_search_space  # noqa: E402

GOAL_RATIO = 1000


def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def float_list(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def make_cases(n, widths, class_counts, resolutions, seed):
    """``n`` (width, n_classes, arch) cases cycling through all combinations, seeded genes."""
    rng = np.random.default_rng(seed)
    spaces = {w: get_search_space("mobilenetv3", lr=32, ur=32, width_mult=w) for w in widths}
    combos = list(itertools.product(resolutions, class_counts, widths))
    cases = []
    for i in range(n):
        r, n_classes, w = combos[i % len(combos)]
        cases.append((w, n_classes, {**spaces[w].sample(1, rng)[0], "r": r}))
    return spaces, cases


def run(args) -> dict:
    torch.manual_seed(args.seed)
    load_before = os.getloadavg()[0]  # other jobs on the CPU slow the hooks down a lot
    device = resolve_device(args.device)
    spaces, cases = make_cases(args.n, args.widths, args.n_classes, args.resolutions, args.seed)

    t0 = time.perf_counter()
    analytic = [spaces[w].costs(arch, n_classes) for w, n_classes, arch in cases]
    analytic_s = (time.perf_counter() - t0) / len(cases)

    if args.n_hooks > 0:  # warm-up (first-call allocations and dispatch), not timed
        w, n_classes, arch = cases[0]
        count_costs(spaces[w].build(arch, n_classes=n_classes), arch["r"], device)
    rows = []  # one per hooked subnet
    for (w, n_classes, arch), expected in zip(cases[: args.n_hooks], analytic, strict=False):
        t0 = time.perf_counter()
        net = spaces[w].build(arch, n_classes=n_classes)
        t1 = time.perf_counter()
        hooks = count_costs(net, arch["r"], device)
        t2 = time.perf_counter()
        net.to(device).eval()
        with FlopCounterMode(display=False) as flops, torch.no_grad():
            net(torch.zeros(1, 3, arch["r"], arch["r"], device=device))
        rows.append(
            {
                "w": w,
                "n_classes": n_classes,
                "r": arch["r"],
                "build_s": t1 - t0,
                "hooks_s": t2 - t1,
                "mismatch": to_millions(hooks) != expected,
                "flop_counter_mismatch": flops.get_total_flops() != 2 * hooks["macs"],
            }
        )

    build_hooks_s = statistics.fmean(r["build_s"] + r["hooks_s"] for r in rows) if rows else float("nan")
    by_r = {
        r: {
            "n": len(sel),
            "build_s": statistics.fmean(x["build_s"] for x in sel),
            "hooks_s": statistics.fmean(x["hooks_s"] for x in sel),
        }
        for r in args.resolutions
        if (sel := [x for x in rows if x["r"] == r])
    }
    return {
        "schema": "b3/1",
        "config": {
            "n": args.n,
            "n_hooks": len(rows),
            "widths": args.widths,
            "n_classes": args.n_classes,
            "resolutions": args.resolutions,
            "seed": args.seed,
            "device": str(device),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_1min": [load_before, os.getloadavg()[0]],
        },
        "mismatches": sum(x["mismatch"] for x in rows),
        "flop_counter_mismatches": sum(x["flop_counter_mismatch"] for x in rows),
        "analytic_s_per_subnet": analytic_s,
        "build_s_per_subnet": statistics.fmean(x["build_s"] for x in rows) if rows else float("nan"),
        "hooks_s_per_subnet": statistics.fmean(x["hooks_s"] for x in rows) if rows else float("nan"),
        "build_hooks_s_per_subnet": build_hooks_s,
        "speed_ratio": build_hooks_s / analytic_s,
        "goal_ratio": GOAL_RATIO,
        "by_resolution": by_r,
    }


def table(res: dict) -> str:
    c = res["config"]
    lines = [
        f"B3 cost model: {c['n']} random OFA MobileNetV3 subnets, widths {c['widths']}, "
        f"classes {c['n_classes']}, resolutions {c['resolutions']}, {c['device']}, {c['threads']} threads, "
        f"load average {c['load_average_1min'][0]:.1f} -> {c['load_average_1min'][1]:.1f}",
        f"{'method':<22}{'subnets':>8}{'mismatches':>12}{'mean time/subnet':>20}",
        f"{'analytic':<22}{c['n']:>8}{'':>12}{res['analytic_s_per_subnet'] * 1e6:>17.1f} us",
        f"{'build + hooks':<22}{c['n_hooks']:>8}{res['mismatches']:>12}"
        f"{res['build_hooks_s_per_subnet'] * 1e3:>17.1f} ms",
        f"{'  of which build':<22}{'':>8}{'':>12}{res['build_s_per_subnet'] * 1e3:>17.1f} ms",
        f"{'  of which hooks':<22}{'':>8}{'':>12}{res['hooks_s_per_subnet'] * 1e3:>17.1f} ms",
        f"{'FlopCounterMode / 2':<22}{c['n_hooks']:>8}{res['flop_counter_mismatches']:>12}",
        "build + hooks by resolution: "
        + ", ".join(
            f"{r}px {v['build_s'] * 1e3 + v['hooks_s'] * 1e3:.0f} ms" for r, v in res["by_resolution"].items()
        ),
        f"speed ratio (build + hooks / analytic): {res['speed_ratio']:,.0f}x (goal >= {res['goal_ratio']}x: "
        f"{'met' if res['speed_ratio'] >= res['goal_ratio'] else 'NOT met'}); "
        f"exact: {'yes' if res['mismatches'] == res['flop_counter_mismatches'] == 0 else 'NO'}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="subnets for the analytic model")
    p.add_argument("--n_hooks", type=int, default=100, help="of those, how many to build and hook")
    p.add_argument("--widths", type=float_list, default=[1.0, 1.2])
    p.add_argument("--n_classes", type=int_list, default=[10, 100, 1000])
    p.add_argument("--resolutions", type=int_list, default=[32, 64, 128, 160, 224])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="for the hooks: auto, cpu, cuda, cuda:N")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "b3.json"))
    args = p.parse_args(argv)
    res = run(args)
    print(table(res))
    write_json(args.out, res)
    print(f"wrote {args.out}")
    return 0 if res["mismatches"] == res["flop_counter_mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(run_cli(main))
