"""``train.py darts|pcdarts ...``: a weight-sharing search as one command, with its final architecture.

::

    python train.py darts --space nb201 --preset cpu --robust --seed 0 --save results/darts-robust-s0
    python train.py darts --resume results/darts-robust-s0          # after a kill: continues exactly

A mode is the search loop with the method as its strategy (:mod:`weightsharing.method`), started from
the preset ``ws-<space>[-cpu]`` (space, evaluator, objective) plus the method's settings for that
preset (:data:`METHOD_PRESETS`); every other flag is a flag of ``msunas.py`` (``train.py darts
--help`` lists them with their values) and wins over the preset. ``--iterations`` follows from
``--epochs / --epochs_per_iteration`` unless given. At the end the derived architecture goes to
``<save>/final/net.subnet`` with its ``net.stats`` (the evaluator's metrics: the NAS-Bench-201 table's
validation and test top-1 for ``nb201``).

Presets: ``paper`` keeps the reference hyper-parameters (NAS-Bench-201's DARTS: C=16, 5 cells per
stage, 50 epochs, CIFAR-10 at 32 px; PC-DARTS's batch 256, lr 0.1, alpha lr 6e-4, 15 warm-up
epochs); ``cpu`` scales the supernet and the data down so one run takes minutes on a CPU (C=8,
one or two cells per stage, 16 px images of the embedded CIFAR-10 subset, ten times the
architecture learning rate; B16 in ``benchmarks/README.md`` has the measured times). The CPU
settings were chosen on seed 100 with the table's validation column only.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any

from nas.errors import UserError
from nas.io import write_json
from nas.search.description import PRESETS, Preset
from nas.train_cli import TRAIN_MODES, TrainMode
from weightsharing.proxyless import DEFAULT_LUT_DIR

SPACE_PRESETS = {
    "nb201": {
        "space": {"name": "nb201"},
        "evaluator": {"name": "nb201", "dataset": "cifar10"},
        "trainer": None,
        "measures": [],
        "costs": ["nb201_costs"],
        "objectives": ["top1"],
        "loop": {"n_doe": 1, "n_iter": 1, "plot_every": 1},
    },
    # no table: a proposal's top1 is its inherited-weight top-1 in the run's own newest supernet
    "darts": {
        "space": {"name": "darts"},
        "evaluator": {"name": "oneshot"},
        "trainer": None,
        "measures": [],
        "costs": [],
        "objectives": ["top1"],
        "loop": {"n_doe": 1, "n_iter": 1, "plot_every": 1},
    },
}
SPACE_PRESETS["mobilenetv3"] = {  # ProxylessNAS: accuracy from OFA's predictor, latency from the Note10 table
    "space": {"name": "mobilenetv3", "width_mult": 1.2, "lr": 160, "ur": 224, "rstep": 16},
    "evaluator": {"name": "ofa_note10"},
    "trainer": None,
    "measures": [],
    "costs": [{"name": "lut_latency", "lut_dir": str(DEFAULT_LUT_DIR), "lut_device": "note10"}],
    "objectives": ["top1"],
    "loop": {"n_doe": 1, "n_iter": 1, "plot_every": 1},
}
CPU = {
    "train_dataset": "cifar10_embedded",
    "n_train": 0,
    "channels": 8,
    "cells": 1,
    "resolution": 16,
    "epochs": 20,
}
PAPER_NB201 = {"train_dataset": "cifar10", "channels": 16, "cells": 5, "resolution": 32, "epochs": 50}
PAPER_DARTS = {"train_dataset": "cifar10", "channels": 16, "cells": 8, "resolution": 32, "epochs": 50}
CPU_DARTS = {**CPU, "cells": 5, "epochs": 10}
PCDARTS_CPU = {"channels": 16, "batch_size": 64, "learning_rate": 0.05, "warmup_epochs": 5, "arch_lr": 6e-3}
RANKING_CPU = {"epochs_per_iteration": 10, "rank_candidates": 100, "rank_images": 500, "bn_batches": 3}
# single paths are cheap: 16 channels and 100 epochs rank cells better (seed 100, 200 cells, the table's
# validation column: Kendall tau 0.39, against 0.25 at 8 channels and 60 epochs, 0.21 with 2 cells per
# stage and 120 epochs, 0.35 with learning rate 0.05)
SPOS_NB201_CPU = {**RANKING_CPU, "channels": 16, "epochs": 100, "epochs_per_iteration": 50}
# (method, space, preset) -> strategy options on top of the method's defaults
METHOD_PRESETS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("darts", "nb201", "paper"): PAPER_NB201,
    ("darts", "nb201", "cpu"): {**CPU, "cells": 2, "arch_lr": 3e-3, "beta_weight": 1.0},
    ("pcdarts", "nb201", "paper"): PAPER_NB201,
    ("pcdarts", "nb201", "cpu"): {**CPU, **PCDARTS_CPU, "cells": 2},
    ("spos", "nb201", "paper"): {**PAPER_NB201, "epochs_per_iteration": 10},
    ("spos", "nb201", "cpu"): {**CPU, **SPOS_NB201_CPU},
    ("enas", "nb201", "paper"): {**PAPER_NB201, "epochs_per_iteration": 10},
    ("enas", "nb201", "cpu"): {**CPU, **RANKING_CPU},
    ("darts", "darts", "paper"): PAPER_DARTS,
    ("darts", "darts", "cpu"): {**CPU_DARTS, "arch_lr": 3e-3},
    ("pcdarts", "darts", "paper"): {**PAPER_DARTS, "batch_size": 256},
    ("pcdarts", "darts", "cpu"): {**CPU_DARTS, **PCDARTS_CPU, "warmup_epochs": 3},
    ("spos", "darts", "cpu"): {**CPU_DARTS, **RANKING_CPU},
    ("enas", "darts", "cpu"): {**CPU_DARTS, **RANKING_CPU},
    ("proxyless", "mobilenetv3", "paper"): {
        "train_dataset": "cifar10", "resolution": 32, "epochs": 50, "warmup_epochs": 10,
        "target_latency": 18.0,
    },
    ("proxyless", "mobilenetv3", "cpu"): {
        "train_dataset": "cifar10_embedded", "n_train": 0, "resolution": 32, "epochs": 10, "warmup_epochs": 2,
        "arch_lr": 0.01, "lut_resolution": 160, "target_latency": 18.0,
    },
}  # fmt: skip

for _space, _description in SPACE_PRESETS.items():
    PRESETS.register(f"ws-{_space}")(
        Preset(_description, f"weight-sharing search on {_space} (train.py darts|... --space {_space})")
    )
    PRESETS.register(f"ws-{_space}-cpu")(
        Preset(_description, f"weight-sharing search on {_space}, CPU preset (train.py ... --preset cpu)")
    )


def _take(argv: list[str], flag: str, default: str | None) -> tuple[str | None, list[str]]:
    """The value of ``--flag V`` / ``--flag=V`` in ``argv`` (last one wins) and the other arguments."""
    value, rest, i = default, [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == f"--{flag}":
            if i + 1 >= len(argv):
                raise UserError(f"--{flag} needs a value")
            value, i = argv[i + 1], i + 2
            continue
        if arg.startswith(f"--{flag}="):
            value = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return value, rest


def _flags(options: dict[str, Any]) -> list[str]:
    out = []
    for key, value in options.items():
        out += [f"--{key}", str(value)]
    return out


def method_argv(method: str, argv: list[str]) -> list[str]:
    """``msunas.py`` arguments of ``train.py METHOD argv``."""
    space, rest = _take(argv, "space", None)
    space, rest = _take(rest, "search_space", space)
    preset, rest = _take(rest, "preset", "paper")
    resuming = any(a == "--resume" or a.startswith("--resume=") for a in rest)
    if resuming:  # the resumed run's description holds space, preset and settings
        if space is not None or any(a.split("=")[0] == "--preset" for a in argv):
            raise UserError("--resume continues a run with its own --space and --preset; leave them out")
        return ["--strategy", method, *rest]
    spaces = sorted({s for m, s, _ in METHOD_PRESETS if m == method})
    space = space or ("nb201" if "nb201" in spaces else spaces[0])
    if preset not in ("paper", "cpu"):
        raise UserError(f"--preset {preset!r}: choose paper (the reference hyper-parameters) or cpu")
    if (method, space, preset) not in METHOD_PRESETS:
        raise UserError(f"train.py {method} searches {' or '.join(spaces)}, not --space {space!r}")
    bench = f"ws-{space}" + ("-cpu" if preset == "cpu" else "")
    return [
        "--benchmark",
        bench,
        "--strategy",
        method,
        *_flags(METHOD_PRESETS[(method, space, preset)]),
        *rest,
    ]


def run_method(method: str, argv: list[str]) -> int:
    from nas.search.cli import make_parser, resolve
    from nas.search.factory import build_run
    from nas.search.loop import Search

    margv = method_argv(method, argv)
    if "-h" in argv or "--help" in argv:
        spec = resolve([a for a in margv if a not in ("-h", "--help")])
        make_parser(spec, prog=f"train.py {method}").print_help()
        return 0
    spec = resolve(margv)
    given = {a.split("=")[0] for a in argv if a.startswith("--")}
    if "--save" not in given and not spec.loop.resume:
        seed = spec.loop.seed
        spec.loop.save = os.path.join("results", "ws", f"{method}-{spec.space.name}-s{seed}")
    if spec.evaluator.name == "oneshot" and spec.evaluator.options.supernet_path is None:
        spec.evaluator.options.supernet_path = spec.loop.save  # the run's own newest supernet
    o = spec.strategy.options
    if "--iterations" not in given and not spec.loop.resume:
        spec.loop.iterations = math.ceil(o.epochs / o.epochs_per_iteration) - 1
    run = build_run(spec)
    search = Search(run)
    search.run()
    return write_final(search)


def write_final(search) -> int:
    """``<save>/final/net.subnet`` and ``net.stats`` of the method's derived architecture."""
    strategy, space = search.strategy, search.space
    arch = strategy.final()
    result = search.archive.results.get(space.arch_id(arch))
    folder = os.path.join(search.save, "final")
    space.write_subnet(os.path.join(folder, "net.subnet"), arch)
    stats = {**(result.to_json() if result is not None else {"arch": arch}), "method": strategy.name}
    stats["derived_epoch"] = strategy.epoch
    write_json(os.path.join(folder, "net.stats"), stats)
    metrics = result.metrics if result is not None and result.ok else {}
    shown = "  ".join(
        f"{k} {v:.2f}" for k, v in metrics.items() if isinstance(v, float) and k.startswith("top1")
    )
    print(f"derived after {strategy.epoch} epochs: {space.arch_id(arch)}  {shown}", file=sys.stderr)
    print(f"final architecture: {folder}/net.subnet (run: {search.save}/)")
    return 0


for _method, _help in (
    ("darts", "DARTS (--order 1|2, --robust: beta-decay) over a cell supernet; writes final/net.subnet"),
    ("pcdarts", "PC-DARTS (partial channels, edge normalisation) over a cell supernet; final/net.subnet"),
    ("enas", "ENAS: an LSTM controller (REINFORCE) over a shared-weight cell supernet; final/net.subnet"),
    ("spos", "single-path one-shot: uniform paths, then cells ranked by inherited weights; final/net.subnet"),
    ("proxyless", "ProxylessNAS on OFA MobileNetV3: binarised paths, REINFORCE, expected-LUT-latency loss"),
):
    TRAIN_MODES.register(_method)(TrainMode(None, lambda argv, m=_method: run_method(m, argv), _help))
