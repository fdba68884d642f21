"""``make quickstart``: the main job on the embedded CIFAR-10 subset, on whatever device is here.

Trains (or, when already trained, re-uses) an OFA MobileNetV3 supernet on the embedded data at
low resolution, then reports top-1 on the held-out test images together with params, MACs and
activations for its smallest, a middle and its largest subnet.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from nas.cli import run_cli
from nas.config import parse_config
from nas.io import write_json
from nas.supernet import SupernetConfig, SupernetTrainer, evaluate_subnet

# What differs from `train.py supernet`'s defaults: a CPU-sized run on the embedded data.
QUICKSTART = dict(
    dataset="cifar10_embedded",
    vld_size=1000,
    lr=32,
    ur=32,
    rstep=8,
    epochs=3,
    batch_size=64,
    base_lr=0.05,
    warmup_epochs=0.3,
    n_random=1,
    kd_ratio=0.5,
    save="results/quickstart/supernet",
    resume=True,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nas.quickstart", description=__doc__)
    cfg = parse_config(SupernetConfig, argv, parser, defaults=QUICKSTART)
    t0 = time.time()
    trainer = SupernetTrainer(cfg)
    trainer.train()
    space, data = trainer.space, trainer.data
    rows = []
    for tag, arch in (
        ("smallest", space.smallest()),
        ("middle", space.middle()),
        ("largest", space.largest()),
    ):
        res = evaluate_subnet(space, trainer.supernet, arch, data, data.test, trainer.device, seed=cfg.seed)
        rows.append({"subnet": tag, **res, **space.costs(arch, data.n_classes), "arch": arch})
    wall = time.time() - t0
    print(f"\n{'subnet':10s} {'res':>4s} {'top1 %':>7s} {'params M':>9s} {'MACs M':>8s} {'activ. M':>9s}")
    for r in rows:
        print(
            f"{r['subnet']:10s} {r['arch']['r']:4d} {r['top1']:7.2f} {r['params']:9.3f} "
            f"{r['macs']:8.2f} {r['activations']:9.3f}"
        )
    print(f"\ntest images: {len(data.test)}; chance: {100 / data.n_classes:.0f}%; wall time {wall:.0f} s")
    out = os.path.join(os.path.dirname(cfg.save.rstrip("/")) or ".", "summary.json")
    write_json(out, {"wall_time_s": wall, "test_images": len(data.test), "subnets": rows})
    print(f"summary: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
