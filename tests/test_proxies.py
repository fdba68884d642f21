"""The zero-cost proxies plug-in: each proxy against a hand-computed value or a property, the
scorer's cache, the measures and tools/score_proxies.py (tiny networks and batches)."""

import csv
import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import proxies
from nas.cli import run_cli
from nas.data import DataSplits, TensorSplit
from nas.errors import UserError
from nas.measures import MEASURES, EvalContext
from nas.space import get_search_space
from proxies.measures import measure_name
from proxies.scorer import ProxyScorer, score_network
from proxies.scores import PROXIES, ProxyBatch, hamming_kernel, jacob_cov_of, swap_of
from tools import score_proxies

NAMES = ("params", "flops", "synflow", "snip", "grad_norm", "fisher", "jacob_cov", "naswot", "swap")
CELL = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"


def batch(n=4, side=4, n_classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ProxyBatch(torch.randn(n, 3, side, side, generator=g), torch.arange(n) % n_classes, n_classes)


def linear(d_in, hidden, d_out, seed=0):
    torch.manual_seed(seed)
    layers = [nn.Flatten(), nn.Linear(d_in, hidden, bias=False)]
    if d_out:
        layers.append(nn.Linear(hidden, d_out, bias=False))
    return nn.Sequential(*layers)


def tiny_cnn(n_classes=3):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, n_classes),
    )


def fake_data(n=16, side=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=g)
    split = TensorSplit(images, torch.arange(n) % 10, (0.5,) * 3, (0.25,) * 3)
    return DataSplits("fake", 10, [str(i) for i in range(10)], split, split, split, side)


def test_registry_and_batch_checks():
    assert set(NAMES) == set(PROXIES.names())
    with pytest.raises(UserError, match="unknown zero-cost proxy 'nope'"):
        score_network(tiny_cnn(), batch(), ["nope"])
    with pytest.raises(UserError, match="labels must lie"):
        ProxyBatch(torch.zeros(2, 3, 4, 4), torch.tensor([0, 5]), 3)


def test_params_and_flops_count_the_network():
    net = tiny_cnn()
    assert PROXIES.get("params")(net, batch()) == sum(p.numel() for p in net.parameters()) / 1e6
    macs = 4 * 4 * 4 * 3 * 9 + 4 * 4 * 4 * 4 * 9 + 4 * 3  # two convs at 4x4 and the classifier
    assert PROXIES.get("flops")(net, batch()) == macs / 1e6


def test_synflow_exact_on_two_linear_layers_sign_invariant_and_restored():
    net = linear(48, 5, 2)
    w1, w2 = (m.weight.detach().clone() for m in net if isinstance(m, nn.Linear))
    r = float((w2.abs().double() @ w1.abs().double() @ torch.ones(48, dtype=torch.float64)).sum())
    value = PROXIES.get("synflow")(net, batch())
    # bias-free layers: each layer's sum |theta * dR/dtheta| equals R itself
    assert value == pytest.approx(2 * r, rel=1e-12)
    assert torch.equal(net[1].weight, w1) and torch.equal(net[2].weight, w2)  # restored exactly
    assert net[1].weight.dtype == torch.float32 and net[1].weight.grad is None
    with torch.no_grad():
        net[1].weight.neg_()
        net[2].weight[0].neg_()
    assert PROXIES.get("synflow")(net, batch()) == pytest.approx(value, rel=1e-12)


def test_synflow_ignores_a_fresh_batchnorm():
    net = tiny_cnn()
    no_bn = nn.Sequential(*[m for m in net if not isinstance(m, nn.BatchNorm2d)])
    with_bn = PROXIES.get("synflow")(net, batch())
    assert with_bn == pytest.approx(PROXIES.get("synflow")(no_bn, batch()), rel=1e-4)  # BN eps only
    assert net.training  # mode restored


def test_snip_grad_norm_fisher_by_hand_on_one_linear_layer():
    b = batch(n=5, side=2, n_classes=3)
    net = linear(12, 3, 0)
    w = net[1].weight.detach()
    x = b.x.flatten(1)
    logits = x @ w.T
    g_logits = (F.softmax(logits, 1) - F.one_hot(b.y, 3)) / len(b)  # d mean-CE / d logits
    g_w = g_logits.T @ x
    assert PROXIES.get("snip")(net, b) == pytest.approx(float((w * g_w).abs().sum()), rel=1e-5)
    assert PROXIES.get("grad_norm")(net, b) == pytest.approx(float(g_w.norm()), rel=1e-5)
    fisher = 0.5 * (logits * g_logits).pow(2).mean(0).sum()
    assert PROXIES.get("fisher")(net, b) == pytest.approx(float(fisher), rel=1e-5)
    assert net[1].weight.grad is None


def test_jacob_cov_formula_and_known_jacobian():
    j = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0], [2.0, 0.0, 1.0]])
    lam = np.linalg.eigvalsh(np.corrcoef(j))
    k = 1e-5
    assert jacob_cov_of(j) == pytest.approx(-np.sum(np.log(lam + k) + 1 / (lam + k)))
    # a linear network: every image has the same Jacobian, the correlation matrix is all ones
    n = 4
    value = PROXIES.get("jacob_cov")(linear(48, 3, 0), batch(n=n))
    expected = -(math.log(n + k) + 1 / (n + k) + (n - 1) * (math.log(k) + 1 / k))
    assert value == pytest.approx(expected, rel=1e-6)
    assert jacob_cov_of(np.ones((3, 4))) == -math.inf  # constant rows: degenerate


def test_naswot_kernel_by_hand_and_singular_on_identical_images():
    codes = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    hamming = torch.cdist(codes.double(), codes.double(), p=0)
    assert torch.equal(hamming_kernel([codes[:, :1], codes[:, 1:]]), 4 - hamming)
    # the ReLU of Flatten -> ReLU sees the images themselves: K = [[4, 2], [2, 4]], log det 12
    x = torch.tensor([[1.0, 1.0, -1.0, -1.0], [1.0, -1.0, 1.0, -1.0]]).view(2, 1, 2, 2).expand(2, 3, 2, 2)
    net = nn.Sequential(nn.Flatten(), nn.ReLU())
    k = 12 - hamming_kernel([(x.flatten(1) > 0)])  # 12 units: 3 channels x 4 pixels
    assert torch.all(k == torch.tensor([[0.0, 6.0], [6.0, 0.0]]))
    assert PROXIES.get("naswot")(net, ProxyBatch(x.contiguous(), torch.zeros(2).long(), 1)) == pytest.approx(
        math.log(12 * 12 - 6 * 6)
    )
    same = ProxyBatch(torch.randn(1, 3, 4, 4).expand(3, 3, 4, 4).contiguous(), torch.zeros(3).long(), 3)
    assert PROXIES.get("naswot")(tiny_cnn(), same) == -math.inf


def test_swap_counts_distinct_patterns_and_is_scale_invariant():
    codes = torch.tensor([[1, 1, 0, 1], [0, 0, 0, 1], [1, 1, 0, 1]], dtype=torch.bool)
    assert swap_of([codes]) == 3 and swap_of([codes, codes]) == 3
    assert swap_of([torch.ones(64, 2, dtype=torch.bool), torch.zeros(64, 1, dtype=torch.bool)]) == 2
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, bias=False), nn.ReLU(), nn.Conv2d(6, 6, 1, bias=False), nn.ReLU())
    b = batch(n=6, side=5)
    scaled = ProxyBatch(b.x * 3.0, b.y, b.n_classes)  # positive homogeneity: the same patterns
    assert PROXIES.get("swap")(net, b) == PROXIES.get("swap")(net, scaled) > 2
    same = ProxyBatch(b.x[:1].expand(6, 3, 5, 5).contiguous(), b.y, 3)
    assert PROXIES.get("swap")(net, same) <= 2  # every unit is on for all images or for none


def test_score_network_is_deterministic_and_leaves_the_network_alone():
    net = tiny_cnn()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    s1, t1 = score_network(net, batch(), NAMES, seed=3)
    s2, _ = score_network(net, batch(), list(reversed(NAMES)), seed=3)
    assert s1 == s2 and set(t1) == set(NAMES) and all(v >= 0 for v in t1.values())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(math.isfinite(v) for v in s1.values())


def test_scorer_caches_by_arch_id_and_is_seeded():
    space = get_search_space("nb201")
    scorer = ProxyScorer(space, ["synflow", "naswot"], data=fake_data(side=8), batch_size=4, n_classes=10)
    archs = [CELL, space.largest()]
    first = scorer.scores(archs)
    assert first.shape == (2, 2) and scorer.n_built == 2
    assert np.array_equal(scorer.scores(archs[::-1]), first[::-1]) and scorer.n_built == 2  # cache
    assert scorer.score(CELL) == {"synflow": first[0, 0], "naswot": first[0, 1]}
    again = ProxyScorer("nb201", ["synflow", "naswot"], data=fake_data(side=8), batch_size=4, n_classes=10)
    assert np.array_equal(again.scores(archs), first)  # same seed, same scores
    with pytest.raises(UserError, match="batch_size"):
        ProxyScorer(space, ["naswot"], batch_size=1)


def test_measures_score_the_initialised_network_via_the_registry():
    assert measure_name("params") == "zc_params" and "zc_flops" in MEASURES and "synflow" in MEASURES
    space = get_search_space("nb201")
    ctx = EvalContext(space, fake_data(side=8), torch.device("cpu"), 10, seed=1)
    trained = space.build(CELL, n_classes=10)  # ignored: proxies score the initialisation
    out = MEASURES.get("naswot")(proxy_batch_size=4).measure(trained, CELL, ctx)
    assert set(out) == {"naswot", "naswot_s"} and math.isfinite(out["naswot"])
    assert MEASURES.get("naswot")(proxy_batch_size=4).measure(None, CELL, ctx)["naswot"] == out["naswot"]
    params = MEASURES.get("zc_params")(proxy_batch_size=4).measure(None, CELL, ctx)
    assert params["zc_params"] == pytest.approx(space.costs(CELL, 10, 8)["params"])


def test_score_proxies_tool_end_to_end_resume_and_bad_input(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("nas.data.load_dataset", lambda *a, **k: fake_data(side=32))
    argv = ["--space", "nb201", "--dataset", "cifar10", "--n", "3", "--batch_size", "4"]
    argv += ["--proxies", "params", "synflow", "naswot", "--out", str(tmp_path)]
    assert run_cli(score_proxies.main, argv) == 0
    out = capsys.readouterr().out
    assert "spearman" in out and "naswot" in out
    with open(tmp_path / "proxies.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and {"arch", "synflow", "synflow_s", "accuracy"} <= set(rows[0])
    table = json.loads((tmp_path / "correlations.json").read_text())
    assert table["n"] == 3 and set(table["correlations"]) == {"params", "synflow", "naswot"}
    assert (tmp_path / "correlations.png").is_file() and (tmp_path / "correlations.pdf").is_file()
    monkeypatch.setattr(ProxyScorer, "build", lambda *a: pytest.fail("a scored cell was scored again"))
    assert run_cli(score_proxies.main, argv) == 0  # resumed: nothing left to score
    assert (tmp_path / "proxies.csv").read_text().count("\n") == 4
    assert run_cli(score_proxies.main, [*argv[:5], "0", *argv[6:]]) == 2
    assert run_cli(score_proxies.main, [*argv[:3], "cifar11", *argv[4:]]) == 2
    assert run_cli(score_proxies.main, [*argv[:-1], str(tmp_path), "--seed", "1"]) == 2  # another run
    err = capsys.readouterr().err
    assert "--n '0' must be a positive integer" in err and "cifar11" in err and "seed" in err


def test_package_docstring_lists_every_proxy():
    assert all(f"``{n}``" in proxies.__doc__ for n in NAMES)
