"""``msunas.py``: parse the options, build space + evaluator, run the search, print the front."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys

import yaml

from nas.config import parse_config
from nas.errors import UserError
from nas.search.archive import read_stats
from nas.search.config import SearchConfig
from nas.search.executors import LocalProcessExecutor, RayExecutor
from nas.search.loop import Search, latest_stats
from nas.space import get_search_space
from nas.subnet_eval import SubnetEvaluator

# What --benchmark NAME sets (flags on the command line still win). Budgets follow BENCHMARKS.md.
BENCHMARKS = {
    # B1: OFA w1.2 space, OFA's ImageNet predictor as the oracle, Note10 latency; 100 + 25 x 8 = 300
    "ofa_note10": dict(
        search_space="mobilenetv3",
        width_mult=1.2,
        lr=160,
        ur=224,
        rstep=16,
        dataset="imagenet",
        sec_obj="latency",
        n_doe=100,
        n_iter=8,
        iterations=25,
        # B1, mean top-1 gap to the peer over 3 seeds: spread 40 x 20 -0.67, hvi 40 x 20 -0.55,
        # spread 100 x 60 -0.38, hvi 100 x 60 -0.24 (benchmarks/README.md)
        selection="hvi",
        pop_size=100,
        n_gen=60,
    ),
    # B2: NAS-Bench-201 12-epoch table, validation error vs FLOPs; 50 + 10 x 10 = 150
    "nb201": dict(
        search_space="nb201",
        dataset="cifar10",
        sec_obj="flops",
        n_doe=50,
        n_iter=10,
        iterations=10,
    ),
}


def _benchmark_defaults(argv: list[str]) -> dict:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--benchmark")
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    name = known.benchmark
    if name is None and known.config:
        try:
            with open(known.config) as f:
                name = (yaml.safe_load(f) or {}).get("benchmark")
        except (OSError, yaml.YAMLError, AttributeError):
            name = None  # parse_config reports a bad --config properly
    if name is None:
        return {}
    if name not in BENCHMARKS:
        raise UserError(f"unknown --benchmark {name!r}; choose one of: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def _resume_defaults(argv: list[str]) -> dict:
    """With ``--resume PATH``: the settings of the run it continues (the ``config`` its stats file
    recorded, and ``save`` = the folder of that file), so ``msunas.py --resume DIR`` alone picks the
    run up as it was; flags given with it still win (e.g. ``--iterations 15`` to go further)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--resume")
    known, _ = pre.parse_known_args(argv)
    if not known.resume:
        return {}
    path = known.resume if os.path.isfile(known.resume) else latest_stats(known.resume)
    if path is None:
        return {}  # Search.resume says what is wrong
    names = {f.name for f in dataclasses.fields(SearchConfig)}
    old = {k: v for k, v in read_stats(path).get("config", {}).items() if k in names and k != "resume"}
    return {**old, "save": os.path.dirname(os.path.abspath(path))}


def build(cfg: SearchConfig):
    """The evaluator a configuration asks for (its ``space`` is the search space)."""
    if cfg.lr > cfg.ur:
        raise UserError(f"--lr {cfg.lr} is larger than --ur {cfg.ur}; swap them")
    from nas.evaluation import EVALUATORS

    if cfg.benchmark is not None:
        kwargs = {"dataset": cfg.dataset} if cfg.benchmark == "nb201" else {}
        return EVALUATORS.get(cfg.benchmark)(**kwargs)
    kwargs = dict(lr=cfg.lr, ur=cfg.ur, rstep=cfg.rstep)
    if cfg.search_space == "mobilenetv3":
        kwargs["width_mult"] = cfg.width_mult
    space = get_search_space(cfg.search_space, **kwargs)
    return SubnetEvaluator(
        space,
        cfg.dataset,
        cfg.data,
        vld_size=cfg.vld_size,
        supernet_path=cfg.supernet_path,
        pretrained=cfg.pretrained,
        n_epochs=cfg.n_epochs,
        trainer=cfg.trainer,
        bn_batches=cfg.bn_batches,
        n_classes=cfg.n_classes,
        device=cfg.device,
        seed=cfg.seed,
        n_workers=cfg.n_workers,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="msunas.py",
        description="Surrogate-assisted multi-objective NAS (NSGA-II) over a search space.",
    )
    defaults = {**_benchmark_defaults(argv), **_resume_defaults(argv)}
    cfg = parse_config(SearchConfig, argv, parser, defaults=defaults)
    evaluator = build(cfg)
    search = Search(cfg, evaluator.space, evaluator)  # checks the options before workers start
    n_jobs = cfg.n_jobs if cfg.n_jobs is not None else (cfg.n_gpus // max(cfg.gpu, 1) or 1)
    factory = functools.partial(build, cfg)  # picklable: each worker builds its own evaluator
    if cfg.ray_address is not None:
        search.executor = RayExecutor(factory, evaluator.space, n_jobs, cfg.n_gpus, cfg.gpu, cfg.ray_address)
    elif n_jobs > 1 or cfg.n_gpus > 0:
        search.executor = LocalProcessExecutor(factory, evaluator.space, n_jobs, cfg.n_gpus, cfg.gpu)
    try:
        search.run()
    finally:
        search.executor.close()
    print(f"done: {search.iteration} iterations, {len(search.archive)} architectures; see {cfg.save}/")
    return 0
