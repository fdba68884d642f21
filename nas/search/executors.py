"""Where evaluations run: in this process, or in local worker processes (one GPU set each).

Executors yield ``(index, Result)`` as evaluations finish; the loop writes each result to disk at
once (crash safety) but adds them to the archive in the order the candidates were chosen, so
every executor gives the same archive for the same seed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from nas.errors import UserError
from nas.evaluation import Evaluator, Result
from NasSearchSpace.base import Arch


class InProcessExecutor:
    """Evaluate one architecture after the other, here."""

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator

    def map(self, archs: Sequence[Arch]) -> Iterator[tuple[int, Result]]:
        for i, arch in enumerate(archs):
            yield i, self.evaluator.evaluate_one(arch)

    def close(self) -> None:
        pass


_WORKER_EVALUATOR: Evaluator | None = None  # one per worker process, built by _init_worker


def _init_worker(factory: Callable[[], Evaluator], gpu_queue) -> None:
    global _WORKER_EVALUATOR
    gpus = gpu_queue.get() if gpu_queue is not None else None
    if gpus is not None:  # before the evaluator imports CUDA state: this worker sees only its GPUs
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus
    _WORKER_EVALUATOR = factory()


def _evaluate_in_worker(arch: Arch) -> Result:
    assert _WORKER_EVALUATOR is not None
    return _WORKER_EVALUATOR.evaluate_one(arch)


class LocalProcessExecutor:
    """``n_jobs`` worker processes; with GPUs, worker ``j`` gets GPUs ``j*gpu .. j*gpu+gpu-1``.

    ``factory`` builds the evaluator inside each worker (it must be picklable: a module-level
    function or a ``functools.partial`` of one). Jobs really run in parallel, one per worker.
    """

    def __init__(self, factory: Callable[[], Evaluator], n_jobs: int, n_gpus: int = 0, gpu: int = 1) -> None:
        if n_jobs < 1:
            raise UserError(f"--n_jobs {n_jobs} must be >= 1")
        ctx = mp.get_context("spawn")  # no forked CUDA or thread-pool state in workers
        queue = None
        if n_gpus > 0:
            if gpu < 1 or n_jobs * gpu > n_gpus:
                raise UserError(
                    f"{n_jobs} jobs x --gpu {gpu} GPUs need {n_jobs * gpu} GPUs but --n_gpus is {n_gpus}"
                )
            queue = ctx.Queue()
            for j in range(n_jobs):
                queue.put(",".join(str(g) for g in range(j * gpu, (j + 1) * gpu)))
        self.pool = ProcessPoolExecutor(
            max_workers=n_jobs, mp_context=ctx, initializer=_init_worker, initargs=(factory, queue)
        )

    def map(self, archs: Sequence[Arch]) -> Iterator[tuple[int, Result]]:
        pending = {self.pool.submit(_evaluate_in_worker, a): i for i, a in enumerate(archs)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield pending.pop(fut), fut.result()

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)
