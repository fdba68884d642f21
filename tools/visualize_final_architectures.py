"""Accuracy vs a cost objective of the final networks of every experiment under a results folder.

    python tools/visualize_final_architectures.py --results_dir results
    python tools/visualize_final_architectures.py --results_dir results --dataset cifar10 --second_obj params

An experiment is a post-search folder: a folder holding ``net-*/net.stats`` files written by
``post_search.py`` (``<run>/final/`` by default, or its ``--save``), found anywhere below
``--results_dir``. Each ``net.stats`` names the ``iter_k.stats`` its network was chosen from
(``choice.run``); that stats file gives the run's dataset (``--dataset`` filters on it, ``all``
keeps every experiment) and objectives. A relative ``choice.run`` is looked up from the current
folder, then next to the post-search folder's parent (the run directory of ``<run>/final/``).
Folders whose run cannot be found are skipped with a note.

Accuracy is top-1 %: the test top-1 of ``train.py subnet`` (``"trained"`` in ``net.stats``) when
the network was fine-tuned, else the top-1 the search measured (validation images); the legend
says how many networks of each experiment use the trained value, and ``numbers.json`` records
the source of every point. The x axis is ``--second_obj`` (default: the runs' second objective,
e.g. ``macs``; an error when experiments disagree), computed from each network's metrics with
the run's constraints (``tiny_ml``), or any metric stored in ``net.stats``.

One marker and colour per experiment; each experiment's non-dominated networks (higher accuracy,
lower cost) are joined by a step line. Outputs: ``final_architectures.png/.pdf`` and
``numbers.json`` (every point, every front) in ``results/analysis/visualize_final_architectures/
<results folder>-<dataset>[-k]/`` (a new folder every time) or ``--output_dir``.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from nas.cli import run_cli  # noqa: E402
from nas.errors import UserError  # noqa: E402

TOOL = "visualize_final_architectures"
LOOKED_FOR = "post-search folders (net-*/net.stats whose choice.run names an msunas.py iter_k.stats)"


@dataclass
class Experiment:
    """The final networks of one post-search folder that came from one run."""

    folder: str  # the post-search folder
    stats_path: str  # the run's iter_k.stats
    config: dict
    objectives: list[str]
    nets: list[tuple[str, dict]] = field(default_factory=list)  # (net folder, net.stats)
    name: str = ""

    @property
    def dataset(self) -> str:
        return str(self.config.get("dataset", "?"))


def find_experiments(results_dir: str, log=print) -> list[Experiment]:
    """Every post-search folder below ``results_dir`` (sorted), grouped by the run it chose from."""
    from nas.io import read_json
    from nas.search.archive import read_stats

    experiments: dict[tuple[str, str], Experiment] = {}
    runs: dict[str, tuple[dict, list[str]] | None] = {}
    for root, dirs, files in os.walk(results_dir):
        dirs.sort()
        if "net.stats" not in files or not os.path.basename(root).startswith("net-"):
            continue
        net_dir, folder = root, os.path.dirname(root)
        try:
            stats = read_json(os.path.join(net_dir, "net.stats"), "net.stats")
        except UserError as e:
            log(f"note: skipping {net_dir}: {e}")
            continue
        choice = stats.get("choice") if isinstance(stats, dict) else None
        if not isinstance(choice, dict) or not isinstance(choice.get("run"), str):
            continue  # not written by post_search.py
        run_path = resolve_run(choice["run"], folder)
        if run_path is None:
            log(f"note: skipping {net_dir}: its run {choice['run']!r} (choice.run) does not exist")
            continue
        if run_path not in runs:
            try:
                s = read_stats(run_path)
                runs[run_path] = (s.get("config", {}), list(s.get("objectives", [])))
            except UserError as e:
                log(f"note: skipping the networks chosen from {run_path}: {e}")
                runs[run_path] = None
        if runs[run_path] is None:
            continue
        config, objectives = runs[run_path]
        key = (folder, run_path)
        if key not in experiments:
            experiments[key] = Experiment(folder, run_path, config, objectives)
        experiments[key].nets.append((net_dir, stats))
    found = sorted(experiments.values(), key=lambda e: (e.folder, e.stats_path))
    name_experiments(found, results_dir)
    return found


def resolve_run(path: str, folder: str) -> str | None:
    """The stats file ``choice.run`` names, or None."""
    # as given (relative: to the current folder), else the run directory of <run>/final/ (moved runs)
    for p in (path, os.path.join(os.path.dirname(folder), os.path.basename(path))):
        if os.path.isfile(p):
            return os.path.abspath(p)
    return None


def name_experiments(experiments: list[Experiment], results_dir: str) -> None:
    """The post-search folder below ``results_dir``; plus the run's name when a folder holds several runs."""
    count: dict[str, int] = {}
    for e in experiments:
        count[e.folder] = count.get(e.folder, 0) + 1
    for e in experiments:
        rel = os.path.relpath(e.folder, results_dir).replace(os.sep, "/")
        e.name = rel if rel != "." else os.path.basename(os.path.abspath(e.folder))
        if count[e.folder] > 1:
            e.name += f" [{os.path.basename(os.path.dirname(e.stats_path))}]"


def second_objective(experiments: list[Experiment], wanted: str | None) -> str:
    if wanted is not None:
        if wanted == "top1":
            raise UserError("--second_obj top1: top-1 is the y axis; give a cost such as macs or params")
        return wanted
    seconds = {e.name: e.objectives[1] if len(e.objectives) > 1 else None for e in experiments}
    names = sorted({s for s in seconds.values() if s is not None})
    if len(names) == 1:
        return names[0]
    if not names:
        raise UserError("every experiment is single-objective; give --second_obj (e.g. macs or params)")
    listed = "; ".join(f"{n}: {s or '(single-objective)'}" for n, s in seconds.items())
    raise UserError(
        f"the experiments have different second objectives ({listed}); give --second_obj "
        f"(e.g. --second_obj {names[0]}) or filter with --dataset"
    )


def points_of(e: Experiment, second: str) -> list[dict]:
    """One record per final network of ``e``: top-1 (and its source) and the second objective."""
    from nas.search.objectives import OBJECTIVES, Constraints, get_objective

    cfg = e.config
    keys = ("pmax", "mmax", "amax", "wp", "wm", "wa", "penalty")
    constraints = Constraints(**{k: cfg[k] for k in keys if k in cfg})
    objective = get_objective(second, constraints) if second in OBJECTIVES.names() else None
    points = []
    for net_dir, stats in e.nets:
        metrics = stats.get("metrics", {}) if isinstance(stats.get("metrics"), dict) else {}
        trained = stats.get("trained") if isinstance(stats.get("trained"), dict) else {}
        if "top1" in trained:
            top1, source = float(trained["top1"]), "trained"
        elif "top1" in metrics:
            top1, source = float(metrics["top1"]), "search"
        else:
            raise UserError(f"{net_dir}/net.stats has no top-1 (metrics.top1); is it from post_search.py?")
        if second in stats.get("objectives", {}):
            x = float(stats["objectives"][second])
        elif objective is not None and all(m in metrics for m in objective.metrics):
            x = float(objective(metrics))
        elif second in metrics:
            x = float(metrics[second])
        else:
            have = ", ".join(sorted(metrics))
            raise UserError(
                f"--second_obj {second}: {net_dir}/net.stats has no {second!r} (its metrics: {have}); "
                "choose one of those or filter the experiments with --dataset"
            )
        points.append(
            {
                "experiment": e.name,
                "folder": os.path.abspath(net_dir),
                "id": stats.get("id"),
                "top1": top1,
                "top1_source": source,
                second: x,
                "metrics": metrics,
                **({"trained": trained} if trained else {}),
            }
        )
    return points


def front_indices(top1: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Non-dominated points (max top-1, min x), sorted by x."""
    from nas.post_search import ranks

    front = np.flatnonzero(ranks(np.column_stack([-top1, x])) == 0)
    return front[np.lexsort((-top1[front], x[front]))]


def plot(
    experiments: list[Experiment], points: list[list[dict]], second: str, title: str, stem: str
) -> list[str]:
    import matplotlib.pyplot as plt

    from nas.analysis import save_figure
    from nas.search.objectives import OBJECTIVES, get_objective

    unit = get_objective(second).unit if second in OBJECTIVES.names() else ""
    markers = "osD^vP*Xhp<>"
    fig, ax = plt.subplots(figsize=(7, 4.8))
    for i, (e, pts) in enumerate(zip(experiments, points, strict=True)):
        colour, marker = plt.cm.tab10(i % 10), markers[i % len(markers)]
        top1 = np.array([p["top1"] for p in pts])
        x = np.array([p[second] for p in pts])
        n_trained = sum(p["top1_source"] == "trained" for p in pts)
        label = f"{e.name} ({e.dataset})"
        if n_trained:
            label += f", trained top-1 {n_trained}/{len(pts)}"
        ax.scatter(x, top1, color=colour, marker=marker, s=40, label=label, zorder=3)
        front = front_indices(top1, x)
        ax.step(x[front], top1[front], where="post", color=colour, lw=1.2, alpha=0.8)
    ax.set_xlabel(f"{second} ({unit})" if unit and unit != second else second)
    ax.set_ylabel("top-1 accuracy % (trained where fine-tuned, else search)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return save_figure(fig, stem)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Where experiments are found and which top-1 is used: see the module docstring "
        "(tools/visualize_final_architectures.py).",
    )
    p.add_argument("--results_dir", default="results", help="folder searched recursively (default: results)")
    p.add_argument(
        "--dataset", default="all", help="all (default) or a dataset name: keep runs whose config has it"
    )
    p.add_argument(
        "--second_obj",
        help="x axis: an objective (macs, params, activations, latency, flops, tiny_ml) or a metric in "
        "net.stats (default: the runs' second objective)",
    )
    p.add_argument(
        "--output_dir",
        help=f"output folder (default: a new results/analysis/{TOOL}/<results folder>-<dataset>[-k]/)",
    )
    args = p.parse_args(argv)
    if not os.path.isdir(args.results_dir):
        raise UserError(
            f"--results_dir {args.results_dir!r} is not a folder; give the folder holding your runs"
        )

    import matplotlib

    matplotlib.use("Agg")
    from nas.analysis import experiment_name, output_dir, save_numbers

    found = find_experiments(args.results_dir)
    if not found:
        raise UserError(
            f"no experiments under {args.results_dir!r}: looked for {LOOKED_FOR}; run post_search.py first"
        )
    if args.dataset == "all":
        experiments = found
    else:
        experiments = [e for e in found if e.dataset.lower() == args.dataset.lower()]
        if not experiments:
            have = ", ".join(sorted({e.dataset for e in found}))
            raise UserError(
                f"--dataset {args.dataset}: none of the {len(found)} experiments under {args.results_dir!r} "
                f"is on it (their datasets: {have}); use one of those or --dataset all"
            )
    second = second_objective(experiments, args.second_obj)
    points = [points_of(e, second) for e in experiments]

    name = experiment_name(args.results_dir)
    out = output_dir(TOOL, experiment_name(f"{name}-{args.dataset}"), args.output_dir)
    title = (
        f"final networks: {args.results_dir} ({'all datasets' if args.dataset == 'all' else args.dataset})"
    )
    files = plot(experiments, points, second, title, os.path.join(out, "final_architectures"))
    numbers = {
        "tool": TOOL,
        "results_dir": os.path.abspath(args.results_dir),
        "dataset": args.dataset,
        "second_obj": second,
        "top1": "trained: test top-1 of train.py subnet; search: the top-1 the search measured "
        "(validation images)",
        "experiments": [
            {
                "name": e.name,
                "folder": os.path.abspath(e.folder),
                "run": e.stats_path,
                "dataset": e.dataset,
                "objectives": e.objectives,
                "n": len(pts),
                "n_distinct": len({p["id"] for p in pts}),  # post-search preferences may choose one twice
                "n_trained": sum(p["top1_source"] == "trained" for p in pts),
                "front": [
                    pts[i]["folder"]
                    for i in front_indices(
                        np.array([p["top1"] for p in pts]), np.array([p[second] for p in pts])
                    )
                ],
            }
            for e, pts in zip(experiments, points, strict=True)
        ],
        "points": [p for pts in points for p in pts],
    }
    save_numbers(os.path.join(out, "numbers.json"), numbers)
    n = sum(len(pts) for pts in points)
    print(
        f"{len(experiments)} experiments, {n} networks (top-1 vs {second}): "
        f"wrote {', '.join(os.path.basename(f) for f in files)}, numbers.json to {out}/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
