"""FlatNAS flatness (robustness/): the multiplicative weight-noise model, the ``robustness`` measure
on hand-made models, the ``top1_robust`` objective with its alpha_norm and re-scoring against
hand-computed values, bad inputs, and a small FlatNAS search through ``msunas.py``."""

from __future__ import annotations

import csv
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn

from nas.errors import UserError
from nas.plugins import load_plugins
from nas.search.objectives import Scorer, get_objective

load_plugins()

from robustness.flatness import (  # noqa: E402
    Robustness,
    accuracy_drops,
    noise_generator,
    parameters_of,
    perturbed,
    robustness_metric,
)
from robustness.objectives import Top1Robust, alpha_norm  # noqa: E402

# ---- the noise model --------------------------------------------------------------------------


def small_net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(200, 200), nn.BatchNorm1d(200))
    with torch.no_grad():
        net[1].weight.uniform_(0.5, 1.5)
        net[1].bias.uniform_(-1, 1)
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
        net[0].weight[0, :10] = 0.0  # zero weights: multiplicative noise leaves them at zero
    return net


def test_noise_is_multiplicative_with_relative_scale_sigma():
    net = small_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    noisy = perturbed(net, 0.1, noise_generator(0, 0))
    w, w2 = net[0].weight.detach(), noisy[0].weight.detach()
    nz = w != 0
    rel = ((w2 - w)[nz] / w[nz]).numpy()
    assert abs(rel.std() - 0.1) < 0.003 and abs(rel.mean()) < 0.003  # 39,990 relative changes
    assert torch.equal(w2[~nz], w[~nz])
    # every parameter kind moved; BatchNorm's running statistics did not; the original is untouched
    for name in ("0.bias", "1.weight", "1.bias"):
        assert not torch.equal(noisy.state_dict()[name], before[name]), name
    for name in ("1.running_mean", "1.running_var", "1.num_batches_tracked"):
        assert torch.equal(noisy.state_dict()[name], before[name]), name
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_noise_is_seeded_and_kinds_choose_the_parameters():
    net = small_net()
    a = perturbed(net, 0.05, noise_generator(7, 3)).state_dict()
    b = perturbed(net, 0.05, noise_generator(7, 3)).state_dict()
    c = perturbed(net, 0.05, noise_generator(7, 4)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["0.weight"], c["0.weight"])
    kinds = {"weights": ["0.weight"], "biases": ["0.bias"], "bn": ["1.weight", "1.bias"]}
    for kind, names in kinds.items():
        noisy = perturbed(net, 0.05, noise_generator(0, 0), kinds=[kind]).state_dict()
        moved = sorted(k for k, v in net.state_dict().items() if not torch.equal(v, noisy[k]))
        assert moved == sorted(names), kind
    assert len(parameters_of(net)) == 4


# ---- the robustness measure on a hand-made model ----------------------------------------------


class Threshold(nn.Module):
    """Logits ``[w * x, c]`` for a scalar input ``x``: class 0 when ``w * x > c``. ``w = 1`` is the
    only parameter (a weight); ``c`` is a buffer, which noise never touches."""

    def __init__(self, c=1.0):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.register_buffer("c", torch.tensor(c))

    def forward(self, x):
        return torch.stack([self.w * x, self.c.expand_as(x)], 1)


def grid(n=1000):
    """``n`` inputs evenly in (0, 2), labelled as ``w = 1`` predicts them: top-1 100%."""
    x = (torch.arange(n, dtype=torch.float32) + 0.5) * (2.0 / n)
    return x, (x <= 1.0).long()


def fake_ctx(x, y, seed=3):
    """What the measure reads of an evaluation context: the seed and the validation batches."""
    half = len(x) // 2
    return SimpleNamespace(
        seed=seed, valid_batches=lambda arch: iter([(x[:half], y[:half]), (x[half:], y[half:])])
    )


def test_robustness_by_hand_per_draw():
    """Noise on ``w`` flips exactly the inputs between 1 / w' and 1: each draw's top-1 drop is
    known from its eps, and the measure is their mean."""
    x, y = grid()
    ctx = fake_ctx(x, y)
    m = Robustness(sigma=[0.05, 0.2], n_draws=5)
    out = m.measure(Threshold(), None, ctx)
    for sigma in (0.05, 0.2):
        drops = []
        for d in range(5):
            eps = torch.randn(1, generator=noise_generator(ctx.seed, d))
            w = torch.ones(1) + sigma * torch.ones(1) * eps
            drops.append(100.0 * ((w * x > 1.0) != (x > 1.0)).sum().item() / len(x))
        assert out[robustness_metric(sigma)] == pytest.approx(np.mean(drops), abs=1e-6), sigma
    assert out["robustness"] == out["robustness@0.05"] and out["robustness_std"] >= 0
    assert out["robustness@0.2"] >= out["robustness@0.05"] > 0  # the same eps at both sigmas
    assert m.measure(Threshold(), None, ctx) == out  # seeded: a re-run gives the same numbers
    assert m.measure(Threshold(), None, fake_ctx(x, y, seed=4)) != out
    # perturbing only what the model does not have: nothing moves
    assert Robustness(perturb=["biases", "bn"], n_draws=3).measure(Threshold(), None, ctx)["robustness"] == 0


def test_robustness_by_hand_in_expectation():
    """|1 - 1/w'| / 2 of the grid flips per draw: E = 100 * sigma * E|eps| / 2 = 100 * sigma /
    sqrt(2 pi) points for small sigma (1.995 at 0.05; higher orders add < 0.001). One draw's
    drop has std 100 * sigma * std|eps| / 2 = 1.5, so the mean of 400 has a standard error of 0.075;
    the grid counts in steps of 0.1."""
    x, y = grid()
    top1_0, drops = accuracy_drops(Threshold(), lambda: fake_ctx(x, y).valid_batches(None), [0.05], 400, 0)
    assert top1_0 == 100.0
    assert drops.mean() == pytest.approx(100 * 0.05 / math.sqrt(2 * math.pi), abs=0.35)


def test_robustness_keeps_the_network_and_reports_its_metrics():
    x, y = grid(200)
    net = Threshold()
    m = Robustness(sigma=[0.1, 0.02], n_draws=2)
    out = m.measure(net, None, fake_ctx(x, y))
    assert net.w.item() == 1.0 and net.training
    assert (
        set(out) == set(m.provides) == {"robustness", "robustness_std", "robustness@0.1", "robustness@0.02"}
    )


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(sigma=[0.0]), "--sigma 0: every noise sigma must be > 0"),
        (dict(sigma=[0.05, -0.1]), "must be > 0"),
        (dict(n_draws=0), "--n_draws 0 must be >= 1"),
        (dict(perturb=[]), "choose one or more of weights, biases, bn"),
        (dict(perturb=["gamma"]), "choose one or more of"),
    ],
)
def test_bad_measure_options(kw, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        Robustness(**kw)


# ---- top1_robust: alpha_norm and re-scoring ---------------------------------------------------

# two iterations: top-1 errors 10, 20 | 30, 40; robustness 1, 3 | 2, 6
TABLE = {
    "top1": np.array([90.0, 80.0, 70.0, 60.0]),
    "robustness": np.array([1.0, 3.0, 2.0, 6.0]),
    "iteration": np.array([0.0, 0.0, 1.0, 1.0]),
}


def test_alpha_norm_and_rescoring_by_hand():
    obj = get_objective("top1_robust")
    assert isinstance(obj, Top1Robust) and obj.metrics == ("top1", "robustness")
    scorer = Scorer([obj, get_objective("robustness")])
    # the stats of iteration 1: alpha_norm from iteration 0's rows = mean(10, 20) / mean(1, 3) = 7.5
    F = scorer.score(TABLE)
    assert obj.alpha_norm == 7.5 and scorer.statistics() == {"top1_robust": {"alpha_norm": 7.5}}
    np.testing.assert_allclose(
        F[:, 0], [0.5 * 10 + 3.75 * 1, 0.5 * 20 + 3.75 * 3, 0.5 * 30 + 3.75 * 2, 0.5 * 40 + 3.75 * 6]
    )
    np.testing.assert_allclose(F[:, 1], TABLE["robustness"])
    # the initial archive (iteration 0): alpha_norm 1.0
    first = {k: v[:2] for k, v in TABLE.items()}
    np.testing.assert_allclose(scorer.score(first)[:, 0], [0.5 * 10 + 0.5 * 1, 0.5 * 20 + 0.5 * 3])
    assert obj.alpha_norm == 1.0
    # choosing iteration 2's candidates: every row counts, mean(10..40) / mean(1, 3, 2, 6) = 25 / 3
    population = {"top1": np.array([50.0]), "robustness": np.array([4.0])}
    assert scorer.score(TABLE, population)[0, 0] == pytest.approx(0.5 * 50 + 25 / 3 * 0.5 * 4)
    assert scorer.score(TABLE, TABLE, iteration=2)[3, 0] == pytest.approx(0.5 * 40 + 25 / 3 * 0.5 * 6)
    # alpha weighs error against robustness
    only_err, only_rob = get_objective("top1_robust", alpha=1.0), get_objective("top1_robust", alpha=0.0)
    np.testing.assert_allclose(Scorer([only_err]).score(TABLE)[:, 0], [10, 20, 30, 40])
    np.testing.assert_allclose(Scorer([only_rob]).score(TABLE)[:, 0], 7.5 * TABLE["robustness"])
    assert only_err({"top1": 75.0, "robustness": 9.0}) == 25.0  # one row


def test_alpha_norm_edge_cases():
    assert alpha_norm({"top1": np.array([]), "robustness": np.array([])}) == 1.0
    assert alpha_norm({"top1": np.array([90.0, 80.0]), "robustness": np.array([0.0, 0.0])}) == 1.0
    assert alpha_norm({"top1": np.array([90.0, np.nan]), "robustness": np.array([2.0, 5.0])}) == 5.0
    obj = get_objective("top1_robust", robust_sigma=0.1)
    assert obj.metrics == ("top1", "robustness@0.1")


@pytest.mark.parametrize(
    "kw, available, message",
    [
        (dict(alpha=1.5), None, "--alpha 1.5 must be in [0, 1]"),
        (dict(alpha=-0.1), None, "--alpha -0.1 must be in [0, 1]"),
        (dict(robust_sigma=0.0), None, "--robust_sigma 0.0 must be > 0"),
        ({}, {"top1", "macs"}, "needs the robustness measure"),
        (dict(robust_sigma=0.1), {"top1", "robustness", "robustness@0.05"},
         "--robust_sigma 0.1 is not among the measured sigmas (--sigma 0.05)"),
    ],
)  # fmt: skip
def test_bad_objective_options(kw, available, message):
    with pytest.raises(UserError) as e:
        get_objective("top1_robust", **kw).check_metrics(available)
    assert message in str(e.value) and "\n" not in str(e.value)


# ---- a FlatNAS search -------------------------------------------------------------------------


def test_flatnas_search_end_to_end(tmp_path, capsys):
    """msunas.py --first_obj top1_robust on the embedded CIFAR-10 (random supernet weights): every
    candidate has its robustness; both metrics are predicted; iteration 1's stats re-score the whole
    archive with alpha_norm from the iteration-0 rows (1.0 in iteration 0's)."""
    from nas.cli import run_cli
    from nas.io import save_checkpoint
    from nas.post_search import load_run
    from nas.search.archive import read_stats
    from nas.search.cli import main
    from nas.space import get_search_space

    torch.manual_seed(0)
    supernet = tmp_path / "sn.pth"
    save_checkpoint(
        supernet, {"state_dict": get_search_space("mobilenetv3", lr=32, ur=32).make_supernet(10).state_dict()}
    )
    save = tmp_path / "run"
    args = [
        "--supernet_path", supernet, "--lr", 32, "--ur", 32, "--vld_size", 20, "--bn_batches", 1,
        "--device", "cpu", "--measures", "accuracy", "robustness", "--sigma", 0.5, 0.1, "--n_draws", 2,
        "--first_obj", "top1_robust", "--sec_obj", "macs", "--alpha", 0.4, "--n_doe", 10, "--n_iter", 2,
        "--iterations", 1, "--predictor", "ridge", "--pop_size", 10, "--n_gen", 2, "--save", save,
    ]  # fmt: skip
    assert run_cli(main, [str(a) for a in args], plugins_flag=True) == 0
    assert "top1_robust: alpha_norm" in capsys.readouterr().out

    stats0, stats1 = read_stats(save / "iter_0.stats"), read_stats(save / "iter_1.stats")
    rows = stats1["archive_obj"].ok()
    assert len(rows) == 12 and not stats1["archive_obj"].failed()
    for r in rows:
        m = r.metrics
        assert m["robustness"] == m["robustness@0.5"] and m["robustness@0.1"] >= 0 and 0 <= m["top1"] <= 100
    assert stats0["objective_stats"] == {"top1_robust": {"alpha_norm": 1.0}}
    its = stats1["archive_obj"].iteration_of
    first = [r.metrics for r in rows if its[r.arch_id] == 0]
    an = np.mean([100 - m["top1"] for m in first]) / np.mean([m["robustness"] for m in first])
    assert len(first) == 10 and an != 1.0
    assert stats1["objective_stats"]["top1_robust"]["alpha_norm"] == pytest.approx(an)
    # the surrogates predict the two metrics the objective reads
    assert {s["metric"] for s in stats1["surrogate"] if s["iteration"] == 1} == {"top1", "robustness"}
    # archive.csv: every row, iteration 0's included, scored with iteration 1's alpha_norm
    with open(save / "archive.csv") as f:
        table = {row["id"]: row for row in csv.DictReader(f)}
    for r in rows:
        m = r.metrics
        expected = 0.4 * (100 - m["top1"]) + an * 0.6 * m["robustness"]
        assert float(table[r.arch_id]["f1_top1_robust"]) == pytest.approx(expected)
    # post-search scores the archive as its last stats did
    run = load_run(str(save))
    np.testing.assert_allclose(run.F[:, 0], [float(table[r.arch_id]["f1_top1_robust"]) for r in run.results])
