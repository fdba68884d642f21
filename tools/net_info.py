"""Params, MACs and activations (millions, batch 1) of subnets, as one JSON line per subnet.

    python tools/net_info.py --search_space mobilenetv3 --subnet net.subnet --n_classes 10
    python tools/net_info.py --search_space mobilenetv3 --subnets archs.jsonl --n_classes 10 --method hooks

``analytic`` (default) uses the space's cost model; ``hooks`` builds each network and counts
with forward hooks (``--device``: auto, cpu, cuda, cuda:N). The input size is the subnet's ``r``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nas.cli import positive_int, run_cli  # noqa: E402
from nas.costs import METHODS, space_costs  # noqa: E402
from nas.errors import UserError  # noqa: E402
from nas.io import read_json  # noqa: E402
from nas.space import get_search_space  # noqa: E402


def read_jsonl(path: str) -> list[tuple[int, object]]:
    """``(line number, JSON value)`` for every non-blank line."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except (FileNotFoundError, IsADirectoryError):
        raise UserError(f"subnets file {path!r} does not exist; check the path") from None
    except UnicodeDecodeError:
        raise UserError(f"subnets file {path!r} is not text; give one JSON subnet per line") from None
    out = []
    for i, line in enumerate(lines, 1):
        if line.strip():
            try:
                out.append((i, json.loads(line)))
            except json.JSONDecodeError as e:
                raise UserError(f"subnets file {path!r} line {i} is not valid JSON ({e})") from None
    if not out:
        raise UserError(f"subnets file {path!r} holds no subnets")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--search_space", default="mobilenetv3", help="registered search space name")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--subnet", help="a net.subnet JSON file")
    src.add_argument("--subnets", help="a JSON-lines file, one subnet per line")
    p.add_argument("--n_classes", required=True, help="number of classes of the classifier")
    p.add_argument("--method", choices=METHODS, default="analytic")
    p.add_argument("--device", default="auto", help="for --method hooks: auto, cpu, cuda, cuda:N")
    args = p.parse_args(argv)

    n_classes = positive_int(args.n_classes, "--n_classes")
    if args.subnet:
        where, items = args.subnet, [(0, read_json(args.subnet, "subnet file"))]
    else:
        where, items = args.subnets, read_jsonl(args.subnets)
    # Validate every subnet before printing anything. One space per width multiplier; lr=32
    # accepts every resolution the space allows (r >= 32); encode() is never called.
    spaces, jobs = {}, []
    for line, arch in items:
        w = arch.get("w", 1.0) if isinstance(arch, dict) else 1.0
        if repr(w) not in spaces:
            spaces[repr(w)] = get_search_space(args.search_space, lr=32, ur=32, width_mult=w)
        try:
            jobs.append((spaces[repr(w)], spaces[repr(w)].validate(arch)))
        except UserError as e:
            raise UserError(f"{where}{f' line {line}' if line else ''}: {e}") from None
    for space, arch in jobs:
        print(json.dumps(space_costs(space, [arch], n_classes, args.method, args.device)[0]), flush=True)


if __name__ == "__main__":
    sys.exit(run_cli(main))
