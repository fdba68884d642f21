"""Input-dependent layer skipping (LayerSkipping/): the gated space, gates, the gated network's
batched and real-skipping forwards, the loss terms, avg_macs, the gate trainer and measure, a search,
``train.py layer_skipping`` and the engine contracts it added (``on_epoch_start``, ``new_lr_mult``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from nas.errors import UserError
from nas.plugins import load_plugins
from nas.space import get_search_space

load_plugins()

from LayerSkipping.gates import GATE_TYPES, HIDDEN_SIZES, make_gate  # noqa: E402
from LayerSkipping.measures import GateOutputs, avg_macs, gate_report  # noqa: E402
from LayerSkipping.network import straight_through  # noqa: E402
from LayerSkipping.spaces import SPARSITIES, skippable  # noqa: E402
from LayerSkipping.trainer import epoch_mode, ramp_weight, sparsity_terms  # noqa: E402
from NasSearchSpace.ofa_mbv3_layout import active_blocks  # noqa: E402

EMBEDDED = Path(__file__).resolve().parents[1] / "NasSearchSpace" / "ofa" / "supernets"


def space(**kw):
    return get_search_space("skippingmobilenetv3", **{"lr": 32, "ur": 48, "rstep": 8, **kw})


def gated_arch(sp, seed=0):
    """A random architecture with at least two gates."""
    rng = np.random.default_rng(seed)
    for a in sp.sample(50, rng):
        if sp.gate_plan(a).slots[1:]:
            return a
    raise AssertionError("no architecture with two gates")


# ---- the space --------------------------------------------------------------------------------


@pytest.mark.parametrize("ur", [32, 48])
def test_encode_decode_round_trip_and_canonical_genes(ur):
    sp = space(ur=ur)
    assert sp.n_var == 45 + 1 + 40  # a fixed resolution keeps its (one-valued) gene
    for a in sp.sample(30, np.random.default_rng(1)):
        assert sp.decode(sp.encode(a)) == a
        c = sp.canonical(a)
        for j in range(20):
            if not (skippable(j) and j in active_blocks(a["d"])):
                assert c["sparsity"][j] == 0.0  # no gate on a block that changes shape or does not run
            if c["sparsity"][j] == 0.0:
                assert c["gate_hidden"][j] == HIDDEN_SIZES[0]  # a hidden size without a gate is no gene
    a = gated_arch(sp)
    first = next(j for j in range(20) if not skippable(j))
    other = {**a, "sparsity": [0.8 if j == first else v for j, v in enumerate(a["sparsity"])]}
    assert sp.arch_id(other) == sp.arch_id(a)  # a gene of an ungateable block changes nothing
    slot = sp.gate_plan(a).slots[0]
    moved = {**a, "gate_hidden": [64 if j == slot and v != 64 else 16 if j == slot else v
                                  for j, v in enumerate(a["gate_hidden"])]}  # fmt: skip
    assert sp.arch_id(moved) != sp.arch_id(a)  # a gated block's hidden size does change the network
    assert len(sp.feature_names()) == sp.n_var and any(n.startswith("sparsity.s") for n in sp.feature_names())


def test_every_gene_value_is_reachable_by_the_operators():
    """The reference's xu = 2 left sparsities above 0.6 and most resolutions unreachable: here the
    bounds are exact per gene, the search's initial population draws every value and its
    crossover and mutation (with the rounding repair) keep every value of every gene in play."""
    from pymoo.core.population import Population
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM

    from nas.search.moea import GeneRepair, SurrogateProblem, initial_population

    sp = space(ur=64, rstep=4)
    sl, r = sp.group_slice("sparsity"), sp.group_slice("r")
    assert sp.xu[sl].tolist() == [len(SPARSITIES) - 1] * 20 and sp.xu[r][0] == len(sp.resolutions) - 1
    assert {sp.decode(sp.xu)["sparsity"][1], sp.decode(sp.xu)["r"]} == {0.8, 64}
    rng = np.random.default_rng(0)
    X = initial_population(sp, np.empty((0, sp.n_var), dtype=int), 200, rng).astype(float)
    problem = SurrogateProblem(sp, lambda archs: np.zeros((len(archs), 2)), 2, ())
    repair = GeneRepair(sp)
    parents = Population.new(X=X)[rng.permutation(200).reshape(100, 2)]
    children = SBX(prob=0.9, eta=15, repair=repair, vtype=float)(problem, parents)
    children = PM(eta=20, repair=repair, vtype=float)(problem, children).get("X")
    for j in range(sp.n_var):
        values = set(np.rint(children[:, j]).astype(int).tolist())
        assert values == set(range(int(sp.xl[j]), int(sp.xu[j]) + 1)), j


def test_thesis_keys_are_read_in_active_block_order():
    sp = space()
    d = [2, 3, 4, 2, 3]
    slots = active_blocks(d)
    theirs = [0.5 if k < len(slots) else 0.0 for k in range(20)]
    theirs[0] = 0.7
    raw = {
        "ks": [3] * 20,
        "e": [3] * 20,
        "d": d,
        "r": 32,
        "gate_hidden_sizes": [32] * 20,
        "target_sparsities": theirs,
    }
    a = sp.validate(raw)
    assert a["sparsity"][slots[0]] == 0.7 and a["sparsity"][slots[5]] == 0.5
    assert all(a["sparsity"][j] == 0.0 for j in range(20) if j not in slots)


def test_bad_subnets_are_one_line_errors():
    sp = space()
    base = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 32}
    with pytest.raises(UserError, match="is this a skippingmobilenetv3 subnet"):
        sp.validate(base)  # a mobilenetv3 subnet
    with pytest.raises(UserError, match=r"sparsity\[3\] = 0.3 is not one of"):
        sp.validate({**base, "gate_hidden": [16] * 20, "sparsity": [0.0, 0.0, 0.0, 0.3] + [0.0] * 16})
    with pytest.raises(UserError, match="--gate_type 'mlp' is not one of"):
        space(gate_type="mlp")


# ---- gates and the network --------------------------------------------------------------------


@pytest.mark.parametrize("kind", GATE_TYPES)
def test_gate_shapes_straight_through_gradient_and_fused_form(kind):
    torch.manual_seed(0)
    for size in (1, 2, 5, 8):
        gate = make_gate(kind, 24, size, 16)
        x = torch.randn(4, 24, size, size, requires_grad=True)
        logit = gate(x)
        assert logit.shape == (4,)
        p = torch.sigmoid(logit)
        g = straight_through(p, (logit > 0).float())
        assert torch.equal(g.detach(), (p > 0.5).float())
        g.sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        norms = (nn.Dropout, nn.modules.batchnorm._BatchNorm)
        for m in gate.modules():  # BatchNorm statistics far from the identity
            if isinstance(m, norms[1]):
                m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.2, 3), m.weight.data.uniform_(0.5, 2)
        with torch.no_grad():
            expected, fused = gate.eval()(x), gate.fused()
            assert torch.allclose(fused(x), expected, atol=1e-5)
            assert not any(isinstance(m, norms) for m in fused.modules())


@pytest.mark.parametrize("kind", GATE_TYPES)
def test_costs_analytic_equal_hooks(kind):
    from nas.costs import measure_costs

    sp = space(gate_type=kind)
    supernet = sp.make_supernet(7)
    for a in [*sp.sample(3, np.random.default_rng(2)), sp.largest(), sp.smallest()]:
        net = sp.build(a, supernet)
        c = sp.costs(a, 7)
        assert measure_costs(net, a["r"], "cpu") == {k: c[k] for k in ("params", "macs", "activations")}
        assert c["macs"] == pytest.approx(c["backbone_macs"] + c["gate_macs"])
        assert c["n_gates"] == len(sp.gate_plan(a).slots)


def test_batched_and_real_skipping_give_the_same_outputs():
    """Hard gates in a batch (every block computed, x + g * conv(x)) and real skipping (closed blocks not
    run; per sample at batch size 1 and in a batch) agree; real skipping computes less."""
    from nas.costs import count_costs

    sp = space(gate_type="stable", gate_bias=0.0)
    a = gated_arch(sp)
    torch.manual_seed(0)
    net = sp.build(a, n_classes=10).eval()
    for b in net.gated_blocks():  # decisions that differ between samples
        b.gate.fc2.weight.data.normal_(0, 1.0)
    x = torch.randn(16, 3, a["r"], a["r"])
    with torch.no_grad():
        logits, p, g = net.set_mode("hard").outputs(x)
        assert 0 < g.mean() < 1
        skipped = net.set_mode("skip")(x)
        one = torch.cat([net(x[i : i + 1]) for i in range(len(x))])
        assert torch.allclose(skipped, logits, atol=1e-5) and torch.allclose(one, logits, atol=1e-5)
        fused = net.fused()  # the inference form batch-1 latency times: same decisions and logits
        assert fused.mode == "skip" and net.gated_blocks()[0].gate is not fused.gated_blocks()[0].gate
        one = torch.cat([fused(x[i : i + 1]) for i in range(len(x))])
        assert torch.allclose(one, logits, atol=1e-5)
        assert torch.equal(fused.set_mode("hard").outputs(x)[2], g)
        assert torch.allclose(net.set_mode("off")(x), net.set_mode("open")(x))
    closed = int(torch.nonzero(g[0] == 0)[0]) if (g[0] == 0).any() else None
    if closed is not None:
        net.set_mode("skip")
        full = sp.costs(a, 10)["macs"] * 1e6
        assert count_costs(net, a["r"], "cpu")["macs"] <= full  # zero image: its own decisions


# ---- loss, ramp, avg_macs ---------------------------------------------------------------------


def test_loss_terms_ramp_and_schedule_on_hand_made_values():
    g = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])  # gate 0 open 75%, gate 1 never
    targets = torch.tensor([0.5, 0.8])  # want open 50% and 20%
    var = g.var(dim=1, unbiased=False).mean().item()  # 3 samples at 0.25, one at 0
    expected = (0.75 - 0.5) ** 2 + (0.0 - 0.2) ** 2 + max(0.0, 0.01 - var)
    assert sparsity_terms(g, targets).item() == pytest.approx(expected)
    same = torch.ones(4, 2)  # every gate open for every sample: no variance -> the penalty 0.01
    assert sparsity_terms(same, torch.zeros(2)).item() == pytest.approx(0.01)
    assert ramp_weight(0, 10, 0.1) == pytest.approx(0.1) and ramp_weight(5, 10, 0.1) == pytest.approx(0.55)
    assert ramp_weight(10, 10, 0.1) == ramp_weight(30, 10, 0.1) == 1.0
    assert [epoch_mode(e, 5, "alternate") for e in range(5)] == ["soft", "hard", "soft", "hard", "hard"]
    assert [epoch_mode(e, 1, "alternate") for e in range(1)] == ["hard"]
    assert set(epoch_mode(e, 4, "hard") for e in range(4)) == {"hard"}


def test_avg_macs_hand_computed():
    counts = {"gate_macs": [1_000, 2_000], "block_macs": [100_000, 300_000]}
    # base 1 M, gates always paid, block 0 skipped 25% of the time, block 1 half the time
    assert avg_macs(counts, 1_000_000, [0.75, 0.5]) == pytest.approx(
        (1_000_000 + 3_000 - 25_000 - 150_000) / 1e6
    )
    sp = space()
    a = gated_arch(sp)
    n, k = 8, len(sp.gate_plan(a).slots)
    open_ = torch.zeros(n, k)
    open_[:4, 0] = 1  # gate 0 open for half the images, the others closed
    labels = torch.arange(n) % 10
    out = GateOutputs(torch.eye(10)[labels], torch.eye(10)[(labels + 1) % 10], open_.clone(), open_, labels)
    rep = gate_report(sp, a, out, 10)
    c = sp.gate_block_counts(a, 10)
    base = sp.costs(a, 10)["backbone_macs"] * 1e6
    saved = c["block_macs"][0] * 0.5 + sum(c["block_macs"][1:])
    assert rep["avg_macs"] == pytest.approx((base + sum(c["gate_macs"]) - saved) / 1e6)
    assert rep["top1"] == 100.0 and rep["open_top1"] == 0.0 and rep["skip_rate"] == 1.0
    assert rep["open_rate"][0] == 0.5 and rep["gate_type"] == "stable"


# ---- engine contracts the plug-in added -------------------------------------------------------


def test_new_lr_mult_gives_new_modules_their_own_rate():
    from nas.training.optim import param_groups

    sp = space()
    net = sp.build(gated_arch(sp), n_classes=10)
    groups = param_groups(net, 1e-4, 0.01, 10.0)
    gate_ids = {id(p) for m in net.new_modules() for p in m.parameters()}
    fresh = [g for g in groups if "lr" in g]
    assert {id(p) for g in fresh for p in g["params"]} == gate_ids and all(g["lr"] == 0.1 for g in fresh)
    assert len(param_groups(net, 1e-4, 0.01, 1.0)) == 2  # without a multiplier: as before


# ---- training, measuring, searching -----------------------------------------------------------


def _supernet(tmp_path, sp):
    from nas.io import save_checkpoint

    torch.manual_seed(0)
    path = tmp_path / "sn.pth"
    save_checkpoint(path, {"state_dict": sp.make_supernet(10).state_dict()})
    return str(path)


def test_search_with_gates_end_to_end(tmp_path):
    """A small search on the embedded CIFAR-10: gates trained per candidate, top-1 vs avg_macs (the
    surrogate predicts avg_macs for the candidates: never missing), gate statistics in the archive."""
    from nas.plugins import plugin_list
    from nas.search.description import RunSpec
    from nas.search.factory import build_run
    from nas.search.loop import Search

    sp = space(ur=32)
    flat = dict(
        search_space="skippingmobilenetv3", lr=32, ur=32, vld_size=40, bn_batches=1,
        supernet_path=_supernet(tmp_path, sp), device="cpu", n_epochs=1, steps_per_epoch=1, batch_size=16,
        measures=["accuracy", "gates"], trainer="layer_skipping", sec_obj="avg_macs", n_doe=10, n_iter=2,
        iterations=1, predictor="ridge", save=str(tmp_path / "run"),
    )  # fmt: skip
    run = build_run(RunSpec.from_flat(flat, plugins=plugin_list()), log=lambda *_: None)
    archive = Search(run, log=lambda *_: None).run()
    assert len(archive) == 12 and not archive.failed()
    for r in archive:
        m = r.metrics
        assert np.isfinite(m["avg_macs"]) and m["avg_macs"] <= m["macs"] + 1e-9
        assert len(m["open_rate"]) == m["n_gates"] == len(sp.gate_plan(r.arch).slots)
        assert m["gate_type"] == "stable"
    stats = json.loads(sorted((tmp_path / "run").glob("iter_1.stats"))[0].read_text())
    assert "archive" in stats or "archive_obj" in stats or stats
    csv = (tmp_path / "run" / "archive.csv").read_text().splitlines()[0].split(",")
    assert "f2_avg_macs" in csv and "open_rate.0" in csv

    # post-search keeps the networks with their trained gates; the final-architectures plot shows them
    from nas.post_search import PostSearchConfig, post_search
    from tools import visualize_final_architectures

    cfg = PostSearchConfig(expr=str(tmp_path / "run"), save=str(tmp_path / "final"), n=2, device="cpu")
    for folder in post_search(cfg, log=lambda *_: None):
        stats = json.loads((Path(folder) / "net.stats").read_text())
        assert stats["metrics"]["gate_type"] == "stable" and (Path(folder) / "ckpt.pth").is_file()
    out = tmp_path / "vfa"
    argv = ["--results_dir", str(tmp_path), "--dataset", "all", "--output_dir", str(out)]
    assert visualize_final_architectures.main(argv) == 0
    numbers = json.loads((out / "numbers.json").read_text())
    assert "avg_macs" in json.dumps(numbers["groups"]) and (out / "final_architectures.png").is_file()


def test_train_py_layer_skipping(tmp_path):
    """train.py layer_skipping: gates trained from a supernet, best validation epoch kept, gates and
    batch-1 latency (real skipping vs every block vs the ungated twin) measured on the test split;
    the gate type comes from net.stats and a checkpoint of another gate type is refused."""
    from nas.train_cli import main as train_main

    sp = space(ur=32)
    a = gated_arch(sp)
    run = tmp_path / "net"
    run.mkdir()
    (run / "net.subnet").write_text(json.dumps(a))
    args = ["layer_skipping", "--subnet", str(run / "net.subnet"), "--epochs", "2", "--steps_per_epoch", "2",
            "--batch_size", "16", "--vld_size", "50", "--max_train_images", "200", "--latency_images", "3",
            "--num_workers", "0", "--device", "cpu"]  # fmt: skip
    with pytest.raises(UserError, match="no gate type recorded"):
        train_main([*args, "--supernet_path", _supernet(tmp_path, sp)])
    assert train_main([*args, "--supernet_path", str(tmp_path / "sn.pth"), "--gate_type", "conv"]) == 0
    stats = json.loads((run / "net.stats").read_text())
    ls = stats["layer_skipping"]
    assert ls["split"] == "test" and ls["gate_type"] == "conv" and len(ls["open_rate"]) == ls["n_gates"]
    assert set(ls["latency"]) >= {"skip_ms", "open_ms", "twin_ms", "measured_saving"}
    assert stats["trained"]["top1"] == pytest.approx(ls["top1"])
    # the gate type is read back from net.stats; a checkpoint of another gate type is refused
    from LayerSkipping.train_ls import gate_space_options

    assert gate_space_options(str(run / "net.subnet"), None, None)["gate_type"] == "conv"
    assert gate_space_options(str(run / "net.subnet"), "stable", None)["gate_type"] == "stable"
    stable = space(ur=32, gate_type="stable").build(a, n_classes=10)
    ckpt = torch.load(run / "ckpt.pth", weights_only=True)["state_dict"]
    with pytest.raises(
        UserError, match="holds conv gates, this network has stable gates: pass --gate_type conv"
    ):
        stable.load_state_dict(ckpt)

    # tools/analyze_gates.py on that run: every file; a subnet of another space is one line
    import importlib

    tool = importlib.import_module("tools.analyze_gates")
    out = tmp_path / "gates"
    common = ["--n_classes", "10", "--max_images", "60", "--device", "cpu", "--output_dir", str(out)]
    tool.main(["--model_path", str(run / "ckpt.pth"), "--subnet", str(run / "net.subnet"), *common])
    summary = json.loads((out / "gate_usage_summary.json").read_text())
    assert summary["gate_type"] == "conv" and len(summary["gates"]) == len(sp.gate_plan(a).slots)
    assert len(summary["most_skip"]) == 10 and summary["images"] == 60
    assert summary["macs"]["avg_macs"] <= space(ur=32, gate_type="conv").costs(a, 10)["macs"] + 1e-6
    stems = ("gate_open", "class_gate_heatmap", "gate_correlation", "class_usage_vs_accuracy",
             "skip_vs_confidence", "mac_distribution", "images_most_skip", "images_least_skip")  # fmt: skip
    for stem in stems:
        assert (out / f"{stem}.png").stat().st_size > 0 and (out / f"{stem}.pdf").is_file()
    (tmp_path / "plain").mkdir()
    plain = {k: a[k] for k in ("ks", "e", "d", "r")}
    (tmp_path / "plain" / "net.subnet").write_text(json.dumps(plain))
    with pytest.raises(UserError, match="skippingmobilenetv3"):
        tool.main(["--model_path", str(run / "ckpt.pth"), "--subnet", str(tmp_path / "plain" / "net.subnet"),
                   "--gate_type", "conv", "--output_dir", str(out)])  # fmt: skip


def test_the_best_validation_epoch_is_kept():
    """The gate trainer restores the best validation epoch's weights at the end of the last epoch (so
    the loop's last checkpoint and ckpt.pth hold them; the reference kept the last epoch's)."""
    from types import SimpleNamespace

    from LayerSkipping.trainer import GateTrainer

    sp = space(ur=32)
    net = sp.build(gated_arch(sp), n_classes=10)
    trainer = GateTrainer(n_epochs=3)
    trainer.begin(net, None, None, None)
    loop = SimpleNamespace(
        model=net, data=SimpleNamespace(valid=object()), cfg=SimpleNamespace(epochs=3, save=None), best={}
    )
    snapshots = []
    for epoch, top1 in ((1, 30.0), (2, 50.0), (3, 40.0)):  # epoch 2 is the best
        for p in net.parameters():
            p.data.fill_(float(epoch))
        snapshots.append({k: v.clone() for k, v in net.state_dict().items()})
        loop.epoch = epoch
        if top1 > loop.best.get("valid_top1", -1.0):  # as the loop's validate_epoch keeps it
            loop.best = {"epoch": epoch, "valid_top1": top1}
        trainer.on_epoch_end(loop)
    assert all(torch.equal(v, snapshots[1][k]) for k, v in net.state_dict().items())
