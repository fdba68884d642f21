"""Running searches for the benchmark scripts: a preset's run, in this process, from flat options."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from nas.plugins import plugin_list
from nas.search.archive import read_stats
from nas.search.description import RunSpec
from nas.search.factory import build_run
from nas.search.loop import Search, latest_stats


def run_preset(
    preset: str, save: str, overrides: dict[str, Any] | None = None, evaluator: Any = None
) -> tuple[Search, list[dict], float, list[str]]:
    """Run the ``--benchmark preset`` search with flat ``overrides`` (``seed``, ``sec_obj``, ...) into
    ``save``; ``evaluator`` replaces the preset's (to count its evaluations). Returns the search,
    the metrics of its successful evaluations as the run recorded them, the wall time and the log."""
    spec = RunSpec.from_flat({"benchmark": preset, "save": save, **(overrides or {})}, plugins=plugin_list())
    lines: list[str] = []
    t0 = time.time()
    search = Search(build_run(spec, evaluator=evaluator, log=lines.append), log=lines.append)
    search.run()
    wall = time.time() - t0
    stats = read_stats(latest_stats(save))
    return search, [dict(r.metrics) for r in stats["archive_obj"].ok()], wall, lines


# ---- searches on the embedded CIFAR-10 with a quickstart supernet (B8, B9) ---------------------

SUPERNET = dict(  # the quickstart's supernet
    dataset="cifar10_embedded", vld_size=1000, lr=32, ur=32, rstep=8, epochs=3, batch_size=64,
    base_lr=0.05, warmup_epochs=0.3, n_random=1, kd_ratio=0.5, resume=True,
)  # fmt: skip


def quickstart_supernet(out: Path) -> str:
    """``<out>/supernet/supernet.pth``, trained as the quickstart does unless it is there (resumes)."""
    from nas.io import load_checkpoint
    from nas.training.supernet import SupernetConfig, SupernetTrainer

    path = out / "supernet" / "supernet.pth"
    ckpt = out / "supernet" / "checkpoint.pth"
    if (
        not path.is_file()
        or ckpt.is_file()
        and load_checkpoint(ckpt, "checkpoint")["epoch"] < SUPERNET["epochs"]
    ):
        SupernetTrainer(SupernetConfig(**SUPERNET, save=str(out / "supernet"))).train()
    return str(path)


def resumable_search(flat: dict[str, Any], save: Path) -> dict[str, Any]:
    """The search of flat options ``flat`` into ``save``, resumed from its latest stats when there
    are some: ``{"spec", "archive", "stats_path"}`` of the finished run."""
    from nas.search.loop import stats_description

    stats = latest_stats(str(save)) if save.is_dir() else None
    flat = {**flat, "save": str(save), **({"resume": stats} if stats else {})}
    Search(build_run(RunSpec.from_flat(flat, plugins=plugin_list()))).run()
    stats = read_stats(latest_stats(str(save)))
    return {
        "spec": stats_description(stats),
        "archive": stats["archive_obj"],
        "stats_path": latest_stats(str(save)),
    }


def front(points: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of (top-1 error, cost), sorted by cost."""
    from nas.search.selection import ranks

    idx = np.flatnonzero(ranks(points) == 0)
    return idx[np.argsort(points[idx, 1])]


def rebuild(run: dict, result) -> tuple[Any, Any]:
    """The network of ``result`` with the weights its evaluation trained, and the evaluator."""
    from nas.io import load_checkpoint
    from nas.post_search import evaluation_checkpoint
    from nas.search.factory import build_evaluator

    evaluator = build_evaluator(run["spec"])
    evaluator.ensure_setup()
    iteration = run["archive"].iteration_of[result.arch_id]
    path = evaluation_checkpoint(os.path.dirname(run["stats_path"]), result, iteration)
    net = evaluator.build(result.arch).to(evaluator.ctx.device)
    net.load_state_dict(load_checkpoint(path, "evaluation checkpoint")["state_dict"])
    return net.eval(), evaluator


def plot_fronts(runs: list[tuple[dict, str, str]], xlabel: str, title: str, stem: Path) -> list[str]:
    """Every run's archive (validation top-1 vs the named cost metric) and front in one plot;
    ``runs``: ``(run, label, cost metric)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nas.analysis import save_figure

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for i, (run, label, cost) in enumerate(runs):
        ok = run["archive"].ok()
        pts = np.array([[100 - r.metrics["top1"], r.metrics[cost]] for r in ok])
        f = front(pts)
        color = "k" if i == 0 else f"C{i - 1}"
        ax.scatter(pts[:, 1], 100 - pts[:, 0], s=8, color=color, alpha=0.3)
        ax.step(pts[f, 1], 100 - pts[f, 0], "-", color=color, where="post", label=f"{label} ({cost})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation top-1 %")
    ax.set_title(title)
    ax.legend()
    return save_figure(fig, str(stem))
