"""Every tool that reads a net.subnet works on every registered search space."""

import json

import numpy as np
import pytest

from nas.cli import run_cli
from nas.space import get_search_space, list_search_spaces

SPACES = [n for n in list_search_spaces() if n in ("mobilenetv3", "nb201", "eemobilenetv3", "cbnmobilenetv3")]


@pytest.fixture(params=SPACES)
def subnet_file(request, tmp_path):
    space = (
        get_search_space(request.param)
        if request.param == "nb201"
        else get_search_space(request.param, lr=32, ur=32)
    )
    arch = space.sample(1, np.random.default_rng(0))[0]
    path = tmp_path / "net.subnet"
    path.write_text(json.dumps(arch))
    return request.param, str(path)


def test_net_info_analytic_equals_hooks(subnet_file, capsys):
    from tools.net_info import main

    name, path = subnet_file
    out = []
    for method in ("analytic", "hooks"):
        args = ["--search_space", name, "--subnet", path, "--n_classes", "10", "--method", method]
        assert run_cli(main, [*args, "--device", "cpu"]) == 0
        out.append(json.loads(capsys.readouterr().out))
    analytic, hooks = out
    assert {k: analytic[k] for k in hooks} == hooks and hooks["macs"] > 0
    if "exit_macs" in analytic:  # early-exit spaces: one cumulative cost per exit, the last the whole network
        assert (
            len(analytic["exit_macs"]) == analytic["n_exits"] + 1
            and analytic["exit_macs"][-1] == hooks["macs"]
        )


def test_export_torchscript(subnet_file, tmp_path, capsys):
    from tools.export import main

    name, path = subnet_file
    args = ["--search_space", name, "--subnet", path, "--format", "torchscript", "--n_classes", "10"]
    assert run_cli(main, [*args, "--output", str(tmp_path / "net.pt")]) == 0
    record = json.loads((tmp_path / "net.pt.json").read_text())
    assert record["search_space"] == name and record["check"]["passed"]
