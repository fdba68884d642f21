"""Where evaluations run: in this process, in local worker processes (one GPU set each), or on Ray.

Executors yield ``(index, Result)`` as evaluations finish; the loop writes each result to disk at
once (crash safety) but adds them to the archive in the order the candidates were chosen, so
every executor gives the same archive for the same seed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from nas.errors import UserError
from nas.evaluator import Evaluator
from nas.result import Result
from nas.space import Arch, SearchSpace

ROOT = Path(__file__).resolve().parents[2]  # the checkout: what workers must be able to import


class InProcessExecutor:
    """Evaluate one architecture after the other, here."""

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator

    def start(self) -> None:
        """Set the evaluator up now (data, supernet), so that a setup that fails is one error."""
        self.evaluator.ensure_setup()

    def map(self, archs: Sequence[Arch]) -> Iterator[tuple[int, Result]]:
        for i, arch in enumerate(archs):
            yield i, self.evaluator.evaluate_one(arch)

    def close(self) -> None:
        pass


def _check_jobs(n_jobs: int, n_gpus: int, gpu: int) -> None:
    if n_jobs < 1:
        raise UserError(f"--n_jobs {n_jobs} must be >= 1")
    if n_gpus > 0 and (gpu < 1 or n_jobs * gpu > n_gpus):
        raise UserError(f"{n_jobs} jobs x --gpu {gpu} GPUs need {n_jobs * gpu} GPUs but --n_gpus is {n_gpus}")


class _SlotExecutor(ABC):
    """Runs one architecture at a time on each of its worker slots and yields results as they finish.

    A worker that dies (crash, out-of-memory kill) costs only the architecture it was evaluating:
    that one becomes a failure record (``space`` names it; the dead worker cannot) and a fresh
    worker takes the slot. Subclasses say how to submit, wait, collect and replace.
    """

    space: SearchSpace
    n_slots: int

    @abstractmethod
    def _submit(self, slot: int, arch: Arch) -> Any:
        """Start evaluating ``arch`` on the worker of ``slot``; a handle to wait for."""

    @abstractmethod
    def _wait(self, handles: list[Any]) -> list[Any]:
        """Some of ``handles`` that are done (at least one)."""

    @abstractmethod
    def _collect(self, handle: Any, slot: int) -> Result | BaseException:
        """The result, or the exception that says the slot's worker died (it is replaced)."""

    def map(self, archs: Sequence[Arch]) -> Iterator[tuple[int, Result]]:
        todo = deque(enumerate(archs))
        idle = list(range(self.n_slots))
        running: dict[Any, tuple[int, int]] = {}  # handle -> (index of the arch, slot)
        while todo or running:
            while todo and idle:
                slot = idle.pop()
                i, arch = todo.popleft()
                running[self._submit(slot, arch)] = (i, slot)
            for handle in self._wait(list(running)):
                i, slot = running.pop(handle)
                result = self._collect(handle, slot)
                if isinstance(result, BaseException):
                    result = Result.failed(self.space.arch_id(archs[i]), archs[i], result)
                idle.append(slot)
                yield i, result


_WORKER_EVALUATOR: Evaluator | None = None  # one per worker process, built by _init_worker
_WORKER_ERROR: str | None = None  # why it could not be built


def _init_worker(factory: Callable[[], Evaluator], gpus: str | None, threads: int) -> None:
    global _WORKER_EVALUATOR, _WORKER_ERROR
    from nas.plugins import load_plugins

    if gpus is not None:  # before the evaluator imports CUDA state: this worker sees only its GPUs
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus
    try:
        import torch

        torch.set_num_threads(threads)  # the workers share the cores instead of oversubscribing them
        load_plugins()
        _WORKER_EVALUATOR = factory()
    except Exception as e:  # reported once by _worker_ready, not as a broken pool
        _WORKER_ERROR = f"{type(e).__name__}: {e}" if not isinstance(e, UserError) else str(e)


def _evaluate_in_worker(arch: Arch) -> Result:
    assert _WORKER_EVALUATOR is not None
    return _WORKER_EVALUATOR.evaluate_one(arch)


def _worker_ready() -> str | None:
    """Once the worker's initializer has run: None, or why it could not build its evaluator."""
    return _WORKER_ERROR


class WorkerDiedError(RuntimeError):
    """A local worker process ended while evaluating (killed, e.g. by the out-of-memory killer)."""


class LocalProcessExecutor(_SlotExecutor):
    """``n_jobs`` worker processes; with GPUs, worker ``j`` gets GPUs ``j*gpu .. j*gpu+gpu-1``.

    ``factory`` builds the evaluator inside each worker (it must be picklable: a module-level
    function or a ``functools.partial`` of one). Jobs really run in parallel, one per worker; each
    worker is a one-process pool of its own, so a worker that dies is told apart from the others.
    """

    def __init__(
        self, factory: Callable[[], Evaluator], space: SearchSpace, n_jobs: int, n_gpus: int = 0, gpu: int = 1
    ) -> None:
        _check_jobs(n_jobs, n_gpus, gpu)
        self.factory, self.space, self.n_slots = factory, space, n_jobs
        self.threads = max(1, (os.cpu_count() or 1) // n_jobs)  # torch threads per worker
        self.gpu_sets = [
            ",".join(str(g) for g in range(j * gpu, (j + 1) * gpu)) if n_gpus > 0 else None
            for j in range(n_jobs)
        ]
        self.pools = [self._pool(j) for j in range(n_jobs)]
        try:  # build every worker's evaluator now, so that a build that fails is reported once
            errors = [ready.result() for ready in [pool.submit(_worker_ready) for pool in self.pools]]
        except BrokenProcessPool:
            errors = ["a worker process died while starting"]
        if any(errors):
            self.close()
            raise UserError(
                f"the worker processes could not build the evaluator: {next(e for e in errors if e)}"
            )

    def start(self) -> None:
        """The workers built their evaluators in the constructor."""

    def _pool(self, slot: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=mp.get_context("spawn"),  # no forked CUDA or thread-pool state in workers
            initializer=_init_worker,
            initargs=(self.factory, self.gpu_sets[slot], self.threads),
        )

    def _submit(self, slot: int, arch: Arch) -> Future:
        return self.pools[slot].submit(_evaluate_in_worker, arch)

    def _wait(self, handles: list[Any]) -> list[Any]:
        return list(wait(handles, return_when=FIRST_COMPLETED)[0])

    def _collect(self, handle: Future, slot: int) -> Result | BaseException:
        try:
            return handle.result()
        except BrokenProcessPool:
            self.pools[slot].shutdown(cancel_futures=True)
            self.pools[slot] = self._pool(slot)
            return WorkerDiedError(
                "the worker process evaluating it died (killed, e.g. by the out-of-memory killer, or "
                "crashed); a new worker took its place"
            )

    def close(self) -> None:
        for pool in self.pools:
            pool.shutdown(cancel_futures=True)


class _RayWorker:
    """A Ray actor holding one evaluator, built once: the supernet and the data load once per worker."""

    def __init__(self, factory: Callable[[], Evaluator]) -> None:
        from nas.plugins import load_plugins

        load_plugins()
        self.evaluator = factory()

    def ready(self) -> None:
        """Returns once the evaluator is built, so a build that fails is reported once, at the start."""

    def evaluate(self, arch: Arch) -> Result:
        return self.evaluator.evaluate_one(arch)


_RAY_HINT = (
    "start a cluster with `ray start --head` and pass auto (on that machine) or the HOST:PORT it prints, "
    "or use --ray_address local; a cluster with token authentication needs its RAY_AUTH_MODE and "
    "RAY_AUTH_TOKEN here too"
)


def _connect_ray(address: str, n_jobs: int, n_gpus: int) -> bool:
    """Start or join Ray; True when this call did, so that ``close`` stops or leaves it again."""
    import ray

    if ray.is_initialized():  # this process joined a Ray already (a notebook, a test): use it, keep it
        return False
    if address == "local":  # "local", not None: None would join a cluster that `ray start` left running
        ray.init(
            address="local",
            num_cpus=max(n_jobs, os.cpu_count() or 1),
            num_gpus=n_gpus,
            include_dashboard=False,
            logging_level="WARNING",
        )
        return True
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if sep and port.isdigit():  # ray.init retries an address where nothing listens for minutes
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
        except OSError as e:
            raise UserError(f"--ray_address {address}: nothing answers there ({e}); {_RAY_HINT}") from None
    try:
        ray.init(address=address, logging_level="WARNING")
    except (OSError, ValueError, RuntimeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"--ray_address {address}: cannot join Ray ({reason}); {_RAY_HINT}") from None
    return True


class RayExecutor(_SlotExecutor):
    """``n_jobs`` Ray actors evaluating in parallel; with ``n_gpus`` > 0, ``gpu`` GPUs per actor.

    ``address`` 'local' starts a Ray on this machine for the run (``close`` stops it); 'auto' or
    HOST:PORT joins a running cluster, whose nodes must be able to import this project and its
    requirements (Ray puts the driver's script directory and working directory on the workers'
    path, so a checkout at the same path on every node, e.g. a shared file system, is enough).
    Ray sets each actor's CUDA_VISIBLE_DEVICES. An actor that dies (crash, OOM kill, lost node)
    becomes a failure record of the architecture it was evaluating, and a fresh actor replaces it.
    ``space`` names the architectures of such failures (the dead actor cannot).
    """

    def __init__(
        self,
        factory: Callable[[], Evaluator],
        space: SearchSpace,
        n_jobs: int,
        n_gpus: int = 0,
        gpu: int = 1,
        address: str = "local",
    ) -> None:
        _check_jobs(n_jobs, n_gpus, gpu)
        import ray  # here, not at the top: runs without --ray_address do not pay for the import

        self.space, self.factory, self.n_slots = space, factory, n_jobs
        self.actors: list[Any] = []  # Ray actor handles, one per job
        self._started = _connect_ray(address, n_jobs, n_gpus)
        options: dict[str, Any] = {"num_cpus": 1}
        if address == "local":  # share this machine's cores
            options["num_cpus"] = max(1, int(ray.cluster_resources().get("CPU", 1)) // n_jobs)
        # workers import the project, and plug-ins given as paths, from where this process finds them
        # (a checkout at the same path on every node, e.g. on a shared file system)
        extra = getattr(factory, "plugin_paths", lambda: [])()
        path = os.pathsep.join(
            dict.fromkeys(p for p in (str(ROOT), *extra, os.environ.get("PYTHONPATH")) if p)
        )
        options["runtime_env"] = {"env_vars": {"PYTHONPATH": path}}
        if n_gpus > 0:
            options["num_gpus"] = gpu
        self._worker = ray.remote(_RayWorker).options(**options)
        self.actors = [self._worker.remote(factory) for _ in range(n_jobs)]
        try:
            ray.get([a.ready.remote() for a in self.actors])
        except ray.exceptions.RayError as e:
            self.close()
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            raise UserError(
                f"Ray workers could not build the evaluator ({lines[-1] if lines else type(e).__name__}); "
                f"every Ray node needs this project (at {ROOT} or installed), its requirements and its files"
            ) from None

    def start(self) -> None:
        """The actors built their evaluators in the constructor."""

    def _submit(self, slot: int, arch: Arch) -> Any:
        return self.actors[slot].evaluate.remote(arch)

    def _wait(self, handles: list[Any]) -> list[Any]:
        import ray

        return ray.wait(handles, num_returns=1)[0]

    def _collect(self, handle: Any, slot: int) -> Result | BaseException:
        import ray

        try:
            return ray.get(handle)
        except ray.exceptions.RayError as e:  # evaluate_one catches the evaluation's own errors
            if isinstance(e, ray.exceptions.RayActorError):
                self.actors[slot] = self._worker.remote(self.factory)
            return e

    def close(self) -> None:
        import ray

        if ray.is_initialized():
            for actor in self.actors:
                ray.kill(actor)
        self.actors = []
        if self._started:
            ray.shutdown()
            self._started = False
