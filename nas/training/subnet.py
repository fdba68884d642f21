"""``train.py subnet``: train one chosen network (a ``net.subnet``) and write its test metrics.

:func:`train_subnet` builds the network of a ``net.subnet`` file with weights from ``--init`` (a
checkpoint of that network), else inherited from ``--supernet_path``, else from scratch, trains it
with the one training loop (:class:`~nas.training.loop.TrainLoop`) and merges its test
top-1/top-5 into ``<save>/net.stats`` under ``"trained"``. Task trainers reuse it with their own
loss and evaluation hooks and model (a network with exit heads).

Run directory (``--save``, by default the folder of the ``net.subnet`` file): ``config.yaml``,
``checkpoint.pth`` (resumable: weights, optimiser, scheduler, scaler, epoch, RNG states, best),
``log.csv``, ``tb/`` (TensorBoard), ``ckpt.pth`` (final weights), ``net.subnet``, ``net.stats``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from nas.config import option
from nas.data import DataSplits, load_dataset
from nas.device import resolve_device
from nas.errors import UserError
from nas.io import load_checkpoint, read_json, write_json
from nas.search.description import default_space_name
from nas.space import SEARCH_SPACES, Arch, SearchSpace
from nas.training.after import check_after_training, run_after_training
from nas.training.loop import EvaluateFn, LossFn, TrainConfig, TrainLoop, check_train_config, validate_epoch


@dataclass
class SubnetSource:
    """Which network to train, from which weights, on which data."""

    subnet: str | None = option(None, "net.subnet file of the network to train (required)")
    init: str | None = option(
        None,
        "initial weights: a checkpoint of this network (a state dict, or a dict with 'state_dict' such as "
        "a previous ckpt.pth), or 'scratch'; none: inherited from --supernet_path if given, else scratch",
    )
    supernet_path: str | None = option(None, "supernet checkpoint whose weights the network inherits")
    search_space: str | None = option(
        None, "search space of the net.subnet file (default: the default preset's, e.g. mobilenetv3)"
    )
    dataset: str = option("cifar10_embedded", "dataset name")
    data: str | None = option(None, "dataset folder; default: the dataset's own default location")
    vld_size: int = option(0, "training images held out as a validation split, scored every epoch")
    max_train_images: int | None = option(
        None, "train on a random (seeded) subset of this many training images; none: all"
    )


@dataclass
class SubnetTrainConfig(TrainConfig, SubnetSource):
    """Defaults of ``train.py subnet``; ``--save`` defaults to the folder of ``--subnet``."""


@dataclass
class SubnetJob:
    """A network ready to train: what :func:`prepare_subnet` returns."""

    space: SearchSpace
    arch: Arch
    model: nn.Module
    data: DataSplits
    resolution: int
    init: str  # where the initial weights came from, for the log and net.stats


def read_subnet_file(
    path: str | None, search_space: str | None, space_options: dict[str, Any] | None = None
) -> tuple[SearchSpace, Arch]:
    """The space (made for that architecture, :meth:`~nas.space.SearchSpace.for_arch`, with
    ``space_options``) and the validated architecture of a ``net.subnet`` file, or a one-line error."""
    if not path:
        raise UserError("train.py needs --subnet FILE (a net.subnet, e.g. from msunas.py)")
    if not os.path.isfile(path):
        raise UserError(f"--subnet {path!r} does not exist; pass the net.subnet file of the network")
    raw = read_json(path, "subnet file")
    name = search_space or default_space_name()
    try:
        space = SEARCH_SPACES.get(name).for_arch(raw, **(space_options or {}))
        return space, space.validate(raw)
    except UserError as e:
        raise UserError(f"--subnet {path!r} is not a {name} network: {e}") from None


def load_data(cfg: SubnetSource, seed: int) -> DataSplits:
    """The dataset with its validation split, the training images cut to ``max_train_images``."""
    data = load_dataset(cfg.dataset, cfg.data, vld_size=cfg.vld_size, seed=seed)
    n = cfg.max_train_images
    if n is not None:
        if n < 1:
            raise UserError(f"--max_train_images {n} must be >= 1 (or left out for all images)")
        if n < len(data.train):
            pick = np.sort(np.random.default_rng([seed, 1]).choice(len(data.train), n, replace=False))
            data = dataclasses.replace(data, train=data.train.subset(pick))
    return data


def load_init_weights(model: nn.Module, path: str) -> None:
    """Load ``--init`` into ``model``, refusing any missing, unexpected or mis-shaped tensor."""
    ckpt = load_checkpoint(path, "--init checkpoint")
    state = ckpt.get("state_dict", ckpt)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"--init {path!r} holds no state dict of tensors; pass a checkpoint of this network")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if missing or extra:
        what = f"lacks {missing[0]}" if missing else f"has {extra[0]}, which the network has not"
        raise UserError(
            f"--init {path!r} does not fit this network: it {what} ({len(missing)} missing, "
            f"{len(extra)} unexpected tensors); pass a checkpoint of the same net.subnet (a supernet goes to "
            "--supernet_path)"
        )
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise UserError(
                f"--init {path!r} does not fit this network: {k} has shape {tuple(state[k].shape)}, "
                f"expected {tuple(v.shape)}; pass a checkpoint of the same net.subnet and dataset"
            )
    model.load_state_dict(state)


def prepare_subnet(cfg: SubnetTrainConfig, space_options: dict[str, Any] | None = None) -> SubnetJob:
    """Read the ``net.subnet``, load the data and build the network with its initial weights
    (``space_options``: options of the space beyond what the file says, e.g. the exit heads)."""
    space, arch = read_subnet_file(cfg.subnet, cfg.search_space, space_options)
    init = cfg.init
    if init is not None and init != "scratch" and not os.path.isfile(init):
        raise UserError(
            f"--init {init!r} does not exist; pass a checkpoint file of this network or 'scratch'"
        )
    if init is not None and cfg.supernet_path:
        raise UserError("give either --init or --supernet_path: both set the initial weights")
    data = load_data(cfg, cfg.seed)
    torch.manual_seed(cfg.seed)  # the random initialisation (and a fresh classifier) depend on --seed only
    if space.has("supernet"):
        supernet = space.make_supernet(data.n_classes)
        source = f"scratch (random initialisation, seed {cfg.seed})"
        if cfg.supernet_path and init is None:
            skipped = space.load_weights(supernet, cfg.supernet_path)
            source = f"inherited from {cfg.supernet_path}"
            if skipped:
                source += f" (classifier re-initialised for {data.n_classes} classes)"
        model = space.build(arch, supernet)
    else:
        if cfg.supernet_path:
            raise UserError(f"the {space.name} space has no supernet; leave out --supernet_path")
        model = space.build(arch, n_classes=data.n_classes)
        source = f"scratch (random initialisation, seed {cfg.seed})"
    resolution = space.resolution(arch) or data.image_size
    if init is not None and init != "scratch":
        load_init_weights(model, init)
        source = f"checkpoint {init}"
    return SubnetJob(space, arch, model, data, resolution, source)


def _check_run_dir(save: str, space: SearchSpace, arch: Arch) -> str | None:
    """The ``net.stats`` of ``save`` must be a JSON object and its ``net.subnet`` this network."""
    stats = os.path.join(save, "net.stats")
    if os.path.isfile(stats) and not isinstance(read_json(stats, "net.stats"), dict):
        raise UserError(f"{stats} is not a JSON object; move it away or choose another --save")
    subnet = os.path.join(save, "net.subnet")
    if os.path.isfile(subnet):
        other = read_json(subnet, "subnet file")
        try:
            same = space.arch_id(space.validate(other)) == space.arch_id(arch)
        except UserError:
            same = False
        if not same:
            raise UserError(f"{subnet} holds another network; choose another --save")
        return None
    return subnet


def merge_stats(path: str, key: str, metrics: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Put ``metrics`` under ``key`` in the JSON object at ``path`` (``base`` if it is new), atomically;
    every other key is kept."""
    stats = read_json(path, "net.stats") if os.path.isfile(path) else dict(base)
    if not isinstance(stats, dict):
        raise UserError(f"{path} is not a JSON object; move it away or choose another --save")
    stats[key] = metrics
    write_json(path, stats)
    return stats


def train_subnet(
    cfg: SubnetTrainConfig,
    loss_fn: LossFn | None = None,
    evaluate_fn: EvaluateFn | None = None,
    model_fn: Callable[[SubnetJob], nn.Module] | None = None,
    stats_key: str = "trained",
    log: Callable[[str], None] = print,
    task: Any = None,
    job: SubnetJob | None = None,
) -> dict[str, Any]:
    """``train.py subnet``: fine-tune the network of ``cfg.subnet``, then write its test metrics
    (and those of the after-training evaluations ``cfg`` switches on, :mod:`nas.training.after`).

    Returns what is written under ``stats_key`` in ``<save>/net.stats``. Task trainers pass their
    own ``loss_fn``/``evaluate_fn``, ``model_fn(job) -> module to train`` (e.g. the subnet with
    exit heads; default ``job.model``) and ``stats_key``; or ``task``, a search-time trainer
    (:class:`nas.training.trainers.LoopTrainer`) whose ``begin``/``loss``/``on_epoch_end``/``end``
    hooks then run here as they do in a search. ``job``: the network already prepared.
    """
    check_train_config(cfg)
    check_after_training(cfg)
    job = job or prepare_subnet(cfg)
    if not cfg.save:
        cfg = dataclasses.replace(cfg, save=os.path.dirname(os.path.abspath(cfg.subnet)))
    new_subnet = _check_run_dir(cfg.save, job.space, job.arch)
    meta = {"arch": job.arch, "n_classes": job.data.n_classes, "dataset": cfg.dataset}
    model, data, on_epoch_end = model_fn(job) if model_fn is not None else job.model, job.data, None
    on_epoch_start = None
    if task is not None:
        from nas.measures import EvalContext

        device = resolve_device(cfg.device)
        ctx = EvalContext(job.space, data, device, data.n_classes, cfg.seed, cfg.num_workers)
        data = task.begin(model.to(device), job.arch, ctx, data)
        loss_fn = task.loss

        def on_epoch_end(loop: TrainLoop) -> dict[str, float]:
            return {**validate_epoch(loop), **task.on_epoch_end(loop)}

        on_epoch_start = task.on_epoch_start

    trainer = TrainLoop(
        model,
        data,
        job.resolution,
        cfg,
        loss_fn=loss_fn,
        evaluate_fn=evaluate_fn,
        on_epoch_end=on_epoch_end,
        on_epoch_start=on_epoch_start,
        identity={"arch": job.space.canonical(job.arch)},
        meta=meta,
        log=log,
    )
    log(
        f"{cfg.subnet}: {job.space.arch_id(job.arch)} at {job.resolution}px on {cfg.dataset} "
        f"({len(data.train)} training images); initial weights: {job.init}"
    )
    try:
        trainer.fit()
    finally:
        if task is not None:
            task.end(model)
    if new_subnet is not None:
        write_json(new_subnet, job.arch)
    res = trainer.test()
    trained: dict[str, Any] = {
        **{k: float(v) for k, v in res.items()},
        "split": "test",
        "test_images": len(job.data.test),
        "dataset": cfg.dataset,
        "epochs": cfg.epochs,
        "optimizer": cfg.optimizer,
        "init": job.init,
        "checkpoint": "ckpt.pth",
    }
    if trainer.best:
        trained["best_valid"] = trainer.best
    stats_path = os.path.join(cfg.save, "net.stats")
    base = {"id": job.space.arch_id(job.arch), "arch": job.arch}
    merge_stats(stats_path, stats_key, trained, base)
    shown = "  ".join(f"{k} {v:.2f}%" if k.startswith("top") else f"{k} {v:.4f}" for k, v in res.items())
    log(f"test ({len(job.data.test)} images): {shown}")
    for name, metrics in run_after_training(trainer.model.eval(), job, cfg).items():
        merge_stats(stats_path, name, metrics, base)
        log(f"{name}: written into {stats_path}")
    log(f"weights: {os.path.join(cfg.save, 'ckpt.pth')}  stats: {stats_path}  log: {cfg.save}/log.csv")
    return trained
