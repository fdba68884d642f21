"""Evaluation of real candidates: a subnet of a trained supernet on the validation split.

For each architecture: extract the subnet with the supernet's weights (``--no-pretrained``:
random weights), optionally fine-tune it for ``n_epochs`` with a registered trainer, recalibrate
BatchNorm on training images and measure top-1 on the ``vld_size`` validation images; params,
MACs and activations come from the space's exact cost model. Task trainers (early exits, layer
skipping, flatness) register in :data:`TRAINERS` and are chosen by name, so the search engine
does not change for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.data import DataSplits, load_dataset, make_loader
from nas.device import resolve_device
from nas.errors import UserError
from nas.evaluation import EVALUATORS, Evaluator
from nas.registry import Registry
from nas.space import Arch, SearchSpace
from nas.supernet import evaluate_network

# name -> function(net, arch, data, epochs, device, seed, num_workers) that trains ``net`` in place
TRAINERS: Registry[Callable[..., None]] = Registry("trainer")


@TRAINERS.register("single_exit")
def finetune(
    net: nn.Module,
    arch: Arch,
    data: DataSplits,
    epochs: int,
    device: torch.device,
    seed: int,
    num_workers: int = 2,
) -> None:
    """Plain fine-tuning: SGD (momentum 0.9, lr 0.01 cosine to 0), batch 64, augmented images."""
    loader = make_loader(
        data.train, 64, arch["r"], train=True, device=device, seed=seed, num_workers=num_workers
    )
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * len(loader)))
    net.train()
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for x, y in loader:
            loss = F.cross_entropy(net(x.contiguous(memory_format=torch.channels_last)), y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"fine-tuning loss became {loss.item()}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()


@EVALUATORS.register("subnet")
class SubnetEvaluator(Evaluator):
    """Top-1 on the validation split of subnets of one supernet, plus exact costs."""

    def __init__(
        self,
        space: SearchSpace,
        dataset: str,
        data_dir: str | None = None,
        vld_size: int = 5000,
        supernet_path: str | None = None,
        pretrained: bool = True,
        n_epochs: int = 0,
        trainer: str = "single_exit",
        bn_batches: int = 10,
        n_classes: int | None = None,
        device: str = "auto",
        seed: int = 0,
        n_workers: int = 2,
    ) -> None:
        if vld_size <= 0:
            raise UserError("--vld_size must be > 0: candidates are scored on the validation split")
        self.space, self.n_epochs, self.seed, self.bn_batches = space, n_epochs, seed, bn_batches
        self.n_workers = n_workers
        self.train_fn = TRAINERS.get(trainer)
        self.device = resolve_device(device)
        self.data = load_dataset(dataset, data_dir, vld_size=vld_size, seed=seed)
        if n_classes is not None and n_classes != self.data.n_classes:
            raise UserError(
                f"--n_classes {n_classes} does not match {dataset} ({self.data.n_classes} classes)"
            )
        self.n_classes = self.data.n_classes
        torch.manual_seed(seed)
        self.supernet = space.make_supernet(self.n_classes)
        if pretrained:
            skipped = space.load_weights(self.supernet, supernet_path)
            if skipped and n_epochs == 0:
                raise UserError(
                    f"the supernet's classifier has another class count than {dataset}; subnets would be "
                    "scored with a random head: fine-tune them (--n_epochs > 0) or use a supernet trained "
                    "on this dataset"
                )

    def exact_metrics(self, arch: Arch) -> dict[str, float]:
        return self.space.costs(arch, self.n_classes)

    def measure(self, arch: Arch) -> dict[str, float]:
        return self.network(arch)[1]

    def measure_with_weights(self, arch: Arch) -> tuple[dict[str, float], dict | None]:
        """Fine-tuned weights are kept (``iter_k/net_<id>/ckpt.pth``); inherited ones can be rebuilt."""
        net, metrics = self.network(arch)
        weights = {k: v.detach().cpu() for k, v in net.state_dict().items()} if self.n_epochs > 0 else None
        return metrics, weights

    def network(self, arch: Arch) -> tuple[nn.Module, dict[str, float]]:
        """The scored network (inherited weights, fine-tuned if asked, BatchNorm recalibrated) and
        its metrics; ``post_search.py`` saves these weights for the networks it chooses."""
        arch = self.space.validate(arch)
        net = self.space.build(arch, self.supernet).to(self.device).to(memory_format=torch.channels_last)
        if self.n_epochs > 0:
            self.train_fn(net, arch, self.data, self.n_epochs, self.device, self.seed, self.n_workers)
        res = evaluate_network(
            net,
            arch["r"],
            self.data,
            self.data.valid,
            self.device,
            bn_batches=self.bn_batches,
            seed=self.seed,
            num_workers=self.n_workers,
        )
        if not math.isfinite(res["loss"]):  # a diverged network is a failure, not a low score
            raise FloatingPointError(f"validation loss is {res['loss']}: non-finite network outputs")
        return net, {"top1": res["top1"], "top5": res["top5"], **self.exact_metrics(arch)}
