"""``msunas.py`` options: the CNAS/nsganetv2 flags, typed, with their defaults and units."""

from __future__ import annotations

from dataclasses import dataclass

from nas.config import option
from nas.search.selection import SELECTIONS


@dataclass
class SearchConfig:
    """Defaults of ``msunas.py``; every field is a flag, ``--config FILE.yaml`` sets several."""

    # ---- run directory ----
    save: str = option("results/search", "run directory (iter_k.stats, archive.csv, plots, log.txt)")
    resume: str | None = option(None, "continue a search: <save>/iter_k.stats, or <save> for its latest")
    benchmark: str | None = option(
        None, "benchmark preset: ofa_note10 or nb201 (sets the space, evaluator and budget)"
    )
    # ---- search loop ----
    iterations: int = option(30, "search iterations after the initial archive")
    n_doe: int = option(100, "architectures in the initial archive (incl. the smallest and the largest)")
    n_iter: int = option(8, "architectures evaluated per iteration")
    pop_size: int = option(40, "NSGA-II population on the surrogate")
    n_gen: int = option(20, "NSGA-II generations on the surrogate per iteration")
    selection: str = option(
        "spread",
        "how the n_iter candidates are chosen from NSGA-II's population: spread (NSGANetV2: even gaps "
        "along the second objective) or hvi (greedy predicted hypervolume gain; best with a larger "
        "NSGA-II, e.g. --pop_size 100 --n_gen 60)",
        choices=list(SELECTIONS),
    )
    predictor: str = option("as", "surrogate of the first objective (a registered surrogate)")
    first_obj: str = option("top1", "first objective (top1 = top-1 error, minimised)")
    sec_obj: str | None = option(
        None, "second objective: params, macs, activations, tiny_ml, latency, flops; none: single-objective"
    )
    top1min: float = option(
        0.0, "minimum top-1 %: NSGA-II treats architectures predicted below it as infeasible (0: off)"
    )
    hv_patience: int = option(0, "stop after this many iterations without hypervolume gain (0: never)")
    seed: int = option(0, "random seed of the whole search")
    # ---- search space ----
    search_space: str = option("mobilenetv3", "search space name")
    lr: int = option(192, "lowest input resolution, pixels")
    ur: int = option(256, "highest input resolution, pixels")
    rstep: int = option(4, "resolution step, pixels")
    width_mult: float = option(1.0, "OFA width multiplier (1.0 or 1.2)")
    # ---- evaluation (without --benchmark: subnets of a trained supernet) ----
    dataset: str = option("cifar10_embedded", "dataset name (nb201: cifar10, cifar100 or imagenet16)")
    data: str | None = option(None, "dataset folder (default: the dataset's own default location)")
    n_classes: int | None = option(None, "number of classes; must match the dataset (default: the dataset's)")
    vld_size: int = option(5000, "validation images carved from the training set to score candidates")
    supernet_path: str | None = option(
        None, "OFA-format supernet checkpoint (default with --pretrained: OFA's ImageNet weights)"
    )
    pretrained: bool = option(True, "inherit the supernet's weights (--no-pretrained: random weights)")
    n_epochs: int = option(0, "fine-tuning epochs per candidate before scoring (0: inherited weights)")
    bn_batches: int = option(10, "batches of 200 training images that recalibrate BatchNorm per candidate")
    trainer: str = option("single_exit", "fine-tuning trainer (task plug-ins register more)")
    device: str = option("auto", "device of evaluation: auto, cpu, cuda or cuda:N")
    # ---- execution ----
    n_jobs: int | None = option(
        None, "parallel evaluation processes (default: n_gpus // gpu with GPUs, else 1 = in this process)"
    )
    n_gpus: int = option(0, "GPUs to spread evaluation jobs over (CUDA_VISIBLE_DEVICES per job)")
    gpu: int = option(1, "GPUs per evaluation job")
    n_workers: int = option(2, "data-loading worker processes for datasets read from files (ImageNet)")
    ray_address: str | None = option(
        None, "evaluate on Ray: 'local' starts a Ray on this machine, 'auto' or HOST:PORT joins a cluster"
    )
    # ---- constraints (tiny_ml, CNAS) ----
    pmax: float = option(2.0, "max params, millions")
    mmax: float = option(1e10, "max MACs, millions")
    amax: float = option(5.0, "max activations, millions")
    wp: float = option(1.0, "tiny_ml weight of params")
    wm: float = option(1 / 40, "tiny_ml weight of MACs")
    wa: float = option(1.0, "tiny_ml weight of activations")
    penalty: float = option(1e10, "tiny_ml penalty factor for exceeding a constraint")

    def __post_init__(self) -> None:
        if isinstance(self.sec_obj, str) and self.sec_obj.strip().lower() in ("", "none"):
            self.sec_obj = None  # --sec_obj none: single-objective (e.g. over a preset's objective)
