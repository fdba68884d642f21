"""What every weight-sharing method shares: a strategy of the search loop that trains a supernet.

Each method (DARTS, PC-DARTS, ENAS, SPOS, ProxylessNAS) is a registered
:class:`~nas.search.strategy.Strategy`. Every call of ``initial`` / ``ask`` trains the supernet (and
the method's architecture parameters) for ``--epochs_per_iteration`` more epochs, up to
``--epochs``, then proposes architectures of the run's space: the method's derived architecture
first, then what the method ranks next, none already evaluated. The loop evaluates them with the
run's evaluator (the NAS-Bench-201 table, the OFA predictor or training), so the run directory is
that of every search: ``iter_k.stats``, ``archive.csv``, ``iter_k/net_<id>/``, plots, and
``post_search.py`` and the tools read it. The method's own records live below it:

- ``ws/state_<epoch>.pth``: supernet, architecture parameters and optimiser states after that
  epoch (the two newest are kept); ``iter_k.stats`` names the one it belongs to, so ``--resume``
  after ``kill -9`` continues exactly (every epoch draws only from ``(seed, epoch)``);
- ``ws/log.csv``: per epoch, the training loss and top-1 of the weights and of the architecture
  step, the learning rate, seconds, and at the end of each chunk the derived architecture (with its
  evaluated top-1 once known);
- ``plots/arch_weights.png``: the architecture weights (operation probabilities per edge) epoch by
  epoch, drawn every 5 epochs and after the last.

The data: ``--n_train`` training images of ``--train_dataset`` (never the test split), drawn with the
seed; methods with a bilevel problem train the weights on one half and the architecture on the
other.
"""

from __future__ import annotations

import csv
import glob
import io
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from nas.config import option
from nas.data import load_dataset, make_loader
from nas.data.loaders import derive_seed
from nas.device import resolve_device
from nas.errors import UserError
from nas.io import atomic_write_bytes, load_checkpoint, save_checkpoint
from nas.result import Result
from nas.search.strategy import Strategy
from nas.space import Arch
from strategies.common import new_unique
from weightsharing.supernet import SUPERNETS

Forward = Callable[[torch.Tensor], torch.Tensor]  # a batch -> logits (one path of the supernet)
STATE_DIR = "ws"


@dataclass
class WeightSharingOptions:
    """Options every weight-sharing method has (the supernet, its data and its training)."""

    train_dataset: str = option(
        "cifar10_embedded", "dataset the supernet trains on (its training split only)"
    )
    train_data: str | None = option(None, "--train_dataset's folder; default: the dataset's default location")
    n_train: int = option(0, "training images used (0: all); bilevel methods split them in two halves")
    resolution: int = option(32, "input resolution in pixels (16 halves a CIFAR image: ~4x faster)")
    channels: int = option(16, "channels of the supernet's first stage (NAS-Bench-201: 16)")
    cells: int = option(5, "search cells per stage (nb201; 5 in the benchmark) or in all (darts; DARTS: 8)")
    batch_size: int = option(64, "images per step")
    epochs: int = option(50, "training epochs of the search in all")
    epochs_per_iteration: int = option(1, "epochs trained before each proposal of the search loop")
    learning_rate: float = option(
        0.025, "weight learning rate at the start (SGD, cosine to --learning_rate_min per epoch)"
    )
    learning_rate_min: float = option(0.001, "weight learning rate at the end")
    momentum: float = option(0.9, "SGD momentum of the weights")
    weight_decay: float = option(3e-4, "weight decay of the weights")
    grad_clip: float = option(5.0, "gradient-norm clip of the weights (0: none)")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")


class WeightSharingStrategy(Strategy):
    """The base of the methods (see the module docstring). Subclasses implement :meth:`build`,
    :meth:`train_epoch`, :meth:`table_weights` and :meth:`derive`, and may override
    :meth:`proposals`, :meth:`method_state` and :meth:`load_method_state`."""

    Options = WeightSharingOptions
    multi_objective = False
    bilevel = True  # the training images are split into a weight half and an architecture half
    weights_every_epoch = True  # False: table_weights is costly (a ranking); logged once per chunk

    def __init__(self, options: Any = None, *, ctx, **kwargs: Any) -> None:
        super().__init__(options, ctx=ctx, **kwargs)
        self.epoch = 0  # epochs trained
        self.history: list[dict[str, Any]] = []
        self.checkpoint: str | None = None  # relative to the run directory
        self._ready = False

    # ---- checks and setup ---------------------------------------------------------------------

    def check(self) -> None:
        o = self.options
        self.check_supernet()
        for flag in ("epochs", "epochs_per_iteration", "batch_size", "resolution"):
            if getattr(o, flag) < 1:
                raise UserError(f"--{flag} {getattr(o, flag)} must be >= 1")
        if o.n_train < 0:
            raise UserError(f"--n_train {o.n_train} must be >= 0 (0: every training image)")
        if o.learning_rate <= 0 or o.learning_rate_min < 0 or o.learning_rate_min > o.learning_rate:
            raise UserError(
                f"--learning_rate {o.learning_rate} must be > 0 and --learning_rate_min "
                f"{o.learning_rate_min} in [0, it]"
            )
        resolve_device(o.device)

    def check_supernet(self) -> None:
        """Refuse a space without a cell supernet, or its sizes (a method with another supernet
        overrides this and :meth:`make_supernet`)."""
        name = self.ctx.space.name
        if name not in SUPERNETS:
            raise UserError(
                f"strategy {self.name!r} has no supernet for search space {name!r}; "
                f"use --search_space {' or '.join(SUPERNETS.names())}"
            )
        for flag in ("channels", "cells"):
            if getattr(self.options, flag) < 1:
                raise UserError(f"--{flag} {getattr(self.options, flag)} must be >= 1")

    def make_supernet(self) -> torch.nn.Module:
        """The supernet the method trains (default: the space's cell supernet, :data:`SUPERNETS`)."""
        o = self.options
        cls = SUPERNETS.get(self.ctx.space.name)
        return cls(self.n_classes, channels=o.channels, cells=o.cells, **self.supernet_options())

    @property
    def op_names(self) -> tuple[str, ...]:
        """The column names of :meth:`table_weights` (the plot's legend)."""
        return self.supernet.op_names

    def min_archive(self) -> int:
        return 1

    def supernet_options(self) -> dict[str, Any]:
        """Keyword options of the supernet class beyond ``n_classes``, ``channels`` and ``cells``."""
        return {}

    def _setup(self) -> None:
        if self._ready:
            return
        o = self.options
        self.device = resolve_device(o.device)
        data, splits = training_halves(o.train_dataset, o.train_data, o.n_train, self.ctx.seed, self.bilevel)
        self.n_classes = data.n_classes
        self.loaders = {
            key: make_loader(split, o.batch_size, o.resolution, True, self.device, seed=self.ctx.seed + i)
            for i, (key, split) in enumerate(splits.items())
        }
        torch.manual_seed(derive_seed(self.ctx.seed, 11))  # the supernet's initial weights
        self.supernet = self.make_supernet().to(self.device)
        self.w_opt = torch.optim.SGD(
            self.supernet.parameters(), lr=o.learning_rate, momentum=o.momentum, weight_decay=o.weight_decay
        )
        gen = torch.Generator().manual_seed(derive_seed(self.ctx.seed, 13))
        self.build(gen)
        if self.checkpoint is not None:
            self._load(self.checkpoint)
        self._ready = True

    # ---- what a method defines ----------------------------------------------------------------

    def build(self, gen: torch.Generator) -> None:
        """Create the method's architecture parameters and optimisers (``gen``: their initial values)."""

    def train_epoch(self, epoch: int, gen: torch.Generator, bar: tqdm) -> dict[str, float]:
        """One epoch of training; returns what the log records (losses, top-1s)."""
        raise NotImplementedError

    def table_weights(self) -> dict[str, np.ndarray]:
        """The current operation probabilities per edge table (plotted and logged)."""
        raise NotImplementedError

    def derive(self) -> Arch:
        """The architecture the method would return now."""
        raise NotImplementedError

    def proposals(self, n: int, rng: np.random.Generator) -> list[Arch]:
        """Up to ``n`` new architectures, the derived one first (default: then the most probable
        cells under :meth:`table_weights`, best first)."""
        ranked = self.supernet.ranked(self.table_weights(), limit=n + len(self.ctx.archive))
        return new_unique(self.ctx, [self.derive(), *ranked])[:n]

    def derived_summary(self) -> dict[str, float]:
        """What the log records about the derived architecture (default: nothing)."""
        return {}

    def weight_step(self, x: torch.Tensor, y: torch.Tensor, *forwards: Forward):
        """One SGD step of the supernet's weights on ``(x, y)``: the gradients of the cross-entropy of
        every ``forward(x)`` (logits) summed, as FairNAS sums those of its paths, the norm clipped to
        ``--grad_clip``; returns the batch's loss and top-1, averaged over the forwards."""
        self.w_opt.zero_grad(set_to_none=True)
        loss_sum = top1_sum = 0.0
        for forward in forwards:
            out = forward(x)
            loss = cross_entropy(out, y)
            loss.backward()
            loss_sum += float(loss.detach())
            top1_sum += accuracy(out.detach(), y)
        if self.options.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.supernet.parameters(), self.options.grad_clip)
        self.w_opt.step()
        return loss_sum / len(forwards), top1_sum / len(forwards)

    def method_state(self) -> dict[str, Any]:
        """The method's tensors and optimiser states for the checkpoint."""
        return {}

    def load_method_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`method_state`."""

    # ---- the strategy contract ----------------------------------------------------------------

    def initial(self, rng: np.random.Generator) -> list[Arch]:
        self._advance()
        return self.proposals(self.ctx.n_doe, rng)

    def ask(self, rng: np.random.Generator) -> list[Arch]:
        self._advance()
        return self.proposals(self.ctx.n_iter, rng)

    def tell(self, results: list[Result]) -> None:
        if not self.history:
            return
        row = self.history[-1]
        if "derived" not in row:
            return
        aid = self.ctx.space.arch_id(row["derived"])
        found = self.ctx.archive.results.get(aid)
        if found is not None and found.ok and "top1" in found.metrics:
            row["derived_top1"] = float(found.metrics["top1"])
            self._write_log()

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "checkpoint": self.checkpoint, "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state.get("epoch", 0))
        self.checkpoint = state.get("checkpoint")
        self.history = list(state.get("history", []))
        self._ready = False  # the checkpoint is loaded when training goes on

    def final(self) -> Arch:
        """The method's answer: the architecture derived after the last epoch trained."""
        if not any("derived" in h for h in self.history):
            raise UserError(f"strategy {self.name!r} has not trained yet; nothing is derived")
        return next(h["derived"] for h in reversed(self.history) if "derived" in h)

    # ---- training -----------------------------------------------------------------------------

    def lr_at(self, epoch: int) -> float:
        """Cosine annealing from ``--learning_rate`` to ``--learning_rate_min`` over ``--epochs``, per
        epoch (DARTS's)."""
        o = self.options
        return o.learning_rate_min + 0.5 * (o.learning_rate - o.learning_rate_min) * (
            1 + math.cos(math.pi * epoch / o.epochs)
        )

    def _advance(self) -> None:
        o = self.options
        self._setup()
        stop = min(self.epoch + o.epochs_per_iteration, o.epochs)
        if self.epoch >= stop:  # trained out: later iterations only propose
            return
        while self.epoch < stop:
            epoch = self.epoch
            for group in self.w_opt.param_groups:
                group["lr"] = self.lr_at(epoch)
            gen = torch.Generator().manual_seed(derive_seed(self.ctx.seed, 17, epoch))
            torch.manual_seed(derive_seed(self.ctx.seed, 19, epoch))
            for loader in self.loaders.values():
                loader.set_epoch(epoch)
            t0 = time.time()
            self.supernet.train()
            total = len(self.loaders["weights"])
            with tqdm(
                total=total, desc=f"{self.name} epoch {epoch + 1}/{o.epochs}", leave=False, disable=None
            ) as bar:
                logged = self.train_epoch(epoch, gen, bar)
            self.epoch = epoch + 1
            row = {"epoch": self.epoch, "lr": self.lr_at(epoch), **{k: float(v) for k, v in logged.items()}}
            row["seconds"] = time.time() - t0
            if self.epoch == stop:  # deriving may cost (ranking cells): once per chunk
                row["derived"] = self.derive()
                row.update(self.derived_summary())
            if self.weights_every_epoch or "derived" in row:
                row["weights"] = {k: np.round(v, 5).tolist() for k, v in self.table_weights().items()}
            self.history.append(row)
            derived = f"  derived {self.ctx.space.arch_id(row['derived'])}" if "derived" in row else ""
            self.ctx.log(
                f"{self.name} epoch {self.epoch}/{o.epochs}: "
                + "  ".join(f"{k} {v:.4g}" for k, v in logged.items())
                + f"  {row['seconds']:.1f}s{derived}"
            )
        self._save()
        self._write_log()
        if self.epoch == o.epochs or self.epoch % 5 == 0:
            self._plot()

    # ---- files --------------------------------------------------------------------------------

    def _dir(self) -> str:
        if self.ctx.save is None:
            raise UserError(
                f"strategy {self.name!r} keeps its supernet in the run directory; give --save DIR"
            )
        return os.path.join(self.ctx.save, STATE_DIR)

    def _save(self) -> None:
        rel = os.path.join(STATE_DIR, f"state_{self.epoch}.pth")
        save_checkpoint(
            os.path.join(self.ctx.save, rel),
            {
                "epoch": self.epoch,
                "space": self.ctx.space.name,
                "supernet_config": dict(self.supernet.config),
                "n_classes": self.n_classes,
                "data": self.data_recipe(),
                "supernet": self.supernet.state_dict(),
                "w_opt": self.w_opt.state_dict(),
                "method": self.method_state(),
            },
        )
        self.checkpoint = rel
        found = state_files(self.ctx.save)
        for _, path in found[:-2]:  # the newest two: the last iter_k.stats may name the older one
            os.remove(path)

    def data_recipe(self) -> dict[str, Any]:
        """What :func:`training_halves` needs to find the images the weights did not train on."""
        o = self.options
        return {
            "train_dataset": o.train_dataset,
            "train_data": o.train_data,
            "n_train": o.n_train,
            "seed": self.ctx.seed,
            "bilevel": self.bilevel,
            "resolution": o.resolution,
            "batch_size": o.batch_size,
        }

    def _load(self, rel: str) -> None:
        state = load_checkpoint(os.path.join(self.ctx.save, rel), "weight-sharing state")
        self.supernet.load_state_dict(state["supernet"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.load_method_state(state["method"])

    def _write_log(self) -> None:
        if not self.history:
            return
        keys = [k for k in self.history[-1] if k not in ("weights",)]
        for row in self.history:
            keys += [k for k in row if k not in keys and k != "weights"]
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(keys)
        for row in self.history:
            w.writerow(
                [
                    self.ctx.space.arch_id(row[k]) if k == "derived" and k in row else row.get(k, "")
                    for k in keys
                ]
            )
        atomic_write_bytes(os.path.join(self._dir(), "log.csv"), buf.getvalue().encode())

    def _plot(self) -> None:
        from weightsharing.report import plot_arch_weights

        plot_arch_weights(self.history, self.op_names, os.path.join(self.ctx.save, "plots"))


def state_files(run: str) -> list[tuple[int, str]]:
    """``(epoch, path)`` of the ``ws/state_<epoch>.pth`` files of a run directory, oldest first."""
    found = (
        (m, p)
        for p in glob.glob(os.path.join(run, STATE_DIR, "state_*.pth"))
        if (m := re.search(r"state_(\d+)\.pth$", p))
    )
    return sorted((int(m.group(1)), p) for m, p in found)


def endless(loader):
    """The loader's batches pass after pass (each pass is the loader's next epoch)."""
    while True:
        yield from loader


def training_halves(dataset: str, folder: str | None, n_train: int, seed: int, bilevel: bool):
    """The dataset and its training images used by a method: ``{"weights": split[, "arch": split]}``,
    ``n_train`` images (0: all) drawn with ``seed`` and, for bilevel methods, halved."""
    data = load_dataset(dataset, folder, vld_size=0, seed=seed)
    train = data.train
    n = len(train) if n_train == 0 else min(n_train, len(train))
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(derive_seed(seed, 7)))
    if not bilevel:
        return data, {"weights": train.subset(order[:n])}
    return data, {"weights": train.subset(order[: n // 2]), "arch": train.subset(order[n // 2 : n])}


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(1) == y).float().mean())


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y)
