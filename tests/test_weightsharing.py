"""Weight-sharing methods: mixed operations, partial channels, edge normalisation, DARTS's second-order
gradient, the NAS-Bench-201 supernet, and the methods end to end with exact resume."""

import json
import os

import numpy as np
import pytest
import torch
import torch.nn as nn

from nas.errors import UserError
from nas.io import load_checkpoint
from nas.search.archive import read_stats
from nas.train_cli import main as train_main
from NasSearchSpace.nb201 import OPS, NB201Space, cell_string
from weightsharing.darts import unrolled_arch_grads
from weightsharing.ops import MixedOp, Zero, channel_shuffle
from weightsharing.supernet import NB201Supernet, ranked_choices


def test_mixed_op_is_the_weighted_sum_and_its_gradient_reaches_the_weights():
    torch.manual_seed(0)
    ops = [Zero(), nn.Identity(), nn.Conv2d(3, 3, 3, padding=1), nn.AvgPool2d(3, 1, 1)]
    mixed = MixedOp(ops)
    x = torch.randn(2, 3, 5, 5)
    alpha = torch.randn(4, requires_grad=True)
    w = torch.softmax(alpha, 0)
    y = mixed(x, w)
    expected = sum(wi * op(x) for wi, op in zip(w, ops, strict=True))
    assert torch.allclose(y, expected, atol=1e-6)
    g = torch.randn_like(y)
    (grad_w,) = torch.autograd.grad((y * g).sum(), w, retain_graph=True)
    for i, op in enumerate(ops):  # d(sum g * y)/dw_i = <g, op_i(x)>
        assert torch.allclose(grad_w[i], (g * op(x)).sum(), atol=1e-5)
    (grad_a,) = torch.autograd.grad((y * g).sum(), alpha)
    assert grad_a.abs().sum() > 0
    assert torch.equal(mixed(x, index=2), ops[2](x))  # a single path is that operation alone


def test_channel_shuffle_is_a_permutation_and_partial_channels_keep_shapes():
    x = torch.arange(2 * 8 * 2 * 2, dtype=torch.float).view(2, 8, 2, 2)
    y = channel_shuffle(x, 4)
    assert y.shape == x.shape
    assert sorted(y[0, :, 0, 0].tolist()) == sorted(x[0, :, 0, 0].tolist())
    assert y[0, :, 0, 0].tolist() != x[0, :, 0, 0].tolist()
    perm = [int(v) // 4 for v in y[0, :, 0, 0].tolist()]  # channel c's first value is 4c
    assert perm == [0, 2, 4, 6, 1, 3, 5, 7]
    conv = nn.Conv2d(2, 2, 1, bias=False)
    nn.init.zeros_(conv.weight)
    mixed = MixedOp([conv, nn.Identity()], partial=4)
    x = torch.randn(3, 8, 4, 4)
    out = mixed(x, torch.tensor([0.5, 0.5]))
    assert out.shape == x.shape
    # the first quarter went through 0.5 * zero-conv + 0.5 * identity, the rest bypassed unchanged
    unshuffled = channel_shuffle(out, 2)  # 8 channels in 4 groups of 2: shuffling with 2 groups inverts it
    assert torch.allclose(unshuffled[:, :2], 0.5 * x[:, :2])
    assert torch.equal(unshuffled[:, 2:], x[:, 2:])
    with pytest.raises(ValueError, match="cannot be shuffled"):
        channel_shuffle(torch.zeros(1, 6, 1, 1), 4)


def test_edge_normalisation_is_a_softmax_per_node():
    net = NB201Supernet(10, channels=4, cells=1)
    betas = {"cell": torch.tensor([0.3, 1.0, -1.0, 0.0, 2.0, 0.5])}
    w = net.normalised_edges(betas)["cell"]
    assert torch.isclose(w[0], torch.tensor(1.0))  # node 1 has one edge
    assert torch.isclose(w[1] + w[2], torch.tensor(1.0)) and w[1] > w[2]
    assert torch.isclose(w[3:].sum(), torch.tensor(1.0))
    assert torch.allclose(w[3:], torch.softmax(torch.tensor([0.0, 2.0, 0.5]), 0))


def test_nb201_supernet_paths_run_only_their_operations_and_derive_cells_of_the_space():
    torch.manual_seed(0)
    net = NB201Supernet(10, channels=4, cells=1, partial_channels=2)
    x = torch.randn(2, 3, 8, 8)
    weights = {"cell": torch.softmax(torch.randn(6, 5), 1)}
    assert net(x, weights=weights).shape == (2, 10)
    arch = cell_string(
        ["nor_conv_3x3", "none", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "nor_conv_3x3"]
    )
    path = net.path_of(arch)
    assert path == {"cell": [3, 0, 1, 2, 4, 3]}
    called = []
    for layer in net.layers:
        if hasattr(layer, "edges"):
            for e, edge in enumerate(layer.edges):
                for o, op in enumerate(edge.candidates):
                    op.register_forward_hook(lambda *_, e=e, o=o: called.append((e, o)))
    net(x, path=path)
    assert sorted(set(called)) == [(0, 3), (1, 0), (2, 1), (3, 2), (4, 4), (5, 3)]
    called.clear()
    net(x, weights=weights)
    assert {o for _, o in called} == {1, 2, 3, 4}  # every operation but none, which is never run
    table = np.full((6, 5), 0.1)
    table[np.arange(6), path["cell"]] = 0.6
    derived = net.derive({"cell": table})
    assert derived == arch and NB201Space().validate(derived) == arch
    ranked = net.ranked({"cell": table}, limit=20)
    assert ranked[0] == arch and len(set(ranked)) == 20
    gen = torch.Generator().manual_seed(0)
    assert all(0 <= i < len(OPS) for i in net.random_path(gen)["cell"])
    fair = net.fair_paths(gen)  # FairNAS: every edge runs each of its operations once over the paths
    assert len(fair) == len(OPS)
    assert all(sorted(p["cell"][e] for p in fair) == list(range(len(OPS))) for e in range(6))
    assert len({tuple(p["cell"]) for p in net.fair_paths(gen)} | {tuple(p["cell"]) for p in fair}) > len(OPS)


def test_ranked_choices_are_in_order_of_probability():
    tables = {"a": np.array([[0.7, 0.2, 0.1], [0.5, 0.4, 0.1]])}
    onehots = ranked_choices(tables, 9)
    probs = [float(np.prod((oh["a"] * tables["a"]).sum(1))) for oh in onehots]
    assert probs == sorted(probs, reverse=True) and len(onehots) == 9
    assert len({tuple(oh["a"].argmax(1)) for oh in onehots}) == 9


def test_second_order_gradient_matches_finite_differences():
    torch.manual_seed(0)
    net = NB201Supernet(3, channels=2, cells=1).double()
    alpha = (0.5 * torch.randn(6, 5, dtype=torch.float64)).requires_grad_()
    xt, yt = torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    xv, yv = torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.tensor([2, 1, 0, 1])
    xi, wd = 0.1, 3e-4

    def kwargs(a=alpha):
        return {"weights": {"cell": torch.softmax(a, -1)}}

    # the Hessian-vector product by central differences at a radius where this tiny network is smooth
    (got,) = unrolled_arch_grads(net, [alpha], kwargs, (xt, yt), (xv, yv), xi, 0.9, wd, radius=1e-5)
    names, params = zip(*net.named_parameters(), strict=True)

    def objective(a: torch.Tensor) -> float:
        loss = nn.functional.cross_entropy(net(xt, **kwargs(a)), yt)
        grads = torch.autograd.grad(loss, params)
        w = {n: p.detach() - xi * (g + wd * p.detach()) for n, p, g in zip(names, params, grads, strict=True)}
        out = torch.func.functional_call(net, w, (xv,), kwargs(a))
        return float(nn.functional.cross_entropy(out, yv))

    h = 1e-5
    numeric = torch.zeros_like(alpha)
    for idx in np.ndindex(*alpha.shape):
        up, down = alpha.detach().clone(), alpha.detach().clone()
        up[idx] += h
        down[idx] -= h
        numeric[idx] = (objective(up) - objective(down)) / (2 * h)
    assert torch.allclose(got, numeric, rtol=1e-3, atol=1e-6), (got - numeric).abs().max()
    first = torch.autograd.grad(nn.functional.cross_entropy(net(xv, **kwargs()), yv), alpha)[0]
    assert not torch.allclose(first, numeric, rtol=1e-2, atol=1e-4)  # the implicit term matters here


TINY = [
    "--space", "nb201", "--preset", "cpu", "--train_dataset", "cifar10_embedded", "--n_train", "128",
    "--batch_size", "32", "--channels", "4", "--cells", "1", "--resolution", "8", "--epochs", "2",
    "--plot_every", "-1",
]  # fmt: skip


def _assert_same(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    else:
        assert a == b


def _final(save):
    with open(os.path.join(save, "final", "net.stats")) as f:
        return json.load(f)


RANK = ["--rank_candidates", "6", "--rank_images", "64", "--bn_batches", "1", "--epochs_per_iteration", "1"]


@pytest.mark.parametrize(
    "method,extra",
    [
        ("darts", ["--order", "2", "--robust"]),
        ("pcdarts", ["--partial_channels", "2", "--warmup_epochs", "1"]),
        ("enas", [*RANK, "--controller_steps", "2", "--controller_batch", "3", "--controller_hidden", "8"]),
        ("spos", [*RANK, "--sampling", "fair"]),
    ],
)
def test_methods_run_end_to_end_and_resume_exactly(tmp_path, method, extra):
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    assert train_main([method, *TINY, *extra, "--save", full]) == 0
    assert train_main([method, *TINY, *extra, "--save", part, "--iterations", "0"]) == 0
    assert _final(part)["derived_epoch"] == 1
    assert train_main([method, "--resume", part, "--iterations", "1"]) == 0
    a, b = _final(full), _final(part)
    assert a == b and a["derived_epoch"] == 2 and NB201Space().validate(a["arch"])
    assert "top1_test" in a["metrics"]  # scored by the table
    sa, sb = (load_checkpoint(os.path.join(s, "ws", "state_2.pth")) for s in (full, part))
    _assert_same(sa, sb)  # supernet, optimisers, architecture parameters or controller
    stats = read_stats(os.path.join(full, "iter_1.stats"))
    history = stats["strategy"]["history"]
    assert [h["epoch"] for h in history] == [1, 2] and history[-1]["derived"] == a["arch"]
    assert os.path.isfile(os.path.join(full, "plots", "arch_weights.png"))
    if method == "darts":  # the run directory is a search's: post_search.py reads it
        import argparse

        from nas.config import parse_config
        from nas.post_search import PostSearchConfig, post_search

        cfg = parse_config(
            PostSearchConfig,
            ["--expr", full, "--save", str(tmp_path / "ps"), "--n", "1"],
            argparse.ArgumentParser(),
        )
        post_search(cfg)
        assert os.path.isfile(tmp_path / "ps" / "net-trade-off_0" / "net.subnet")
    assert os.path.isfile(os.path.join(full, "ws", "log.csv"))
    assert sorted(os.listdir(os.path.join(full, "ws"))) == ["log.csv", "state_1.pth", "state_2.pth"]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["darts", "--space", "mobilenetv3"], "searches darts or nb201"),
        (["proxyless", "--space", "nb201"], "searches mobilenetv3"),
        (["darts", "--preset", "gpu"], "--preset 'gpu'"),
        (["darts", *TINY, "--partial_channels", "3"], "must divide --channels"),
        (["pcdarts", *TINY, "--warmup_epochs", "2"], "--warmup_epochs 2"),
        (["darts", "--resume", "x", "--space", "nb201"], "leave them out"),
        (["spos", *TINY, "--rank_by", "val"], "--rank_by 'val'"),
        (["spos", *TINY, "--sampling", "fairnas"], "--sampling 'fairnas'"),
        (["spos", "--space", "darts", "--preset", "cpu", "--sampling", "fair"], "cells do not allow"),
    ],
)
def test_bad_inputs_are_one_line_errors(argv, message, tmp_path, capsys):
    from nas.cli import run_cli

    assert run_cli(train_main, [*argv, "--save", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not os.path.exists(tmp_path / "run" / "ws")
    with pytest.raises(UserError):
        NB201Supernet(10, channels=6, partial_channels=4)


def test_oneshot_evaluator_ranks_cells_with_a_methods_supernet(tmp_path):
    from nas.data.loaders import derive_seed
    from nas.search.cli import resolve
    from nas.search.factory import build_evaluator

    save = str(tmp_path / "spos")
    argv = ["spos", *TINY, *RANK, "--epochs_per_iteration", "2", "--seed", "0", "--save", save]
    assert train_main(argv) == 0
    # the ranking (SPOS's operation frequencies) is computed once per chunk, not every epoch
    history = read_stats(os.path.join(save, "iter_0.stats"))["strategy"]["history"]
    assert ["weights" in h for h in history] == [False, True] and "derived" in history[1]
    spec = resolve(
        ["--benchmark", "nb201", "--evaluator", "oneshot", "--supernet_path", save, "--rank_images", "64"]
    )
    spec.apply_flat({"bn_batches": 1})
    evaluator = build_evaluator(spec)
    space = NB201Space()
    cells = space.sample(3, np.random.default_rng(0))
    first = [evaluator.measure(c) for c in cells]
    assert [evaluator.measure(c) for c in cells] == first  # recalibration makes it repeatable
    assert all(0.0 <= m["top1"] <= 100.0 and m["inherited_loss"] > 0 for m in first)
    # the derived cell is the candidate of least held-out loss (--rank_by loss), scored as the evaluator does
    candidates = space.sample(6, np.random.default_rng(derive_seed(0, 23, 2)))
    losses = [evaluator.measure(c)["inherited_loss"] for c in candidates]
    derived = history[1]["derived"]
    assert space.arch_id(derived) == space.arch_id(candidates[int(np.argmin(losses))])
    assert history[1]["derived_inherited_loss"] == min(losses)
    with pytest.raises(UserError, match="neither a state file"):
        spec.apply_flat({"supernet_path": str(tmp_path)})
        build_evaluator(spec).measure(cells[0])


def test_darts_space_search_end_to_end(tmp_path):
    from weightsharing.darts_space import DartsSpace

    save = str(tmp_path / "darts")
    argv = ["--space", "darts", "--preset", "cpu", "--n_train", "64", "--batch_size", "32", "--channels", "4"]
    argv += [
        "--cells",
        "2",
        "--resolution",
        "8",
        "--epochs",
        "1",
        "--rank_images",
        "32",
        "--plot_every",
        "-1",
    ]
    assert train_main(["darts", *argv, "--save", save]) == 0
    stats = _final(save)
    assert DartsSpace().validate(stats["arch"]) and 0 <= stats["metrics"]["top1"] <= 100
