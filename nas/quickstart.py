"""``make quickstart``: the whole job on the embedded CIFAR-10 subset, on whatever device is here.

1. Trains (or, when already trained, re-uses) an OFA MobileNetV3 supernet at 32 px.
2. Runs a short ``msunas`` search over its subnets (top-1 on the 1,000 validation images that
   supernet training never saw, against MACs); a run directory that already holds it is resumed.
3. Prints the search's Pareto front with each network's top-1 on the held-out test images and
   writes ``summary.json``; the Pareto plot is ``search/plots/pareto.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from nas.cli import run_cli
from nas.config import parse_config
from nas.io import write_json
from nas.search.archive import read_stats
from nas.search.config import SearchConfig
from nas.search.loop import Search, latest_stats
from nas.subnet_eval import SubnetEvaluator
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

# The search on that supernet: 16 + 4 x 6 = 40 evaluations, top-1 vs MACs. The validation split
# (size and seed) is the one supernet training held out.
QUICKSTART_SEARCH = dict(
    n_doe=16,
    n_iter=6,
    iterations=4,
    sec_obj="macs",
    bn_batches=3,
)


def search_config(sn: SupernetConfig) -> SearchConfig:
    """The quickstart search, in a ``search/`` folder next to the supernet's."""
    save = os.path.join(os.path.dirname(sn.save.rstrip("/")) or ".", "search")
    return SearchConfig(
        **QUICKSTART_SEARCH,
        save=save,
        resume=save if latest_stats(save) else None,
        dataset=sn.dataset,
        data=sn.data,
        vld_size=sn.vld_size,
        lr=sn.lr,
        ur=sn.ur,
        rstep=sn.rstep,
        width_mult=sn.width_mult,
        supernet_path=os.path.join(sn.save, "supernet.pth"),
        device=sn.device,
        seed=sn.seed,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nas.quickstart", description=__doc__)
    cfg = parse_config(SupernetConfig, argv, parser, defaults=QUICKSTART)
    t0 = time.time()
    trainer = SupernetTrainer(cfg)
    trainer.train()
    t_supernet = time.time() - t0

    scfg = search_config(cfg)
    evaluator = SubnetEvaluator(
        trainer.space,
        scfg.dataset,
        scfg.data,
        vld_size=scfg.vld_size,
        supernet_path=scfg.supernet_path,
        bn_batches=scfg.bn_batches,
        device=scfg.device,
        seed=scfg.seed,
    )
    search = Search(scfg, trainer.space, evaluator)
    # iterations an earlier quickstart ran are not this run's time
    done_before = read_stats(latest_stats(scfg.save))["iteration"] + 1 if scfg.resume else 0
    search.run()
    t_search = time.time() - t0 - t_supernet

    space, data = trainer.space, trainer.data
    ok = search.archive.ok()
    F = search.objective_values(ok)
    front = sorted(NonDominatedSorting().do(F, only_non_dominated_front=True), key=lambda i: F[i, 1])
    rows = []
    for i in front:
        r = ok[i]
        test = evaluate_subnet(
            space, trainer.supernet, r.arch, data, data.test, trainer.device, bn_batches=10, seed=cfg.seed
        )
        rows.append(
            {
                "id": r.arch_id,
                "valid_top1": r.metrics["top1"],
                "test_top1": test["top1"],
                **r.metrics,
                "arch": r.arch,
            }
        )
    wall = time.time() - t0
    overhead = sum(t["search_s"] for t in search.timings[done_before:])
    print(f"\nPareto front of {len(ok)} evaluated subnets (top-1 on {len(data.valid)} validation images):")
    print(f"{'id':10s} {'res':>4s} {'valid %':>8s} {'test %':>7s} {'params M':>9s} {'MACs M':>8s}")
    for r in rows:
        print(
            f"{r['id'][:10]:10s} {r['arch']['r']:4d} {r['valid_top1']:8.2f} {r['test_top1']:7.2f} "
            f"{r['params']:9.3f} {r['macs']:8.2f}"
        )
    print(
        f"\nwall time {wall:.0f} s: supernet {t_supernet:.0f} s, search {t_search:.0f} s "
        f"(surrogate + NSGA-II + selection {overhead:.1f} s, {100 * overhead / wall:.1f}% of the wall time)"
    )
    out = os.path.join(os.path.dirname(cfg.save.rstrip("/")) or ".", "summary.json")
    write_json(
        out,
        {
            "wall_time_s": wall,
            "supernet_s": t_supernet,
            "search_s": t_search,
            "search_overhead_s": overhead,
            "test_images": len(data.test),
            "search": dataclasses.asdict(scfg),
            "front": rows,
        },
    )
    print(f"Pareto plot: {scfg.save}/plots/pareto.png; summary: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
