"""``train.py MODE ...``: training modes looked up by name in :data:`TRAIN_MODES`.

A mode is a config dataclass plus a function that runs it; task plug-ins (early exits,
layer skipping, flatness) register further modes without touching this file. The modes that train
a chosen network (configs derived from ``SubnetTrainConfig``) also take the options of the
after-training evaluations plug-ins register (:mod:`nas.training.after`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass

from nas.config import option, parse_config
from nas.data import list_datasets, load_dataset
from nas.device import resolve_device
from nas.errors import UserError
from nas.registry import Registry
from nas.scoring import score_subnet
from nas.training.after import with_after_training
from nas.training.subnet import SubnetTrainConfig, read_subnet_file, train_subnet
from nas.training.supernet import SupernetConfig, SupernetTrainer


@dataclass(frozen=True)
class TrainMode:
    """A ``train.py`` mode: ``run(config)`` with ``config`` parsed from the flags into the ``config``
    dataclass, or, for a mode that parses its own flags (a search run whose flags are the run
    description's, like ``train.py darts``), ``run(argv)`` when ``config`` is None."""

    config: type | None
    run: Callable[[object], int]
    help: str


TRAIN_MODES: Registry[TrainMode] = Registry("train.py mode")


def run_supernet(cfg: SupernetConfig) -> int:
    trainer = SupernetTrainer(cfg)
    trainer.train()
    print(f"supernet weights: {cfg.save}/supernet.pth (log: {cfg.save}/log.csv)")
    return 0


@dataclass
class EvalConfig:
    """Defaults of ``train.py eval``: accuracy and costs of one subnet of a trained supernet."""

    subnet: str = option(None, "net.subnet file of the architecture to evaluate (required)")
    supernet_path: str = option(None, "OFA-format supernet checkpoint, e.g. <save>/supernet.pth (required)")
    dataset: str = option("cifar10_embedded", "dataset name")
    data: str | None = option(None, "dataset folder; default: the dataset's own default location")
    vld_size: int = option(0, "validation images carved from the training set (as in training)")
    split: str = option("test", "split to measure top-1 on", choices=["valid", "test"])
    search_space: str | None = option(
        None, "search space of the net.subnet file (default: the default preset's, e.g. mobilenetv3)"
    )
    bn_batches: int = option(10, "training batches used to recalibrate BatchNorm")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    seed: int = option(0, "random seed of the validation split and calibration sample")


def run_eval(cfg: EvalConfig) -> int:
    if not cfg.subnet or not cfg.supernet_path:
        raise UserError("train.py eval needs --subnet FILE and --supernet_path FILE")
    space, arch = read_subnet_file(cfg.subnet, cfg.search_space)
    space.require("supernet", "train.py eval")
    data = load_dataset(cfg.dataset, cfg.data, vld_size=cfg.vld_size, seed=cfg.seed)
    split = data.valid if cfg.split == "valid" else data.test
    if split is None:
        raise UserError("--split valid needs --vld_size > 0")
    device = resolve_device(cfg.device)
    supernet = space.make_supernet(data.n_classes)
    skipped = space.load_weights(supernet, cfg.supernet_path)
    if skipped:
        raise UserError(
            f"{cfg.supernet_path} has a classifier for another class count than {cfg.dataset} "
            f"({data.n_classes}); evaluate on the dataset it was trained on"
        )
    supernet.to(device)
    res = score_subnet(space, supernet, arch, data, split, device, bn_batches=cfg.bn_batches, seed=cfg.seed)
    res.update(space.costs(arch, data.n_classes))
    print(json.dumps({k: round(v, 4) for k, v in res.items()}))
    return 0


TRAIN_MODES.register("supernet")(
    TrainMode(SupernetConfig, run_supernet, "train a weight-sharing supernet (sandwich rule)")
)


def run_subnet(cfg: SubnetTrainConfig) -> int:
    train_subnet(cfg)
    return 0


TRAIN_MODES.register("subnet")(
    TrainMode(
        SubnetTrainConfig,
        run_subnet,
        "fine-tune a selected network (net.subnet) and write its test top-1/top-5 into net.stats",
    )
)
TRAIN_MODES.register("eval")(
    TrainMode(EvalConfig, run_eval, "top-1 and costs of one subnet with inherited weights")
)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    modes = TRAIN_MODES.names()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: train.py MODE [options]   (train.py MODE --help for the options)\n\nmodes:")
        for name in modes:
            print(f"  {name:10s} {TRAIN_MODES.get(name).help}")
        print(f"\ndatasets: {', '.join(list_datasets())}")
        return 0 if argv else 2
    mode = TRAIN_MODES.get(argv[0])
    if mode.config is None:
        return mode.run(argv[1:])
    parser = argparse.ArgumentParser(prog=f"train.py {argv[0]}", description=mode.help)
    config = with_after_training(mode.config) if issubclass(mode.config, SubnetTrainConfig) else mode.config
    cfg = parse_config(config, argv[1:], parser)
    return mode.run(cfg)
