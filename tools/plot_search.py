"""Plots of msunas.py runs: one run's progress, or several runs (seeds, settings) compared.

    python tools/plot_search.py --expr results/search-c10
    python tools/plot_search.py --compare results/s0 results/s1 results/s2
    python tools/plot_search.py --compare results/a0 results/a1 results/b0 results/b1 --labels a a b b

Every run is an ``msunas.py`` run directory (its latest ``iter_k.stats``) or one ``iter_k.stats``.
Outputs go to ``results/analysis/plot_search/<experiment>[-k]/`` (a new folder every time) unless
``--output_dir`` is given; every figure as PNG and PDF, every plotted number in ``numbers.json``.

``--expr RUN``:

- ``hv``: the hypervolume after every iteration as the search stored it (reference point: 1.01 x
  the nadir of the initial archive, ``hv_ref``); single-objective runs: the best first objective;
- ``surrogate``: the surrogate's cross-validated Kendall tau (with its std over folds) and rmse
  per iteration, one line per predicted metric (metrics computed exactly are not fitted);
- ``archive``: every successful evaluation, objective 2 vs objective 1 coloured by the iteration
  that evaluated it, with the non-dominated front as a step line (single-objective runs: the
  objective per evaluation, with the best-so-far line);
- ``numbers.json``: those series, every archive point and the front (ids, iterations, objective
  values, metrics).

``--compare RUN RUN [...]`` (the runs must have the same objectives):

The hypervolume each run stores is measured against its own reference point, so two runs' values
are not comparable. Here every run's HV is recomputed after every iteration from its archive
(the successful evaluations of iterations 0..k) in one common space: each objective is
normalised with the ideal and nadir of the union of all runs' archives, and the reference point
is 1.1 in every normalised objective (so every evaluated point counts); the HV is divided by
the reference box volume (1.1^2), so it lies in [0, 1], higher is better. Single-objective runs
are compared by their best first objective (lower is better) instead. Objectives with
archive-level statistics (``prepare``) use each run's final archive for every iteration.

- ``hv``: those curves, one per run (coloured by ``--labels`` when given);
- ``final_hv``: each run's final value (grouped by label);
- statistics (in ``numbers.json`` under ``statistics``, all two-sided), without ``--labels`` or
  when every label names one run: runs are paired by iteration over the iterations all of them
  reached (0..K).

  * 2 runs: Wilcoxon signed-rank test on the K+1 pairs (HV of run A at k, HV of run B at k);
    not applicable with fewer than 2 pairs or when every difference is zero (the reason is stored).
  * 3+ runs: Friedman test (``scipy.stats.friedmanchisquare``; iterations are the blocks, runs the
    treatments), then Wilcoxon signed-rank for every pair of runs with Holm's correction.

  The iterations of one run are not independent samples (the curve is cumulative): these tests
  say whether one run's curve lies consistently above another's, not that another seed would do
  the same. For that, run several seeds per setting and give ``--labels``:

  with ``--labels`` naming at least one label with 2+ runs, the settings are compared by their
  runs' final values, unpaired (seeds of different settings are not paired samples, and the
  groups may differ in size): 2 labels: Mann-Whitney U; 3+ labels: Kruskal-Wallis H, then
  Mann-Whitney U for every pair of labels with Holm's correction.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from nas.cli import run_cli  # noqa: E402
from nas.errors import UserError  # noqa: E402

TOOL = "plot_search"
REF = 1.1  # reference point of the normalised hypervolume in --compare, per objective


# ---- reading runs -------------------------------------------------------------------------------


class RunData:
    """What the plots need from one run: objectives, archive points with their iterations, series."""

    def __init__(self, path: str, flag: str):
        if not os.path.exists(path):
            raise UserError(
                f"{flag} {path!r} does not exist; give an msunas.py run directory or one of its iter_k.stats"
            )
        from nas.post_search import load_run  # imports torch: after the cheap checks
        from nas.search.archive import read_stats

        run = load_run(path)
        stats = read_stats(run.stats_path)
        iteration_of = stats["archive_obj"].iteration_of
        self.path, self.stats_path = path, run.stats_path
        self.objectives = [o.name for o in run.objectives]
        self.units = [o.unit or o.name for o in run.objectives]
        self.results, self.F = run.results, run.F
        self.its = np.array([iteration_of[r.arch_id] for r in run.results], dtype=int)
        self.iteration = int(stats["iteration"])
        self.hv = [float(h) for h in stats.get("hv", [])]
        self.hv_ref = stats.get("hv_ref")
        self.surrogate = stats.get("surrogate", [])
        self.timings = stats.get("timings", [])
        self.n_failed = run.n_failed
        self.seed = run.spec.loop.seed
        self.name = ""


def front_of(F: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows (single objective: the best row), sorted by the last objective."""
    from nas.post_search import ranks

    if F.shape[1] == 1:
        return np.array([int(np.argmin(F[:, 0]))])
    front = np.flatnonzero(ranks(F) == 0)
    return front[np.lexsort((F[front, 0], F[front, -1]))]


def unique_names(paths: list[str]) -> list[str]:
    """Folder names of the runs; the path below the common parent when two folder names collide."""
    from nas.analysis import experiment_name

    names = [experiment_name(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    dirs = [os.path.abspath(p if os.path.isdir(p) else os.path.dirname(p)) for p in paths]
    common = os.path.commonpath(dirs)
    names = [os.path.relpath(d, common).replace(os.sep, "/") for d in dirs]
    if len(set(names)) < len(names):
        raise UserError(f"the same run is given twice: {', '.join(paths)}")
    return names


# ---- one run ------------------------------------------------------------------------------------


def plot_one(run: RunData, out: str) -> dict:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from nas.analysis import save_figure

    names = [f"{n} ({u})" for n, u in zip(run.objectives, run.units, strict=True)]
    multi = len(run.objectives) > 1
    files = []

    # hypervolume per iteration
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(len(run.hv)), run.hv, marker="o")
    ax.set_xlabel("iteration")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if multi:
        ref = ", ".join(f"{v:.4g}" for v in run.hv_ref or [])
        ax.set_ylabel("hypervolume")
        ax.set_title(f"{run.name}: hypervolume (reference point [{ref}])")
    else:
        ax.set_ylabel(f"best {names[0]}")
        ax.set_title(f"{run.name}: best {run.objectives[0]} per iteration")
    ax.grid(alpha=0.3)
    files += save_figure(fig, os.path.join(out, "hv"))

    # surrogate quality per iteration
    surrogate: dict[str, list[dict]] = {}
    for row in run.surrogate:
        # the metric a surrogate predicted ("objective" in runs made before run descriptions)
        surrogate.setdefault(row.get("metric", row.get("objective", run.objectives[0])), []).append(row)
    fig, (ax_tau, ax_rmse) = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
    for obj, rows in surrogate.items():
        it = [r["iteration"] for r in rows]
        tau = [np.nan if r.get("tau") is None else r["tau"] for r in rows]
        std = [0.0 if r.get("tau_std") is None else r["tau_std"] for r in rows]
        rmse = [np.nan if r.get("rmse") is None else r["rmse"] for r in rows]
        ax_tau.errorbar(it, tau, yerr=std, marker="o", capsize=3, label=obj)
        ax_rmse.plot(it, rmse, marker="o", label=obj)
    if not surrogate:
        msg = "no surrogate fitted (no search iterations yet)"
        ax_tau.text(0.5, 0.5, msg, ha="center", va="center", transform=ax_tau.transAxes)
    else:
        ax_tau.legend(title="predicted metric")
    ax_tau.set_ylabel("Kendall tau (k-fold)")
    ax_tau.set_title(f"{run.name}: surrogate quality before each iteration's NSGA-II")
    ax_rmse.set_ylabel("rmse (k-fold)")
    ax_rmse.set_xlabel("iteration")
    ax_rmse.xaxis.set_major_locator(MaxNLocator(integer=True))
    for a in (ax_tau, ax_rmse):
        a.grid(alpha=0.3)
    files += save_figure(fig, os.path.join(out, "surrogate"))

    # the archive coloured by iteration, with the front
    F, its = run.F, run.its
    front = front_of(F)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    if multi:
        sc = ax.scatter(F[:, 1], F[:, 0], c=its, cmap="viridis", s=16, alpha=0.85)
        ax.step(F[front, 1], F[front, 0], where="post", color="crimson", lw=1.5, label="front")
        ax.set_xlabel(names[1])
    else:
        sc = ax.scatter(np.arange(len(F)), F[:, 0], c=its, cmap="viridis", s=16)
        best = np.minimum.accumulate(F[:, 0])
        ax.step(np.arange(len(F)), best, where="post", color="crimson", lw=1.5, label="best so far")
        ax.set_xlabel("evaluation (archive order)")
    ax.set_ylabel(names[0])
    ax.legend()
    fig.colorbar(sc, ax=ax, label="iteration", ticks=MaxNLocator(integer=True))
    ax.set_title(f"{run.name}: archive after iteration {run.iteration} ({len(F)} evaluated)")
    files += save_figure(fig, os.path.join(out, "archive"))

    def point(i: int) -> dict:
        r = run.results[i]
        return {
            "id": r.arch_id,
            "iteration": int(its[i]),
            "objectives": dict(zip(run.objectives, map(float, F[i]), strict=True)),
        }

    numbers = {
        "tool": TOOL,
        "mode": "expr",
        "run": os.path.abspath(run.path),
        "stats": os.path.abspath(run.stats_path),
        "objectives": run.objectives,
        "units": run.units,
        "iterations": run.iteration,
        "hv": run.hv,
        "hv_meaning": "hypervolume (run's reference point)" if multi else f"best {run.objectives[0]}",
        "hv_ref": run.hv_ref,
        "surrogate": surrogate,
        "evaluated_per_iteration": [int((its == k).sum()) for k in range(run.iteration + 1)],
        "n_failed": run.n_failed,
        "timings": run.timings,
        "archive": [point(i) for i in range(len(F))],
        "front": [{**point(i), "metrics": run.results[i].metrics} for i in front],
    }
    return {"numbers": numbers, "files": files}


# ---- several runs -------------------------------------------------------------------------------


def indicator_series(runs: list[RunData]) -> tuple[list[np.ndarray], dict]:
    """Per run, the comparable indicator after every iteration, and how it was computed."""
    from pymoo.indicators.hv import HV

    if len(runs[0].objectives) == 1:
        series = [np.array([r.F[r.its <= k, 0].min() for k in range(r.iteration + 1)]) for r in runs]
        return series, {"indicator": f"best {runs[0].objectives[0]}", "higher_is_better": False}
    union = np.vstack([r.F for r in runs])
    ideal, nadir = union.min(axis=0), union.max(axis=0)
    scale = np.where(nadir > ideal, nadir - ideal, 1.0)
    ref = np.full(union.shape[1], REF)
    hv = HV(ref_point=ref)
    series = []
    for r in runs:
        G = (r.F - ideal) / scale
        series.append(np.array([hv(G[r.its <= k]) / np.prod(ref) for k in range(r.iteration + 1)]))
    info = {
        "indicator": "normalised hypervolume",
        "higher_is_better": True,
        "ideal": ideal.tolist(),
        "nadir": nadir.tolist(),
        "ref_point_normalised": ref.tolist(),
        "how": "objectives scaled by the ideal and nadir of the union of all runs' archives; reference "
        f"point {REF} per scaled objective; HV divided by the reference box volume (in [0, 1])",
    }
    return series, info


def holm(p: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order."""
    m, order = len(p), np.argsort(p, kind="stable")
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def wilcoxon_pair(a: np.ndarray, b: np.ndarray) -> dict:
    from scipy.stats import wilcoxon

    d = a - b
    out = {"n_pairs": len(d), "median_difference": float(np.median(d)) if len(d) else None}
    if len(d) < 2:
        return {**out, "applicable": False, "reason": f"{len(d)} paired iteration(s); need at least 2"}
    if np.all(d == 0):
        return {**out, "applicable": False, "reason": "the two curves are identical (every difference is 0)"}
    res = wilcoxon(a, b, alternative="two-sided")
    return {**out, "applicable": True, "statistic": float(res.statistic), "p_value": float(res.pvalue)}


def paired_statistics(names: list[str], series: list[np.ndarray]) -> dict:
    k = min(len(s) for s in series)
    M = np.stack([s[:k] for s in series])  # runs x iterations 0..k-1
    on = (
        f"the indicator of each run after iterations 0..{k - 1} (the iterations every run reached), "
        "paired by iteration"
    )
    if len(names) == 2:
        return {"test": "Wilcoxon signed-rank, two-sided", "on": on, "runs": names, **wilcoxon_pair(*M)}
    from scipy.stats import friedmanchisquare

    out: dict = {"on": on, "runs": names, "n_blocks": k}
    if k < 2:
        out["friedman"] = {"applicable": False, "reason": f"{k} common iteration(s); need at least 2"}
    elif np.all(M == M[:1]):
        out["friedman"] = {"applicable": False, "reason": "every run has the same curve"}
    else:
        res = friedmanchisquare(*M)
        out["friedman"] = {
            "test": "Friedman chi-square (blocks: iterations, treatments: runs)",
            "applicable": bool(np.isfinite(res.pvalue)),
            "statistic": float(res.statistic),
            "p_value": float(res.pvalue) if np.isfinite(res.pvalue) else None,
        }
    pairs = [
        {"a": names[i], "b": names[j], **wilcoxon_pair(M[i], M[j])}
        for i, j in itertools.combinations(range(len(names)), 2)
    ]
    _holm_into(pairs)
    out["pairwise"] = {"test": "Wilcoxon signed-rank, two-sided, Holm-corrected", "pairs": pairs}
    return out


def group_statistics(labels: list[str], finals: np.ndarray) -> dict:
    from scipy.stats import kruskal, mannwhitneyu

    groups = {lab: finals[[i for i, x in enumerate(labels) if x == lab]] for lab in dict.fromkeys(labels)}
    out: dict = {
        "on": "each run's final indicator, grouped by --labels, unpaired",
        "groups": {
            lab: {"n": len(v), "values": v.tolist(), "median": float(np.median(v))}
            for lab, v in groups.items()
        },
    }
    small = [lab for lab, v in groups.items() if len(v) < 3]
    if small:
        out["note"] = f"labels with fewer than 3 runs ({', '.join(small)}): the test has little power"
    values = list(groups.values())
    if np.all(finals == finals[0]):
        out.update(applicable=False, reason="every run has the same final value")
        return out

    def mwu(a, b) -> dict:
        res = mannwhitneyu(a, b, alternative="two-sided")
        return {"applicable": True, "statistic": float(res.statistic), "p_value": float(res.pvalue)}

    if len(groups) == 2:
        out.update(test="Mann-Whitney U, two-sided", **mwu(*values))
        return out
    res = kruskal(*values)
    out.update(
        test="Kruskal-Wallis H", applicable=True, statistic=float(res.statistic), p_value=float(res.pvalue)
    )
    labs = list(groups)
    pairs = [{"a": a, "b": b, **mwu(groups[a], groups[b])} for a, b in itertools.combinations(labs, 2)]
    _holm_into(pairs)
    out["pairwise"] = {"test": "Mann-Whitney U, two-sided, Holm-corrected", "pairs": pairs}
    return out


def _holm_into(pairs: list[dict]) -> None:
    tested = [p for p in pairs if p.get("applicable")]
    for p, adj in zip(tested, holm([p["p_value"] for p in tested]), strict=True):
        p["p_holm"] = adj


def check_compare(runs: list[RunData], labels: list[str] | None) -> None:
    """Refuse runs that cannot be compared (before any output folder is made)."""
    objectives = [r.objectives for r in runs]
    if any(o != objectives[0] for o in objectives):
        listed = "; ".join(f"{r.name}: {', '.join(r.objectives)}" for r in runs)
        raise UserError(f"--compare: the runs have different objectives ({listed}); compare like with like")
    if labels is not None and len(labels) > 1 and len(set(labels)) == 1:
        raise UserError(f"--labels: every run has the label {labels[0]!r}; give at least two settings")


def plot_compare(runs: list[RunData], labels: list[str] | None, out: str) -> dict:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from nas.analysis import save_figure

    check_compare(runs, labels)
    names = [r.name for r in runs]
    series, info = indicator_series(runs)
    finals = np.array([s[-1] for s in series])
    grouped = labels is not None and len(set(labels)) < len(labels)
    if grouped:
        statistics = group_statistics(labels, finals)
    else:
        statistics = paired_statistics(names, series)
    shown = labels if labels is not None else names
    colours = {lab: plt.cm.tab10(i % 10) for i, lab in enumerate(dict.fromkeys(shown))}
    styles = ["-", "--", ":", "-."]
    files = []

    fig, ax = plt.subplots(figsize=(6.5, 4))
    seen: dict[str, int] = {}
    for r, s, lab in zip(runs, series, shown, strict=True):
        n = seen.get(lab, 0)
        seen[lab] = n + 1
        legend = f"{lab}: {r.name}" if grouped else lab
        ax.plot(range(len(s)), s, marker="o", ms=3, color=colours[lab], ls=styles[n % 4], label=legend)
    ax.set_xlabel("iteration")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(info["indicator"])
    ax.set_title("runs compared" + (" (common reference point)" if info["higher_is_better"] else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    files += save_figure(fig, os.path.join(out, "hv"))

    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(colours) + 2), 3.8))
    ticks = list(colours)
    for x, lab in enumerate(ticks):
        vals = finals[[i for i, v in enumerate(shown) if v == lab]]
        jitter = np.linspace(-0.12, 0.12, len(vals)) if len(vals) > 1 else np.zeros(1)
        ax.scatter(x + jitter, vals, color=colours[lab], zorder=3)
        ax.hlines(np.median(vals), x - 0.25, x + 0.25, color="k", lw=1)
    ax.set_xticks(
        range(len(ticks)),
        ticks,
        rotation=30 if len(ticks) > 3 else 0,
        ha="right" if len(ticks) > 3 else "center",
    )
    ax.set_ylabel(f"final {info['indicator']}")
    ax.set_title(_headline(statistics))
    ax.grid(alpha=0.3, axis="y")
    files += save_figure(fig, os.path.join(out, "final_hv"))

    numbers = {
        "tool": TOOL,
        "mode": "compare",
        "objectives": runs[0].objectives,
        **info,
        "runs": [
            {
                "name": r.name,
                "label": lab,
                "path": os.path.abspath(r.path),
                "stats": os.path.abspath(r.stats_path),
                "seed": r.seed,
                "iterations": r.iteration,
                "indicator": s.tolist(),
                "final": float(s[-1]),
                "hv_stored": r.hv,
                "hv_ref_stored": r.hv_ref,
                "n_evaluated": len(r.F),
                "n_failed": r.n_failed,
            }
            for r, s, lab in zip(runs, series, shown, strict=True)
        ],
        "statistics": statistics,
    }
    return {"numbers": numbers, "files": files}


def _headline(st: dict) -> str:
    """One line for the final-value figure's title."""
    on = "final values by label" if "groups" in st else "paired by iteration"
    f = st.get("friedman", st)
    test = "Friedman" if "friedman" in st else st.get("test", "test").split(",")[0]
    p = f"p = {f['p_value']:.3g}" if f.get("p_value") is not None else "not applicable"
    return f"{test} ({on}): {p}"


# ---- command line -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Statistics and outputs are described in the module docstring (tools/plot_search.py).",
    )
    p.add_argument("--expr", help="one msunas.py run directory (its latest iter_k.stats) or one iter_k.stats")
    p.add_argument(
        "--compare", nargs="+", metavar="RUN", help="two or more runs to compare (seeds or settings)"
    )
    p.add_argument(
        "--labels",
        nargs="+",
        metavar="LABEL",
        help="with --compare: one setting name per run; runs sharing a label are seeds of one setting, "
        "and settings are compared by their runs' final hypervolumes",
    )
    p.add_argument(
        "--output_dir", help="output folder (default: a new results/analysis/plot_search/<experiment>[-k]/)"
    )
    args = p.parse_args(argv)

    if (args.expr is None) == (args.compare is None):
        raise UserError("give either --expr RUN (one run) or --compare RUN RUN [...] (several runs)")
    if args.compare is not None and len(args.compare) < 2:
        raise UserError(f"--compare needs at least 2 runs, got {len(args.compare)}; for one run use --expr")
    if args.labels is not None:
        if args.compare is None:
            raise UserError("--labels goes with --compare (one label per run)")
        if len(args.labels) != len(args.compare):
            raise UserError(
                f"--labels: {len(args.labels)} labels for {len(args.compare)} runs; give one per run"
            )
    for path in args.compare or []:
        if not os.path.exists(path):
            raise UserError(
                f"--compare {path!r} does not exist; give msunas.py run directories or iter_k.stats files"
            )

    import matplotlib

    matplotlib.use("Agg")
    from nas.analysis import experiment_name, output_dir, save_numbers

    if args.expr is not None:
        run = RunData(args.expr, "--expr")
        run.name = experiment_name(args.expr)
        out = output_dir(TOOL, run.name, args.output_dir)
        result = plot_one(run, out)
    else:
        names = unique_names(args.compare)
        runs = [RunData(path, "--compare") for path in args.compare]
        for r, n in zip(runs, names, strict=True):
            r.name = n
        check_compare(runs, args.labels)  # an error leaves no empty output folder behind
        tags = list(dict.fromkeys(args.labels)) if args.labels else names
        experiment = "compare-" + "-".join(t.replace("/", "-") for t in tags)
        if len(experiment) > 80:
            experiment = f"compare-{tags[0]}-and-{len(tags) - 1}-more"
        out = output_dir(TOOL, experiment_name(experiment), args.output_dir)
        result = plot_compare(runs, args.labels, out)
    save_numbers(os.path.join(out, "numbers.json"), result["numbers"])
    print(f"wrote {', '.join(os.path.basename(f) for f in result['files'])}, numbers.json to {out}/")
    if args.compare is not None:
        st = result["numbers"]["statistics"]
        print(f"{result['numbers']['indicator']}: " + _headline(st))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
