"""Params, MACs and activations (millions, batch 1) of subnets, as one JSON line per subnet.

    python tools/net_info.py --subnet net.subnet --n_classes 10
    python tools/net_info.py --subnets archs.jsonl --n_classes 10 --method hooks
    python tools/net_info.py --search_space nb201 --subnet cell.subnet --n_classes 120 --resolution 16

``analytic`` (default) uses the space's cost model; ``hooks`` builds each network and counts
with forward hooks (``--device``: auto, cpu, cuda, cuda:N). The input size is the subnet's own
resolution (``r``), or ``--resolution`` for spaces without one (NAS-Bench-201 cells: 32 for
CIFAR, 16 for ImageNet16-120). ``--search_space`` defaults to the default preset's space.
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
from nas.search.description import default_space_name  # noqa: E402
from nas.space import SEARCH_SPACES  # noqa: E402


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
    p.add_argument("--search_space", help="registered search space name (default: the default preset's)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--subnet", help="a net.subnet JSON file")
    src.add_argument("--subnets", help="a JSON-lines file, one subnet per line")
    p.add_argument("--n_classes", required=True, help="number of classes of the classifier")
    p.add_argument("--method", choices=METHODS, default="analytic")
    p.add_argument("--device", default="auto", help="for --method hooks: auto, cpu, cuda, cuda:N")
    p.add_argument("--resolution", default="32", help="input side for spaces without a resolution gene")
    args = p.parse_args(argv)

    n_classes = positive_int(args.n_classes, "--n_classes")
    resolution = positive_int(args.resolution, "--resolution")
    name = args.search_space or default_space_name()
    cls = SEARCH_SPACES.get(name)
    if args.subnet:
        where, items = args.subnet, [(0, read_json(args.subnet, "subnet file"))]
    else:
        where, items = args.subnets, read_jsonl(args.subnets)
    # Validate every subnet before printing anything: each in a space made for it (for_arch: the
    # OFA space of its width, reaching its resolution); encode() is never called.
    jobs = []
    for line, arch in items:
        try:
            space = cls.for_arch(arch)
            jobs.append((space, space.validate(arch)))
        except UserError as e:
            raise UserError(f"{where}{f' line {line}' if line else ''}: {e}") from None
    for space, arch in jobs:
        costs = space_costs(space, [arch], n_classes, args.method, args.device, resolution)[0]
        print(json.dumps(costs), flush=True)


if __name__ == "__main__":
    sys.exit(run_cli(main))
