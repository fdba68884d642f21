"""``train.py ee``: train a chosen early-exit network, tune its thresholds, measure it on the test split.

1. The network of a ``net.subnet`` (``eemobilenetv3`` or ``cbnmobilenetv3``) is built with weights
   from ``--init`` (e.g. the ``ckpt.pth`` post-search wrote), or inherited from ``--supernet_path``,
   and trained with a search-time trainer (``--trainer ee_joint|nachos``) on the engine's one
   training loop (resumable, ``log.csv``, ``checkpoint.pth``, ``ckpt.pth``), as ``train.py subnet``.
2. Thresholds: the genes' (``eemobilenetv3``) or tuned on the validation split (``--vld_size``
   images held out of the training split; ``--tune`` forces tuning), never on the test split.
3. On the test split with those thresholds: the early-exit statistics of the ``exits`` measure and
   the batch-1 CPU/GPU latency of the early-exit network against its backbone alone (the measured
   saving next to the one avg_macs predicts). Everything goes to ``net.stats`` under ``"early_exit"``
   (the final classifier's test top-1 under ``"trained"``, as ``train.py subnet`` writes it).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any

from EarlyExits.latency import batch1_latency
from EarlyExits.measures import ExitOptions, collect_outputs, default_policy, exit_report, require_exit_space
from EarlyExits.policies import get_policy
from EarlyExits.trainers import JointTask, NachosTask
from nas.config import option
from nas.device import resolve_device
from nas.errors import UserError
from nas.scoring import batches_of, first_images
from nas.train_cli import TRAIN_MODES, TrainMode
from nas.training.subnet import SubnetTrainConfig, merge_stats, prepare_subnet, train_subnet
from nas.training.trainers import TRAINERS


@dataclass
class EETrainConfig(SubnetTrainConfig, ExitOptions, NachosTask, JointTask):
    """Defaults of ``train.py ee`` (the options of ``train.py subnet``, the trainer's and the exits')."""

    search_space: str | None = option("eemobilenetv3", "eemobilenetv3 or cbnmobilenetv3")
    exit_head: str | None = option(
        None, "exit head: nachos or edanas (default: the space's, as in its search)"
    )
    trainer: str = option(
        "auto", "ee_joint or nachos (auto: ee_joint for eemobilenetv3, nachos for cbnmobilenetv3)"
    )
    epochs: int = option(5, "training epochs")
    base_lr: float | None = option(0.01, "peak learning rate")
    vld_size: int = option(1000, "training images held out as the validation split (threshold tuning)")
    latency_images: int = option(200, "test images timed at batch size 1 (0: no latency measurement)")


def make_trainer(cfg: EETrainConfig, space: Any) -> Any:
    name = cfg.trainer if cfg.trainer != "auto" else "nachos" if space.confidence else "ee_joint"
    cls = TRAINERS.get(name)
    names = {f.name for f in dataclasses.fields(cls.Options)} & {f.name for f in dataclasses.fields(cfg)}
    trainer = cls(**{k: getattr(cfg, k) for k in names if k not in ("n_epochs",)})
    trainer.check(space)
    return trainer


def run_ee(cfg: EETrainConfig, log=print) -> dict[str, Any]:
    if cfg.vld_size <= 0:
        raise UserError(
            "train.py ee tunes and checks its thresholds on a validation split: give --vld_size > 0"
        )
    if cfg.latency_images < 0:
        raise UserError(f"--latency_images {cfg.latency_images} must be >= 0")
    job = prepare_subnet(cfg, {"exit_head": cfg.exit_head} if cfg.exit_head else None)
    require_exit_space(job.space, "train.py ee")
    trainer = make_trainer(cfg, job.space)
    train_subnet(cfg, log=log, task=trainer, job=job)
    save = cfg.save or os.path.dirname(os.path.abspath(cfg.subnet))
    net, data, arch, space = job.model, job.data, job.arch, job.space
    device = resolve_device(cfg.device)
    net.to(device).eval()  # as trained (BatchNorm statistics included), as train.py subnet tests it

    def outputs(split):
        return collect_outputs(net, batches_of(split, job.resolution, device, 200, cfg.seed, cfg.num_workers))

    valid = exit_report(space, arch, outputs(data.valid), data.n_classes, cfg)
    test = exit_report(space, arch, outputs(data.test), data.n_classes, cfg, thresholds=valid["thresholds"])
    policy_name = default_policy(space) if cfg.policy == "auto" else cfg.policy
    tuned = cfg.tune or not space.exit_plan(arch, data.n_classes).thresholds
    result: dict[str, Any] = {
        "split": "test",
        "thresholds_from": "validation split" if tuned else "genes",
        "policy": policy_name,
        **test,
        "valid_top1": valid["top1"],
        "valid_avg_macs": valid["avg_macs"],
        "backbone_macs": space.costs(arch, data.n_classes)["backbone_macs"],
    }
    result["predicted_saving"] = 1.0 - result["avg_macs"] / result["backbone_macs"]
    if cfg.latency_images > 0:
        x = first_images(data.test, cfg.latency_images, job.resolution, device)
        result["latency"] = batch1_latency(net, x, get_policy(policy_name), valid["thresholds"])
    merge_stats(
        os.path.join(save, "net.stats"), "early_exit", result, {"id": space.arch_id(arch), "arch": arch}
    )
    shown = {k: result[k] for k in ("top1", "backbone_top1", "avg_macs", "backbone_macs", "predicted_saving")}
    if "latency" in result:
        shown["measured_saving"] = result["latency"]["measured_saving"]
    log("early exits on the test split: " + json.dumps({k: round(v, 4) for k, v in shown.items()}))
    log(f"exit ratios {[round(r, 3) for r in result['exit_ratio']]}, thresholds {result['thresholds']}")
    return result


def main(cfg: EETrainConfig) -> int:
    run_ee(cfg)
    return 0


TRAIN_MODES.register("ee")(
    TrainMode(
        EETrainConfig,
        main,
        "train an early-exit network (net.subnet of eemobilenetv3/cbnmobilenetv3), tune its thresholds on "
        "the validation split, measure exits, avg_macs and batch-1 latency on the test split",
    )
)
