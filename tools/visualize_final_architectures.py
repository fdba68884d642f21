"""Accuracy vs a cost objective of the final networks of every experiment under a results folder.

    python tools/visualize_final_architectures.py --results_dir results --dataset all
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
the source of every point. The x axis of an experiment is ``--second_obj`` when given (for every
experiment), else its run's second objective (e.g. ``macs``); a single-objective run is drawn
against ``macs`` when every network's metrics have it, else ``params``, else skipped with a note.
It is computed from each network's metrics with the run's constraints (``tiny_ml``), or is any
metric stored in ``net.stats``.

Experiments are grouped by (dataset, x axis): one panel per group, titled
``<dataset>: top-1 vs <objective>`` (a grid of up to 3 columns), so ``--dataset all`` shows runs on
different datasets or with different second objectives side by side. Within a panel, one marker
and colour per experiment; each experiment's non-dominated networks (higher accuracy, lower cost)
are joined by a step line. Outputs: ``final_architectures.png/.pdf`` and ``numbers.json`` (every
point, every front, the panels' ``groups``) in ``results/analysis/visualize_final_architectures/
<results folder>-<dataset>[-k]/`` (a new folder every time) or ``--output_dir``.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from nas.cli import run_cli  # noqa: E402
from nas.errors import UserError  # noqa: E402

TOOL = "visualize_final_architectures"
LOOKED_FOR = "post-search folders (net-*/net.stats whose choice.run names an msunas.py iter_k.stats)"
SINGLE_OBJECTIVE_X = ("macs", "params")  # the x axis of a single-objective run: the first every network has
MAX_COLUMNS = 3  # panels per row


@dataclass
class Experiment:
    """The final networks of one post-search folder that came from one run."""

    folder: str  # the post-search folder
    stats_path: str  # the run's iter_k.stats
    spec: Any  # the run description (nas.search.description.RunSpec)
    objectives: list[str]
    nets: list[tuple[str, dict]] = field(default_factory=list)  # (net folder, net.stats)
    name: str = ""

    @property
    def dataset(self) -> str:
        evaluator = self.spec.evaluator
        return str(getattr(evaluator.options, "dataset", None) or "?") if evaluator is not None else "?"


@dataclass
class Group:
    """The experiments drawn on one panel: one dataset, one x-axis objective."""

    dataset: str
    objective: str
    experiments: list[Experiment] = field(default_factory=list)
    points: list[list[dict]] = field(default_factory=list)  # points_of each experiment

    @property
    def title(self) -> str:
        return f"{self.dataset}: top-1 vs {self.objective}"


def find_experiments(results_dir: str, log=print) -> list[Experiment]:
    """Every post-search folder below ``results_dir`` (sorted), grouped by the run it chose from."""
    from nas.io import read_json
    from nas.search.archive import read_stats
    from nas.search.loop import stats_description

    experiments: dict[tuple[str, str], Experiment] = {}
    runs: dict[str, tuple[Any, list[str]] | None] = {}
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
                runs[run_path] = (stats_description(s), list(s.get("objectives", [])))
            except UserError as e:
                log(f"note: skipping the networks chosen from {run_path}: {e}")
                runs[run_path] = None
        if runs[run_path] is None:
            continue
        spec, objectives = runs[run_path]
        key = (folder, run_path)
        if key not in experiments:
            experiments[key] = Experiment(folder, run_path, spec, objectives)
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


def metrics_of(stats: dict) -> dict:
    return stats["metrics"] if isinstance(stats.get("metrics"), dict) else {}


def x_objective(e: Experiment, wanted: str | None) -> str | None:
    """``--second_obj`` if given, else the run's second objective, else (a single-objective run) the
    first of ``SINGLE_OBJECTIVE_X`` every network's metrics have; None when none does."""
    if wanted is not None:
        return wanted
    if len(e.objectives) > 1:
        return e.objectives[1]
    return next((m for m in SINGLE_OBJECTIVE_X if all(m in metrics_of(s) for _, s in e.nets)), None)


def group_experiments(experiments: list[Experiment], wanted: str | None, log=print) -> list[Group]:
    """The experiments with their points, grouped by (dataset, x axis), sorted by dataset then x axis."""
    if wanted == "top1":
        raise UserError("--second_obj top1: top-1 is the y axis; give a cost such as macs or params")
    groups: dict[tuple[str, str], Group] = {}
    for e in experiments:
        x = x_objective(e, wanted)
        if x is None:
            log(
                f"note: skipping {e.name}: a single-objective run whose net.stats metrics lack "
                f"{' and '.join(SINGLE_OBJECTIVE_X)}; give --second_obj to plot it"
            )
            continue
        group = groups.setdefault((e.dataset, x), Group(e.dataset, x))
        group.experiments.append(e)
        group.points.append(points_of(e, x))
    if not groups:
        raise UserError(
            f"none of the {len(experiments)} experiments has an x axis (single-objective runs without "
            f"{' or '.join(SINGLE_OBJECTIVE_X)} in net.stats); give --second_obj with a metric they have"
        )
    return [groups[k] for k in sorted(groups)]


def points_of(e: Experiment, second: str) -> list[dict]:
    """One record per final network of ``e``: top-1 (and its source) and the second objective."""
    from nas.search.objectives import get_objective

    part = next((p for p in e.spec.objectives if p.name == second), None)
    objective = get_objective(second, part.options if part is not None else None)
    points = []
    for net_dir, stats in e.nets:
        metrics = metrics_of(stats)
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


def xy(points: list[dict], second: str) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 and the x axis of ``points``."""
    return np.array([p["top1"] for p in points]), np.array([p[second] for p in points])


def front_indices(top1: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Non-dominated points (max top-1, min x), sorted by x."""
    from nas.post_search import ranks

    front = np.flatnonzero(ranks(np.column_stack([-top1, x])) == 0)
    return front[np.lexsort((-top1[front], x[front]))]


def plot(groups: list[Group], title: str, stem: str) -> list[str]:
    """One panel per group in a grid of up to ``MAX_COLUMNS`` columns."""
    import matplotlib.pyplot as plt

    from nas.analysis import save_figure

    ncols = min(MAX_COLUMNS, len(groups))
    nrows = -(-len(groups) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(7 * ncols, 4.8 * nrows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[len(groups) :]:
        fig.delaxes(ax)
    for ax, group in zip(axes.flat, groups, strict=False):
        plot_panel(ax, group)
    fig.suptitle(title)
    return save_figure(fig, stem)


def plot_panel(ax, group: Group) -> None:
    """Each experiment of ``group``: its networks and its front, one marker and colour each."""
    import matplotlib.pyplot as plt

    from nas.search.objectives import OBJECTIVES, get_objective

    second = group.objective
    unit = get_objective(second).unit if second in OBJECTIVES.names() else ""
    markers = "osD^vP*Xhp<>"
    for i, (e, pts) in enumerate(zip(group.experiments, group.points, strict=True)):
        colour, marker = plt.cm.tab10(i % 10), markers[i % len(markers)]
        top1, x = xy(pts, second)
        n_trained = sum(p["top1_source"] == "trained" for p in pts)
        label = f"{e.name} ({e.dataset})"
        if n_trained:
            label += f", trained top-1 {n_trained}/{len(pts)}"
        ax.scatter(x, top1, color=colour, marker=marker, s=40, label=label, zorder=3)
        front = front_indices(top1, x)
        ax.step(x[front], top1[front], where="post", color=colour, lw=1.2, alpha=0.8)
    ax.set_xlabel(f"{second} ({unit})" if unit and unit != second else second)
    if ax.get_subplotspec().is_first_col():
        ax.set_ylabel("top-1 accuracy % (trained where fine-tuned, else search)")
    ax.set_title(group.title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")


def experiment_numbers(e: Experiment, points: list[dict], second: str) -> dict:
    """What ``numbers.json`` records of an experiment drawn against ``second``."""
    return {
        "name": e.name,
        "folder": os.path.abspath(e.folder),
        "run": e.stats_path,
        "dataset": e.dataset,
        "objectives": e.objectives,
        "n": len(points),
        "n_distinct": len({p["id"] for p in points}),  # post-search preferences may choose one twice
        "n_trained": sum(p["top1_source"] == "trained" for p in points),
        "front": [points[i]["folder"] for i in front_indices(*xy(points, second))],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Where experiments are found and which top-1 is used: see the module docstring "
        "(tools/visualize_final_architectures.py).",
    )
    p.add_argument("--results_dir", default="results", help="folder searched recursively (default: results)")
    p.add_argument(
        "--dataset",
        default="all",
        help="all (default: every experiment, one panel per dataset and x axis) or a dataset name: "
        "keep runs whose config has it",
    )
    p.add_argument(
        "--second_obj",
        help="x axis of every experiment: an objective (macs, params, activations, latency, flops, "
        "tiny_ml) or a metric in net.stats (default: each run's second objective; macs, else params, "
        "for single-objective runs)",
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
    groups = group_experiments(experiments, args.second_obj)

    name = experiment_name(args.results_dir)
    out = output_dir(TOOL, experiment_name(f"{name}-{args.dataset}"), args.output_dir)
    title = (
        f"final networks: {args.results_dir} ({'all datasets' if args.dataset == 'all' else args.dataset})"
    )
    files = plot(groups, title, os.path.join(out, "final_architectures"))
    seconds = sorted({g.objective for g in groups})
    numbers = {
        "tool": TOOL,
        "results_dir": os.path.abspath(args.results_dir),
        "dataset": args.dataset,
        "second_obj": seconds[0] if len(seconds) == 1 else None,  # None: it differs by group
        "top1": "trained: test top-1 of train.py subnet; search: the top-1 the search measured "
        "(validation images)",
        "groups": [
            {"dataset": g.dataset, "objective": g.objective, "experiments": [e.name for e in g.experiments]}
            for g in groups
        ],
        "experiments": [
            experiment_numbers(e, pts, g.objective)
            for g in groups
            for e, pts in zip(g.experiments, g.points, strict=True)
        ],
        "points": [p for g in groups for pts in g.points for p in pts],
    }
    save_numbers(os.path.join(out, "numbers.json"), numbers)
    print(
        f"{len(numbers['experiments'])} experiments, {len(numbers['points'])} networks in "
        f"{len(groups)} panel(s) ({'; '.join(g.title for g in groups)}): "
        f"wrote {', '.join(os.path.basename(f) for f in files)}, numbers.json to {out}/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
