"""Time sampled whole subnets on this machine: a latency dataset for predictors and table checks.

    python tools/build_latency_dataset.py --space mobilenetv3 --n 2000 [--lr 160 --ur 224 --rstep 16] \\
        [--width_mult 1.0] [--threads 1] [--warmup 5] [--repeats 20] [--n_ref 20 --ref_every 200] --out DIR

Writes ``DIR/latency.csv`` (``arch,latency_ms,iqr_ms``: the median and inter-quartile range of
``--repeats`` timed calls at batch size ``--batch_size``), ``DIR/references.csv`` (the reference
networks re-timed every ``--ref_every`` networks, to detect drift) and ``DIR/protocol.json``. Run
again with the same flags to resume an interrupted build. See ``hardware/dataset.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nas.cli import run_cli  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from hardware.dataset import build_dataset
    from hardware.measure import add_measurement_flags, protocol_from_args
    from hardware.spaces import ofa_space

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lr", type=int, default=160, help="smallest resolution (default: 160)")
    p.add_argument("--ur", type=int, default=224, help="largest resolution (default: 224)")
    p.add_argument("--rstep", type=int, default=16, help="resolution step (default: 16)")
    p.add_argument("--n", type=int, required=True, help="number of different networks to time")
    p.add_argument(
        "--n_ref", type=int, default=20, help="reference networks re-timed for drift (default: 20)"
    )
    p.add_argument(
        "--ref_every", type=int, default=300, help="networks between reference rounds (default: 300)"
    )
    add_measurement_flags(p, warmup=5, repeats=20)
    args = p.parse_args(argv)
    protocol = protocol_from_args(args)
    space = ofa_space(args.space, args.width_mult, lr=args.lr, ur=args.ur, rstep=args.rstep)
    record = build_dataset(
        space, args.n, args.out, protocol, args.n_ref, args.ref_every, args.n_classes, not args.no_progress
    )
    print(f"{args.n} networks in {args.out}/latency.csv ({record['seconds_this_run']} s this run)")
    print(f"reference drift: {json.dumps(record['drift'])}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
