"""Cost model: hooks on any module, the analytic OFA MobileNetV3 model, and tools/net_info.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from ofa.utils import count_net_flops, count_parameters
from ofa.utils import make_divisible as ofa_make_divisible
from torch.utils.flop_counter import FlopCounterMode

from nas.cli import run_cli
from nas.costs import count_costs, measure_costs, module_macs, space_costs
from nas.errors import UserError
from nas.space import get_search_space
from NasSearchSpace.ofa_mbv3_costs import analytic_costs, analytic_counts, make_divisible

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")

# Most cases are small (fast); odd sizes exercise the ceil of stride-2 "same" convs.
SMALL_R = (32, 33, 35, 40, 47, 57, 64, 65, 71, 97)
LARGE_R = (128, 160, 161, 224, 256)


def random_cases(n: int, seed: int = 0) -> list[tuple[float, int, dict]]:
    """``n`` (width, n_classes, arch) cases: 2 widths x 3 class counts, random genes and sizes."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        w = (1.0, 1.2)[i % 2]
        n_classes = (10, 100, 1000)[(i // 2) % 3]
        arch = get_search_space("mobilenetv3", width_mult=w).sample(1, rng)[0]
        sizes = LARGE_R if i % 7 == 6 else SMALL_R  # both widths and all class counts at large r
        arch["r"] = int(sizes[rng.integers(len(sizes))])
        cases.append((w, n_classes, arch))
    return cases


CASES = random_cases(48)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These nets are tiny: one thread is as fast and does not stall when other jobs share the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def build():
    """``build(w, n_classes, arch)`` -> network, reusing one supernet per (w, n_classes)."""
    supernets = {}

    def _build(w, n_classes, arch):
        space = get_search_space("mobilenetv3", lr=32, ur=256, width_mult=w)
        if (w, n_classes) not in supernets:
            supernets[w, n_classes] = space.make_supernet(n_classes)
        return space.build(arch, supernet=supernets[w, n_classes])

    return _build


# ---- the analytic model -------------------------------------------------------------------


@pytest.mark.parametrize("case", range(len(CASES)))
def test_analytic_equals_hooks(build, case):
    w, n_classes, arch = CASES[case]
    net = build(w, n_classes, arch)
    assert analytic_counts(arch, n_classes, w) == count_costs(net, arch["r"], CPU)
    assert analytic_costs(arch, n_classes, w) == measure_costs(net, arch["r"], CPU)


def hook_counts(net, r, parts):
    """Exact integer costs of the leaf modules inside ``parts`` during one batch-1 forward of ``net``."""
    from nas.costs import ACTIVATION_TYPES, MAC_TYPES

    counts = {"params": sum(p.numel() for m in parts for p in m.parameters()), "macs": 0, "activations": 0}

    def hook(module, _inputs, output):
        if isinstance(module, MAC_TYPES):
            counts["macs"] += module_macs(module, output)
        if isinstance(module, ACTIVATION_TYPES):
            counts["activations"] += output.numel()

    leaves = [m for part in parts for m in part.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(hook) for m in leaves]
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, 3, r, r))
    for h in handles:
        h.remove()
    return counts


@pytest.mark.parametrize("case", range(0, len(CASES), 4))
def test_block_and_stage_costs_equal_hooks(build, case):
    """Per-block costs and the costs up to the end of each stage (what an early exit runs before
    its head) equal the hook counts on the modules of the built network."""
    from NasSearchSpace.ofa_mbv3_costs import analytic_block_counts, analytic_stage_counts
    from NasSearchSpace.ofa_mbv3_layout import active_blocks

    w, n_classes, arch = CASES[case]
    net = build(w, n_classes, arch)
    active = active_blocks(arch["d"])  # net.blocks = [the fixed first block, *active blocks]
    blocks = analytic_block_counts(arch, n_classes, w)
    for pos, j in enumerate(active):
        assert blocks[j] == hook_counts(net, arch["r"], [net.blocks[1 + pos]])
    assert all(blocks[j] == {"params": 0, "macs": 0, "activations": 0} for j in set(range(20)) - set(active))
    stages = analytic_stage_counts(arch, n_classes, w)
    for s in range(5):
        n = 1 + sum(1 for j in active if j // 4 <= s)
        assert stages[s] == hook_counts(net, arch["r"], [net.first_conv, *net.blocks[:n]])
    space = get_search_space("mobilenetv3", lr=32, ur=256, width_mult=w)
    assert space.stage_costs(arch, n_classes)[-1]["macs"] == stages[-1]["macs"] / 1e6
    assert space.block_costs(arch, n_classes)[active[0]]["params"] == blocks[active[0]]["params"] / 1e6


def test_make_divisible_matches_ofa():
    for c in range(1, 400):
        for v in (c, c * 1.2, c * 3, c * 4, c * 6, c // 4, round(c * 1.2 * 6)):
            if v > 0:
                assert make_divisible(v) == ofa_make_divisible(v, 8), v


def test_space_costs_and_width():
    space = get_search_space("mobilenetv3", width_mult=1.2)
    arch = space.largest()
    assert space.costs(arch, 10) == analytic_costs(arch, 10) == analytic_costs(arch, 10, 1.2)
    assert space.costs(arch, 10) != analytic_costs({**arch, "w": 1.0}, 10)
    with pytest.raises(ValueError, match="width"):
        analytic_costs(arch, 10, 1.0)
    with pytest.raises(UserError):
        space.costs({**arch, "r": 16}, 10)


def test_known_values_largest_and_smallest():
    """Golden integers; the largest w1.0 net at 224 px is also checked against OFA's own counters."""
    expected = {
        (1.0, "largest", 224, 1000): (7_664_760, 566_170_656, 18_792_440),
        (1.0, "smallest", 32, 10): (2_142_602, 3_935_184, 133_690),
        (1.2, "largest", 224, 1000): (10_701_632, 843_101_040, 24_798_368),
        (1.2, "smallest", 32, 10): (3_080_826, 6_042_936, 181_986),
    }
    for (w, which, r, n_classes), (params, macs, acts) in expected.items():
        space = get_search_space("mobilenetv3", width_mult=w)
        arch = {**getattr(space, which)(), "r": r}
        assert analytic_counts(arch, n_classes) == {"params": params, "macs": macs, "activations": acts}
    space = get_search_space("mobilenetv3")
    net = space.build({**space.largest(), "r": 224}, n_classes=1000)
    assert count_parameters(net) == 7_664_760
    # OFA's profiler sums per-layer counts in float32 tensors, so above 2**24 it is off by a few ulps
    assert abs(count_net_flops(net, (1, 3, 224, 224)) - 566_170_656) <= 64


# ---- hooks against other counters ---------------------------------------------------------


def float32_layer_sum(net: nn.Module, r: int) -> float:
    """What ``ofa.utils.count_net_flops`` computes: per-leaf MACs as float32, summed in float32."""
    per_module = {}
    handles = [
        m.register_forward_hook(lambda mod, _i, out: per_module.__setitem__(mod, module_macs(mod, out)))
        for m in net.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    with torch.no_grad():
        net.eval()(torch.zeros(1, 3, r, r))
    for h in handles:
        h.remove()
    total = torch.zeros(1)
    for m in net.modules():
        if next(m.children(), None) is None:
            total += torch.zeros(1).fill_(per_module.get(m, 0))
    return total.item()


@pytest.mark.parametrize("r", [32, 97, 161])
def test_hooks_match_flop_counter_and_ofa(build, r):
    space = get_search_space("mobilenetv3", lr=32, ur=256)
    archs = [space.largest(), space.smallest(), *space.sample(2, np.random.default_rng(r))]
    for arch in archs:
        arch["r"] = r
        net = build(1.0, 1000, arch).eval()
        counts = count_costs(net, r, CPU)
        with FlopCounterMode(display=False) as flops, torch.no_grad():
            net(torch.zeros(1, 3, r, r))
        assert flops.get_total_flops() == 2 * counts["macs"]
        assert counts["params"] == sum(p.numel() for p in net.parameters()) == count_parameters(net)
        ofa_macs = count_net_flops(net, (1, 3, r, r))
        assert ofa_macs == float32_layer_sum(net, r)  # the float32 sum explains every difference
        if counts["macs"] < 2**24:
            assert ofa_macs == counts["macs"]
        assert abs(ofa_macs - counts["macs"]) <= 1e-6 * counts["macs"]


def test_hooks_on_torchvision_models_match_published_numbers():
    """torchvision publishes params and GMACs ("_ops") per model; the hooks reproduce them."""
    from torchvision.models import MobileNet_V3_Large_Weights, ResNet18_Weights, mobilenet_v3_large, resnet18

    for make, weights in ((mobilenet_v3_large, MobileNet_V3_Large_Weights), (resnet18, ResNet18_Weights)):
        meta = weights.IMAGENET1K_V1.meta
        costs = count_costs(make(), 224, CPU)
        assert costs["params"] == meta["num_params"]
        assert round(costs["macs"] / 1e9, 3) == meta["_ops"]


def test_hook_definitions_on_a_small_model():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),  # 8x5x5 out, 3*9 MACs each
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=4),  # 8x5x5 out, 2*9 MACs each
        nn.MaxPool2d(2),  # 8x2x2
        nn.AvgPool2d(2),  # 8x1x1
        nn.AdaptiveAvgPool2d(1),  # not a counted type
        nn.Flatten(),  # 8
        nn.Linear(8, 5, bias=False),
    )
    counts = count_costs(net, 9, CPU)
    assert counts["macs"] == 200 * 27 + 200 * 18 + 8 * 5
    assert counts["activations"] == 200 + 200 + 200 + 32 + 8 + 8 + 5
    assert counts["params"] == 3 * 9 * 8 + 8 + 16 + 2 * 9 * 8 + 8 + 40
    # Linear on a 3-D input: in x out MACs per output row
    assert count_costs(nn.Sequential(nn.Flatten(2), nn.Linear(81, 4)), 9, CPU)["macs"] == 3 * 81 * 4


def test_measure_costs_restores_the_model():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten())
    net.train()
    stats = net[1].running_mean.clone()
    measure_costs(net, 8)  # default device
    assert net.training and all(m.training for m in net.modules())
    assert torch.equal(net[1].running_mean, stats)  # ran in eval mode
    assert all(not m._forward_hooks for m in net.modules())
    with pytest.raises(RuntimeError):
        measure_costs(net, 8, CPU, in_channels=5)  # forward fails: hooks still removed, mode kept
    assert net.training and all(not m._forward_hooks for m in net.modules())
    with pytest.raises(UserError):
        measure_costs(net, 0, CPU)


def test_space_costs_methods_agree():
    space = get_search_space("mobilenetv3", lr=32, ur=64)
    archs = space.sample(2, np.random.default_rng(5))
    assert space_costs(space, archs, 10, "analytic") == space_costs(space, archs, 10, "hooks", "cpu")
    with pytest.raises(UserError, match="unknown cost method"):
        space_costs(space, archs, 10, "guess")
    with pytest.raises(UserError, match="n_classes"):
        space_costs(space, archs, 0)


# ---- tools/net_info.py --------------------------------------------------------------------


def run_many(arg_lists):
    """Run ``tools/net_info.py`` once per argument list, concurrently; return the finished processes."""
    procs = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "tools" / "net_info.py"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd="/",
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for args in arg_lists
    ]
    for p in procs:
        p.out, p.err = p.communicate(timeout=120)
    return procs


@pytest.fixture
def subnet_files(tmp_path):
    """Good and bad subnet files in ``tmp_path``; returns the archs of ``many.jsonl``."""
    w10, w12 = get_search_space("mobilenetv3"), get_search_space("mobilenetv3", width_mult=1.2)
    rng = np.random.default_rng(3)
    archs = [
        {**a, "r": r} for a, r in zip(w10.sample(2, rng) + w12.sample(1, rng), (33, 48, 40), strict=True)
    ]
    good = {**w10.largest(), "r": 64}
    files = {
        "one.subnet": json.dumps(archs[0]),
        "many.jsonl": "\n".join(json.dumps(a) for a in archs) + "\n\n",
        "notjson": "{ks: 3",
        "missing": json.dumps({"ks": good["ks"], "r": 64}),
        "gene": json.dumps({**good, "ks": [4] + good["ks"][1:]}),
        "bad.jsonl": json.dumps(good) + "\n" + json.dumps({**good, "r": 16}) + "\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return archs


BAD_INPUTS = {
    "not valid JSON": ["--subnet", "notjson", "--n_classes", "10"],
    "lacks e, d": ["--subnet", "missing", "--n_classes", "10"],
    "ks[0] = 4": ["--subnet", "gene", "--n_classes", "10"],
    "line 2: subnet resolution r = 16": ["--subnets", "bad.jsonl", "--n_classes", "10"],
    "does not exist": ["--subnet", "absent", "--n_classes", "10"],
    "unknown search space": ["--search_space", "resnet", "--subnet", "gene", "--n_classes", "1"],
    "--n_classes 'ten'": ["--subnet", "gene", "--n_classes", "ten"],
    "--n_classes '0'": ["--subnet", "gene", "--n_classes", "0"],
}


def in_dir(args, d):
    return [str(d / a) if i and args[i - 1] in ("--subnet", "--subnets") else a for i, a in enumerate(args)]


def test_net_info_cli_end_to_end(tmp_path, subnet_files):
    """Real processes: one subnet, a JSON-lines file with hooks, and two bad inputs."""
    archs = subnet_files
    single, hooks, bad_json, bad_line = run_many(
        [
            in_dir(
                ["--search_space", "mobilenetv3", "--subnet", "one.subnet", "--n_classes", "10"], tmp_path
            ),
            in_dir(["--subnets", "many.jsonl", "--n_classes", "100", "--method", "hooks"], tmp_path),
            in_dir(BAD_INPUTS["not valid JSON"], tmp_path),
            in_dir(BAD_INPUTS["line 2: subnet resolution r = 16"], tmp_path),
        ]
    )
    assert single.returncode == 0 and hooks.returncode == 0, single.err + hooks.err
    assert json.loads(single.out) == analytic_costs(archs[0], 10)
    assert [json.loads(line) for line in hooks.out.splitlines()] == [analytic_costs(a, 100) for a in archs]
    for p, needle in ((bad_json, "not valid JSON"), (bad_line, "line 2: subnet resolution r = 16")):
        assert p.returncode == 2 and p.out == ""
        assert len(p.err.strip().splitlines()) == 1 and p.err.startswith("error: ") and needle in p.err, p.err


def test_net_info_methods_agree_in_process(tmp_path, subnet_files, capsys):
    from tools.net_info import main

    outputs = {}
    for method in ("analytic", "hooks"):
        args = ["--subnets", "many.jsonl", "--n_classes", "1000", "--method", method, "--device", "cpu"]
        assert run_cli(main, in_dir(args, tmp_path)) == 0
        outputs[method] = capsys.readouterr().out
    assert outputs["analytic"] == outputs["hooks"]
    assert [json.loads(line) for line in outputs["hooks"].splitlines()] == [
        analytic_costs(a, 1000) for a in subnet_files
    ]


@pytest.mark.parametrize("needle", list(BAD_INPUTS))
def test_net_info_bad_input_is_one_line_exit_2(tmp_path, subnet_files, capsys, needle):
    from tools.net_info import main

    assert run_cli(main, in_dir(BAD_INPUTS[needle], tmp_path)) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert needle in err, err
