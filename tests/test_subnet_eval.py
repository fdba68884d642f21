"""Real-candidate evaluation: subnets of a supernet scored on the validation split."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.errors import UserError
from nas.io import save_checkpoint
from nas.search.archive import read_stats
from nas.space import get_search_space
from nas.subnet_eval import SubnetEvaluator

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def supernet_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sn") / "supernet.pth"
    torch.manual_seed(0)
    save_checkpoint(path, {"state_dict": get_search_space("mobilenetv3").make_supernet(10).state_dict()})
    return path


def make(supernet_file, **kw):
    space = get_search_space("mobilenetv3", lr=32, ur=40, rstep=8)
    args = dict(vld_size=200, supernet_path=str(supernet_file), bn_batches=1, device="cpu")
    args.update(kw)
    return SubnetEvaluator(space, "cifar10_embedded", **args)


def test_measure_is_reproducible_and_costs_exact(supernet_file):
    ev = make(supernet_file)
    arch = ev.space.sample(1, np.random.default_rng(2))[0]
    m1, m2 = ev.measure(arch), ev.measure(arch)
    assert m1 == m2 and 0 <= m1["top1"] <= 100
    assert {k: m1[k] for k in ("params", "macs", "activations")} == ev.space.costs(arch, 10)
    assert ev.exact_metrics(arch) == ev.space.costs(arch, 10)


def test_finetuning_changes_the_score_not_the_supernet(supernet_file):
    ev = make(supernet_file, n_epochs=1)
    ev.data.train = ev.data.train.subset(np.arange(0, len(ev.data.train), 50))  # 196 images: seconds
    before = {k: v.clone() for k, v in ev.supernet.state_dict().items()}
    arch = ev.space.smallest()
    tuned = ev.measure(arch)
    plain = make(supernet_file).measure(arch)
    assert tuned["top1"] != plain["top1"] or tuned["top5"] != plain["top5"]
    assert all(torch.equal(v, before[k]) for k, v in ev.supernet.state_dict().items())


def test_head_of_another_class_count_is_refused(tmp_path):
    path = tmp_path / "c100.pth"
    save_checkpoint(path, get_search_space("mobilenetv3").make_supernet(100).state_dict())
    with pytest.raises(UserError, match="random head"):
        make(path)


def test_msunas_on_real_data(tmp_path, supernet_file):
    save = tmp_path / "run"
    p = subprocess.run(
        [
            sys.executable,
            "msunas.py",
            "--supernet_path",
            str(supernet_file),
            "--lr",
            "32",
            "--ur",
            "40",
            "--rstep",
            "8",
            "--vld_size",
            "200",
            "--bn_batches",
            "1",
            "--n_doe",
            "10",
            "--n_iter",
            "2",
            "--iterations",
            "1",
            "--pop_size",
            "10",
            "--n_gen",
            "2",
            "--predictor",
            "rbf",
            "--sec_obj",
            "tiny_ml",
            "--device",
            "cpu",
            "--save",
            str(save),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr
    archive = read_stats(save / "iter_1.stats")["archive_obj"]
    assert len(archive) == 12 and not archive.failed()
    r = next(iter(archive))
    assert set(r.metrics) == {"top1", "top5", "params", "macs", "activations"}
    assert json.loads((save / "iter_0" / f"net_{r.arch_id}" / "net.subnet").read_text()) == r.arch


def test_msunas_refuses_impossible_constraints(tmp_path, supernet_file):
    p = subprocess.run(
        [
            sys.executable,
            "msunas.py",
            "--supernet_path",
            str(supernet_file),
            "--lr",
            "32",
            "--ur",
            "32",
            "--vld_size",
            "200",
            "--sec_obj",
            "tiny_ml",
            "--pmax",
            "0.5",
            "--device",
            "cpu",
            "--save",
            str(tmp_path / "r"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 2 and "no architecture meets the constraints" in p.stderr, p.stderr


def _nan_supernet(supernet_file, tmp_path):
    state = torch.load(supernet_file, weights_only=True)["state_dict"]
    key = next(k for k in state if k.endswith("classifier.linear.weight"))
    state[key][0, 0] = float("nan")
    path = tmp_path / "nan.pth"
    save_checkpoint(path, {"state_dict": state})
    return path


@pytest.mark.parametrize("n_epochs", [0, 1])
def test_nan_network_is_a_recorded_failure(supernet_file, tmp_path, n_epochs):
    ev = make(_nan_supernet(supernet_file, tmp_path), n_epochs=n_epochs)
    ev.data.train = ev.data.train.subset(np.arange(0, len(ev.data.train), 50))
    result = ev.evaluate_one(ev.space.smallest())
    assert not result.ok and result.metrics == {}
    assert result.failure["type"] == "FloatingPointError"
    assert ("fine-tuning loss" if n_epochs else "validation loss") in result.failure["message"]
