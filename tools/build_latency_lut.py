"""Measure an OFA-format latency look-up table on this machine (every layer of the space).

    python tools/build_latency_lut.py --space mobilenetv3 --resolutions 160 176 192 208 224 \\
        [--width_mult 1.0] [--device cpu|cuda] [--threads 1] [--warmup 10] [--repeats 50] --out DIR

Writes ``DIR/<device_name>_<r>_lookup_table.yaml`` per resolution (OFA's format: count, mean and
std in ms per layer key), ``DIR/protocol.json`` (threads, batch size, warm-up, repeats, order
seed, memory format, torch version, key counts, wall time) and ``DIR/measurements.jsonl`` (one
line per layer as it is measured: an interrupted build resumes where it stopped when run again
with the same flags). Use the tables with ``msunas.py --sec_obj latency --latency_model lut:DIR``.
See ``hardware/lut.py`` for what is measured and how.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nas.cli import run_cli  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from hardware.lut import build_lut
    from hardware.measure import add_measurement_flags, protocol_from_args
    from hardware.spaces import ofa_space

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--resolutions", type=int, nargs="+", required=True, help="input sides, e.g. 160 176 192 208 224"
    )
    p.add_argument("--device_name", default="local", help="the tables' file-name prefix (default: local)")
    add_measurement_flags(p)
    args = p.parse_args(argv)
    protocol = protocol_from_args(args)
    space = ofa_space(args.space, args.width_mult)
    record = build_lut(
        space, args.resolutions, args.out, protocol, args.device_name, args.n_classes, not args.no_progress
    )
    keys = record["keys"]
    print(
        f"{len(record['resolutions'])} tables, {keys['per_resolution']} keys each, {keys['unique']} unique, "
        f"in {args.out} ({record['seconds_this_run']} s this run)"
    )
    print(json.dumps(record["protocol"]))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
