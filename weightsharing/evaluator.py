"""The ``oneshot`` evaluator: a cell's inherited-weight top-1 and loss in a trained weight-sharing supernet.

``--supernet_path`` is a state a method wrote (``<run>/ws/state_<epoch>.pth``) or a run directory
(its newest state, read again whenever a newer one appears, so a method's own run can evaluate its
proposals with the supernet as it is now). Each cell is scored as SPOS does: the supernet along the
cell's path, BatchNorm recalibrated on ``--bn_batches`` training batches, top-1 (%) on
``--rank_images`` training images the weights never trained on (the method's other half; a method
that trained on every image has no such half and is refused), and the mean cross-entropy on them
(``inherited_loss``, what SPOS ranks by by default). The objective metric is ``top1``, so any
strategy can search with it; ``benchmarks/b16_weight_sharing.py`` compares both with the
NAS-Bench-201 table (Kendall tau over sampled cells).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from nas.config import option
from nas.device import resolve_device
from nas.errors import UserError
from nas.evaluator import EVALUATORS, Evaluator
from nas.io import load_checkpoint
from nas.space import Arch
from weightsharing.method import STATE_DIR, state_files, training_halves
from weightsharing.spos import inherited_scores, ranking_batches
from weightsharing.supernet import SUPERNETS


def newest_state(path: str) -> str:
    """``path`` itself (a state file) or the newest ``ws/state_<epoch>.pth`` of a run directory."""
    if os.path.isfile(path):
        return path
    found = state_files(path)
    if not found:
        raise UserError(
            f"--supernet_path {path!r} is neither a state file nor a run directory with "
            f"{STATE_DIR}/state_*.pth; give what train.py darts|spos|... wrote"
        )
    return found[-1][1]


@EVALUATORS.register("oneshot")
class OneShotEvaluator(Evaluator):
    """Inherited-weight top-1 of cells in a weight-sharing supernet (see the module docstring)."""

    @dataclass
    class Options:
        supernet_path: str | None = option(
            None, "a method's ws/state_<epoch>.pth, or its run directory (newest)"
        )
        rank_images: int = option(1000, "held-out training images of the ranking (never the test split)")
        bn_batches: int = option(5, "training batches that recalibrate BatchNorm for each cell")
        device: str = option("auto", "auto, cpu, cuda or cuda:N")

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        o = self.options
        if o.supernet_path is None:
            raise UserError(
                "the oneshot evaluator needs --supernet_path (a ws/state_<epoch>.pth or a run directory)"
            )
        if self.space.name not in SUPERNETS:
            raise UserError(f"no weight-sharing supernet for search space {self.space.name!r}")
        if o.rank_images < 1 or o.bn_batches < 1:
            raise UserError(f"--rank_images {o.rank_images} and --bn_batches {o.bn_batches} must be >= 1")
        self.loaded: str | None = None

    def metric_names(self) -> set[str]:
        return {"top1", "inherited_loss"}

    def setup(self) -> None:
        self.device = resolve_device(self.options.device)  # the state is read when a cell comes

    def _reload(self) -> None:
        path = newest_state(self.options.supernet_path)
        if path == self.loaded:
            return
        state = load_checkpoint(path, "weight-sharing state")
        if state.get("space") != self.space.name:
            raise UserError(f"{path} is a supernet of space {state.get('space')!r}, not {self.space.name!r}")
        recipe = state["data"]
        if not recipe["bilevel"]:
            raise UserError(
                f"{path}: its weights trained on every image, so no held-out image is left to rank on"
            )
        self.supernet = SUPERNETS.get(self.space.name)(state["n_classes"], **state["supernet_config"])
        self.supernet.load_state_dict(state["supernet"])
        self.supernet.to(self.device)
        _, halves = training_halves(
            recipe["train_dataset"], recipe["train_data"], recipe["n_train"], recipe["seed"], True
        )
        o = self.options
        self.bn, self.valid = ranking_batches(
            halves,
            recipe["batch_size"],
            recipe["resolution"],
            self.device,
            recipe["seed"],
            o.bn_batches,
            o.rank_images,
        )
        self.loaded = path

    def measure(self, arch: Arch) -> dict[str, Any]:
        self.ensure_setup()
        self._reload()
        arch = self.space.validate(arch)
        scores = inherited_scores(self.supernet, self.supernet.path_of(arch), self.bn, self.valid)
        return {"top1": scores["top1"], "inherited_loss": scores["loss"]}
