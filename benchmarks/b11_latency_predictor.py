"""B11: latency predictors on the Note10 table labels, against the latency seed's 0.3525 ms.

.venv/bin/python benchmarks/b11_latency_predictor.py [--lut data/ofa] [--n_test 1500] [--test_seed 1000]
    [--sizes 100 300 1000 7000] [--seeds 0] [--models additive gbdt gbdt_stacked mlp mlp_seed]
    [--mlp_sizes 100 300 1000 7000] [--threads 1] [--out benchmarks/results/b11]
    [--figure docs/img/b11_latency_predictor.png]

Labels are exact: the sum of the Note10 look-up-table entries of each network (``data/ofa``, OFA's
w1.2 space at r = 160, 176, 192, 208, 224). The test set is ``--n_test`` unique random networks
(seed ``--test_seed``); per seed of ``--seeds``, ``max(--sizes)`` other unique networks are drawn
and the first ``n`` of them train each model (nested sets; a model's own early-stopping share is
taken out of those ``n``, never from the test set). Models (``hardware/predictors.py``):

- ``additive``: one coefficient per (resolution, layer key) shrunk toward a linear model of the
  layer's MACs, ridge penalty by 5-fold cross-validation;
- ``gbdt``: scikit-learn gradient boosting on structural features (MACs, per-stage sums, genes);
  ``gbdt_stacked``: the same boosting the out-of-fold residual of ``additive``;
- ``mlp``: the seed's one-hot MLP 125-400-400-400-1 (one slot per resolution), our training
  (Adam, weight decay 1e-3, target / mean, cosine schedule, early stopping on 10% of the n);
- ``mlp_seed``: the same network trained with the seed's best Note10 recipe (SGD lr 0.01,
  momentum 0.6, weight decay 1e-4, batch 32, 50 epochs, loss sqrt(MSE), raw ms targets).

Metrics on the test set: true RMSE, MAE (what the seed called RMSE: its 0.3525 ms with 7,000
samples is a mean absolute error), MAPE, +-5% / +-10% accuracy, Spearman, Kendall. Goal: true RMSE
<= 0.10 ms with <= 1,000 training samples for the best model. Rows are appended to
``<out>/rows.jsonl`` as they finish and re-used on a re-run with the same settings (resumable);
the summary goes to ``<out>/b11.json`` and ``<out>/b11.csv``, the figure (RMSE vs training
samples, log-log) to ``<out>/b11.png`` and ``.pdf``, and a copy of the PNG to ``--figure``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hardware.latency_data import arch_key, lut_labels  # noqa: E402
from hardware.metrics import format_table, latency_metrics  # noqa: E402
from hardware.predictors import make_predictor  # noqa: E402
from nas.io import atomic_write_bytes, write_json  # noqa: E402

ANCHOR_MAE = 0.3525  # the seed's Note10 "RMSE" (a mean absolute error), 7,000 training samples
GOAL_RMSE = 0.10  # ms, with <= 1,000 training samples

SEED_RECIPE = dict(
    optimizer="sgd", lr=0.01, momentum=0.6, weight_decay=1e-4, batch_size=32, epochs=50, loss="rmse",
    target_scale="none", patience=0, schedule="constant",
)  # fmt: skip
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "additive": ("additive", {}),
    "gbdt": ("gbdt", {}),
    "gbdt_stacked": ("gbdt", {"stack": True}),
    "mlp": ("mlp", {}),
    "mlp_seed": ("mlp", SEED_RECIPE),
}
SHOWN = ("rmse", "mae", "mape", "within5", "within10", "spearman")


def run_one(name: str, seed: int, train: tuple[list, np.ndarray], test: tuple[list, np.ndarray]) -> dict:
    kind, options = MODELS[name]
    t0 = time.time()
    model = make_predictor(kind, **{**options, "seed": seed}).fit(*train)
    fit_s = time.time() - t0
    t0 = time.time()
    pred = model.predict(test[0])
    predict_s = time.time() - t0
    info = {k: v for k, v in model.info.items() if isinstance(v, int | float | str)}
    metrics = latency_metrics(test[1], pred)
    metrics["n_test"] = metrics.pop("n")
    return {
        "model": name, "n": len(train[1]), "seed": seed, "fit_s": round(fit_s, 2),
        "predict_ms_per_net": round(1000 * predict_s / len(test[1]), 4), "info": info, **metrics,
    }  # fmt: skip


def fmt_ms(v: float) -> str:
    return f"{v:.1e}" if 0 < abs(v) < 1e-3 else f"{v:.4f}"


def summarise(rows: list[dict]) -> list[dict]:
    """Mean (and std over seeds) of every metric per (model, n)."""
    out = []
    for model, n in sorted(
        {(r["model"], r["n"]) for r in rows}, key=lambda k: (list(MODELS).index(k[0]), k[1])
    ):
        group = [r for r in rows if r["model"] == model and r["n"] == n]
        s: dict[str, Any] = {"model": model, "n": n, "seeds": len(group)}
        for m in (*SHOWN, "kendall", "fit_s"):
            values = np.array([r[m] for r in group], float)
            s[m] = float(values.mean())
            s[f"{m}_std"] = float(values.std()) if len(group) > 1 else 0.0
        out.append(s)
    return out


def plot(summary: list[dict], stem: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nas.analysis import save_figure

    floor = 1e-4  # exact fits (RMSE ~1e-7 ms, rounding) are drawn here
    fig, ax = plt.subplots(figsize=(7, 4.8))
    clipped: dict[int, float] = {}
    for i, model in enumerate(m for m in MODELS if any(s["model"] == m for s in summary)):
        pts = sorted((s["n"], s["rmse"], s["rmse_std"]) for s in summary if s["model"] == model)
        y = [max(p[1], floor) for p in pts]
        yerr = [p[2] if p[1] >= floor else 0.0 for p in pts]
        ax.errorbar([p[0] for p in pts], y, yerr=yerr, fmt="o-", color=f"C{i}", label=model, capsize=3)
        for p in pts:
            if p[1] < floor:
                clipped[p[0]] = max(clipped.get(p[0], 0.0), p[1])
    for x, v in clipped.items():
        ax.annotate(f"exact: <= {v:.0e}", (x, floor), textcoords="offset points", xytext=(0, 7), ha="center",
                    fontsize=7)  # fmt: skip
    ax.axhline(GOAL_RMSE, color="k", ls="--", lw=1, label=f"goal: RMSE {GOAL_RMSE} ms (n <= 1,000)")
    ax.plot([7000], [ANCHOR_MAE], "k*", ms=10, label=f"seed's MLP: {ANCHOR_MAE} ms MAE (n = 7,000)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor * 0.7)
    ax.set_xlabel("training networks (Note10 table labels)")
    ax.set_ylabel("true RMSE on 1,500 held-out networks, ms")
    ax.set_title("B11: latency predictors vs training samples (Note10 LUT labels)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    save_figure(fig, str(stem))


def write_csv(path: Path, summary: list[dict]) -> None:
    buf = io.StringIO()
    keys = list(summary[0])
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    w.writerows(summary)
    atomic_write_bytes(path, buf.getvalue().encode())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lut", default=str(ROOT / "data" / "ofa"), help="folder of the Note10 tables")
    p.add_argument("--n_test", type=int, default=1500, help="unique held-out test networks")
    p.add_argument("--test_seed", type=int, default=1000, help="seed of the test networks")
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000, 7000], help="training set sizes")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of the training sets and models")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS), help="models to run")
    p.add_argument(
        "--mlp_sizes", type=int, nargs="+", default=None,
        help="training sizes for mlp and mlp_seed (default: --sizes)",
    )  # fmt: skip
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "b11"), help="results folder")
    p.add_argument(
        "--figure",
        default=str(ROOT / "docs" / "img" / "b11_latency_predictor.png"),
        help="where to copy the figure's PNG (default: docs/img/b11_latency_predictor.png; '' for none)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    test = lut_labels(args.lut, args.n_test, args.test_seed)
    test_keys = {arch_key(a) for a in test[0]}
    setting = {"lut": Path(args.lut).name, "n_test": args.n_test, "test_seed": args.test_seed}
    rows_path = out / "rows.jsonl"
    done = {}
    if rows_path.is_file():
        for line in rows_path.read_text().splitlines():
            r = json.loads(line)
            if r.get("setting") == setting:
                done[r["model"], r["n"], r["seed"]] = r
    rows: list[dict] = []
    done_used: list[tuple] = []
    for seed in args.seeds:
        pool = lut_labels(args.lut, max(args.sizes + (args.mlp_sizes or [])), seed, exclude=test_keys)
        for name in args.models:
            sizes = args.mlp_sizes if name.startswith("mlp") and args.mlp_sizes else args.sizes
            for n in sorted(sizes):
                if (name, n, seed) in done:
                    rows.append(done[name, n, seed])
                    done_used.append((name, n, seed))
                    continue
                r = {"setting": setting, **run_one(name, seed, (pool[0][:n], pool[1][:n]), test)}
                rows.append(r)
                with open(rows_path, "a") as f:
                    f.write(json.dumps(r) + "\n")
                print(
                    f"{name:>13} n={n:<5} seed={seed}  RMSE {r['rmse']:.4f}  MAE {r['mae']:.4f}  "
                    f"+-5% {r['within5']:.1f}  fit {r['fit_s']:.1f} s",
                    flush=True,
                )
    summary = summarise(rows)
    meeting = {}  # model -> its smallest n <= 1,000 with RMSE <= the goal
    for s in sorted(summary, key=lambda s: s["n"]):
        if s["n"] <= 1000 and s["rmse"] <= GOAL_RMSE:
            meeting.setdefault(s["model"], {"n": s["n"], "rmse": s["rmse"]})
    mlp_7000 = next((s for s in summary if s["model"] == "mlp_seed" and s["n"] == 7000), None)
    report = {
        "settings": {**setting, "sizes": args.sizes, "seeds": args.seeds, "models": args.models,
                     "mlp_sizes": args.mlp_sizes, "threads": args.threads},
        "summary": summary,
        "goal": {"rmse_ms": GOAL_RMSE, "met_by": meeting, "met": bool(meeting)},
        "anchor": {"seed_mae_ms_at_7000": ANCHOR_MAE,
                   "mlp_seed_recipe_at_7000": None if mlp_7000 is None else
                   {k: mlp_7000[k] for k in ("rmse", "mae", "within5", "within10")}},
        "rows": rows,
        "wall_s": round(time.time() - t_start, 1),
        "rows_reused": len(done_used),
        "fit_s_total": round(sum(r["fit_s"] for r in rows), 1),
    }  # fmt: skip
    write_json(out / "b11.json", report)
    write_csv(out / "b11.csv", summary)
    plot(summary, out / "b11")
    if args.figure:
        atomic_write_bytes(args.figure, (out / "b11.png").read_bytes())
    print()
    shown = [{**s, "RMSE ms": fmt_ms(s["rmse"]), "MAE ms": fmt_ms(s["mae"]), "fit s": f"{s['fit_s']:.1f}"}
             for s in summary]  # fmt: skip
    print(format_table(shown, ["model", "n", "RMSE ms", "MAE ms"], SHOWN[2:], after=["fit s"]))
    by = ", ".join(f"{m} at n = {v['n']} (RMSE {fmt_ms(v['rmse'])} ms)" for m, v in meeting.items())
    print(
        f"\ngoal (RMSE <= {GOAL_RMSE} ms with <= 1,000 samples): {'met by ' + by if meeting else 'not met'}"
    )
    reused = f", {len(done_used)} of {len(rows)} rows re-used from {rows_path}" if done_used else ""
    print(f"wall time {report['wall_s']:.0f} s (threads {args.threads}{reused})")
    print(f"wrote {out}/b11.json, {out}/b11.csv, {out}/b11.png" + (f", {args.figure}" if args.figure else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
