"""B12: latency on this CPU: table sum, calibrated table, predictors and few-shot transfer vs measured.

    taskset -c 0 .venv/bin/python benchmarks/b12_cpu_latency.py [--data benchmarks/results/b12]
        [--n_train 2000] [--n_test 400] [--split_seed 0] [--ks 10 20 50 100] [--seeds 0 1 2]
        [--source_samples 7000] [--out benchmarks/results/b12] [--figure docs/img/b12_cpu_latency]

Measurements (made first when ``--data`` lacks them, with the protocol below, and resumed when
interrupted): ``<data>/lut``, this CPU's OFA-format table of the w1.0 space at 160-224 px step 16
(``tools/build_latency_lut.py``: 450 unique layers, 10 warm-up + 50 timed calls each) and
``<data>/dataset``, whole networks (``tools/build_latency_dataset.py``: 2,400 unique random
subnets, median of 25 timed calls after 10 warm-up, 20 reference networks re-timed every 300).
Both at batch size 1, one thread, channels_last, eval mode; pin the process to one core
(``taskset -c 0``) and keep the machine otherwise idle.

Analysis: ``--n_test`` networks of the dataset (seed ``--split_seed``) are the test set, the
other ``--n_train`` the training pool. Reported on the test set (true RMSE, MAE, MAPE, +-5% and
+-10% accuracy as nn-Meter counts it, Spearman): the table sum as it is, the table calibrated
(``a * sum + b``) on k networks, the predictors trained on the pool (``additive``, ``gbdt`` with
the additive model stacked, ``mlp``), and few-shot transfer: the seed's MLP pre-trained on the
Note10 table labels of ``--source_samples`` networks (the same genes, the tables' w1.2 widths)
adapted with k of this CPU's networks by head-only fine-tuning (the seed's), full fine-tuning, the
calibrated Note10 table and this CPU's calibrated table, per seed. Also the noise floor (the
dataset's median relative IQR and the reference networks' drift). Goals: a predictor with 2,000
samples >= 99% within +-10% and >= 90% within +-5%; Spearman >= 0.97 with 20 samples.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hardware.dataset import build_dataset  # noqa: E402
from hardware.latency_data import (  # noqa: E402
    lut_labels,  # noqa: E402
    read_dataset,
    split_unique,
)
from hardware.lut import build_lut  # noqa: E402
from hardware.measure import TimingProtocol  # noqa: E402
from hardware.metrics import format_table, latency_metrics  # noqa: E402
from hardware.predictors import CalibratedLUT, make_predictor, transfer_curve  # noqa: E402
from hardware.spaces import ofa_space  # noqa: E402
from nas.io import write_json  # noqa: E402

RESOLUTIONS = (160, 176, 192, 208, 224)
METRICS = ("rmse", "mae", "mape", "within5", "within10", "spearman")
PREDICTORS = {"additive": {}, "gbdt_stacked": {"stack": True}, "mlp": {}}


def measure(data: Path) -> None:
    """This CPU's table and dataset with B12's protocol (no-ops when complete)."""
    space = ofa_space("mobilenetv3", 1.0, lr=160, ur=224, rstep=16)
    build_lut(space, RESOLUTIONS, data / "lut", TimingProtocol(threads=1, warmup=10, repeats=50))
    build_dataset(space, 2400, data / "dataset", TimingProtocol(threads=1, warmup=10, repeats=25), 20, 300)


def noise_floor(ds: Any, data: Path) -> dict[str, Any]:
    """How reproducible the labels are: the spread of the repeats within a measurement, and the
    re-measurements of the reference networks (each round's median against the median of all
    rounds of that network: the share within +-5% / +-10% bounds what any predictor can reach)."""
    import csv

    rel = ds.iqr_ms / ds.latency_ms
    protocol = json.loads((data / "dataset" / "protocol.json").read_text())
    by_ref: dict[str, list[float]] = {}
    with open(data / "dataset" / "references.csv", newline="") as f:
        for row in csv.DictReader(f):
            by_ref.setdefault(row["ref"], []).append(float(row["latency_ms"]))
    dev = np.concatenate([np.asarray(v) / np.median(v) - 1.0 for v in by_ref.values()])
    y = ds.latency_ms
    return {
        "median_rel_iqr_pct": float(100 * np.median(rel)),
        "p90_rel_iqr_pct": float(100 * np.percentile(rel, 90)),
        "drift": protocol.get("drift"),
        "retest_within5": float(100 * np.mean(np.abs(dev) <= 0.05)),
        "retest_within10": float(100 * np.mean(np.abs(dev) <= 0.10)),
        "retest_rmse_pct": float(100 * np.sqrt(np.mean(dev**2))),
        "latency_ms": [float(y.min()), float(np.median(y)), float(y.max())],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data", default=str(ROOT / "benchmarks/results/b12"), help="folder with lut/ and dataset/"
    )
    p.add_argument("--n_train", type=int, default=2000, help="training pool size")
    p.add_argument("--n_test", type=int, default=400, help="test networks")
    p.add_argument("--split_seed", type=int, default=0)
    p.add_argument("--ks", type=int, nargs="+", default=[10, 20, 50, 100], help="few-shot sample counts")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the few-shot draws")
    p.add_argument(
        "--source_samples", type=int, default=7000, help="Note10-labelled networks to pre-train on"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads for training the predictors")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/b12"))
    p.add_argument(
        "--figure", default=str(ROOT / "docs/img/b12_cpu_latency"), help="figure path without suffix"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data, out = Path(args.data), Path(args.out)
    measure(data)
    ds = read_dataset(data / "dataset" / "latency.csv")
    (train_a, train_y), (test_a, test_y) = split_unique(
        ds.archs, ds.latency_ms, [args.n_train, args.n_test], args.split_seed
    )
    result: dict[str, Any] = {"noise": noise_floor(ds, data), "n_train": len(train_a), "n_test": len(test_a)}
    rows: list[dict[str, Any]] = []

    def add(model: str, k: int, pred: np.ndarray, seed: int = 0) -> None:
        rows.append({"model": model, "k": k, "seed": seed, **latency_metrics(test_y, pred)})

    table = CalibratedLUT(lut_dir=str(data / "lut"), table_width=1.0, intercept=False)
    add("cpu_table_sum", 0, table.table_sum(test_a))
    for k in [*args.ks, len(train_a)]:
        for seed in args.seeds if k < len(train_a) else [0]:
            idx = np.random.default_rng(seed).permutation(len(train_a))[:k]
            model = CalibratedLUT(lut_dir=str(data / "lut"), table_width=1.0).fit(
                [train_a[i] for i in idx], train_y[idx]
            )
            add("cpu_table_calibrated", k, model.predict(test_a), seed)
    for name, options in PREDICTORS.items():
        kind = "gbdt" if name.startswith("gbdt") else name
        t = time.perf_counter()
        model = make_predictor(kind, **options).fit(train_a, train_y)
        add(name, len(train_a), model.predict(test_a))
        rows[-1]["train_s"] = round(time.perf_counter() - t, 1)
    result["predictors"] = rows
    print(format_table(rows, ["model", "k", "seed"], METRICS), flush=True)

    # few-shot transfer from the Note10 table labels of the same genes
    src_a, src_y = lut_labels(ROOT / "data/ofa", args.source_samples, seed=12345)
    source = make_predictor("mlp").fit(src_a, src_y)
    transfer = transfer_curve(
        source,
        train_a,
        train_y,
        test_a,
        test_y,
        args.ks,
        args.seeds,
        ("source", "head", "full", "calibrated_lut"),
    )
    transfer += [  # this CPU's own table calibrated on the same k (other draws of the pool)
        {**{k: v for k, v in r.items() if k != "model"}, "method": r["model"]}
        for r in rows
        if r["model"] == "cpu_table_calibrated" and r["k"] in args.ks
    ]
    result["transfer"] = transfer
    result["seconds"] = round(time.perf_counter() - t0, 1)

    summary = summarise_transfer(transfer)
    print(format_table(summary, ["method", "k"], ("spearman", "within10", "mape")))
    print(f"noise floor: {json.dumps(result['noise'])}")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "b12.json", result)
    plot(result, summary, Path(args.figure))
    print(f"B12 took {result['seconds']:.0f} s (analysis; the measurements are timed in their protocol.json)")
    return 0


def summarise_transfer(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for key in dict.fromkeys((r["method"], r["k"]) for r in rows):
        group = [r for r in rows if (r["method"], r["k"]) == key]
        out.append(
            {"method": key[0], "k": key[1], **{m: float(np.mean([g[m] for g in group])) for m in METRICS}}
        )
    return out


def plot(result: dict[str, Any], summary: list[dict[str, Any]], stem: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method in dict.fromkeys(r["method"] for r in summary if r["k"] > 0):
        pts = [(r["k"], r["spearman"]) for r in summary if r["method"] == method and r["k"] > 0]
        a.plot(*zip(*pts, strict=True), marker="o", label=method)
    a.axhline(0.97, color="grey", ls="--", lw=0.8, label="goal 0.97 at k = 20")
    a.set(xscale="log", xlabel="target (this CPU) networks k", ylabel="Spearman on the test set",
          title="few-shot transfer from the Note10 table labels")  # fmt: skip
    a.legend(fontsize=7)
    best = [r for r in result["predictors"] if r["k"] == result["n_train"]]
    names = [r["model"] for r in best]
    b.bar(np.arange(len(best)) - 0.2, [r["within10"] for r in best], 0.4, label="within +-10%")
    b.bar(np.arange(len(best)) + 0.2, [r["within5"] for r in best], 0.4, label="within +-5%")
    b.set_xticks(np.arange(len(best)), names, rotation=20, fontsize=7)
    b.axhline(99, color="C0", ls="--", lw=0.8)
    b.axhline(90, color="C1", ls="--", lw=0.8)
    noise = result["noise"]  # the same network re-measured: what the labels themselves reach
    b.axhline(noise["retest_within10"], color="C0", ls=":", lw=1.2, label="re-measured, +-10%")
    b.axhline(noise["retest_within5"], color="C1", ls=":", lw=1.2, label="re-measured, +-5%")
    b.set(
        ylabel="% of test networks",
        title=f"trained on {result['n_train']} networks of this CPU",
        ylim=(0, 101),
    )
    b.legend(fontsize=7)
    fig.tight_layout()
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(stem.with_suffix(".png"), dpi=130)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
