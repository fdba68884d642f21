"""Early-exit plug-in (EarlyExits/): spaces, heads' exact costs, policies, avg_macs, tuning,
trainers, the real early exit and small searches of both spaces on the embedded CIFAR-10."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from EarlyExits.policies import Outputs, avg_macs, evaluate, exit_index, get_policy, scores, tune
from EarlyExits.trainers import exit_probabilities, mac_term
from nas.costs import count_costs
from nas.errors import UserError
from nas.space import get_search_space

SPACES = ("eemobilenetv3", "cbnmobilenetv3")


def space(name: str, **kw):
    return get_search_space(name, **{"lr": 32, "ur": 32, **kw})


# ---- encoding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SPACES)
@pytest.mark.parametrize("ur", [32, 48])  # without and with a resolution gene
def test_encode_decode_round_trip(name, ur):
    sp = space(name, ur=ur, rstep=8)
    rng = np.random.default_rng(0)
    for a in sp.sample(60, rng):
        x = sp.encode(a)
        assert sp.decode(x) == a
        assert np.array_equal(sp.encode(sp.decode(x)), x)
    key = "t" if name == "eemobilenetv3" else "b"
    assert sp.feature_names()[-4:] == [f"exit.s{s}" for s in range(4)]
    assert len(sp.feature_names()) == sp.n_var == 46 + 4
    # the exit genes are the last four whatever the resolution genes
    a = sp.sample(1, rng)[0]
    assert [sp.gene_groups[-1].options[i] for i in sp.encode(a)[-4:]] == a[key]


def test_cbn_never_produces_no_exit():
    sp = space("cbnmobilenetv3")
    rng = np.random.default_rng(1)
    assert all(any(a["b"]) for a in sp.sample(400, rng))
    assert any(sp.smallest()["b"]) and any(sp.largest()["b"])
    x = sp.encode(sp.sample(1, rng)[0])
    x[sp.group_slice("b")] = 0
    fixed = sp.repair(x)
    assert fixed[sp.group_slice("b")].sum() == 1 and sp.decode(fixed)
    # NSGA-II's offspring go through the space's repair
    from nas.search.moea import optimise

    seeds = np.array([sp.encode(a) for a in sp.sample(4, rng)])
    X, _ = optimise(
        sp, lambda archs: np.array([[sum(a["b"]), a["d"][0]] for a in archs], float), seeds, rng, 20, 10
    )
    assert all(sp.decode(row)["b"] for row in X)
    # mutation and neighbours too
    a = sp.decode(fixed)
    assert all(any(sp.mutate(a, rng)["b"]) for _ in range(50))
    assert all(any(n["b"]) for n in sp.neighbours(a))


CNAS_RUNS = Path(__file__).parent / "data" / "cnas_runs"  # real CNAS archives (Apache-2.0, see there)


def test_cnas_compact_form_and_real_archive():
    path = CNAS_RUNS / "edanas-r32-cifar10" / "iter_30.stats"
    entries = json.loads(path.read_text())["archive"]
    sp = space("eemobilenetv3")
    for config, *_ in entries[:50]:
        a = sp.validate(config)
        assert len(a["ks"]) == len(a["e"]) == 20 and a["t"] == [float(v) for v in config["t"]]
        active = [j for j in range(20) if j % 4 < a["d"][j // 4]]
        assert [a["ks"][j] for j in active] == config["ks"] and [a["e"][j] for j in active] == config["e"]
        assert sp.decode(sp.encode(a)) == a
    # the base space reads it too (without the exit genes)
    base = get_search_space("mobilenetv3", lr=32, ur=32)
    cfg = {k: v for k, v in entries[0][0].items() if k != "t"}
    assert len(base.validate(cfg)["ks"]) == 20


@pytest.mark.parametrize(
    "arch, message",
    [
        ({"t": [0.1, 0.3, 1, 1]}, r"t\[1\] = 0.3 is not one of"),
        ({"t": [0.1, 1]}, "list of 4 exit thresholds"),
    ],
)
def test_bad_thresholds(arch, message):
    sp = space("eemobilenetv3")
    base = {k: v for k, v in sp.middle().items() if k != "t"}
    with pytest.raises(UserError, match=message):
        sp.validate({**base, **arch})


def test_no_exit_bit_is_refused():
    sp = space("cbnmobilenetv3")
    base = {k: v for k, v in sp.middle().items() if k != "b"}
    with pytest.raises(UserError, match="no exit bit set"):
        sp.validate({**base, "b": [0, 0, 0, 0]})
    with pytest.raises(UserError, match="b\\[2\\] = 2 must be 0 or 1"):
        sp.validate({**base, "b": [0, 1, 2, 0]})


# ---- exact costs ------------------------------------------------------------------------------


class _Forced(nn.Module):
    """The real early exit with thresholds that make every sample leave at exit ``i``."""

    def __init__(self, net, i):
        super().__init__()
        self.net, self.policy = net, get_policy("score_margin")
        self.thr = [2.0] * net.n_exits
        if i < net.n_exits:
            self.thr[i] = -1.0

    def forward(self, x):
        return self.net.exit_forward(x, self.policy, self.thr)[0]


@pytest.mark.parametrize("name", SPACES)
@pytest.mark.parametrize("head", ["nachos", "edanas"])
def test_exit_costs_equal_hooks(name, head):
    """Analytic costs of the whole network and of every exit == hook counts on the built network
    (for each exit: the real early exit forced to leave there, so hooks see only what runs)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    for n_classes, (lr, ur, rstep) in ((10, (32, 56, 12)), (100, (40, 40, 1))):
        sp = space(name, lr=lr, ur=ur, rstep=rstep, exit_head=head)
        for a in sp.sample(3, rng):
            net = sp.build(a, n_classes=n_classes).eval()
            r = a["r"]
            whole = sp.costs(a, n_classes)
            hooks = count_costs(net, r, "cpu")
            assert [whole[k] for k in ("params", "macs", "activations")] == [
                hooks[k] / 1e6 for k in ("params", "macs", "activations")
            ]
            ec = sp.exit_counts(a, n_classes)
            assert len(ec["exit_macs"]) == net.n_exits + 1 == whole["n_exits"] + 1
            for i in range(net.n_exits + 1):
                assert count_costs(_Forced(net, i), r, "cpu")["macs"] == ec["exit_macs"][i]
            for i, h in enumerate(net.heads):
                assert sum(p.numel() for p in h.parameters()) == ec["head_params"][i]
            assert ec["exit_macs"][-1] / 1e6 == whole["macs"]
            assert whole["backbone_macs"] < whole["macs"] or net.n_exits == 0


def test_nachos_pooling_rule():
    """Each head pools (kernel 1 -> 2 -> 4) while its exit would cost at least as much as the next."""
    from EarlyExits.heads import head_counts
    from NasSearchSpace.ofa_mbv3_costs import analytic_counts, analytic_stage_counts

    sp = space("cbnmobilenetv3", lr=64, ur=64, exit_head="nachos")
    a = {**sp.middle(), "b": [1, 1, 1, 1]}
    plan = sp.exit_plan(a, 10)
    prefix = [analytic_stage_counts(sp._base(a), 10, 1.0)[s]["macs"] for s in plan.stages]
    alone = [
        p + head_counts("nachos", c, z, plan.n_out, k)["macs"]
        for p, c, z, k in zip(prefix, plan.channels, plan.sizes, plan.pools, strict=True)
    ]
    nxt = [*alone[1:], analytic_counts(sp._base(a), 10, 1.0)["macs"]]
    assert plan.pools[0] > 1  # the 16x16 map after stage 1 would be dearer than exit 2 unpooled
    for i, k in enumerate(plan.pools):
        assert alone[i] < nxt[i] or k == 4 or plan.sizes[i] // (2 * k) < 1
        if k > 1:  # one kernel less would not have been cheaper than the next exit
            smaller = (
                prefix[i] + head_counts("nachos", plan.channels[i], plan.sizes[i], plan.n_out, k // 2)["macs"]
            )
            assert smaller >= nxt[i]


# ---- policies, avg_macs, tuning -------------------------------------------------------------


def _outputs(logits, labels, conf=None):
    return Outputs([torch.tensor(lg, dtype=torch.float) for lg in logits], conf, torch.tensor(labels))


def test_policies_on_hand_made_logits():
    big = 10.0
    # exit 0: sample 0 certain (margin ~1), sample 1 split between two classes (margin 0)
    out = _outputs([[[big, 0, 0], [big, big, 0]], [[0, big, 0], [0, 0, big]]], [0, 2])
    margin = scores(out, get_policy("score_margin"))
    assert margin[0, 0] > 0.99 and abs(margin[1, 0]) < 1e-6
    ent = scores(out, get_policy("entropy"))
    assert ent[0, 0] > 0.99 and 0.3 < ent[1, 0] < 0.4  # two equal classes of three: 1 - log2/log3
    assert exit_index(margin, [0.5]).tolist() == [0, 1]
    # cumulative: p = 0.5 then 0.5 -> Q = 0.5, 0.75
    conf = [torch.tensor([0.5, 0.2]), torch.tensor([0.5, 0.5])]
    out3 = _outputs([[[1, 0]] * 2, [[1, 0]] * 2, [[1, 0]] * 2], [0, 0], conf)
    q = scores(out3, get_policy("cumulative"))
    assert torch.allclose(q[0], torch.tensor([0.5, 0.75])) and torch.allclose(q[1], torch.tensor([0.2, 0.6]))
    assert exit_index(q, [0.7, 0.7]).tolist() == [1, 2]


def test_avg_macs_counts_every_head_run():
    """Backbone prefix MACs 10, 20, final 50; heads 1 and 2: a sample leaving at exit 1 paid 20 + 1 + 2."""
    sp = space("eemobilenetv3")
    exit_macs = [10 + 1, 20 + 1 + 2, 50 + 1 + 2]
    assert avg_macs([0.5, 0.25, 0.25], exit_macs) == pytest.approx(0.5 * 11 + 0.25 * 23 + 0.25 * 53)
    # and the space's cumulative exit MACs add every head up to the exit
    a = {**sp.middle(), "t": [0.1, 0.1, 1.0, 1.0]}
    ec = sp.exit_counts(a, 10)
    from NasSearchSpace.ofa_mbv3_costs import analytic_stage_counts

    stage = analytic_stage_counts(sp._base(a), 10, 1.0)
    assert ec["exit_macs"][1] == stage[1]["macs"] + ec["head_macs"][0] + ec["head_macs"][1]


def test_tuning_repair_lowers_thresholds_until_within_budget():
    # three exits: early exit scores and correctness chosen by hand
    n = 10
    labels = torch.zeros(n, dtype=torch.long)
    right, wrong = [5.0, 0.0], [0.0, 5.0]
    lg0 = [right] * 6 + [wrong] * 4
    lg1 = [right] * 8 + [wrong] * 2
    lg2 = [right] * 10
    out = _outputs([lg0, lg1, lg2], labels.tolist())
    score = torch.stack([torch.linspace(0.05, 0.95, n), torch.linspace(0.05, 0.95, n)], dim=1)
    exit_macs = [1.0, 2.0, 10.0]
    thr = tune(out, score, exit_macs)  # no budget: best top-1 on the grid
    st = evaluate(out, score, thr, exit_macs)
    free = tune(out, score, exit_macs, mmax=3.0, top1min=0.0)
    st_free = evaluate(out, score, free, exit_macs)
    assert st_free.avg_macs <= 3.0 < st.avg_macs
    assert free[-1] <= thr[-1]  # the repair starts at the last early exit
    kept = tune(out, score, exit_macs, mmax=3.0, top1min=st.top1)  # no top-1 may be lost
    assert evaluate(out, score, kept, exit_macs).top1 >= st.top1


class _Poison:
    """A split that fails on any use: the test split, which tuning and training must not read."""

    def __getattr__(self, name):
        raise AssertionError(f"the test split was read ({name})")

    def __len__(self):
        raise AssertionError("the test split was read (len)")


def _ctx(sp, vld_size=100):
    import dataclasses

    from nas.data import load_dataset
    from nas.measures import EvalContext

    data = load_dataset("cifar10_embedded", vld_size=vld_size, seed=0)
    pick = np.sort(np.random.default_rng(0).choice(len(data.train), 640, replace=False))  # every class
    data = dataclasses.replace(data, train=data.train.subset(pick), test=_Poison())
    return EvalContext(sp, data, torch.device("cpu"), 10, seed=0, num_workers=0)


@pytest.mark.parametrize("name", SPACES)
def test_measure_and_trainers_never_read_the_test_split(name):
    """Training, threshold tuning and the exit statistics run on a dataset whose test split fails on
    any use; the losses of the trainers fall over a few steps; the report is consistent."""
    from nas.measures import MEASURES
    from nas.training.trainers import TRAINERS

    sp = space(name)
    a = {**sp.middle(), sp.exit_key: [1, 0, 1, 1] if name == "cbnmobilenetv3" else [0.1, 1.0, 0.2, 0.1]}
    ctx = _ctx(sp)
    torch.manual_seed(0)
    net = sp.build(a, n_classes=10)
    common = dict(n_epochs=3, steps_per_epoch=10, batch_size=32, base_lr=0.02)
    if sp.confidence:  # NACHOS with its MAC budget and support set, the backbone frozen
        trainer = TRAINERS.get("nachos")(**common, mmax=5.0, ee_warmup=1)
    else:
        trainer = TRAINERS.get("ee_joint")(**common)
    trainer.check(sp)
    from nas.scoring import batches_of

    x, y = next(iter(batches_of(ctx.data.train, 32, ctx.device, 64, 0, 0)))  # a batch of training images
    net.train()
    with torch.no_grad():
        before = trainer.loss(net, x, y)[0].item()
    trainer.train(net, a, ctx)
    net.train()
    with torch.no_grad():
        after = trainer.loss(net, x, y)[0].item()
    assert after < before
    measure = MEASURES.get("exits")()
    measure.check(sp)
    rep = measure.measure(net, a, ctx)
    assert sum(rep["exit_ratio"]) == pytest.approx(1.0) and len(rep["exit_ratio"]) == rep["n_exits"] + 1 == 4
    assert rep["avg_macs"] == pytest.approx(avg_macs(rep["exit_ratio"], rep["exit_macs"]))
    assert rep["avg_macs"] <= rep["exit_macs"][-1]
    assert len(rep["thresholds"]) == 3 and 0 <= rep["ece"] <= 100
    if name == "eemobilenetv3":
        assert rep["thresholds"] == [0.1, 0.2, 0.1]  # its genes
    net.eval()
    x, _ = next(iter(ctx.valid_batches(a, 64)))
    _check_real_exit(net, x, get_policy("cumulative" if sp.confidence else "score_margin"))


def test_parts_refuse_spaces_without_exits():
    from nas.measures import MEASURES
    from nas.training.trainers import TRAINERS

    base = get_search_space("mobilenetv3", lr=32, ur=32)
    with pytest.raises(UserError, match="needs an early-exit search space"):
        MEASURES.get("exits")().check(base)
    with pytest.raises(UserError, match="confidence unit"):
        TRAINERS.get("nachos")().check(space("eemobilenetv3"))
    with pytest.raises(UserError, match="confidence unit"):
        MEASURES.get("exits")(policy="cumulative").check(space("eemobilenetv3"))


# ---- training ---------------------------------------------------------------------------------


def test_mac_term_has_a_gradient_when_over_budget():
    conf = [torch.tensor([0.1, 0.2], requires_grad=True), torch.tensor([0.3, 0.1], requires_grad=True)]
    q = exit_probabilities(conf, 2, torch.device("cpu"))
    assert torch.allclose(q.sum(1), torch.ones(2))
    loss = mac_term(q, torch.tensor([1.0, 2.0, 10.0]), mmax=3.0)
    assert loss.item() > 0
    loss.backward()
    assert all(c.grad is not None and c.grad.abs().sum() > 0 and (c.grad < 0).all() for c in conf)
    # within budget: no gradient pressure
    assert mac_term(q.detach(), torch.tensor([1.0, 2.0, 10.0]), mmax=100.0).item() == 0


def _simulate(net, x, policy, thr):
    """Exit index and prediction per sample from every head run on every sample (simulated)."""
    with torch.no_grad():
        lg, cf = net.outputs(x)
    out = Outputs(lg, cf, torch.zeros(len(x), dtype=torch.long))
    st = evaluate(out, scores(out, policy), thr, [0.0] * (net.n_exits + 1))
    pred = torch.stack([t.argmax(1) for t in lg], 1).gather(1, st.exits[:, None])[:, 0]
    return st.exits, pred


def _check_real_exit(net, x, policy):
    """The inference that stops gives the simulated exits and predictions: at batch size 1 (same
    arithmetic up to the exit), and batched with thresholds in the widest gaps between scores
    (the shrinking batch may change the last bits of later exits' scores)."""
    with torch.no_grad():
        lg, cf = net.outputs(x)
    n = len(x)
    sc = scores(Outputs(lg, cf, torch.zeros(n, dtype=torch.long)), policy)
    thr = []
    for j in range(net.n_exits):
        v = torch.sort(sc[:, j]).values
        g = int(torch.argmax(v[1:] - v[:-1]))
        assert v[g + 1] - v[g] > 1e-6
        thr.append(float((v[g] + v[g + 1]) / 2))
    exits, pred = _simulate(net, x, policy, thr)
    assert 0 < (exits == 0).sum() < n  # some leave at the first exit, some go on
    logits, where = net.exit_forward(x, policy, thr)
    assert torch.equal(where, exits) and torch.equal(logits.argmax(1), pred)
    for i in range(n):
        real_logits, real_where = net.exit_forward(x[i : i + 1], policy, thr)
        sim_where, sim_pred = _simulate(net, x[i : i + 1], policy, thr)
        assert torch.equal(real_where, sim_where) and torch.equal(real_logits.argmax(1), sim_pred)


# ---- searches ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SPACES)
def test_search_of_each_space_on_real_data(tmp_path, name):
    """A small search of each space on the embedded CIFAR-10 (random supernet weights): exits
    trained per candidate, top-1 vs avg_macs (cbnmobilenetv3: NACHOS's penalised objective)."""
    from nas.io import save_checkpoint
    from nas.plugins import plugin_list
    from nas.search.description import RunSpec
    from nas.search.factory import build_run
    from nas.search.loop import Search

    torch.manual_seed(0)
    supernet = tmp_path / "sn.pth"
    save_checkpoint(supernet, {"state_dict": space(name).make_supernet(10).state_dict()})
    flat = dict(
        search_space=name, lr=32, ur=32, vld_size=100, bn_batches=1, supernet_path=str(supernet),
        device="cpu", n_epochs=1, steps_per_epoch=2, batch_size=32, measures=["accuracy", "exits"],
        n_iter=2, iterations=1, mmax=4.0, save=str(tmp_path / "run"),
    )  # fmt: skip
    if name == "cbnmobilenetv3":  # NACHOS: the surrogate predicts avg_macs, phi over NSGA-II's population
        flat.update(trainer="nachos", sec_obj="nachos", n_doe=10, predictor="ridge", w_gamma=0.0)
    else:  # EDANAS, with regularised evolution
        flat.update(
            trainer="ee_joint", sec_obj="avg_macs", strategy="re", n_doe=6, population=6, sample_size=3
        )
    run = build_run(RunSpec.from_flat(flat, plugins=plugin_list()), log=lambda *_: None)
    archive = Search(run, log=lambda *_: None).run()
    assert len(archive) == flat["n_doe"] + 2 and not archive.failed()
    for r in archive:
        m = r.metrics
        assert m["avg_macs"] <= m["macs"] + 1e-9 and len(m["exit_ratio"]) == m["n_exits"] + 1
        assert m["n_exits"] == run.space.n_exits(r.arch) and 0 <= m["top1"] <= 100
    csv = (tmp_path / "run" / "archive.csv").read_text().splitlines()[0].split(",")
    assert "avg_macs" in csv and "exit_ratio.0" in csv and ("f2_nachos" in csv or "f2_avg_macs" in csv)

    # post-search keeps the networks with K early exits, with the weights the search trained
    from nas.post_search import PostSearchConfig, post_search

    counts = [r.metrics["n_exits"] for r in archive]
    k = max(set(counts), key=counts.count)
    cfg = PostSearchConfig(expr=str(tmp_path / "run"), save=str(tmp_path / "final"), n=2, n_exits=k,
                           save_stats_csv=True, device="cpu")  # fmt: skip
    folders = post_search(cfg, log=lambda *_: None)
    assert len(folders) == min(2, counts.count(k))
    for f in folders:
        stats = json.loads((Path(f) / "net.stats").read_text())
        assert stats["metrics"]["n_exits"] == k and run.space.n_exits(stats["arch"]) == k
        assert (Path(f) / "ckpt.pth").is_file() and stats["weights"]["source"].endswith("ckpt.pth")
    rows = (tmp_path / "final" / "choices-trade-off.csv").read_text().splitlines()
    assert "avg_macs" in rows[0] and "n_exits" in rows[0]
    import dataclasses

    with pytest.raises(UserError, match="allows 0 to 4 early exits"):
        post_search(dataclasses.replace(cfg, n_exits=5), log=lambda *_: None)
    missing = next((c for c in range(5) if c not in counts), None)
    if missing is not None:
        with pytest.raises(UserError, match=f"no network of this run has {missing} early exits"):
            post_search(dataclasses.replace(cfg, n_exits=missing), log=lambda *_: None)


def test_train_py_ee(tmp_path):
    """train.py ee: a cbnmobilenetv3 network trained the NACHOS way from a supernet, thresholds tuned on
    the validation split, exits and batch-1 latency against the backbone measured on the test split."""
    from nas.io import read_json, save_checkpoint, write_json
    from nas.train_cli import main

    sp = space("cbnmobilenetv3")
    torch.manual_seed(0)
    supernet = tmp_path / "sn.pth"
    save_checkpoint(supernet, {"state_dict": sp.make_supernet(10).state_dict()})
    a = {**sp.middle(), "b": [0, 1, 0, 1]}
    write_json(tmp_path / "net" / "net.subnet", a)
    args = [
        "ee", "--subnet", str(tmp_path / "net" / "net.subnet"), "--search_space", "cbnmobilenetv3",
        "--supernet_path", str(supernet), "--epochs", "2", "--steps_per_epoch", "3", "--batch_size", "32",
        "--vld_size", "200", "--max_train_images", "600", "--latency_images", "6", "--num_workers", "0",
        "--mmax", "6", "--device", "cpu",
    ]  # fmt: skip
    assert main(args) == 0
    stats = read_json(tmp_path / "net" / "net.stats")
    ee, trained = stats["early_exit"], stats["trained"]
    assert (
        ee["split"] == "test" and ee["thresholds_from"] == "validation split" and len(ee["thresholds"]) == 2
    )
    assert ee["backbone_top1"] == pytest.approx(trained["top1"], abs=1e-6)
    assert sum(ee["exit_ratio"]) == pytest.approx(1.0) and ee["n_exits"] == 2
    assert ee["predicted_saving"] == pytest.approx(1 - ee["avg_macs"] / ee["backbone_macs"])
    lat = ee["latency"]
    assert lat["images"] == 6 and lat["backbone_ms"] > 0 and lat["early_exit_ms"] > 0
    assert (tmp_path / "net" / "ckpt.pth").is_file() and (tmp_path / "net" / "log.csv").is_file()
    # a single-exit network is refused with one line
    base = {k: v for k, v in a.items() if k != "b"}
    write_json(tmp_path / "one" / "net.subnet", base)
    with pytest.raises(UserError, match="is not a mobilenetv3 network|needs an early-exit search space"):
        main(["ee", "--subnet", str(tmp_path / "one" / "net.subnet"), "--search_space", "mobilenetv3"])


def test_export_keeps_the_early_exit(tmp_path):
    """tools/export.py on an early-exit network: TorchScript keeps the exit rule (logits and exit index
    equal PyTorch's real early exit); ONNX gets one file per stage, and chaining them with the rule
    its JSON describes gives PyTorch's exits."""
    import onnxruntime as ort

    from nas.io import read_json, save_checkpoint, write_json
    from tests.cli_here import run_main

    sp = space("eemobilenetv3", exit_head="nachos")
    torch.manual_seed(0)
    a = {**sp.middle(), "t": [0.1, 1.0, 1.0, 1.0]}  # one early exit: two stages
    net = sp.build(a, n_classes=10).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear):
                m.weight.mul_(20)  # spread the random heads' scores
    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        score = scores(
            Outputs(*net.outputs(x), torch.zeros(16, dtype=torch.long)), get_policy("score_margin")
        )
    v = torch.sort(score[:, 0]).values[4:12]  # exit 0 splits the samples in its scores' widest gap,
    g = int(torch.argmax(v[1:] - v[:-1]))  # far from any score; the final exit takes the others
    assert v[g + 1] - v[g] > 1e-4
    thr = [float(v[g] + v[g + 1]) / 2]
    d = tmp_path / "net"
    write_json(d / "net.subnet", a)
    write_json(d / "net.stats", {"metrics": {"thresholds": thr}})
    save_checkpoint(d / "ckpt.pth", {"state_dict": net.state_dict()})
    ref_logits, ref_exit = net.exit_forward(x, get_policy("score_margin"), thr)
    assert 0 < (ref_exit == 0).sum() < 16 and set(ref_exit.tolist()) == {0, 1}

    common = ["--subnet", d / "net.subnet", "--ckpt", d / "ckpt.pth", "--search_space", "eemobilenetv3",
              "--space_options", "exit_head=nachos"]  # fmt: skip
    p = run_main("tools.export", *common, "--format", "torchscript")
    assert p.returncode == 0, p.stderr
    with torch.no_grad():
        logits, where = torch.jit.load(str(d / "net.pt"))(x)
    assert torch.equal(where, ref_exit) and torch.allclose(logits, ref_logits, atol=1e-5)

    # the legacy exporter: a quarter of the dynamo exporter's time, which tests/test_export.py covers
    p = run_main("tools.export", *common, "--format", "onnx", "--exporter", "legacy", "--opset", "17")
    assert p.returncode == 0, p.stderr
    info = read_json(d / "net.onnx.json")
    assert info["early_exit"]["thresholds"] == pytest.approx(thr) and info["check"]["passed"]
    sessions = [ort.InferenceSession(str(d / f["file"])) for f in info["files"]]
    feats, where, alive = x.numpy(), np.full(16, 1), np.arange(16)
    for k, s in enumerate(sessions):
        feats, out = s.run(None, {s.get_inputs()[0].name: feats})
        if k == len(sessions) - 1:
            break
        e = np.exp(out - out.max(1, keepdims=True))
        top2 = np.sort(e / e.sum(1, keepdims=True), axis=1)[:, -2:]
        fire = top2[:, 1] - top2[:, 0] >= info["early_exit"]["thresholds"][k]
        where[alive[fire]] = k
        alive, feats = alive[~fire], feats[~fire]
    assert where.tolist() == ref_exit.tolist()
