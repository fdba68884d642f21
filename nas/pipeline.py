"""The ``subnet`` evaluator: build -> train -> measures, on a dataset, for any space.

For each architecture: build the network (with the supernet's weights when the space has one and
``--pretrained``, else from scratch), train it with the registered trainer (``--trainer``; with
``--n_epochs 0`` it keeps its inherited weights), recalibrate BatchNorm on training images, and
run the registered measures (``--measures``, default ``accuracy``: top-1 on the ``vld_size``
validation images carved from the training set). Exact costs are not measured here: the run's
cost providers add them in the driver.

The constructor only checks the options (the dataset's class count comes from its registry
entry); the dataset and the supernet load in :meth:`SubnetEvaluator.setup`, once, in the process
that evaluates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from nas.config import option
from nas.data import DATASETS, load_dataset
from nas.device import resolve_device
from nas.errors import UserError
from nas.evaluator import EVALUATORS, Evaluator
from nas.measures import EvalContext
from nas.scoring import recalibrate
from nas.space import Arch


@EVALUATORS.register("subnet")
class SubnetEvaluator(Evaluator):
    """Networks of the space trained by the run's trainer and scored by its measures."""

    uses_trainer = True
    uses_measures = True

    @dataclass
    class Options:
        dataset: str = option("cifar10_embedded", "dataset name (a registered dataset)")
        data: str | None = option(None, "dataset folder (default: the dataset's own default location)")
        n_classes: int | None = option(
            None, "number of classes; must match the dataset (default: the dataset's)"
        )
        vld_size: int = option(5000, "validation images carved from the training set to score candidates")
        supernet_path: str | None = option(
            None, "OFA-format supernet checkpoint (default with --pretrained: OFA's ImageNet weights)"
        )
        pretrained: bool = option(True, "inherit the supernet's weights (--no-pretrained: random weights)")
        bn_batches: int = option(
            10, "batches of 200 training images that recalibrate BatchNorm per candidate (0: none)"
        )
        device: str = option("auto", "device of evaluation: auto, cpu, cuda or cuda:N")
        n_workers: int = option(2, "data-loading worker processes for datasets read from files (ImageNet)")

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        o = self.options
        if o.vld_size <= 0:
            raise UserError("--vld_size must be > 0: candidates are scored on the validation split")
        if o.bn_batches < 0:
            raise UserError(f"--bn_batches {o.bn_batches} must be >= 0")
        spec = DATASETS.get(o.dataset)
        if o.n_classes is not None and o.n_classes != spec.n_classes:
            raise UserError(
                f"--n_classes {o.n_classes} does not match {o.dataset} ({spec.n_classes} classes)"
            )
        self.n_classes, self.image_size = spec.n_classes, spec.image_size
        if o.pretrained:
            self.space.require("supernet", "--pretrained (--no-pretrained trains networks from scratch)")
            if o.supernet_path is not None and not os.path.isfile(o.supernet_path):
                raise UserError(f"--supernet_path {o.supernet_path!r} does not exist; check the path")
        if not o.pretrained and not (self.trainer is not None and self.trainer.changes_weights()):
            raise UserError("--no-pretrained networks need a trainer that trains them (--n_epochs > 0)")
        self.supernet: nn.Module | None = None
        self.ctx: EvalContext | None = None

    def metric_names(self) -> set[str]:
        names = {n for m in self.measures for n in m.provides}
        return names | set(getattr(self.trainer, "provides", ()))

    def setup(self) -> None:
        o = self.options
        device = resolve_device(o.device)
        data = load_dataset(o.dataset, o.data, vld_size=o.vld_size, seed=self.seed)
        self.ctx = EvalContext(self.space, data, device, data.n_classes, self.seed, o.n_workers)
        if self.space.has("supernet"):
            torch.manual_seed(self.seed)
            self.supernet = self.space.make_supernet(data.n_classes)
            if o.pretrained:
                skipped = self.space.load_weights(self.supernet, o.supernet_path)
                if skipped and not (self.trainer is not None and self.trainer.changes_weights()):
                    raise UserError(
                        f"the supernet's classifier has another class count than {o.dataset}; subnets would "
                        "be scored with a random head: fine-tune them (--n_epochs > 0) or use a supernet "
                        "trained on this dataset"
                    )

    def measure(self, arch: Arch) -> dict[str, Any]:
        return self.network(arch)[1]

    def measure_with_weights(self, arch: Arch) -> tuple[dict[str, Any], dict | None]:
        """Trained weights are kept (``iter_k/net_<id>/ckpt.pth``); inherited ones can be rebuilt."""
        net, metrics = self.network(arch)
        trained = self.trainer is not None and self.trainer.changes_weights()
        weights = {k: v.detach().cpu() for k, v in net.state_dict().items()} if trained else None
        return metrics, weights

    def build(self, arch: Arch) -> nn.Module:
        """The untrained network of ``arch``: inherited weights, or a seeded random initialisation."""
        self.ensure_setup()
        if self.supernet is not None:
            return self.space.build(arch, self.supernet)
        torch.manual_seed(self.seed)
        return self.space.build(arch, n_classes=self.n_classes)

    def network(self, arch: Arch) -> tuple[nn.Module, dict[str, Any]]:
        """The scored network (built, trained, BatchNorm recalibrated) and its metrics;
        ``post_search.py`` saves these weights for the networks it chooses."""
        self.ensure_setup()
        ctx = self.ctx
        arch = self.space.validate(arch)
        net = self.build(arch).to(ctx.device).to(memory_format=torch.channels_last)
        metrics: dict[str, Any] = {}
        if self.trainer is not None:
            metrics.update(self.trainer.train(net, arch, ctx))
        if self.options.bn_batches > 0:
            recalibrate(
                net, ctx.resolution(arch), ctx.data, ctx.device, self.options.bn_batches, seed=self.seed,
                num_workers=ctx.num_workers,
            )  # fmt: skip
        for m in self.measures:
            metrics.update(m.measure(net, arch, ctx))
        # the measures first, as before: top1, top5, then what the trainer reported
        ordered = {k: metrics[k] for k in metrics if k not in getattr(self.trainer, "provides", ())}
        return net, {**ordered, **metrics}
