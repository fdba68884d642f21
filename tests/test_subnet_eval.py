"""Real-candidate evaluation: subnets of a supernet scored on the validation split."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.cli import run_cli
from nas.errors import UserError
from nas.io import save_checkpoint
from nas.pipeline import SubnetEvaluator
from nas.plugins import plugin_list
from nas.search.archive import read_stats
from nas.search.cli import main
from nas.search.description import RunSpec
from nas.search.factory import build_costs, build_evaluator
from nas.space import get_search_space

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def supernet_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sn") / "supernet.pth"
    torch.manual_seed(0)
    save_checkpoint(path, {"state_dict": get_search_space("mobilenetv3").make_supernet(10).state_dict()})
    return path


def spec(supernet_file, **kw):
    flat = dict(
        lr=32, ur=40, rstep=8, vld_size=200, supernet_path=str(supernet_file), bn_batches=1, device="cpu"
    )
    return RunSpec.from_flat({**flat, **kw}, plugins=plugin_list())


def make(supernet_file, **kw):
    """The run's evaluator, built from the description as msunas.py builds it, and set up."""
    ev = build_evaluator(spec(supernet_file, **kw))
    ev.ensure_setup()
    return ev


def few_images(ev):
    ev.ctx.data.train = ev.ctx.data.train.subset(np.arange(0, len(ev.ctx.data.train), 50))  # 196 images


def test_measure_is_reproducible_and_the_costs_come_from_the_provider(supernet_file):
    ev = make(supernet_file)
    assert isinstance(ev, SubnetEvaluator) and ev.metric_names() == {"top1", "top5", "train_loss"}
    arch = ev.space.sample(1, np.random.default_rng(2))[0]
    m1, m2 = ev.measure(arch), ev.measure(arch)
    assert m1 == m2 and 0 <= m1["top1"] <= 100 and set(m1) == {"top1", "top5"}
    costs = build_costs(spec(supernet_file), ev.space, ev)
    assert costs.names == ("params", "macs", "activations") and costs.metrics(arch) == ev.space.costs(
        arch, 10
    )


def test_construction_is_cheap_and_setup_loads(supernet_file):
    ev = build_evaluator(spec(supernet_file))
    assert ev.n_classes == 10 and ev.supernet is None and ev.ctx is None  # nothing loaded yet
    ev.ensure_setup()
    assert ev.supernet is not None and len(ev.ctx.data.valid) == 200


@pytest.mark.parametrize("optimizer", ["sgd", "sam"])
def test_finetuning_changes_the_score_not_the_supernet(supernet_file, optimizer):
    """The search-time trainer runs the one training loop: every optimiser, SAM included."""
    ev = make(supernet_file, n_epochs=1, optimizer=optimizer)
    few_images(ev)
    before = {k: v.clone() for k, v in ev.supernet.state_dict().items()}
    arch = ev.space.smallest()
    tuned = ev.measure(arch)
    plain = make(supernet_file).measure(arch)
    assert tuned["top1"] != plain["top1"] or tuned["top5"] != plain["top5"]
    assert tuned["train_loss"] > 0 and "train_loss" not in plain
    assert all(torch.equal(v, before[k]) for k, v in ev.supernet.state_dict().items())


def test_head_of_another_class_count_is_refused(tmp_path):
    path = tmp_path / "c100.pth"
    save_checkpoint(path, get_search_space("mobilenetv3").make_supernet(100).state_dict())
    with pytest.raises(UserError, match="random head"):
        make(path)
    with pytest.raises(UserError, match="does not exist"):
        build_evaluator(spec(tmp_path / "missing.pth"))


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


def test_msunas_refuses_impossible_constraints(tmp_path, supernet_file, capsys):
    args = [
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
    ]
    assert run_cli(main, args, plugins_flag=True) == 2
    assert "no architecture meets the constraints" in capsys.readouterr().err


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
    few_images(ev)
    result = ev.evaluate_one(ev.space.smallest())
    assert not result.ok and result.metrics == {}
    assert result.failure["type"] == ("UserError" if n_epochs else "FloatingPointError")
    assert ("training loss became nan" if n_epochs else "validation loss") in result.failure["message"]
