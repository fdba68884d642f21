"""The bi-level search end to end (msunas.py over hadasmobilenetv3 backbones, the inner search in the
``hadas`` measure) on the embedded CIFAR-10, ``--energy_model``, and their bad inputs."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hardware.bilevel import choose
from hardware.search_energy import parse_energy_model
from nas.cli import run_cli
from nas.errors import UserError
from nas.io import save_checkpoint
from nas.search.description import RunSpec
from nas.search.factory import build_run
from nas.space import get_search_space


def test_bilevel_search_end_to_end(tmp_path, capsys):
    from nas.post_search import PostSearchConfig, post_search
    from nas.search.archive import read_stats
    from nas.search.cli import main

    torch.manual_seed(0)
    space = get_search_space("hadasmobilenetv3", lr=32, ur=32)
    supernet = tmp_path / "sn.pth"
    save_checkpoint(supernet, {"state_dict": space.make_supernet(10).state_dict()})
    save = tmp_path / "run"
    args = [
        "--search_space", "hadasmobilenetv3", "--supernet_path", supernet, "--lr", 32, "--ur", 32,
        "--vld_size", 50, "--bn_batches", 1, "--device", "cpu", "--trainer", "ee_joint", "--n_epochs", 1,
        "--steps_per_epoch", 1, "--batch_size", 16, "--measures", "hadas", "--inner_evals", 20,
        "--objectives", "top1", "energy", "latency", "--n_doe", 10, "--n_iter", 2, "--iterations", 1,
        "--predictor", "ridge", "--pop_size", 10, "--n_gen", 2, "--save", save,
    ]  # fmt: skip
    assert run_cli(main, [str(a) for a in args], plugins_flag=True) == 0
    stats = read_stats(save / "iter_1.stats")
    rows = stats["archive_obj"].ok()
    assert len(rows) == 12 and not stats["archive_obj"].failed()
    for r in rows:
        m = r.metrics
        front = json.loads(m["hadas_front"])
        pick = m["hadas_choice"]
        assert pick in front and m["energy"] == pick["energy_mj"] and m["latency"] == pick["latency_ms"]
        assert m["top1"] >= m["backbone_top1"] - 1.0 - 1e-9  # within --max_drop of the backbone
        assert m["energy_provenance"] == "modelled:jetson-agx-xavier" and m["inner_evals"] <= 20
        F = np.array([[p["error"], p["latency_ms"], p["energy_mj"]] for p in front])
        for f in F:  # the inner front is non-dominated
            assert not np.any(np.all(F <= f, axis=1) & np.any(F < f, axis=1))
    with open(save / "archive.csv") as f:
        header = next(csv.reader(f))
    assert {"f2_energy", "f3_latency", "hadas_front", "hadas_choice.energy_mj"} <= set(header)
    folders = post_search(
        PostSearchConfig(expr=str(save), save=str(tmp_path / "final"), n=2, device="cpu"), log=lambda *_: None
    )
    net_stats = json.loads((Path(folders[0]) / "net.stats").read_text())
    assert "hadas_choice" in json.dumps(net_stats) and "hadas_front" in json.dumps(net_stats)


def test_choose_takes_least_energy_within_the_drop():
    class F:
        F = np.array([[10.0, 5.0, 9.0], [10.5, 4.0, 3.0], [12.0, 1.0, 1.0]])

    assert choose(F, backbone_error=10.0, max_drop=1.0) == 1
    assert choose(F, backbone_error=10.0, max_drop=0.1) == 0
    assert choose(F, backbone_error=5.0, max_drop=0.1) == 0  # none within: the least error


def test_energy_model_adds_the_provider_and_warns_when_collinear(capsys):
    assert parse_energy_model("profile:local-vm") == ("profile", "local-vm")
    assert parse_energy_model("measured") == ("measured", None)
    for bad in ("profile", "profile:", "rapl"):
        with pytest.raises(UserError, match="--energy_model"):
            parse_energy_model(bad)
    spec = RunSpec.from_flat({"lr": 32, "ur": 32, "sec_obj": "energy", "energy_model": "profile:local-vm"})
    assert [p.name for p in spec.costs] == ["analytic", "modelled_energy"]
    run = build_run(spec, log=lambda *_: None)
    assert "collinear with latency" in capsys.readouterr().err
    space = run.space
    small, large = space.smallest(), space.largest()
    e_small, e_large = run.costs.metrics(small), run.costs.metrics(large)
    assert 0 < e_small["energy"] < e_large["energy"]
    # no DVFS: energy / latency is the profile's constant power (W = mJ / ms)
    assert e_small["energy"] / e_small["energy_latency"] == pytest.approx(
        e_large["energy"] / e_large["energy_latency"]
    )
    spec = RunSpec.from_flat({"lr": 32, "ur": 32, "sec_obj": "energy", "energy_model": "profile:nope"})
    with pytest.raises(UserError, match="unknown device profile"):
        build_run(spec, log=lambda *_: None)
    spec = RunSpec.from_flat({"lr": 32, "ur": 32, "sec_obj": "energy", "energy_model": "measured"})
    with pytest.raises(UserError, match="profile"):  # this VM has no energy counters: use a profile
        build_run(spec, log=lambda *_: None)


def test_hadas_measure_refuses_other_spaces():
    spec = RunSpec.from_flat({"lr": 32, "ur": 32, "measures": ["hadas"], "sec_obj": "energy"})
    with pytest.raises(UserError, match="hadasmobilenetv3"):
        build_run(spec, log=lambda *_: None)
