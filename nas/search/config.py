"""``msunas.py``'s own options: the loop's and the executor's (the components bring theirs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nas.config import option


@dataclass
class LoopOptions:
    """The search loop: run directory, seed and evaluation budget."""

    save: str = option("results/search", "run directory (iter_k.stats, archive.csv, plots, log.txt)")
    resume: str | None = option(None, "continue a search: <save>/iter_k.stats, or <save> for its latest")
    seed: int = option(0, "random seed of the whole search")
    iterations: int = option(30, "search iterations after the initial archive")
    n_doe: int = option(100, "architectures in the initial archive (incl. the smallest and the largest)")
    n_iter: int = option(8, "architectures evaluated per iteration")
    hv_patience: int = option(0, "stop after this many iterations without hypervolume gain (0: never)")
    proxy_features: list[str] = field(
        default_factory=list,
        metadata={
            "help": "training-free scores (zero-cost proxies, e.g. synflow naswot) appended to the "
            "surrogates' features; each network is scored once at initialisation"
        },
    )
    prefilter: str | None = option(
        None,
        "a training-free score (e.g. naswot) that pre-ranks candidates: only the best-scored are evaluated",
    )
    prefilter_factor: int = option(
        4, "with --prefilter: candidates proposed per evaluated one (the initial archive's too)"
    )
    plot_every: int = option(
        1, "redraw the run's plots every N iterations and after the last (0: only after the last; -1: never)"
    )


@dataclass
class ExecutorOptions:
    """Where evaluations run: here, in local worker processes, or on Ray actors."""

    n_jobs: int | None = option(
        None, "parallel evaluation processes (default: n_gpus // gpu with GPUs, else 1 = in this process)"
    )
    n_gpus: int = option(0, "GPUs to spread evaluation jobs over (CUDA_VISIBLE_DEVICES per job)")
    gpu: int = option(1, "GPUs per evaluation job")
    ray_address: str | None = option(
        None, "evaluate on Ray: 'local' starts a Ray on this machine, 'auto' or HOST:PORT joins a cluster"
    )
