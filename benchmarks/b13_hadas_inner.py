"""B13: HADAS's inner search (early exits + DVFS) against its exhaustive front, on the Xavier profile.

taskset -c 1 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/b13_hadas_inner.py [--backbones 4]
    [--epochs 2] [--steps 100] [--seeds 0 1 2 3 4] [--evals 50 500] [--profile jetson-agx-xavier]
    [--error_margins 1 2 5] [--synthetic] [--supernet PATH] [--seed 0] [--out benchmarks/results/b13]

1. Exit data: ``--backbones`` eemobilenetv3 backbones at 32 px (the first is the space's middle
   network, the others sampled with ``--seed``), each with a head at all four stage boundaries
   (EDANAS heads), built from a quickstart supernet (B8's, ``benchmarks/results/b8/supernet``,
   when it is there, else trained into ``<out>/supernet``) and trained like a B8 candidate
   (``ee_joint``, ``--epochs`` x ``--steps`` steps of 64 images, on core 1); every exit's outputs
   on the 1,000 held-out validation images of the embedded CIFAR-10 give the score-margin scores
   and the per-exit correctness; the costs come from the space's exact counts (bytes moved: see
   :func:`hardware.hadas.backbone_costs`, FP16 on the Xavier profile). Cached in
   ``<out>/exit_data/``. ``--synthetic`` replaces the trained networks by a documented synthetic
   exit model (said so in the output).
2. Per backbone, on the profile: the exhaustive front of the joint space (625 threshold
   configurations x 3,654 DVFS settings), of exits-only (DVFS at the top levels) and of DVFS-only
   (no early exit).
3. NSGA-II (:func:`hardware.hadas.inner_search`, population 10) with ``--evals`` evaluations per
   backbone, for every seed: the hypervolume of its front over the exhaustive front's (objectives
   normalised by the exhaustive front: ideal 0, nadir 1, reference point 1.1). Three DVFS
   encodings: ``hadas_genes`` (HADAS's: one level index per domain), ``front_genes`` (one index
   into the settings the backbone's costs allow on a front) -- both count one evaluation per
   (exit configuration, setting) -- and ``model_dvfs`` (NSGA-II over the exit genes only, each
   evaluated configuration's DVFS front taken from the profile's model: one evaluation per exit
   configuration, possible only because the profile is a model). Goals: >= 0.9 at 50
   evaluations (HADAS's budget), >= 0.99 at 500.
4. Joint vs exits-only vs DVFS-only at equal latency: for each latency budget on a grid, the
   lowest expected energy of each mode's exhaustive front among the points within the budget and
   within ``--error_margins`` points of the backbone's error without exits; the joint search's
   energy saving over each (mean over the budgets all three reach). Goal: >= 10% over both.
5. The first backbone on ``local-vm`` (no DVFS): the search warns that energy is collinear with
   latency (energy / latency is one constant).
Figure ``docs/img/b13_hadas_inner.png`` (and ``<out>/b13.png``); numbers in ``<out>/b13.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from nas.plugins import load_plugins  # noqa: E402

load_plugins()

from hardware.hadas import (  # noqa: E402
    N_BOUNDARIES,
    ExitData,
    backbone_costs,
    exhaustive_front,
    exit_data_from_outputs,
    hv_ratio,
    inner_search,
)
from hardware.profiles import get_profile  # noqa: E402

ENCODINGS = {"levels": "hadas_genes", "front": "front_genes", "model": "model_dvfs"}
B8_SUPERNET = ROOT / "benchmarks" / "results" / "b8" / "supernet" / "supernet.pth"


def supernet_path(args: argparse.Namespace, out: Path) -> str:
    if args.supernet:
        return args.supernet
    if B8_SUPERNET.is_file():
        return str(B8_SUPERNET)
    from benchmarks.runs import quickstart_supernet

    return quickstart_supernet(out)


def trained_exit_data(args: argparse.Namespace, out: Path, dtype_bytes: int) -> list[ExitData]:
    """Exit statistics of ``--backbones`` trained early-exit networks (cached per backbone)."""
    import torch

    from EarlyExits.measures import collect_outputs
    from nas.plugins import plugin_list
    from nas.search.description import RunSpec
    from nas.search.factory import build_evaluator

    cache = out / "exit_data"
    cache.mkdir(parents=True, exist_ok=True)
    flat = dict(
        search_space="eemobilenetv3", lr=32, ur=32, dataset="cifar10_embedded", vld_size=1000,
        supernet_path=supernet_path(args, out), bn_batches=5, trainer="ee_joint", measures=["accuracy"],
        n_epochs=args.epochs, steps_per_epoch=args.steps, batch_size=64, base_lr=0.01, seed=args.seed,
        device="cpu", save=str(out / "unused"),
    )  # fmt: skip
    evaluator = build_evaluator(RunSpec.from_flat(flat, plugins=plugin_list()))
    space = evaluator.space
    rng = np.random.default_rng(args.seed)
    archs = [space.middle(), *space.sample(args.backbones - 1, rng)]
    data = []
    for arch in archs:
        arch = space.validate({**arch, "t": [0.1] * N_BOUNDARIES})
        aid = space.arch_id(arch)
        path = cache / f"{aid}_e{args.epochs}_s{args.steps}.npz"
        if not path.is_file():
            t0 = time.time()
            torch.manual_seed(args.seed)
            net, metrics = evaluator.network(arch)
            outputs = collect_outputs(net, evaluator.ctx.valid_batches(arch))
            costs = backbone_costs(space, arch, evaluator.n_classes, dtype_bytes)
            d = exit_data_from_outputs(outputs, "score_margin", costs, source=f"trained eemobilenetv3 {aid}")
            np.savez(path, scores=d.scores, correct=d.correct, source=d.source,
                     **{k: getattr(d, k) for k in costs})  # fmt: skip
            print(f"backbone {aid}: trained and scored in {time.time() - t0:.1f} s, final top-1 "
                  f"{100 * d.correct[:, -1].mean():.1f}%")  # fmt: skip
        z = np.load(path)
        data.append(
            ExitData(z["scores"], z["correct"], z["backbone_macs"], z["backbone_mb"], z["head_macs"],
                     z["head_mb"], str(z["source"]))
        )  # fmt: skip
    return data


def synthetic_exit_data(args: argparse.Namespace, dtype_bytes: int) -> list[ExitData]:
    """A synthetic exit model (no training): per sample a difficulty u ~ U(0, 1); exit b's
    score-margin is clip(c_b (1 - u) + 0.1 N(0, 1)) with c = 0.5, 0.6, 0.75, 0.9 (deeper exits more
    confident), and its prediction is right with probability clip(a_b + 0.4 (0.5 - u)), a = 45, 55,
    65, 72, 78% (exits 1-4, final); costs of the space's middle network at 32 px."""
    from nas.search.description import RunSpec  # noqa: F401  (plug-ins loaded above)
    from nas.space import SEARCH_SPACES

    space = SEARCH_SPACES.get("eemobilenetv3")(lr=32, ur=32)
    costs = backbone_costs(space, space.middle(), 10, dtype_bytes)
    out = []
    for i in range(args.backbones):
        rng = np.random.default_rng(args.seed + i)
        n = 1000
        u = rng.random(n)
        s = np.clip(
            (1 - u)[:, None] * np.array([0.5, 0.6, 0.75, 0.9]) + 0.1 * rng.standard_normal((n, 4)), 0, 1
        )
        acc = np.array([0.45, 0.55, 0.65, 0.72, 0.78])
        correct = rng.random((n, 5)) < np.clip(acc[None] + 0.4 * (0.5 - u)[:, None], 0, 1)
        out.append(ExitData(s, correct, **costs, source=f"synthetic exit model, seed {args.seed + i}"))
    return out


def min_energy_curve(front: Any, budgets: np.ndarray, max_error: float) -> np.ndarray:
    """Lowest expected energy within each latency budget among front points with error <= max_error
    (nan where none)."""
    F = front.F[front.F[:, 0] <= max_error + 1e-9]
    out = np.full(len(budgets), np.nan)
    for i, b in enumerate(budgets):
        ok = F[F[:, 1] <= b + 1e-12]
        if len(ok):
            out[i] = ok[:, 2].min()
    return out


def plot(report: dict, curves: dict, fronts: dict, stem: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nas.analysis import save_figure

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    for i, (mode, F) in enumerate(fronts.items()):
        ax.scatter(F[:, 1], F[:, 2], s=8, color=f"C{i}", alpha=0.6, label=f"{mode} ({len(F)} points)")
    ax.set_xlabel("expected latency (ms)")
    ax.set_ylabel("expected energy (mJ)")
    ax.set_title(f"exhaustive fronts, backbone 0 ({report['profile']})")
    ax.legend()
    ax = axes[1]
    budgets = curves["budgets"]
    for i, mode in enumerate(("joint", "exits", "dvfs")):
        ax.plot(budgets, curves[mode], "-", color=f"C{i}", label=mode)
    ax.set_xlabel("latency budget (ms)")
    ax.set_ylabel("lowest expected energy (mJ)")
    ax.set_title(f"backbone 0, error <= no-exit error + {curves['margin']:g}")
    ax.legend()
    ax = axes[2]
    hv = report["hv_ratio"]
    xs = np.arange(len(hv))
    labels = []
    for j, (key, v) in enumerate(hv.items()):
        ax.errorbar(j, v["mean"], yerr=[[v["mean"] - v["min"]], [v["max"] - v["mean"]]], fmt="o", color="C3")
        labels.append(key.replace("_", "\n"))
    ax.axhline(0.9, color="k", ls=":", lw=1)
    ax.axhline(0.99, color="k", ls="--", lw=1)
    ax.set_xticks(xs, labels, fontsize=8)
    ax.set_ylabel("hypervolume / exhaustive (mean, min-max)")
    ax.set_title("NSGA-II vs the exhaustive inner front")
    fig.suptitle("B13: HADAS inner search (exits + DVFS) on " + report["profile"])
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110, bbox_inches="tight")
    save_figure(fig, str(stem))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbones", type=int, default=4)
    p.add_argument("--epochs", type=int, default=2, help="training epochs per backbone")
    p.add_argument("--steps", type=int, default=100, help="steps per epoch per backbone")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--evals", type=int, nargs="+", default=[50, 500])
    p.add_argument("--profile", default="jetson-agx-xavier")
    p.add_argument("--error_margins", type=float, nargs="+", default=[1.0, 2.0, 5.0])
    p.add_argument(
        "--synthetic", action="store_true", help="a synthetic exit model instead of trained networks"
    )
    p.add_argument("--supernet", default=None, help="supernet checkpoint (default: B8's, else trained)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "b13"))
    args = p.parse_args(argv)
    t_start = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    profile = get_profile(args.profile)
    dtype = profile.dtype_bytes
    data = synthetic_exit_data(args, dtype) if args.synthetic else trained_exit_data(args, out, dtype)
    t_data = time.time() - t_start
    report: dict[str, Any] = {
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "profile": profile.name, "profile_info": profile.describe(),
        "exit_data": "synthetic exit model (no trained network)" if args.synthetic else "trained networks",
        "backbones": [d.summary() for d in data],
    }  # fmt: skip
    hv: dict[str, list[float]] = {}
    savings: dict[str, list[float]] = {}
    per_backbone = []
    curves0: dict[str, Any] = {}
    fronts0: dict[str, np.ndarray] = {}
    t_exh = t_search = 0.0
    for b, d in enumerate(data):
        t0 = time.time()
        fr = {m: exhaustive_front(d, profile, mode=m) for m in ("joint", "exits", "dvfs")}
        t_exh += time.time() - t0
        row: dict[str, Any] = {
            "candidates": fr["joint"].evaluations, "front_points": len(fr["joint"].F),
            "front_exit_configs": len({tuple(g[:N_BOUNDARIES]) for g in fr["joint"].genes}),
            "front_settings": len({tuple(g[N_BOUNDARIES:]) for g in fr["joint"].genes}),
            "exhaustive_s": time.time() - t0,
            "hv_exits_only": hv_ratio(fr["exits"], fr["joint"]),
            "hv_dvfs_only": hv_ratio(fr["dvfs"], fr["joint"]),
        }  # fmt: skip
        t0 = time.time()
        for n in args.evals:
            for enc, name in ENCODINGS.items():
                key = f"{n}_evals_{name}"
                runs = [inner_search(d, profile, n, s, dvfs_genes=enc) for s in args.seeds]
                vals = [hv_ratio(r, fr["joint"]) for r in runs]
                hv.setdefault(key, []).extend(vals)
                row[f"hv_{key}"] = vals
        t_search += time.time() - t0
        # equal latency: energy of each mode's best point within a latency budget and an error bound
        backbone_error = float(fr["dvfs"].F[:, 0].min())  # the backbone without exits
        for margin in args.error_margins:
            max_error = backbone_error + margin
            lo = max(float(fr[m].F[fr[m].F[:, 0] <= max_error + 1e-9, 1].min()) for m in fr)
            hi = float(fr["dvfs"].F[:, 1].max())
            budgets = np.linspace(lo, max(hi, lo * 1.0001), 40)
            curve = {m: min_energy_curve(fr[m], budgets, max_error) for m in fr}
            both = np.all([np.isfinite(curve[m]) for m in fr], axis=0)
            for m in ("exits", "dvfs"):
                saving = float(np.mean(1.0 - curve["joint"][both] / curve[m][both]))
                savings.setdefault(f"{m}_margin_{margin:g}", []).append(saving)
                row[f"joint_saving_vs_{m}_margin_{margin:g}"] = saving
            if b == 0 and margin == args.error_margins[0]:
                curves0 = {"budgets": budgets, "margin": margin, **curve}
                fronts0 = {m: fr[m].F[fr[m].F[:, 0] <= max_error + 1e-9] for m in fr}
        row["backbone_error"] = backbone_error
        per_backbone.append(row)
        shown = {k: (np.round(v, 3).tolist() if isinstance(v, list) else v) for k, v in row.items()}
        print(json.dumps(shown))
    report["per_backbone"] = per_backbone
    report["hv_ratio"] = {
        k: {"mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v)), "runs": len(v)}
        for k, v in hv.items()
    }
    report["goals"] = {
        k: {
            "goal": 0.9 if k.startswith("50_") else 0.99,
            "met": v["mean"] >= (0.9 if k.startswith("50_") else 0.99),
        }
        for k, v in report["hv_ratio"].items()
        if k.split("_")[0] in ("50", "500")
    }
    report["joint_energy_saving_at_equal_latency"] = {
        m: {"mean": float(np.mean(v)), "per_backbone": v, "goal": 0.10, "met": float(np.mean(v)) >= 0.10}
        for m, v in savings.items()
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        local = exhaustive_front(data[0], get_profile("local-vm"))
    report["local_vm"] = {
        "front_points": len(local.F), "notes": local.notes, "warned": [str(w.message) for w in caught],
        "energy_over_latency_w": sorted({round(float(e / t), 6) for _, t, e in local.F}),
    }  # fmt: skip
    report["time_s"] = {
        "exit_data": t_data,
        "exhaustive": t_exh,
        "searches": t_search,
        "total": time.time() - t_start,
    }
    (out / "b13.json").write_text(json.dumps(report, indent=1, default=float))
    plot(report, curves0, fronts0, out / "b13", ROOT / "docs" / "img" / "b13_hadas_inner.png")
    print(json.dumps({k: report[k] for k in ("exit_data", "hv_ratio", "joint_energy_saving_at_equal_latency",
                                             "local_vm", "time_s")}, indent=1, default=float))  # fmt: skip
    print(f"B13 wall time: {time.time() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
