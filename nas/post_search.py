"""``post_search.py``: choose networks from a search's archive and write them out, weights included.

Preferences (``--prefer``):

- ``trade-off``: the knees of the non-dominated front, ranked by their trade-off (the least
  improvement per unit of deterioration towards any other front member, on objectives normalised
  to the front's ideal and nadir; the measure of pymoo's ``HighTradeoffPoints``, used as a
  ranking so that exactly N come out);
- an objective name (``macs``, ``params``, ...): the front's lowest values of that objective;
- ``top1#80+macs#150``: closest to a stated point by the achievement scalarising function
  ``max_j (f_j - z_j)`` on the same normalisation (accuracy given as top-1 %, costs in their
  units; objectives left out of the preference do not count).

The most accurate network is always among the N. When the front has fewer than N members the
next non-dominated ranks fill in (with a note). Each choice gets ``net-<prefer>_<i>/`` with
``net.subnet``, ``net.stats`` and ``ckpt.pth``: the evaluation's own checkpoint when the search
saved one, otherwise the supernet's weights with BatchNorm recalibrated exactly as the search
scored it (so the stored network reproduces the archive's top-1).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
from dataclasses import dataclass

import numpy as np

from nas.analysis import save_figure
from nas.config import option
from nas.errors import UserError
from nas.io import atomic_write_bytes, read_json, save_checkpoint, write_json
from nas.result import Result
from nas.search.archive import read_stats
from nas.search.description import RunSpec
from nas.search.factory import build_scorer
from nas.search.loop import latest_stats, stats_description
from nas.search.objectives import Objective, metric_table
from nas.search.selection import ranks


@dataclass
class PostSearchConfig:
    """Defaults of ``post_search.py``."""

    expr: str | None = option(None, "msunas.py run directory (its latest iter_k.stats) or one iter_k.stats")
    save: str | None = option(None, "output folder; None: <run directory>/final")
    n: int = option(3, "number of networks to choose", aliases=["-n"])
    prefer: str = option(
        "trade-off", "trade-off, an objective name (its lowest values) or a point such as 'top1#80+macs#150'"
    )
    n_exits: int | None = option(None, "early-exit spaces only: keep networks with this many exits")
    save_stats_csv: bool = option(False, "also write choices-<prefer>.csv, one row per chosen network")
    weights: bool = option(True, "write ckpt.pth for each choice (--no-weights: architectures only)")
    supernet_path: str | None = option(None, "supernet for inherited weights; None: the run's")
    data: str | None = option(None, "dataset folder for BatchNorm recalibration; None: the run's")
    device: str = option("auto", "device for recalibration: auto, cpu, cuda or cuda:N")


@dataclass
class Run:
    """What post-search reads from a run directory."""

    stats_path: str
    spec: RunSpec  # the run description the stats file recorded
    results: list[Result]  # successful evaluations, archive order
    objectives: list[Objective]
    F: np.ndarray  # objective values (minimised) of ``results``
    n_failed: int


def load_run(expr: str) -> Run:
    stats_path = expr if os.path.isfile(expr) else latest_stats(expr) if os.path.isdir(expr) else None
    if stats_path is None:
        raise UserError(
            f"--expr {expr!r}: no iter_k.stats there; give an msunas.py run directory or stats file"
        )
    stats = read_stats(stats_path)
    spec = stats_description(stats)  # loads the plug-ins the run used
    archive = stats["archive_obj"]
    ok = archive.ok()
    if not ok:
        raise UserError(f"{stats_path}: every evaluation in the archive failed; nothing to choose from")
    scorer = build_scorer(spec)
    table = metric_table([r.metrics for r in ok])
    table["iteration"] = np.array([archive.iteration_of[r.arch_id] for r in ok], dtype=float)
    F = scorer.score(table, iteration=stats.get("iteration"))  # scored as that iteration's stats were
    return Run(stats_path, spec, ok, scorer.objectives, F, len(archive.failed()))


def with_exits(run: Run, n_exits: int) -> Run:
    """``run`` restricted to the networks with ``n_exits`` early exits (their ``n_exits`` metric;
    the space's ``max_exits`` bounds it), the front and the choice computed among them."""
    from nas.search.factory import build_space

    counts = [r.metrics.get("n_exits") for r in run.results]
    bound = build_space(run.spec).max_exits
    if bound is None or all(c is None for c in counts):
        raise UserError(
            "--n_exits applies to early-exit search spaces; this run's networks have a single exit"
        )
    if not 0 <= n_exits <= bound:
        raise UserError(f"--n_exits {n_exits}: this search space allows 0 to {bound} early exits")
    keep = [i for i, c in enumerate(counts) if c == n_exits]
    if not keep:
        present = ", ".join(str(c) for c in sorted({c for c in counts if c is not None}))
        raise UserError(
            f"--n_exits {n_exits}: no network of this run has {n_exits} early exits (counts: {present})"
        )
    return dataclasses.replace(run, results=[run.results[i] for i in keep], F=run.F[keep])


# ---- preferences --------------------------------------------------------------------------------


def normalise(F: np.ndarray, front: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """``F`` scaled so that the front of ``ref`` (default ``F``) spans [0, 1] per objective."""
    R = F if ref is None else ref
    ideal, nadir = R[front].min(axis=0), R[front].max(axis=0)
    return (F - ideal) / np.where(nadir > ideal, nadir - ideal, 1.0)


def tradeoff(F: np.ndarray) -> np.ndarray:
    """Per row: min over the other rows of sacrifice / gain (higher = a sharper knee)."""
    mu = np.full(len(F), np.inf)
    for i in range(len(F)):
        diff = np.delete(F, i, axis=0) - F[i]
        sacrifice, gain = np.maximum(diff, 0).sum(axis=1), np.maximum(-diff, 0).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(gain > 0, sacrifice / gain, np.inf)
        if len(ratio):
            mu[i] = ratio.min()
    return mu


def parse_preference(prefer: str, objectives: list[Objective]) -> dict[int, float]:
    """``'top1#80+macs#150'`` -> {objective index: value in objective space (top-1 -> error)}."""
    names = [o.name for o in objectives]
    point = {}
    for term in prefer.split("+"):
        name, sep, value = term.partition("#")
        if not sep or name not in names:
            raise UserError(
                f"--prefer {prefer!r}: {term!r} is not OBJECTIVE#VALUE with an objective of this run "
                f"({', '.join(names)}); e.g. --prefer '{names[0]}#80'"
            )
        try:
            v = float(value)
        except ValueError:
            raise UserError(f"--prefer {prefer!r}: {value!r} is not a number") from None
        j, obj = names.index(name), objectives[names.index(name)]
        # a one-metric objective takes the metric's value (top-1 %, not the error); others their own
        point[j] = obj({obj.metrics[0]: v}) if len(obj.metrics) == 1 else v
    return point


def choose(run: Run, prefer: str, n: int, log=print) -> list[int]:
    """Indices into ``run.results`` of the ``n`` chosen networks, in preference order."""
    if n < 1:
        raise UserError(f"-n {n}: choose at least one network")
    F, names = run.F, [o.name for o in run.objectives]
    if n > len(F):
        log(f"note: the archive has {len(F)} successful networks; choosing all of them, not {n}")
        n = len(F)
    rank = ranks(F) if F.shape[1] > 1 else np.zeros(len(F), int)
    front = np.flatnonzero(rank == 0)
    if F.shape[1] == 1:
        if "#" in prefer:
            parse_preference(prefer, run.objectives)  # a point names this run's objective, or an error
        elif prefer not in ("trade-off", names[0]):
            raise UserError(f"--prefer {prefer!r}: this run has the single objective {names[0]}")
        log(f"note: the run has one objective ({names[0]}): choosing its {n} best")
        key = F[:, 0]
    elif prefer == "trade-off":
        mu = np.full(len(F), -np.inf)
        mu[front] = tradeoff(normalise(F, front)[front])
        key = -mu
    elif prefer in names:
        key = F[:, names.index(prefer)]
    elif "#" in prefer:
        point = parse_preference(prefer, run.objectives)
        cols = sorted(point)
        z = normalise(np.array([[point.get(j, 0.0) for j in range(F.shape[1])]]), front, F)[0, cols]
        key = (normalise(F, front)[:, cols] - z).max(axis=1)
    else:
        raise UserError(
            f"--prefer {prefer!r}: use trade-off, an objective of this run ({', '.join(names)}) "
            "or OBJECTIVE#VALUE[+OBJECTIVE#VALUE]"
        )
    if len(front) < n:
        log(f"note: the front has {len(front)} networks; the next non-dominated ranks fill up to {n}")
    order = np.lexsort((np.arange(len(F)), key, rank))  # front first, then by preference
    chosen = [int(i) for i in order[:n]]
    # the most accurate; among networks tied on it, the non-dominated one (a tie broken by archive
    # order alone could force in a network that another, equally accurate and cheaper, dominates)
    best = int(np.lexsort((np.arange(len(F)), rank, F[:, 0]))[0])
    if best not in chosen:
        chosen[-1] = best
    return chosen


# ---- outputs ------------------------------------------------------------------------------------


def tag_of(prefer: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", prefer).strip("-") or "choice"


def evaluation_checkpoint(run_dir: str, result: Result, iteration: int) -> str | None:
    path = os.path.join(run_dir, f"iter_{iteration}", f"net_{result.arch_id}", "ckpt.pth")
    return path if os.path.isfile(path) else None


def post_search(cfg: PostSearchConfig, log=print) -> list[str]:
    """Choose, write and plot; returns the folders of the choices."""
    if not cfg.expr:
        raise UserError("post_search.py needs --expr <run directory or iter_k.stats>")
    run = load_run(cfg.expr)
    if cfg.n_exits is not None:
        run = with_exits(run, cfg.n_exits)
    run_dir = os.path.dirname(os.path.abspath(run.stats_path))
    save = cfg.save or os.path.join(run_dir, "final")
    if run.n_failed:
        log(f"note: {run.n_failed} failed evaluations in the archive are left out")
    chosen = choose(run, cfg.prefer, cfg.n, log)
    iteration_of = read_stats(run.stats_path)["archive_obj"].iteration_of
    tag = tag_of(cfg.prefer)
    folders = [os.path.join(save, f"net-{tag}_{i}") for i in range(len(chosen))]
    for folder, idx in zip(folders, chosen, strict=True):  # refuse before writing anything
        old = os.path.join(folder, "net.stats")
        if os.path.isfile(old) and read_json(old, "net.stats").get("id") != run.results[idx].arch_id:
            raise UserError(
                f"{folder} holds another network (from an earlier post-search); give another --save"
            )
    evaluator = _weights_source(run, cfg, log) if cfg.weights else None
    names = [o.name for o in run.objectives]
    rows = []
    for i, (folder, idx) in enumerate(zip(folders, chosen, strict=True)):
        r = run.results[idx]
        os.makedirs(folder, exist_ok=True)
        write_json(os.path.join(folder, "net.subnet"), r.arch)
        stats_path = os.path.join(folder, "net.stats")
        old = read_json(stats_path, "net.stats") if os.path.isfile(stats_path) else {}
        stats = {
            **old,  # keeps what later steps added (train.py's "trained")
            **r.to_json(),
            "objectives": dict(zip(names, map(float, run.F[idx]), strict=True)),
            "choice": {"prefer": cfg.prefer, "index": i, "run": run.stats_path},
        }
        if evaluator is not None:
            stats["weights"] = _write_weights(evaluator, run_dir, r, iteration_of[r.arch_id], folder, old)
        write_json(stats_path, stats)
        rows.append({"folder": folder, **stats})
        shown = {n: r.metrics["top1"] if n == "top1" else v for n, v in stats["objectives"].items()}
        log(
            f"{os.path.basename(folder)}: {r.arch_id}  " + "  ".join(f"{k} {v:.4g}" for k, v in shown.items())
        )
    if cfg.save_stats_csv:
        _write_csv(os.path.join(save, f"choices-{tag}.csv"), rows, names)
    _plot(run, chosen, os.path.join(save, f"choices-{tag}"), cfg.prefer)
    log(f"wrote {len(folders)} networks to {save}/ (plot: choices-{tag}.png/.pdf)")
    return folders


def _weights_source(run: Run, cfg: PostSearchConfig, log):
    """The run's evaluator (with the --supernet_path, --data and --device given), if its networks
    have weights to write; else None (an oracle's, a benchmark run's)."""
    from nas.search.factory import build_evaluator

    if run.spec.evaluator is None:  # imported results: no evaluator of this toolkit made these networks
        log("note: the run names no evaluator (imported results); writing architectures only")
        return None
    spec = run.spec.copy()
    over = {k: v for k, v in (("supernet_path", cfg.supernet_path), ("data", cfg.data)) if v is not None}
    spec.apply_flat({"device": cfg.device, **over}, strict=False)
    evaluator = build_evaluator(spec)
    if not callable(getattr(evaluator, "network", None)):
        what = f"--benchmark {spec.preset}" if spec.preset else f"evaluator {spec.evaluator.name}"
        log(f"note: {what} runs have no weights; writing architectures only")
        return None
    return evaluator


def _write_weights(evaluator, run_dir: str, r: Result, iteration: int, folder: str, old: dict) -> dict:
    target = os.path.join(folder, "ckpt.pth")
    if os.path.isfile(target) and "weights" in old:  # this network's, maybe fine-tuned since: keep
        return old["weights"]
    source = evaluation_checkpoint(run_dir, r, iteration)
    if source is not None:
        shutil.copyfile(source, target + ".tmp")
        os.replace(target + ".tmp", target)
        return {"source": source}
    net, metrics = evaluator.network(r.arch)
    save_checkpoint(
        target, {"state_dict": net.state_dict(), "arch": r.arch, "n_classes": evaluator.n_classes}
    )
    return {"source": "supernet", "top1_remeasured": metrics["top1"]}


def _write_csv(path: str, rows: list[dict], names: list[str]) -> None:
    import csv

    metric_names = sorted({k for row in rows for k in row["metrics"]})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["folder", "id", *[f"f{j + 1}_{n}" for j, n in enumerate(names)], *metric_names, "arch"])
    for row in rows:
        w.writerow(
            [
                row["folder"],
                row["id"],
                *[row["objectives"][n] for n in names],
                *[row["metrics"].get(k, "") for k in metric_names],
                json.dumps(row["arch"], separators=(",", ":")),
            ]
        )
    atomic_write_bytes(path, buf.getvalue().encode())


def _plot(run: Run, chosen: list[int], stem: str, prefer: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    F, objs = run.F, run.objectives
    fig, ax = plt.subplots(figsize=(6, 4.5))
    if F.shape[1] > 1:
        x, xlabel = F[:, 1], f"{objs[1].name} ({objs[1].unit})"
        front = np.flatnonzero(ranks(F) == 0)
        order = front[np.argsort(F[front, 1])]
        ax.step(F[order, 1], F[order, 0], where="post", color="0.5", lw=1, label="front")
    else:
        x, xlabel = np.arange(len(F)), "evaluation"
    ax.scatter(x, F[:, 0], s=12, color="0.7", label="archive")
    ax.scatter(x[chosen], F[chosen, 0], s=60, facecolors="none", edgecolors="crimson", lw=1.5, label="chosen")
    for i, c in enumerate(chosen):
        exits = run.results[c].metrics.get("n_exits")
        label = str(i) if exits is None else f"{i} ({exits} exits)"
        ax.annotate(label, (x[c], F[c, 0]), textcoords="offset points", xytext=(5, 5), color="crimson")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{objs[0].name} ({objs[0].unit})")
    ax.set_title(f"post-search: {len(chosen)} networks, prefer {prefer}")
    ax.legend()
    save_figure(fig, stem)
