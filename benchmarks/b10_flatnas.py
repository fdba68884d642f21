"""B10: FlatNAS (top1_robust) vs the plain search, SAM vs SGD fine-tuning (embedded CIFAR-10, CPU).

.venv/bin/python benchmarks/b10_flatnas.py [--n_doe 16] [--n_iter 6] [--iterations 2] [--epochs 2]
    [--steps 40] [--n_draws 5] [--sigma 0.05] [--alpha 0.5] [--ood_images 500] [--seed 0]
    [--finetune_epochs 3] [--finetune_steps 60] [--seeds 0 1 2] [--rho 0.05] [--set KEY=VALUE ...]
    [--out benchmarks/results/b10]

1. A supernet trained as in the quickstart (``<out>/supernet``, re-used when present).
2. Two searches of ``mobilenetv3`` at 32 px with the same budget, the same training per candidate
   and the same measures (``accuracy`` and ``robustness``, so both archives hold the flatness):
   ``plain`` (top-1 error vs MACs) and ``flatnas`` (``top1_robust`` with ``--alpha`` vs MACs).
   Resumable (each run continues from its latest stats).
3. Each run's final front on its own objectives (FlatNAS: ``top1_robust`` with the last
   iteration's alpha_norm): every front network, with the weights its evaluation trained, scored
   on the clean test split and on CIFAR-10-C generated from the first ``--ood_images`` test images
   (15 corruptions x 5 severities, seed ``--seed``): clean top-1, mean corruption error and its
   robustness from the archive. Reported: the mean corruption error of the FlatNAS front minus the
   plain front's at equal clean top-1 (the plain front's error interpolated linearly along its
   clean top-1), over the FlatNAS networks inside the plain front's top-1 range. Goal: < 0.
4. The FlatNAS front's most accurate network fine-tuned from those weights for
   ``--finetune_epochs`` x ``--finetune_steps`` with SGD and with SAM (``--rho``), once per seed of
   ``--seeds``, through ``train.py subnet``'s code with ``--ood_eval``: clean test error and mean
   corruption error, mean and standard deviation over the seeds. Goal: SAM lowers both.
Figures: ``fronts.png`` (validation top-1 vs MACs), ``ood.png`` (mean corruption error vs clean
test top-1 of both fronts), all numbers in ``b10.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from nas.plugins import load_plugins  # noqa: E402

load_plugins()

from benchmarks.runs import front, plot_fronts, quickstart_supernet, rebuild, resumable_search  # noqa: E402
from nas.config import parse_overrides  # noqa: E402
from nas.io import save_checkpoint, write_json  # noqa: E402
from nas.scoring import accuracy, batches_of  # noqa: E402
from nas.search.factory import build_evaluator  # noqa: E402
from nas.search.objectives import Scorer, get_objective, metric_table  # noqa: E402
from nas.training.after import with_after_training  # noqa: E402
from nas.training.subnet import SubnetTrainConfig, train_subnet  # noqa: E402
from robustness.ood import evaluate_set  # noqa: E402
from robustness.ood_data import open_ood_set  # noqa: E402


def final_front(run: dict, objectives: list[Any]) -> list[Any]:
    """The archive's results on the run's final front (re-scored as its last iteration)."""
    ok = list(run["archive"].ok())
    rows = [{**r.metrics, "iteration": run["archive"].iteration_of[r.arch_id]} for r in ok]
    values = Scorer(objectives).score(metric_table(rows))  # as the last iteration's stats score it
    return [ok[i] for i in front(values)]


def score_front(run: dict, results: list[Any], ood: Any, out: Path) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        net, ev = rebuild(run, r)
        ctx = ev.ctx
        res = r.arch["r"]
        test = accuracy(net, batches_of(ctx.data.test, res, ctx.device, 200, 0, 0))["top1"]
        o = evaluate_set(net, ood, ctx.data.test, ctx.device, res, progress=False)
        rows.append({
            "id": r.arch_id, "macs": r.metrics["macs"], "valid_top1": r.metrics["top1"],
            "robustness": r.metrics.get("robustness"), "test_top1": test,
            "ood_clean_error": o["clean_error"], "mean_corruption_error": o["mean_error"],
            "corruption_error": o["corruption_error"],
        })  # fmt: skip
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "corruption_error"}))
    write_json(out, rows)
    return rows


def equal_top1_gap(flat: list[dict], plain: list[dict]) -> dict[str, Any]:
    """FlatNAS's mean corruption error minus the plain front's, interpolated at the same clean top-1."""
    p = sorted(plain, key=lambda x: x["test_top1"])
    xs = np.array([x["test_top1"] for x in p])
    ys = np.array([x["mean_corruption_error"] for x in p])
    gaps = [
        f["mean_corruption_error"] - float(np.interp(f["test_top1"], xs, ys))
        for f in flat
        if xs[0] <= f["test_top1"] <= xs[-1]
    ]
    return {
        "compared": len(gaps), "mean_gap": float(np.mean(gaps)) if gaps else None,
        "gaps": gaps, "met": bool(gaps) and float(np.mean(gaps)) < 0,
    }  # fmt: skip


def finetune(args, run: dict, result: Any, common: dict, out: Path) -> dict[str, Any]:
    """SGD vs SAM fine-tuning of ``result`` from its evaluation weights, once per seed."""
    net, ev = rebuild(run, result)
    folder = out / "finetune"
    folder.mkdir(parents=True, exist_ok=True)
    ev.space.write_subnet(folder / "net.subnet", result.arch)
    save_checkpoint(folder / "init.pth", {"state_dict": net.state_dict()})
    config = with_after_training(SubnetTrainConfig)
    rows: dict[str, list[dict[str, float]]] = {"sgd": [], "sam": []}
    for opt in rows:
        for seed in args.seeds:
            save = folder / f"{opt}-s{seed}"
            stats = save / "net.stats"
            if not stats.is_file() or "ood" not in json.loads(stats.read_text()):
                cfg = config(
                    subnet=str(folder / "net.subnet"), init=str(folder / "init.pth"),
                    dataset=common["dataset"], vld_size=common["vld_size"], epochs=args.finetune_epochs,
                    steps_per_epoch=args.finetune_steps, batch_size=64, base_lr=0.01, optimizer=opt,
                    sam_rho=args.rho, warmup_epochs=0.0, seed=seed, save=str(save), resume=True,
                    ood_eval=True, ood_images=args.ood_images, ood_seed=args.seed,
                )  # fmt: skip
                train_subnet(cfg, log=lambda *_: None)
            s = json.loads(stats.read_text())
            rows[opt].append({
                "seed": seed, "clean_error": 100 - s["trained"]["top1"],
                "mean_corruption_error": s["ood"]["mean_error"],
            })  # fmt: skip
            print(json.dumps({"optimizer": opt, **rows[opt][-1]}))
    summary = {
        opt: {k: [float(np.mean([r[k] for r in v])), float(np.std([r[k] for r in v]))]
              for k in ("clean_error", "mean_corruption_error")}
        for opt, v in rows.items()
    }  # fmt: skip
    met = all(summary["sam"][k][0] < summary["sgd"][k][0] for k in ("clean_error", "mean_corruption_error"))
    return {"network": result.arch_id, "runs": rows, "mean_std": summary, "met": met}


def plot_ood(fronts: dict[str, list[dict]], stem: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nas.analysis import save_figure

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for i, (name, rows) in enumerate(fronts.items()):
        rows = sorted(rows, key=lambda x: x["test_top1"])
        ax.plot([r["test_top1"] for r in rows], [r["mean_corruption_error"] for r in rows], "o-",
                color=f"C{i}", label=f"{name} front")  # fmt: skip
    ax.set_xlabel("clean test top-1 %")
    ax.set_ylabel("mean corruption error % (generated CIFAR-10-C)")
    ax.set_title("B10: corruption error of the final fronts")
    ax.legend()
    save_figure(fig, str(stem))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n_doe", type=int, default=16)
    p.add_argument("--n_iter", type=int, default=6)
    p.add_argument("--iterations", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2, help="training epochs per candidate")
    p.add_argument("--steps", type=int, default=40, help="steps per epoch per candidate")
    p.add_argument("--n_draws", type=int, default=5, help="weight-noise draws of the robustness measure")
    p.add_argument("--sigma", type=float, default=0.05, help="weight-noise sigma of the robustness measure")
    p.add_argument("--alpha", type=float, default=0.5, help="top1_robust's weight of the top-1 error")
    p.add_argument("--ood_images", type=int, default=500, help="test images per corruption and severity")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--finetune_epochs", type=int, default=3)
    p.add_argument("--finetune_steps", type=int, default=60)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="fine-tuning seeds")
    p.add_argument("--rho", type=float, default=0.05, help="SAM's radius")
    p.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="more msunas options for both searches"
    )
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "b10"))
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = dict(
        dataset="cifar10_embedded", vld_size=1000, lr=32, ur=32, supernet_path=quickstart_supernet(out),
        bn_batches=5, seed=args.seed, n_epochs=args.epochs, steps_per_epoch=args.steps, batch_size=64,
        base_lr=0.01, n_doe=args.n_doe, n_iter=args.n_iter, iterations=args.iterations, predictor="as",
        measures=["accuracy", "robustness"], n_draws=args.n_draws, sigma=[args.sigma], sec_obj="macs",
    )  # fmt: skip
    common.update(parse_overrides(args.set))
    runs = {
        "plain": resumable_search(common, out / "plain"),
        "flatnas": resumable_search(
            {**common, "first_obj": "top1_robust", "alpha": args.alpha}, out / "flatnas"
        ),
    }
    plot_fronts([(runs["plain"], "plain", "macs"), (runs["flatnas"], "FlatNAS", "macs")], "M MACs",
                "B10: FlatNAS (top1_robust) vs plain search, embedded CIFAR-10", out / "fronts")  # fmt: skip
    objectives = {
        "plain": [get_objective("top1"), get_objective("macs")],
        "flatnas": [get_objective("top1_robust", alpha=args.alpha), get_objective("macs")],
    }
    evaluator = build_evaluator(runs["plain"]["spec"])
    evaluator.ensure_setup()
    ood = open_ood_set(common["dataset"], evaluator.ctx.data.test, None, args.ood_images, args.seed)
    fronts = {name: final_front(run, objectives[name]) for name, run in runs.items()}
    scored = {name: score_front(runs[name], fronts[name], ood, out / f"front_{name}.json") for name in runs}
    plot_ood(scored, out / "ood")
    best = max(fronts["flatnas"], key=lambda r: r.metrics["top1"])
    report = {
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "searches": {n: {"evaluations": len(r["archive"])} for n, r in runs.items()},
        "fronts": scored,
        "equal_top1": equal_top1_gap(scored["flatnas"], scored["plain"]),
        "finetune": finetune(args, runs["flatnas"], best, common, out),
        "threads": torch.get_num_threads(),
    }
    write_json(out / "b10.json", report)
    print(json.dumps({"equal_top1": report["equal_top1"], "finetune": report["finetune"]["mean_std"]}))
    return 0


if __name__ == "__main__":
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    sys.exit(main())
