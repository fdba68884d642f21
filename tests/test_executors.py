"""Executors: local worker processes agree with in-process evaluation and get their own GPUs."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nas.errors import UserError
from nas.search.executors import InProcessExecutor, LocalProcessExecutor
from tests.toy_search import gpu_set_evaluator

ROOT = Path(__file__).resolve().parents[1]


def test_process_workers_give_the_same_archive_as_in_process(tmp_path):
    archives = []
    for name, extra in (("inproc", []), ("procs", ["--n_jobs", "2"])):
        p = subprocess.run(
            [
                sys.executable,
                "msunas.py",
                "--benchmark",
                "nb201",
                "--iterations",
                "2",
                "--predictor",
                "carts",
                "--save",
                str(tmp_path / name),
                *extra,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert p.returncode == 0, p.stderr
        archives.append(json.loads((tmp_path / name / "iter_2.stats").read_text())["archive"])
    assert len(archives[0]) == 70 and archives[0] == archives[1]


def test_each_worker_sees_its_own_gpus():
    ex = LocalProcessExecutor(gpu_set_evaluator, n_jobs=2, n_gpus=4, gpu=2)
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


def test_too_few_gpus_for_the_jobs():
    with pytest.raises(UserError, match="need 4 GPUs but --n_gpus is 3"):
        LocalProcessExecutor(gpu_set_evaluator, n_jobs=2, n_gpus=3, gpu=2)
