"""``train.py layer_skipping``: train a chosen gated network, measure its gates on the test split.

1. The network of a ``net.subnet`` (``skippingmobilenetv3``) is built with weights from ``--init``
   (e.g. the ``ckpt.pth`` post-search wrote), or inherited from ``--supernet_path``, with the gate
   type and temperature of its search (read from the ``net.stats`` next to it; ``--gate_type`` /
   ``--temperature`` override), and trained by the ``layer_skipping`` trainer on the engine's one
   training loop (resumable, ``log.csv``, ``checkpoint.pth``, ``ckpt.pth``: the best validation
   epoch's weights), as ``train.py subnet``.
2. On the validation split (``--vld_size`` images held out of the training split) and on the test
   split, with hard gates: the ``gates`` measure's statistics (avg_macs, open rates, ...); then the
   batch-1 latency with real skipping against every block run and the ungated twin. Everything
   goes to ``net.stats`` under ``"layer_skipping"`` (the test top-1 also under ``"trained"``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any

from LayerSkipping.latency import batch1_latency
from LayerSkipping.measures import collect_gates, gate_report
from LayerSkipping.trainer import GateTask, GateTrainer, require_gated_space
from nas.config import option
from nas.device import resolve_device
from nas.errors import UserError
from nas.io import read_json
from nas.scoring import batches_of, first_images
from nas.train_cli import TRAIN_MODES, TrainMode
from nas.training.subnet import SubnetTrainConfig, merge_stats, prepare_subnet, train_subnet

GATE_OPTIONS = ("gate_type", "temperature")


@dataclass
class GateTrainConfig(SubnetTrainConfig, GateTask):
    """Defaults of ``train.py layer_skipping`` (the options of ``train.py subnet`` and the gate trainer's)."""

    search_space: str | None = option("skippingmobilenetv3", "the gated space (skippingmobilenetv3)")
    gate_type: str | None = option(
        None, "gate network (default: the one net.stats records; required without)"
    )
    temperature: float | None = option(None, "gate temperature (default: the one net.stats records, else 1)")
    epochs: int = option(10, "training epochs")
    base_lr: float | None = option(0.01, "peak learning rate of the backbone")
    new_lr_mult: float = option(10.0, "learning-rate multiplier of the gates over the backbone")
    label_smoothing: float = option(0.0, "label smoothing of the training loss")
    vld_size: int = option(1000, "training images held out as the validation split (the best epoch)")
    latency_images: int = option(200, "test images timed at batch size 1 (0: no latency measurement)")


def recorded_gate_options(subnet: str | None) -> dict[str, Any]:
    """``gate_type`` / ``temperature`` recorded in the ``net.stats`` next to ``subnet`` (by a search's
    ``gates`` measure or by ``train.py layer_skipping``); empty when there is none."""
    if not subnet:
        return {}
    path = os.path.join(os.path.dirname(os.path.abspath(subnet)), "net.stats")
    if not os.path.isfile(path):
        return {}
    stats = read_json(path, "net.stats")
    for where in (stats.get("layer_skipping"), stats.get("metrics"), stats):
        if isinstance(where, dict) and "gate_type" in where:
            return {k: where[k] for k in GATE_OPTIONS if k in where}
    return {}


def gate_space_options(
    subnet: str | None, gate_type: str | None, temperature: float | None
) -> dict[str, Any]:
    """The space options that rebuild a network's gates: given ones first, then the recorded ones."""
    out = recorded_gate_options(subnet)
    if gate_type is not None:
        out["gate_type"] = gate_type
    if temperature is not None:
        out["temperature"] = temperature
    if "gate_type" not in out:
        raise UserError(
            "no gate type recorded in the net.stats next to --subnet: pass --gate_type stable|conv|attention "
            "(the one the network was trained with)"
        )
    return out


def run_layer_skipping(cfg: GateTrainConfig, log=print) -> dict[str, Any]:
    if cfg.vld_size <= 0:
        raise UserError(
            "train.py layer_skipping keeps its best epoch on a validation split: give --vld_size > 0"
        )
    if cfg.latency_images < 0:
        raise UserError(f"--latency_images {cfg.latency_images} must be >= 0")
    job = prepare_subnet(cfg, gate_space_options(cfg.subnet, cfg.gate_type, cfg.temperature))
    require_gated_space(job.space, "train.py layer_skipping")
    names = {f.name for f in dataclasses.fields(GateTrainer.Options)} & {
        f.name for f in dataclasses.fields(cfg)
    }
    trainer = GateTrainer(**{k: getattr(cfg, k) for k in names if k != "n_epochs"})
    train_subnet(cfg, log=log, task=trainer, job=job)
    save = cfg.save or os.path.dirname(os.path.abspath(cfg.subnet))
    net, data, arch, space = job.model, job.data, job.arch, job.space
    device = resolve_device(cfg.device)
    net.to(device).eval()

    def report(split):
        batches = batches_of(split, job.resolution, device, 200, cfg.seed, cfg.num_workers)
        return gate_report(space, arch, collect_gates(net, batches), data.n_classes)

    valid, test = report(data.valid), report(data.test)
    result: dict[str, Any] = {
        "split": "test",
        **test,
        "valid_top1": valid["top1"],
        "valid_avg_macs": valid["avg_macs"],
        "backbone_macs": space.costs(arch, data.n_classes)["backbone_macs"],
    }
    result["predicted_saving"] = result["mac_saving"]
    if cfg.latency_images > 0:
        result["latency"] = batch1_latency(
            net, first_images(data.test, cfg.latency_images, job.resolution, device)
        )
    merge_stats(
        os.path.join(save, "net.stats"), "layer_skipping", result, {"id": space.arch_id(arch), "arch": arch}
    )
    shown = {k: result[k] for k in ("top1", "open_top1", "avg_macs", "backbone_macs", "predicted_saving")}
    if "latency" in result:
        shown["measured_saving"] = result["latency"]["measured_saving"]
    log("gates on the test split: " + json.dumps({k: round(v, 4) for k, v in shown.items()}))
    log(f"open rates {[round(r, 3) for r in result['open_rate']]} (targets: 1 - sparsity)")
    return result


def main(cfg: GateTrainConfig) -> int:
    run_layer_skipping(cfg)
    return 0


TRAIN_MODES.register("layer_skipping")(
    TrainMode(
        GateTrainConfig,
        main,
        "train a gated network (net.subnet of skippingmobilenetv3), keep its best validation epoch, measure "
        "its gates, avg_macs and batch-1 latency with real skipping on the test split",
    )
)
