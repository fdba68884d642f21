"""Executors: local worker processes and Ray agree with in-process evaluation and get their own GPUs."""

import functools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import ray

from nas.errors import UserError
from nas.search.executors import InProcessExecutor, LocalProcessExecutor, RayExecutor
from nas.search.factory import build_run
from nas.search.loop import Search
from nas.space import get_search_space
from tests.toy_search import (
    CrashingEvaluator,
    ToyEvaluator,
    broken_factory,
    gpu_set_evaluator,
    toy_config,
)

ROOT = Path(__file__).resolve().parents[1]


def test_process_workers_give_the_same_archive_as_in_process(tmp_path, capsys):
    """``msunas.py --n_jobs 2`` on the NAS-Bench-201 preset (a program of its own) against the same
    run in this process."""
    from nas.cli import run_cli
    from nas.search.cli import main

    args = ["--benchmark", "nb201", "--iterations", "1", "--predictor", "carts"]
    assert run_cli(main, [*args, "--save", str(tmp_path / "inproc")], plugins_flag=True) == 0
    capsys.readouterr()
    p = subprocess.run(
        [sys.executable, "msunas.py", *args, "--save", str(tmp_path / "procs"), "--n_jobs", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    archives = [
        json.loads((tmp_path / n / "iter_1.stats").read_text())["archive"] for n in ("inproc", "procs")
    ]
    assert len(archives[0]) == 60 and archives[0] == archives[1]


def test_each_worker_sees_its_own_gpus():
    ex = LocalProcessExecutor(gpu_set_evaluator, gpu_set_evaluator().space, n_jobs=2, n_gpus=4, gpu=2)
    try:
        space_archs = gpu_set_evaluator().space.sample(6, np.random.default_rng(0))
        seen = sorted(ex.map(space_archs))
    finally:
        ex.close()
    assert [i for i, _ in seen] == list(range(6))
    firsts = {r.metrics["first_gpu"] for _, r in seen}
    assert firsts <= {0.0, 2.0} and all(r.metrics["n_visible"] == 2 for _, r in seen)


def test_in_process_executor_keeps_order():
    ev = gpu_set_evaluator()
    archs = ev.space.sample(3, np.random.default_rng(1))
    out = list(InProcessExecutor(ev).map(archs))
    assert [i for i, _ in out] == [0, 1, 2] and [r.arch for _, r in out] == archs


@pytest.mark.parametrize(
    "executor",
    [functools.partial(LocalProcessExecutor, space=None), functools.partial(RayExecutor, space=None)],
)
def test_too_few_gpus_for_the_jobs(executor):
    with pytest.raises(UserError, match="need 4 GPUs but --n_gpus is 3"):
        executor(gpu_set_evaluator, n_jobs=2, n_gpus=3, gpu=2)


def test_a_local_worker_that_dies_is_a_failure_and_is_replaced():
    space = gpu_set_evaluator().space
    archs = space.sample(5, np.random.default_rng(0))
    factory = functools.partial(CrashingEvaluator, space=space, fail_prefixes=[space.arch_id(archs[1])])
    ex = LocalProcessExecutor(factory, space, n_jobs=2)
    try:
        out = dict(ex.map(archs))
    finally:
        ex.close()
    assert sorted(out) == list(range(5))
    dead = out.pop(1)
    assert dead.arch == archs[1] and dead.failure["type"] == "WorkerDiedError"
    assert "died" in dead.failure["message"]
    assert all(r.ok for r in out.values())  # the other worker and the replacement went on


def test_local_workers_that_cannot_build_the_evaluator_are_one_error():
    with pytest.raises(UserError, match="could not build the evaluator"):
        LocalProcessExecutor(broken_factory, None, n_jobs=2)


# ---- Ray: each test's executor starts a local Ray and stops it again in close() ----------------


def test_in_process_and_local_processes_give_the_same_archive_with_failures(tmp_path):
    """(Ray against in-process: tests/test_demo_plugin.py, on a cluster of separate nodes.)"""
    space = get_search_space("mobilenetv3", lr=32, ur=64, rstep=8)
    factory = functools.partial(ToyEvaluator, space=space, fail_prefixes=["0", "1"])  # ids 0*, 1* fail
    executors = {
        "inproc": lambda: InProcessExecutor(factory()),
        "procs": lambda: LocalProcessExecutor(factory, space, n_jobs=2),
    }
    archives = {}
    for name, make in executors.items():
        executor = make()
        try:
            run = build_run(toy_config(tmp_path / name, iterations=1), evaluator=factory())
            search = Search(run, log=lambda *_: None, executor=executor)
            archives[name] = search.run().to_json()
        finally:
            executor.close()
    assert len(archives["inproc"]) == 16 + 4 and archives["inproc"] == archives["procs"]
    failed = [r for r in archives["procs"] if "failure" in r]
    assert failed and all(r["failure"]["type"] == "RuntimeError" for r in failed)
    assert all((tmp_path / "procs" / "failed" / r["id"] / "failure.json").is_file() for r in failed)


@pytest.mark.xdist_group("ray")
def test_ray_actors_get_their_own_gpus_and_a_dead_actor_is_a_failure():
    space = gpu_set_evaluator().space
    archs = space.sample(5, np.random.default_rng(0))
    factory = functools.partial(CrashingEvaluator, space=space, fail_prefixes=[space.arch_id(archs[1])])
    ex = RayExecutor(factory, space, n_jobs=2, n_gpus=4, gpu=2)  # a local Ray told it has 4 GPUs
    try:
        out = dict(ex.map(archs))
    finally:
        ex.close()
    assert sorted(out) == list(range(5)) and not ray.is_initialized()
    dead = out.pop(1)
    assert dead.arch == archs[1] and dead.failure["type"] == "ActorDiedError"
    assert "worker process has died" in dead.failure["message"]
    assert all(r.ok and r.metrics["n_visible"] == 2 for r in out.values())  # its replacement went on
    assert {r.metrics["first_gpu"] for r in out.values()} <= {0.0, 2.0}


@pytest.mark.xdist_group("ray")
def test_unreachable_ray_address_is_a_one_line_error():
    p = subprocess.run(
        [sys.executable, "msunas.py", "--benchmark", "nb201", "--ray_address", "127.0.0.1:1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 2
    assert p.stderr.splitlines()[-1].startswith("error: --ray_address 127.0.0.1:1: nothing answers there")
