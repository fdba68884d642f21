"""Draw a cell architecture (NAS-Bench-201 cell string or DARTS genotype) as DOT, PNG and PDF.

    python tools/draw_cell.py results/darts_run                      # <run>/final/net.subnet
    python tools/draw_cell.py results/search/iter_3/net_ab12/net.subnet --backend matplotlib
    python tools/draw_cell.py --name nb201_best \\
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    python tools/draw_cell.py '{"normal": [["sep_conv_3x3", 0], ...], "reduce": [...]}' --out /tmp/cells

PATH_OR_ARCH is a ``net.subnet`` file, a run directory (its ``final/net.subnet``; a folder holding
a ``net.subnet`` is read too), or the architecture itself: a NAS-Bench-201 cell string, JSON text
(a cell string or a DARTS genotype ``{"normal": [[op, input], ...], "normal_concat": [...],
"reduce": [...], "reduce_concat": [...]}``) or DARTS's printed ``Genotype(...)``.

A NAS-Bench-201 cell gives ``cell.dot``, ``cell.png`` and ``cell.pdf`` (nodes 0 = input to 3 =
output, one arrow per operation, ``none`` edges left out); a DARTS genotype gives
``cell_normal.*`` and ``cell_reduce.*`` (inputs c_{k-2} and c_{k-1}, intermediate nodes 0..3,
output c_{k} concatenating the ``*_concat`` nodes). Inputs, intermediate nodes and the output have
three colours, every arrow is labelled with its operation. ``--backend dot`` renders the DOT
files with Graphviz's ``dot`` program, ``matplotlib`` draws them itself, ``auto`` (default) uses
``dot`` when it is on ``PATH``. Outputs go to ``results/analysis/draw_cell/<name>[-k]/`` (a new
folder every time; ``<name>``: ``--name``, else the folder of the ``net.subnet`` file, the run
directory's name, or ``cell`` for an architecture given inline) or to ``--out``; the written
paths are printed, one per line.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nas.cli import run_cli  # noqa: E402
from nas.config import option, parse_config  # noqa: E402
from nas.errors import UserError  # noqa: E402

TOOL = "draw_cell"
INLINE_STARTS = ("|", "{", '"', "Genotype(")


@dataclass
class DrawCellOptions:
    """Flags of ``tools/draw_cell.py`` (the architecture is the positional PATH_OR_ARCH)."""

    out: str | None = option(None, f"output folder; None: a new results/analysis/{TOOL}/<name>[-k]/")
    backend: str = option(
        "auto", "renderer: dot (Graphviz's dot program), matplotlib, auto (dot when on PATH)",
        choices=["auto", "dot", "matplotlib"],
    )  # fmt: skip
    name: str | None = option(
        None, "output folder's name; None: the net.subnet's folder, the run directory's name or 'cell'"
    )


def read_input(source: str) -> tuple[Any, str]:
    """``(architecture, default name)`` of a net.subnet file, a run directory or inline text."""
    from nas.analysis import experiment_name
    from nas.io import read_json

    if os.path.isdir(source):
        for candidate in (os.path.join(source, "final", "net.subnet"), os.path.join(source, "net.subnet")):
            if os.path.isfile(candidate):
                return read_json(candidate, "subnet file"), experiment_name(source)
        chosen = sorted(glob.glob(os.path.join(source, "final", "*", "net.subnet")))
        hint = f", e.g. {chosen[0]}" if chosen else ""
        raise UserError(
            f"{source} is a folder without final/net.subnet; give a net.subnet file{hint}, "
            "or the architecture itself"
        )
    if os.path.isfile(source):
        return read_json(source, "subnet file"), experiment_name(source)
    if source.strip().startswith(INLINE_STARTS) or "|" in source:
        return source, "cell"
    raise UserError(
        f"{source!r} is not an existing file or folder, nor an architecture (a NAS-Bench-201 cell string "
        "'|op~0|+|op~0|op~1|+...' or DARTS genotype JSON '{\"normal\": [...], ...}')"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="draw_cell.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument(
        "source", metavar="PATH_OR_ARCH",
        help="a net.subnet file, a run directory (final/net.subnet), a cell string or JSON genotype",
    )  # fmt: skip
    cfg = parse_config(DrawCellOptions, argv, p)
    source = p.parse_args(argv).source

    from nas.analysis import output_dir
    from weightsharing.drawing import draw, parse_arch, resolve_backend

    arch, name = read_input(source)
    graphs = parse_arch(arch)  # malformed input fails before a folder is made
    if cfg.name is not None and (not cfg.name.strip() or os.sep in cfg.name or cfg.name in (".", "..")):
        raise UserError(f"--name {cfg.name!r} must be a folder name (no '{os.sep}'), e.g. --name darts_v2")
    backend = resolve_backend(cfg.backend)
    out = output_dir(TOOL, cfg.name or name, cfg.out)
    for path in draw(graphs, out, backend=backend):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
