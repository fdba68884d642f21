"""``make quickstart`` (``python scripts/quickstart.py``): the whole job on the embedded CIFAR-10
subset, on whatever device is here.

1. Trains (or, when already trained, re-uses) an OFA MobileNetV3 supernet at 32 px.
2. Runs a short ``msunas`` search over its subnets (top-1 on the 1,000 validation images that
   supernet training never saw, against MACs); a run directory that already holds it is resumed.
3. Chooses 3 trade-off networks of the front (``post_search.py``) into ``search/final/``.
4. Fine-tunes each for a short while (``train.py subnet``, resumable) and prints the table of
   chosen networks (validation top-1 in the search, test top-1 before and after fine-tuning),
   writing ``summary.json``.
5. Plots: the search (``tools/plot_search.py``) and the final networks
   (``tools/visualize_final_architectures.py``) in ``analysis/``, the choices in
   ``search/final/choices-trade-off.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nas.cli import run_cli  # noqa: E402
from nas.config import parse_config  # noqa: E402
from nas.errors import UserError  # noqa: E402
from nas.io import read_json, write_json  # noqa: E402
from nas.plugins import plugin_list  # noqa: E402
from nas.post_search import PostSearchConfig, post_search, tag_of  # noqa: E402
from nas.scoring import score_subnet  # noqa: E402
from nas.search.archive import read_stats  # noqa: E402
from nas.search.description import RunSpec  # noqa: E402
from nas.search.factory import build_run  # noqa: E402
from nas.search.loop import Search, latest_stats  # noqa: E402
from nas.training.subnet import SubnetTrainConfig, train_subnet  # noqa: E402
from nas.training.supernet import SupernetConfig, SupernetTrainer  # noqa: E402

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


# Fine-tuning of each chosen network: its own training images (the search's validation images
# stay held out), from the inherited weights.
QUICKSTART_FINETUNE = dict(epochs=2, warmup_epochs=0.2, base_lr=0.02, label_smoothing=0.0)


def search_spec(sn: SupernetConfig) -> RunSpec:
    """The quickstart search (the default run description), in a ``search/`` folder next to the
    supernet's."""
    save = os.path.join(os.path.dirname(sn.save.rstrip("/")) or ".", "search")
    return RunSpec.from_flat(
        dict(
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
        ),
        plugins=plugin_list(),
    )


def earlier_choices(final: str, stats_path: str, n: int, prefer: str) -> list[str] | None:
    """The folders of an earlier quickstart's post-search of this run's latest ``iter_k.stats``, when
    all ``n`` are complete (``net.subnet``, ``ckpt.pth`` and a ``net.stats`` naming that stats file and
    preference); else None.

    A re-run re-uses them (and their fine-tuning) rather than choosing again: a post-search whose
    rules changed since may choose other networks, and ``post_search.py`` refuses to write over
    folders that hold other networks."""
    # absolute, as post_search returns them: fine-tuning's --resume checks its --init path
    folders = [os.path.join(os.path.abspath(final), f"net-{tag_of(prefer)}_{i}") for i in range(n)]
    for i, folder in enumerate(folders):
        if not all(os.path.isfile(os.path.join(folder, f)) for f in ("net.subnet", "ckpt.pth", "net.stats")):
            return None
        try:
            stats = read_json(os.path.join(folder, "net.stats"), "net.stats")
        except UserError:
            return None
        choice = stats.get("choice") if isinstance(stats, dict) else None
        if (
            not isinstance(choice, dict)
            or choice.get("prefer") != prefer
            or choice.get("index") != i
            or os.path.basename(str(choice.get("run"))) != os.path.basename(stats_path)
        ):
            return None
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/quickstart.py", description=__doc__)
    cfg = parse_config(SupernetConfig, argv, parser, defaults=QUICKSTART)
    t0 = time.time()
    trainer = SupernetTrainer(cfg)
    trainer.train()
    t_supernet = time.time() - t0

    spec = search_spec(cfg)
    search = Search(build_run(spec))
    save = spec.loop.save
    # iterations an earlier quickstart ran are not this run's time
    done_before = read_stats(latest_stats(save))["iteration"] + 1 if spec.loop.resume else 0
    search.run()
    t_search = time.time() - t0 - t_supernet

    overhead = sum(t["search_s"] for t in search.timings[done_before:])
    t_post = time.time()
    folders = earlier_choices(os.path.join(save, "final"), latest_stats(save), 3, "trade-off")
    if folders is not None:
        print(f"re-using the {len(folders)} networks an earlier run chose in {save}/final/")
    else:
        folders = post_search(PostSearchConfig(expr=save, n=3, prefer="trade-off", device=cfg.device))
    space, data, rows = trainer.space, trainer.data, []
    for folder in folders:
        stats = read_json(os.path.join(folder, "net.stats"), "net.stats")
        before = score_subnet(
            space, trainer.supernet, stats["arch"], data, data.test, trainer.device, seed=cfg.seed
        )
        ft = SubnetTrainConfig(
            **QUICKSTART_FINETUNE,
            subnet=os.path.join(folder, "net.subnet"),
            init=os.path.join(folder, "ckpt.pth"),
            dataset=cfg.dataset,
            data=cfg.data,
            vld_size=cfg.vld_size,
            device=cfg.device,
            seed=cfg.seed,
            resume=True,  # the run directory is the choice's folder: "trained" lands in its net.stats
        )
        trained = train_subnet(ft)
        rows.append(
            {
                "folder": folder,
                "id": stats["id"],
                "valid_top1": stats["metrics"]["top1"],
                "test_top1_inherited": before["top1"],
                "test_top1_finetuned": trained["top1"],
                **{k: stats["metrics"][k] for k in ("params", "macs", "activations")},
                "arch": stats["arch"],
            }
        )
    t_post = time.time() - t_post
    wall = time.time() - t0
    ok = search.archive.ok()
    print(
        f"\n{len(ok)} subnets evaluated; chosen (top-1 %: search validation, test inherited -> fine-tuned):"
    )
    print(
        f"{'network':18s} {'res':>4s} {'valid':>6s} {'test':>6s} {'tuned':>6s} {'params M':>9s} {'MACs':>6s}"
    )
    for r in rows:
        print(
            f"{os.path.basename(r['folder']):18s} {r['arch']['r']:4d} {r['valid_top1']:6.2f} "
            f"{r['test_top1_inherited']:6.2f} {r['test_top1_finetuned']:6.2f} {r['params']:9.3f} "
            f"{r['macs']:6.2f}"
        )
    print(
        f"\nwall time {wall:.0f} s: supernet {t_supernet:.0f} s, search {t_search:.0f} s (surrogate + "
        f"NSGA-II + selection {overhead:.1f} s, {100 * overhead / wall:.1f}% of the wall time), "
        f"post-search + fine-tuning {t_post:.0f} s"
    )
    out = os.path.join(os.path.dirname(cfg.save.rstrip("/")) or ".", "summary.json")
    write_json(
        out,
        {
            "wall_time_s": wall,
            "supernet_s": t_supernet,
            "search_s": t_search,
            "search_overhead_s": overhead,
            "post_search_finetune_s": t_post,
            "test_images": len(data.test),
            "search": spec.to_dict(),
            "finetune": QUICKSTART_FINETUNE,
            "chosen": rows,
        },
    )
    from tools import plot_search, visualize_final_architectures

    analysis = os.path.join(os.path.dirname(save), "analysis")
    plot_search.main(["--expr", save, "--output_dir", os.path.join(analysis, "search")])
    root = os.path.dirname(save)
    visualize_final_architectures.main(
        ["--results_dir", root, "--output_dir", os.path.join(analysis, "final_architectures")]
    )
    print(f"plots: {save}/final/choices-trade-off.png, {analysis}/; summary: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
