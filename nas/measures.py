"""Measures: what an evaluation reports about a trained network (the last step of the pipeline).

A measure is a registered component (:data:`MEASURES`) with ``provides`` (the metric names it
reports) and ``measure(model, arch, ctx) -> metrics``, run on the network after training and
BatchNorm recalibration, in the process that evaluates. ``accuracy`` is the engine's; task
plug-ins add exit statistics, gate statistics, noise robustness, out-of-distribution error and
device latency or energy. Measures run in the order given; a later one may refine a metric an
earlier one reported (an exit policy's top-1 replacing the final classifier's).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from nas.components import Component
from nas.registry import Registry
from nas.scoring import accuracy, batches_of

MEASURES: Registry = Registry("measure")


@dataclass
class EvalContext:
    """What the parts of one evaluator share, in the process that evaluates."""

    space: Any  # the SearchSpace
    data: Any  # DataSplits (train, valid, test); measures score on ``data.valid``
    device: torch.device
    n_classes: int
    seed: int = 0
    num_workers: int = 2

    def resolution(self, arch: Any) -> int:
        """The input side for ``arch``: its own resolution gene, else the dataset's image size."""
        r = self.space.resolution(arch)
        return int(r) if r is not None else int(self.data.image_size)

    def valid_batches(self, arch: Any, batch_size: int = 200):
        """Un-augmented batches of the validation split at ``arch``'s resolution."""
        return batches_of(
            self.data.valid, self.resolution(arch), self.device, batch_size, self.seed, self.num_workers
        )


class Measure(Component):
    """Reports ``provides`` about a trained network; subclasses implement :meth:`measure`."""

    provides: ClassVar[tuple[str, ...]] = ()

    def check(self, space: Any) -> None:
        """Refuse a search space this measure cannot work with (one-line ``UserError``); called
        when the evaluator is built, before anything expensive (default: any space)."""

    @abstractmethod
    def measure(self, model: torch.nn.Module, arch: Any, ctx: EvalContext) -> dict[str, Any]: ...


@MEASURES.register("accuracy")
class Accuracy(Measure):
    """Top-1 and top-5 (percent) of the final output on the validation split; a network whose
    outputs are not finite is a failure, not a low score."""

    provides = ("top1", "top5")

    def measure(self, model: torch.nn.Module, arch: Any, ctx: EvalContext) -> dict[str, Any]:
        res = accuracy(model, ctx.valid_batches(arch))
        if not math.isfinite(res["loss"]):
            raise FloatingPointError(f"validation loss is {res['loss']}: non-finite network outputs")
        return {"top1": res["top1"], "top5": res["top5"]}
