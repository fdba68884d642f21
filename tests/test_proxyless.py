"""ProxylessNAS on OFA MobileNetV3: the expected look-up-table latency and its loss, binarised paths,
the derivation's knapsack, and the method end to end in the search loop with exact resume."""

import csv
import itertools
import os

import numpy as np
import pytest
import torch
import yaml
from tqdm import tqdm

from benchmarks.ofa_note10 import DEFAULT_DATA_DIR
from nas.io import load_checkpoint
from nas.search.archive import read_stats
from NasSearchSpace.ofa_mbv3_layout import D_OPTIONS, MAX_DEPTH, N_BLOCKS, N_STAGES, make_divisible
from weightsharing.proxyless import (
    CHOICES,
    BlockLatencies,
    Proxyless,
    block_latencies,
    expected_latency,
    latency_loss,
    most_probable_under_budget,
)

# the run description train.py's ws-mobilenetv3 preset is to hold (SPACE_PRESETS["mobilenetv3"])
SPACE_PRESET = {
    "space": {"name": "mobilenetv3", "width_mult": 1.2, "lr": 160, "ur": 224, "rstep": 16},
    "evaluator": {"name": "ofa_note10"},
    "trainer": None,
    "measures": [],
    "costs": [{"name": "lut_latency", "lut_dir": str(DEFAULT_DATA_DIR), "lut_device": "note10"}],
    "objectives": ["top1"],
    "loop": {"n_doe": 1, "n_iter": 1, "plot_every": 1},
}
TINY = [
    "--strategy", "proxyless", "--train_dataset", "cifar10_embedded", "--n_train", "128",
    "--batch_size", "64", "--resolution", "8", "--plot_every", "-1",
]  # fmt: skip


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    path = tmp_path_factory.mktemp("preset") / "ws-mobilenetv3.yaml"
    path.write_text(yaml.safe_dump(SPACE_PRESET))
    return str(path)


def _run(argv: list[str]):
    """What ``train.py proxyless`` does (weightsharing.train_modes.run_method) once the mode exists."""
    from nas.search.cli import resolve
    from nas.search.factory import build_run
    from nas.search.loop import Search
    from weightsharing.train_modes import write_final

    search = Search(build_run(resolve(argv)))
    search.run()
    write_final(search)
    return search


def _strategy(preset: str, *flags: str) -> Proxyless:
    from nas.search.cli import resolve
    from nas.search.factory import build_run

    strategy = build_run(resolve(["--config", preset, *TINY, *flags])).strategy
    assert isinstance(strategy, Proxyless)
    return strategy


def _path_score(strategy: Proxyless, arch) -> float:
    """log of the probability of ``arch``'s most probable path (the derivation's ranking)."""
    pb, pd = (np.log(p) for p in strategy.probabilities())
    score = 0.0
    for s in range(N_STAGES):
        d = arch["d"][s]
        score += pd[s, D_OPTIONS.index(d)]
        for i in range(MAX_DEPTH):
            j = s * MAX_DEPTH + i
            score += pb[j, CHOICES.index((arch["ks"][j], arch["e"][j]))] if i < d else pb[j].max()
    return score


# ---- the expected latency and its loss ------------------------------------------------------------


def test_expected_latency_equals_a_hand_computed_value():
    blocks = np.zeros((N_BLOCKS, len(CHOICES)))
    blocks[0, :2] = [1.0, 3.0]  # stage 0: slots 0..3, choices 0 and 1 only
    blocks[1, :2] = [2.0, 2.0]
    blocks[2, :2] = [4.0, 0.0]
    blocks[3, :2] = [6.0, 2.0]
    blocks[4:, :] = 100.0  # other stages: any choice costs 100 ms ...
    lat = BlockLatencies(10.0, blocks, 160)
    pb = torch.zeros(N_BLOCKS, len(CHOICES), dtype=torch.float64)
    pb[:, :2] = 0.5
    pd = torch.zeros(N_STAGES, 3, dtype=torch.float64)
    pd[0] = torch.tensor([0.5, 0.25, 0.25])  # depth 2, 3, 4: slot 2 runs with 1/2, slot 3 with 1/4
    pd[1:, 0] = 1.0  # ... but only their first two slots run
    # 10 + (0.5*1 + 0.5*3) + 2 + 0.5 * (0.5*4 + 0) + 0.25 * (0.5*6 + 0.5*2) + 4 stages x 2 slots x 100
    assert float(expected_latency(pb, pd, lat)) == pytest.approx(10 + 2 + 2 + 1 + 1 + 800, abs=1e-12)
    # the same by enumerating stage 0's paths with their probabilities
    total = 0.0
    for di, cs in itertools.product(range(3), itertools.product(range(2), repeat=MAX_DEPTH)):
        p = float(pd[0, di]) * 0.5**MAX_DEPTH
        total += p * sum(blocks[i, c] for i, c in enumerate(cs[: D_OPTIONS[di]]))
    assert float(expected_latency(pb, pd, lat)) == pytest.approx(10 + total + 800, abs=1e-12)


def test_expected_latency_of_a_single_path_is_its_lut_latency():
    from NasSearchSpace.ofa_mbv3_latency import LatencyTable

    table = LatencyTable(DEFAULT_DATA_DIR, device="note10", resolutions=[160], width_mult=1.2)
    lat = block_latencies(table, 160)
    rng = np.random.default_rng(0)
    for _ in range(3):
        c, d = rng.integers(0, 9, N_BLOCKS), rng.integers(0, 3, N_STAGES)
        arch = {"ks": [CHOICES[i][0] for i in c], "e": [CHOICES[i][1] for i in c], "r": 160}
        arch["d"] = [D_OPTIONS[i] for i in d]
        onehot_b = torch.nn.functional.one_hot(torch.as_tensor(c), 9).double()
        onehot_d = torch.nn.functional.one_hot(torch.as_tensor(d), 3).double()
        assert float(expected_latency(onehot_b, onehot_d, lat)) == pytest.approx(
            table.latency(arch), rel=1e-12
        )


@pytest.mark.parametrize("ratio", [0.75, 1.3])
def test_latency_loss_moves_the_expected_latency_toward_the_target(ratio):
    from NasSearchSpace.ofa_mbv3_latency import LatencyTable

    table = LatencyTable(DEFAULT_DATA_DIR, device="note10", resolutions=[160], width_mult=1.2)
    lat = block_latencies(table, 160)
    gen = torch.Generator().manual_seed(0)
    alpha = torch.randn(N_BLOCKS, 9, generator=gen, dtype=torch.float64).requires_grad_()
    beta = torch.randn(N_STAGES, 3, generator=gen, dtype=torch.float64).requires_grad_()

    def expected():
        return expected_latency(torch.softmax(alpha, -1), torch.softmax(beta, -1), lat)

    target = ratio * float(expected().detach())
    opt = torch.optim.Adam([alpha, beta], lr=1e-2, betas=(0.0, 0.999))
    gaps = []
    for _ in range(40):
        e = expected()
        gaps.append(abs(float(torch.log(e.detach())) - np.log(target)))
        loss = latency_loss(e, target, 2.0)
        assert float(loss.detach()) == pytest.approx(2.0 * np.log(float(e.detach()) / target) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(b < a for a, b in zip(gaps, gaps[1:], strict=False)) and gaps[-1] < 0.5 * gaps[0]


# ---- the derivation's knapsack --------------------------------------------------------------------


def test_knapsack_is_exact_against_brute_force():
    rng = np.random.default_rng(1)
    n_stages, n_slots, n_choices, depths = 2, 3, 3, (2, 3)
    for _ in range(10):
        lat = rng.integers(1, 6, (n_stages, n_slots, n_choices)).astype(float)
        logp = np.log(rng.dirichlet(np.ones(n_choices), (n_stages, n_slots)))
        dlogp = np.log(rng.dirichlet(np.ones(2), n_stages))
        fixed, budget = 2.0, 2.0 + float(rng.integers(6, 20))
        every = []
        for ds in itertools.product(depths, repeat=n_stages):
            for cs in itertools.product(*[itertools.product(range(n_choices), repeat=d) for d in ds]):
                ms = fixed + sum(lat[s, i, c] for s in range(n_stages) for i, c in enumerate(cs[s]))
                score = sum(dlogp[s, depths.index(ds[s])] for s in range(n_stages))
                score += sum(logp[s, i, c] for s in range(n_stages) for i, c in enumerate(cs[s]))
                if ms <= budget:
                    every.append((score, list(ds), [list(c) for c in cs], ms))
        every.sort(key=lambda t: -t[0])
        # latencies on the grid: the programme is exact, with or without a lower end
        least = fixed + float(rng.integers(0, budget - fixed))
        for low, allowed in ((None, every), (least, [t for t in every if t[3] >= least])):
            found = most_probable_under_budget(
                fixed, lat, logp, dlogp, depths, budget, k=6, bins=int(budget - fixed), least=low
            )
            assert len(found) == min(6, len(allowed))
            for (s1, d1, c1), (s2, d2, c2, _) in zip(found, allowed, strict=False):
                assert s1 == pytest.approx(s2, abs=1e-12) and (d1, c1) == (d2, c2)
        # off the grid: every answer is within the budget
        off = lat + rng.uniform(-0.4, 0.4, lat.shape)
        for _, _, cs in most_probable_under_budget(fixed, off, logp, dlogp, depths, budget, k=6, bins=50):
            assert fixed + sum(off[t, i, c] for t in range(n_stages) for i, c in enumerate(cs[t])) <= budget
    assert most_probable_under_budget(10.0, lat, logp, dlogp, depths, 9.0) == []


# ---- the strategy ---------------------------------------------------------------------------------


def test_binarised_paths_run_only_the_sampled_blocks(preset):
    strategy = _strategy(preset, "--epochs", "2", "--warmup_epochs", "1")
    strategy._setup()
    net = strategy.supernet
    calls = []
    for j, block in enumerate(net.blocks[1:]):
        conv = block.conv.depth_conv.conv
        conv.register_forward_hook(
            lambda m, inp, out, j=j: calls.append((j, m.active_kernel_size, inp[0].shape[1]))
        )
    rng = np.random.default_rng(0)
    x = torch.randn(2, 3, 8, 8)
    widths = [net.blocks[1 + j].conv.in_channel_list[0] for j in range(N_BLOCKS)]
    for _ in range(3):
        path = strategy.sample_path(strategy.probabilities(), rng)
        arch = strategy.arch_of(path)
        calls.clear()
        strategy.run_path(path, x)
        active = [s * MAX_DEPTH + i for s in range(N_STAGES) for i in range(arch["d"][s])]
        assert [j for j, _, _ in calls] == active  # blocks beyond the depth never run
        for j, k, mid in calls:  # one kernel and one expand width per block: the sampled ones
            assert k == arch["ks"][j] and mid == make_divisible(round(widths[j] * arch["e"][j]))
    # REINFORCE's log p counts the depths and the active slots only
    path = strategy.sample_path(strategy.probabilities(), rng)
    pb, pd = strategy.probabilities()
    arch = strategy.arch_of(path)
    manual = sum(np.log(pd[s, path[1][s]]) for s in range(N_STAGES))
    manual += sum(np.log(pb[j, path[0][j]]) for j in range(N_BLOCKS) if j % MAX_DEPTH < arch["d"][j // 4])
    assert float(strategy.log_prob(path).detach()) == pytest.approx(manual, abs=1e-9)
    weights = strategy.table_weights()["blocks"]
    assert weights.shape == (N_BLOCKS, 10) and np.allclose(weights.sum(1), 1.0)
    # a warm-up epoch trains the weights along sampled paths and leaves the architecture alone
    alpha, before = strategy.alpha.detach().clone(), net.blocks[1].conv.point_linear.conv.conv.weight.clone()
    strategy.loaders["weights"].set_epoch(0)
    logged = strategy.train_epoch(0, torch.Generator(), tqdm(disable=True))
    assert torch.equal(strategy.alpha, alpha) and strategy.baseline is None
    assert not torch.equal(net.blocks[1].conv.point_linear.conv.conv.weight, before)
    assert set(logged) == {"train_loss", "train_top1", "expected_latency"}


def test_derive_meets_the_budget_with_the_most_probable_valid_arch(preset):
    strategy = _strategy(preset, "--epochs", "1", "--warmup_epochs", "0")
    space, table = strategy.ctx.space, strategy.table
    gen = torch.Generator().manual_seed(3)
    strategy.device = torch.device("cpu")
    strategy.build(gen)
    with torch.no_grad():
        strategy.alpha.copy_(2 * torch.randn(N_BLOCKS, 9, generator=gen, dtype=torch.float64))
        strategy.beta.copy_(2 * torch.randn(N_STAGES, 3, generator=gen, dtype=torch.float64))
    rng = np.random.default_rng(0)
    sampled = [strategy.arch_of(strategy.sample_path(strategy.probabilities(), rng)) for _ in range(300)]
    sampled += space.sample(300, rng)
    for target, tolerance in ((14.0, 1.0), (18.0, 1.0), (18.0, 0.05), (25.0, 0.05)):
        strategy.options.target_latency, strategy.options.latency_tolerance = target, tolerance
        least = (1 - tolerance) * target
        derived = strategy.derive()
        assert space.validate(derived) == derived and derived["r"] == 160
        assert least <= table.latency(derived) <= target
        best = _path_score(strategy, derived)
        feasible = [a for a in sampled if least <= table.latency({**a, "r": 160}) <= target]
        assert feasible and all(_path_score(strategy, a) <= best + 1e-9 for a in feasible)
        ranked = strategy.ranked(5)
        scores = [_path_score(strategy, a) for a in ranked]
        assert ranked[0] == derived and len({space.arch_id(a) for a in ranked}) == 5
        assert scores == sorted(scores, reverse=True)
        assert all(least <= table.latency(a) <= target for a in ranked)
    # an unbinding budget: ProxylessNAS's argmax of every decision
    strategy.options.target_latency, strategy.options.latency_tolerance = 100.0, 1.0
    pb, pd = strategy.probabilities()
    derived = strategy.derive()
    assert derived["d"] == [D_OPTIONS[i] for i in pd.argmax(1)]
    for j in range(N_BLOCKS):
        if j % MAX_DEPTH < derived["d"][j // MAX_DEPTH]:
            assert (derived["ks"][j], derived["e"][j]) == CHOICES[pb[j].argmax()]


def _same(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    else:
        assert a == b


def test_proxyless_end_to_end_and_exact_resume(preset, tmp_path):
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    flags = ["--config", preset, *TINY, "--epochs", "3", "--warmup_epochs", "0", "--target_latency", "16"]
    a = _run([*flags, "--save", full, "--iterations", "1"])  # 2 epochs of 3: no plot yet
    _run([*flags, "--save", part, "--iterations", "0"])  # 1 epoch, then resumed for the 2nd
    b = _run(["--strategy", "proxyless", "--resume", part, "--iterations", "1"])
    sa, sb = (load_checkpoint(os.path.join(s, "ws", "state_2.pth")) for s in (full, part))
    _same(sa, sb)  # supernet, SGD, architecture parameters, Adam, REINFORCE baseline
    assert sa["method"]["baseline"] is not None and sa["method"]["a_opt"]["state"]
    drop = [{k: v for k, v in h.items() if k != "seconds"} for h in a.strategy.history]
    assert drop[:2] == [{k: v for k, v in h.items() if k != "seconds"} for h in b.strategy.history]
    history = read_stats(os.path.join(full, "iter_1.stats"))["strategy"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    last = history[-1]
    arch = a.strategy.final()
    assert a.space.validate(arch) == arch and last["derived"] == arch
    assert 0.95 * 16 <= last["derived_latency"] <= 16.0 and last["latency_ratio"] == pytest.approx(
        last["derived_latency"] / 16
    )
    result = a.archive.results[a.space.arch_id(arch)]
    assert result.metrics["latency"] == pytest.approx(last["derived_latency"])  # the lut_latency provider's
    assert 0 < result.metrics["top1"] < 100 and last["derived_top1"] == result.metrics["top1"]
    assert len(a.archive) == 2 and all(0.95 * 16 <= r.metrics["latency"] <= 16.0 for r in a.archive)
    with open(os.path.join(full, "ws", "log.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"] and float(rows[-1]["expected_latency"]) > 0
    assert float(rows[-1]["arch_top1"]) >= 0 and float(rows[-1]["latency_loss"]) >= 0
    a.strategy._plot()  # what the base class draws every 5 epochs and after the last
    assert os.path.isfile(os.path.join(full, "plots", "arch_weights.png"))
    assert os.path.isfile(os.path.join(full, "final", "net.subnet"))
    assert sorted(os.listdir(os.path.join(full, "ws"))) == ["log.csv", "state_1.pth", "state_2.pth"]


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--channels", "8"], "--channels does not apply to proxyless"),
        (["--lut_resolution", "150"], "--lut_resolution 150 is not a resolution of the search space"),
        (["--target_latency", "5"], "below the fastest subnet's"),
        (["--target_latency", "200"], "above the slowest subnet's"),
        (["--latency_tolerance", "0"], "--latency_tolerance 0.0 must be in (0, 1]"),
        (["--warmup_epochs", "2", "--epochs", "2"], "--warmup_epochs 2 must be in [0, --epochs 2)"),
        (["--resolution", "0"], "--resolution 0 must be >= 1"),
        (["--baseline_decay", "1"], "--baseline_decay 1.0 must be in [0, 1)"),
        (
            ["--search_space", "nb201", "--evaluator", "nb201", "--costs", "none"],
            "use --search_space mobilenetv3",
        ),
    ],
)
def test_bad_options_are_one_line_errors(preset, flags, message, tmp_path, capsys):
    from nas.cli import run_cli
    from nas.search.cli import main

    save = tmp_path / "run"
    assert run_cli(main, ["--config", preset, *TINY, *flags, "--save", str(save)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not os.path.exists(save / "ws")
