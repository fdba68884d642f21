"""Train, apply and score latency predictors of OFA MobileNetV3 subnets (hardware/predictors.py).

    python tools/latency_predictor.py train --lut data/ofa --n_samples 1000 --kind additive --out m.pt
    python tools/latency_predictor.py train --csv latency.csv --kind gbdt --out cpu.pt
    python tools/latency_predictor.py train --csv latency.csv --init note10.pt --finetune head --out cpu.pt
    python tools/latency_predictor.py predict --model m.pt --subnets archs.jsonl
    python tools/latency_predictor.py evaluate --model m.pt --lut data/ofa --n_samples 1500 --seed 1 [--json]

``train`` takes its labels from look-up tables (``--lut``: ``--n_samples`` unique random networks
of the tables' resolutions, labelled with their exact table sums) or from a measured dataset
(``--csv``: ``arch,latency_ms,iqr_ms``, tools/build_latency_dataset.py). ``--val_fraction`` of
the unique networks is held out and scored after training. ``--init MODEL --finetune head|full``
adapts a trained predictor instead (transfer to a new device). ``--set KEY=VALUE`` sets options
of the kind (``--kind KIND --help_options`` lists them). ``predict`` prints one latency (ms) per
subnet; ``evaluate`` prints true RMSE, MAE, MAPE, +-5%/+-10% accuracy, Spearman and Kendall,
leaving out the networks the model was trained on.

``--kind generalised`` takes one ``--csv`` per device and describes each device by the log
latencies of reference networks (HELP-style): those of the ``references.csv`` beside each file
(tools/build_latency_dataset.py writes it), else networks that every file holds. ``predict`` and
``evaluate`` take ``--references FILE`` to describe the device to predict for. With two devices
such a model cannot show that it generalises to a third; see hardware/predictors.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nas.cli import positive_int, run_cli  # noqa: E402
from nas.errors import UserError  # noqa: E402

REFERENCES_HELP = (
    "generalised predictors: the device's references.csv (its reference networks' latencies; "
    "default: the last training device)"
)
SHOWN = ("rmse", "mae", "mape", "within5", "within10", "spearman", "kendall")


def _add_data(p: argparse.ArgumentParser, csv_help: str, multiple_csv: bool = False) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--lut", metavar="DIR", help="labels from the OFA-format look-up tables in DIR (e.g. data/ofa)"
    )
    src.add_argument("--csv", metavar="FILE", action="append" if multiple_csv else "store", help=csv_help)
    p.add_argument("--n_samples", metavar="N", help="with --lut: number of unique random networks to label")
    p.add_argument(
        "--seed",
        default="0",
        metavar="S",
        help="seed of the sampled networks, the split and the model (default: 0)",
    )
    p.add_argument(
        "--lut_device", metavar="NAME", help="with --lut: device of the tables (default: the only one in DIR)"
    )
    p.add_argument(
        "--resolutions",
        nargs="+",
        type=int,
        metavar="R",
        help="with --lut: resolutions to sample (default: every table's)",
    )
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")


def parser() -> argparse.ArgumentParser:
    from hardware.predictors import LATENCY_PREDICTORS

    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]),
    )  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True, metavar="{train,predict,evaluate}")

    t = sub.add_parser("train", help="fit a predictor (or fine-tune one with --init) and save it")
    _add_data(
        t,
        "a measured dataset arch,latency_ms,iqr_ms (repeat it for --kind generalised: one file per device)",
        True,
    )
    t.add_argument(
        "--kind",
        default="additive",
        choices=LATENCY_PREDICTORS.names(),
        help="predictor kind (default: additive)",
    )
    t.add_argument("--out", metavar="MODEL", help="file to write the trained predictor to (required)")
    t.add_argument(
        "--val_fraction",
        default="0.15",
        metavar="F",
        help="share of the unique networks held out and scored (default: 0.15)",
    )
    t.add_argument("--init", metavar="MODEL", help="a trained predictor to fine-tune instead of a new one")
    t.add_argument(
        "--finetune", choices=("head", "full"), help="with --init: fine-tune the last layer or all"
    )
    t.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="options of the predictor kind")
    t.add_argument(
        "--n_ref",
        default="20",
        metavar="N",
        help="--kind generalised: reference networks describing a device, from the references.csv beside "
        "each --csv (else networks every file holds) (default: 20)",
    )
    t.add_argument(
        "--help_options", action="store_true", help="list the options of --kind (or --init's) and exit"
    )

    q = sub.add_parser("predict", help="print one latency (ms) per subnet")
    q.add_argument("--model", required=True, help="a predictor file written by train")
    q.add_argument("--references", metavar="FILE", help=REFERENCES_HELP)
    q.add_argument(
        "--subnets", required=True,
        help="JSON lines, each a subnet (ks, e, d, r, w) or a row holding one under 'arch' or 'subnet'",
    )  # fmt: skip

    e = sub.add_parser("evaluate", help="score a predictor on table labels or a measured dataset")
    e.add_argument("--model", required=True, help="a predictor file written by train")
    e.add_argument("--references", metavar="FILE", help=REFERENCES_HELP)
    _add_data(e, "a measured dataset arch,latency_ms,iqr_ms")
    return p


def _data(args: argparse.Namespace, exclude: set[str] | None = None) -> Any:
    """``[(name, archs, y)]`` from --lut/--n_samples/--seed or from --csv files."""
    from hardware.latency_data import lut_labels, read_dataset

    seed = _int(args.seed, "--seed")
    if args.lut is None and not args.csv:
        raise UserError(f"{args.command} needs its networks: --lut DIR --n_samples N, or --csv FILE")
    if args.lut is not None:
        n = positive_int(args.n_samples, "--n_samples")
        if n is None:
            raise UserError("--lut needs --n_samples N, the number of networks to label")
        archs, y = lut_labels(
            args.lut, n, seed, resolutions=args.resolutions, device=args.lut_device, exclude=exclude or ()
        )
        return [(args.lut, archs, y)]
    if args.n_samples is not None or args.resolutions:
        raise UserError("--n_samples and --resolutions go with --lut, not --csv")
    files = args.csv if isinstance(args.csv, list) else [args.csv]
    out = []
    for f in files:
        d = read_dataset(f)
        out.append((f, d.archs, d.latency_ms))
    return out


def _int(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UserError(f"{flag} {text!r} must be an integer") from None


def _fraction(text: str, flag: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0 <= v < 1:
        raise UserError(f"{flag} {text!r} must be a number in [0, 1), e.g. {flag} 0.15")
    return v


def _report(metrics: dict[str, Any], as_json: bool, head: str, extra: dict[str, Any] | None = None) -> None:
    if as_json:
        print(json.dumps({**(extra or {}), **metrics}))
        return
    from hardware.metrics import format_table

    print(head)
    print(format_table([metrics], ["n"], SHOWN))


def train(args: argparse.Namespace) -> None:
    from hardware.latency_data import arch_key, read_references, split_unique
    from hardware.predictors import (
        LATENCY_PREDICTORS,
        device_embeddings,
        load_predictor,
        make_predictor,
        with_options,
    )
    from nas.config import parse_overrides

    if args.finetune and not args.init:
        raise UserError("--finetune needs --init MODEL, the trained predictor to adapt")
    if args.init and not args.finetune:
        raise UserError("--init needs --finetune head or --finetune full")
    base = load_predictor(args.init) if args.init else None
    kind = base.name if base is not None else args.kind
    cls = LATENCY_PREDICTORS.get(kind)
    if args.help_options:
        for f in dataclasses.fields(cls.Options):
            print(f"{f.name}={f.default!r}: {f.metadata.get('help', '')}")
        return
    if not args.out:
        raise UserError("train needs --out MODEL, the file to write the predictor to")
    overrides = parse_overrides(args.set, cls.Options)
    seed = _int(args.seed, "--seed")
    options = {"seed": seed, **overrides}
    if kind == "calibrated_lut" and args.lut is not None:
        options.setdefault("lut_dir", args.lut)
    val_fraction = _fraction(args.val_fraction, "--val_fraction")
    data = _data(args)
    if kind != "generalised" and len(data) > 1:
        raise UserError("give one --csv (several are for --kind generalised, one file per device)")
    parts = {}
    for name, archs, y in data:
        if val_fraction > 0:
            (ta, ty), (va, vy) = split_unique(archs, y, [1 - val_fraction, val_fraction], seed)
        else:
            (ta, ty), (va, vy) = split_unique(archs, y, [1.0], seed)[0], ([], np.zeros(0))
        parts[name] = (ta, ty, va, vy)
    t0 = time.time()
    if base is not None:
        model = with_options(base, **overrides)
        ((ta, ty, _, _),) = parts.values()
        model.finetune(ta, ty, args.finetune, seed=seed)
        what = f"fine-tuned ({args.finetune}) {args.init}"
    elif kind == "generalised":
        if len(parts) < 2:
            raise UserError("--kind generalised trains on several devices: give one --csv per device")
        refs = {name: Path(name).parent / "references.csv" for name in parts}
        if all(r.is_file() for r in refs.values()):  # the reference networks measured with each dataset
            source = {name: read_references(r) for name, r in refs.items()}
        else:  # networks that every dataset holds
            source = {k: (v[0], v[1]) for k, v in parts.items()}
        ref, emb = device_embeddings(source, _int(args.n_ref, "--n_ref"))
        model = make_predictor(kind, **options).fit_devices({k: (v[0], v[1]) for k, v in parts.items()}, emb)
        model.reference_keys = [arch_key(a) for a in ref]
        what = f"trained {kind} on {len(parts)} devices ({len(ref)} reference networks)"
    else:
        ((ta, ty, _, _),) = parts.values()
        model = make_predictor(kind, **options).fit(ta, ty)
        what = f"trained {kind}"
    wall = time.time() - t0
    model.save(args.out)
    n_train = sum(len(v[1]) for v in parts.values())
    if not args.json:
        print(f"{what} on {n_train} networks in {wall:.1f} s; wrote {args.out}")
    for name, (_, _, va, vy) in parts.items():
        if len(vy):
            if kind == "generalised":
                model.set_device(emb[name])
            m = model.evaluate(va, vy)
            _report(
                m,
                args.json,
                f"validation ({len(vy)} held-out networks of {name}):",
                {"data": name, "train_s": wall},
            )


def _load(args: argparse.Namespace) -> Any:
    """The predictor of --model, set to the device of --references (generalised predictors)."""
    from hardware.latency_data import read_references
    from hardware.predictors import GeneralisedMLP, load_predictor

    model = load_predictor(args.model)
    if args.references:
        if not isinstance(model, GeneralisedMLP):
            raise UserError(
                f"--references is for generalised predictors; {args.model} holds a {model.name!r} one"
            )
        model.set_device_from_references(*read_references(args.references))
    return model


def predict(args: argparse.Namespace) -> None:
    from hardware.latency_data import read_subnets

    model = _load(args)
    items = read_subnets(args.subnets)
    archs = []
    for i, a in enumerate(items, 1):
        try:
            archs.append(model.prepare_arch(a))
        except UserError as e:
            raise UserError(f"{args.subnets} subnet {i}: {e}") from None
    for v in model.predict(archs):
        print(f"{v:.4f}")


def evaluate(args: argparse.Namespace) -> None:
    from hardware.latency_data import arch_key

    model = _load(args)
    seen = set(model.train_keys)
    ((name, archs, y),) = _data(args, exclude=seen)
    keep = [i for i, a in enumerate(archs) if arch_key(a) not in seen]
    if len(keep) < len(archs) and not args.json:
        print(
            f"note: {len(archs) - len(keep)} of the {len(archs)} networks were in the training data; left out"
        )
    if not keep:
        raise UserError(f"every network of {name} was in the predictor's training data")
    m = model.evaluate([archs[i] for i in keep], y[keep])
    _report(
        m,
        args.json,
        f"{model.name} predictor {args.model} on {len(keep)} networks of {name}:",
        {"data": name},
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    {"train": train, "predict": predict, "evaluate": evaluate}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
