"""Which genes a search's surrogate relies on: permutation importance per feature, gene family and stage.

    python tools/analyze_surrogate_importance.py --expr results/search-c10 --predictor carts --top_k 10 --plot
    python tools/analyze_surrogate_importance.py --expr results/nb201/iter_10.stats --predictor gp
    python tools/analyze_surrogate_importance.py --expr results/search-c10 --output_dir my/folder

The surrogate is fitted as the search fits it: on ``space.features(arch)`` of the run's successful
evaluations (``--expr``: a run directory, its latest ``iter_k.stats``, or one stats file) against
the first objective (minimised, e.g. top-1 error). ``--predictor`` defaults to the run's.

Permutation importance, on held-out data: the archive is split into ``--k`` seeded folds and a
surrogate is fitted on each fold's complement, so every row has an out-of-fold prediction (their
Kendall tau and rmse against the truth are the baseline). For each repeat (``--n_repeats``) one
random permutation of the rows is drawn; a group's columns are replaced *jointly* by the permuted
rows' values (so a group keeps the combinations its genes take together), every row is
predicted again by the model that did not train on it, and the importance of the group is the
drop in Kendall tau (and the increase in rmse) against the baseline. The same permutations serve
every group. Mean and std are over the repeats (the error bars). Groups: every single feature,
every gene family and every stage, from the space's ``feature_names()`` (``family[.s<k>][...]``:
the first token is the family, a token ``s<k>`` the stage, no such token = ``global``).
``as`` (Adaptive Switching) is fitted on the whole archive as in the search; its choice (e.g.
``gp``) is the model whose importances are measured. ``carts`` (also when ``as`` chooses it)
adds impurity importance: the model fitted on the whole archive, each tree's importances summed
per group, mean and std over the trees.

Caveat (OFA MobileNetV3): the ``ks``/``e`` features of blocks a depth can switch off are 0 when the
block is off, so depth is also visible through them; permuting the ``d`` family alone then
understates depth, while a stage group (its depth with its blocks) stays consistent.

Outputs (``results/analysis/surrogate_importance/<experiment>[-k]/`` by default, never
overwriting; ``--output_dir`` to choose): ``importance.json`` (every number), and with ``--plot``
``families``, ``stages`` and ``top_features`` as PNG and PDF. A short table goes to stdout.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from acc_predictor.adaptive_switching import AdaptiveSwitching  # noqa: E402
from nas.analysis import experiment_name, output_dir, save_figure, save_numbers  # noqa: E402
from nas.cli import run_cli  # noqa: E402
from nas.errors import UserError  # noqa: E402
from nas.post_search import Run, load_run  # noqa: E402
from nas.space import (  # noqa: E402
    SearchSpace,  # noqa: E402
    list_search_spaces,
)
from nas.surrogate import SURROGATES, get_surrogate, kfold_indices, list_surrogates, min_cv_samples, quality  # noqa: E402  # noqa: E402

TOOL = "surrogate_importance"
SCHEMA = "nas-surrogate-importance/1"
GLOBAL = "global"  # the stage of a feature whose name has no s<k> token
_STAGE = re.compile(r"^s(\d+)$")


# ---- the run's data ------------------------------------------------------------------------------


def run_space_name(run: Run) -> str:
    return run.spec.space.name


def space_of_run(run: Run, requested: str | None) -> SearchSpace:
    """The search space the run searched (``requested`` must agree with it when given)."""
    name = run_space_name(run)
    if requested is not None:
        if requested not in list_search_spaces():
            raise UserError(
                f"unknown --search_space {requested!r}; choose one of: {', '.join(list_search_spaces())}"
            )
        if requested != name:
            raise UserError(
                f"--search_space {requested!r} does not match the run's search space {name!r} "
                f"({run.stats_path}); leave --search_space out or give {name!r}"
            )
    from nas.search.factory import build_space

    return build_space(run.spec)


def archive_xy(run: Run, space: SearchSpace) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features, first objective and feature names, exactly as the search fits its surrogate."""
    X = np.stack([space.features(r.arch) for r in run.results])
    y = run.F[:, 0].astype(float)
    names = space.feature_names()
    if len(names) != X.shape[1]:
        raise UserError(
            f"search space {space.name!r} names {len(names)} features but computes {X.shape[1]}; "
            "its feature_names() must match features()"
        )
    if not np.all(np.isfinite(y)):
        raise UserError(f"{run.stats_path}: the first objective has NaN/inf values; nothing to explain")
    if np.ptp(y) <= 1e-12 * max(1.0, float(np.abs(y).max())):
        raise UserError(
            f"{run.stats_path}: the first objective {run.objectives[0].name!r} is the same for every "
            "architecture; a ranking of equal values has no importances"
        )
    return X, y, names


def min_rows(predictor: str, k: int) -> int:
    """The fewest archive rows k-fold cross-validation of ``predictor`` accepts."""
    if predictor == "as":
        return AdaptiveSwitching(np.random.default_rng(0), k=k).min_samples
    return min_cv_samples(predictor, k)


# ---- groups --------------------------------------------------------------------------------------


def parse_name(name: str) -> tuple[str, str]:
    """``(family, stage)`` of a feature name (``family[.s<k>][...]``; no ``s<k>``: ``global``)."""
    tokens = name.split(".")
    stage = next((t for t in tokens[1:] if _STAGE.match(t)), GLOBAL)
    return tokens[0], stage


def feature_groups(names: list[str]) -> dict[str, dict[str, list[int]]]:
    """Column indices per feature, per family (in order of first appearance) and per stage
    (``s0``, ``s1``, ... by number, then ``global``)."""
    families: dict[str, list[int]] = {}
    stages: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        family, stage = parse_name(name)
        families.setdefault(family, []).append(j)
        stages.setdefault(stage, []).append(j)

    def stage_key(s: str) -> tuple[int, int]:
        m = _STAGE.match(s)
        return (0, int(m.group(1))) if m else (1, 0)

    return {
        "feature": {name: [j] for j, name in enumerate(names)},
        "family": families,
        "stage": {s: stages[s] for s in sorted(stages, key=stage_key)},
    }


# ---- importances ---------------------------------------------------------------------------------


def _mean_std(v: np.ndarray) -> tuple[float | None, float | None]:
    v = np.asarray(v, dtype=float)
    v = v[~np.isnan(v)]
    if not len(v):
        return None, None
    return float(v.mean()), float(v.std())


def permutation_importance(
    predictor: str,
    X: np.ndarray,
    y: np.ndarray,
    groups: dict[str, dict[str, list[int]]],
    k: int,
    n_repeats: int,
    rng: np.random.Generator,
) -> tuple[dict[str, float], dict[str, list[dict[str, Any]]]]:
    """Out-of-fold baseline quality and, per grouping and group, the drop in Kendall tau and the
    increase in rmse when the group's columns are permuted jointly (per repeat, mean, std)."""
    n = len(y)
    folds = kfold_indices(n, k, rng)
    models = []
    for test in folds:
        train = np.setdiff1d(np.arange(n), test, assume_unique=True)
        models.append((test, get_surrogate(predictor, rng).fit(X[train], y[train])))
    oof = np.empty(n)
    for test, model in models:
        oof[test] = model.predict(X[test])
    base = quality(y, oof)
    perms = [rng.permutation(n) for _ in range(n_repeats)]  # shared by all groups: fairer comparisons

    out: dict[str, list[dict[str, Any]]] = {}
    cache: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}  # a family of one column = that column
    for kind, by_name in groups.items():
        rows = []
        for name, cols in by_name.items():
            key = tuple(cols)
            if key not in cache:
                cache[key] = _permuted_quality(models, X, y, cols, perms, base)
            tau_drop, rmse_inc = cache[key]
            t_mean, t_std = _mean_std(tau_drop)
            r_mean, r_std = _mean_std(rmse_inc)
            rows.append(
                {
                    "name": name,
                    "n_columns": len(cols),
                    "tau_drop": t_mean,
                    "tau_drop_std": t_std,
                    "rmse_increase": r_mean,
                    "rmse_increase_std": r_std,
                    "tau_drop_repeats": [_num(v) for v in tau_drop],
                    "rmse_increase_repeats": [_num(v) for v in rmse_inc],
                }
            )
        out[kind] = rows
    return base, out


def _permuted_quality(
    models: list, X: np.ndarray, y: np.ndarray, cols: list[int], perms: list[np.ndarray], base: dict
) -> tuple[np.ndarray, np.ndarray]:
    """Tau drop and rmse increase per repeat with ``cols`` permuted (one predict call per fold)."""
    n, r = len(y), len(perms)
    Xp = np.tile(X, (r, 1))  # repeat i occupies rows i*n .. (i+1)*n - 1
    for i, p in enumerate(perms):
        Xp[i * n : (i + 1) * n, cols] = X[p][:, cols]
    pred = np.empty(r * n)
    for test, model in models:
        idx = (np.arange(r)[:, None] * n + test[None, :]).ravel()
        pred[idx] = model.predict(Xp[idx])
    pred = pred.reshape(r, n)
    tau_drop, rmse_inc = np.empty(r), np.empty(r)
    for i in range(r):
        q = quality(y, pred[i])
        tau_drop[i] = base["tau"] - q["tau"]
        rmse_inc[i] = q["rmse"] - base["rmse"]
    return tau_drop, rmse_inc


def impurity_importance(model, groups: dict[str, dict[str, list[int]]]) -> dict[str, list[dict[str, Any]]]:
    """carts: impurity importance summed per group: the mean over the trees (= the group's sum of
    ``feature_importances_``), its std over the trees and its standard error (std / sqrt(trees))."""
    d = len(model.feature_importances_)
    per_tree = []
    for cols, tree in model.trees_:
        v = np.zeros(d)
        v[cols] = tree.feature_importances_
        per_tree.append(v)
    T = np.array(per_tree)
    out = {}
    for kind, by_name in groups.items():
        out[kind] = [
            {
                "name": name,
                "impurity": float(model.feature_importances_[cols].sum()),
                "impurity_std": float(T[:, cols].sum(axis=1).std()),
                "impurity_sem": float(T[:, cols].sum(axis=1).std() / math.sqrt(len(T))),
            }
            for name, cols in by_name.items()
        ]
    return out


def _num(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _jsonable(obj: Any) -> Any:
    """Plain JSON: NumPy scalars to Python, NaN/inf to null (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(key): _jsonable(v) for key, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    return obj


def ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Most important first: by tau drop, then rmse increase (undefined values last)."""

    def key(r):
        t, e = r["tau_drop"], r["rmse_increase"]
        return (-(t if t is not None else -math.inf), -(e if e is not None else -math.inf))

    return sorted(rows, key=key)


# ---- output --------------------------------------------------------------------------------------


def _fmt(mean: float | None, std: float | None, width: int = 15, sign: bool = True) -> str:
    s = "n/a" if mean is None else f"{mean:+.3f} ± {std:.3f}" if sign else f"{mean:.3f} ± {std:.3f}"
    return s.rjust(width)


def table(title: str, rows: list[dict[str, Any]], has_impurity: bool) -> str:
    w = max([len(title)] + [len(r["name"]) for r in rows])
    head = f"{title:<{w}}  cols  {'tau drop ± std':>15}  {'rmse incr ± std':>15}"
    if has_impurity:
        head += f"  {'impurity ± s.e.':>15}"
    lines = [head]
    for r in rows:
        line = (
            f"{r['name']:<{w}}  {r['n_columns']:>4}  {_fmt(r['tau_drop'], r['tau_drop_std'])}  "
            f"{_fmt(r['rmse_increase'], r['rmse_increase_std'])}"
        )
        if has_impurity:
            line += f"  {_fmt(r['impurity'], r['impurity_sem'], sign=False)}"
        lines.append(line)
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], title: str, stem: str, has_impurity: bool) -> list[str]:
    """Horizontal bars (most important on top), one panel per measure, error bars = std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("tau_drop", "tau_drop_std", "drop in Kendall tau (± std)"),
        ("rmse_increase", "rmse_increase_std", "increase in rmse (± std)"),
    ]
    if has_impurity:
        panels.append(("impurity", "impurity_sem", "carts impurity (± s.e. over trees)"))
    names = [r["name"] for r in rows][::-1]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.6 * len(panels), 0.8 + 0.28 * len(rows)), sharey=True, squeeze=False
    )
    for ax, (key, err, label) in zip(axes[0], panels, strict=True):
        vals = [r[key] if r[key] is not None else 0.0 for r in rows][::-1]
        errs = [r[err] if r[err] is not None else 0.0 for r in rows][::-1]
        ax.barh(names, vals, xerr=errs, color="tab:blue" if key != "impurity" else "tab:green", capsize=2)
        ax.axvline(0, color="black", lw=0.6)
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, stem)


# ---- the command ---------------------------------------------------------------------------------


def int_at_least(text: str, flag: str, low: int, example: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise UserError(f"{flag} {text!r} must be an integer >= {low}, e.g. {flag} {example}")
    return value


def analyse(
    expr: str,
    predictor: str | None = None,
    search_space: str | None = None,
    top_k: int = 10,
    k: int = 5,
    n_repeats: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Every number of the analysis (what ``importance.json`` holds)."""
    run = load_run(expr)
    predictor = predictor or getattr(run.spec.strategy.options, "predictor", None) or "as"
    SURROGATES.get(predictor)  # an unknown name is a UserError listing the choices
    space = space_of_run(run, search_space)
    X, y, names = archive_xy(run, space)
    need = min_rows(predictor, k)
    if len(y) < need:
        raise UserError(
            f"{run.stats_path}: {len(y)} successful evaluations, but {k}-fold cross-validation of "
            f"surrogate {predictor!r} needs at least {need}; use a later iteration, a smaller --k "
            "or another --predictor"
        )
    rng = np.random.default_rng(seed)
    model_name, as_info, full = predictor, None, None
    if predictor == "as":
        full = AdaptiveSwitching(rng, k=k).fit(X, y)  # as the search fits it: on the whole archive
        model_name = full.chosen
        as_info = _jsonable(full.cv_quality_)
        full = full.model_
    groups = feature_groups(names)
    base, perm = permutation_importance(model_name, X, y, groups, k, n_repeats, rng)
    impurity = None
    if model_name == "carts":
        if full is None:
            full = get_surrogate("carts", rng).fit(X, y)
        impurity = impurity_importance(full, groups)
        for kind in perm:
            for row, imp in zip(perm[kind], impurity[kind], strict=True):
                row.update({key: v for key, v in imp.items() if key != "name"})
    top = ranked(perm["feature"])[: min(top_k, len(names))]
    return {
        "schema": SCHEMA,
        "stats": os.path.abspath(run.stats_path),
        "experiment": experiment_name(run.stats_path),
        "search_space": space.name,
        "objective": run.objectives[0].name,  # the target is its minimised value (top1: top-1 error)
        "predictor": predictor,
        "model": model_name,
        "adaptive_switching": as_info,
        "n_rows": len(y),
        "n_failed": run.n_failed,
        "k": k,
        "n_repeats": n_repeats,
        "seed": seed,
        "baseline": {key: _num(v) for key, v in base.items()},
        "feature_names": names,
        "features": perm["feature"],
        "families": ranked(perm["family"]),
        "stages": perm["stage"],
        "top_k": [r["name"] for r in top],
        "impurity": impurity is not None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Importance of a group = drop in held-out (k-fold) Kendall tau and increase in rmse "
        "when its columns are permuted jointly; carts adds impurity importance. Groups: features, "
        "gene families, stages (from the space's feature_names()). Details: the docstring of "
        "tools/analyze_surrogate_importance.py.",
    )
    p.add_argument("--expr", required=True, help="msunas.py run directory or one iter_k.stats file")
    p.add_argument(
        "--predictor", help=f"surrogate: {', '.join(list_surrogates())} (default: the run's --predictor)"
    )
    p.add_argument("--search_space", help="the run's search space (checked against it; default: the run's)")
    p.add_argument("--top_k", default="10", help="list (and plot) the K most important features (default 10)")
    p.add_argument("--k", default="5", help="folds of the held-out split (default 5)")
    p.add_argument("--n_repeats", default="10", help="permutations per group (default 10)")
    p.add_argument(
        "--seed", default="0", help="seed of the folds, the models and the permutations (default 0)"
    )
    p.add_argument("--plot", action="store_true", help="also write the figures (PNG and PDF)")
    p.add_argument(
        "--output_dir",
        help=f"output folder (default: a new results/analysis/{TOOL}/<experiment>[-k]/)",
    )
    args = p.parse_args(argv)
    top_k = int_at_least(args.top_k, "--top_k", 1, 10)
    k = int_at_least(args.k, "--k", 2, 5)
    n_repeats = int_at_least(args.n_repeats, "--n_repeats", 1, 10)
    seed = int_at_least(args.seed, "--seed", 0, 0)

    result = analyse(args.expr, args.predictor, args.search_space, top_k, k, n_repeats, seed)
    out = output_dir(TOOL, result["experiment"], args.output_dir)
    stem = os.path.join(out, "")
    files = [save_numbers(stem + "importance.json", _jsonable(result))]
    imp = result["impurity"]
    by_name = {r["name"]: r for r in result["features"]}
    top = [by_name[n] for n in result["top_k"]]
    if args.plot:
        what = f"{result['model']}" + (" (chosen by as)" if result["predictor"] == "as" else "")
        head = f"{result['experiment']}: surrogate {what}, {result['n_rows']} archs"
        files += plot(result["families"], f"{head}, per gene family", stem + "families", imp)
        files += plot(result["stages"], f"{head}, per stage", stem + "stages", imp)
        files += plot(top, f"{head}, top {len(top)} features", stem + "top_features", imp)

    b = result["baseline"]
    chosen = f" (as chose {result['model']})" if result["predictor"] == "as" else ""
    tau = "n/a" if b["tau"] is None else f"{b['tau']:.3f}"
    print(
        f"surrogate {result['predictor']}{chosen} on {result['n_rows']} archs of {result['stats']}, "
        f"objective {result['objective']}; {k}-fold held-out tau {tau}, rmse {b['rmse']:.4g}; "
        f"{n_repeats} permutations per group"
    )
    print()
    print(table("family", result["families"], imp))
    print()
    print(table("stage", result["stages"], imp))
    print()
    print(table(f"top {len(top)} features", top, imp))
    print()
    for f in files:
        print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
