"""Benchmark oracles: ofa_note10 (OFA predictor + Note10 tables) and nb201 (NAS-Bench-201 table)."""

import csv
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import nb201
from benchmarks.nb201 import NB201Evaluator, hv_ratio, random_search_hv_ratios, true_front
from benchmarks.ofa_note10 import (
    OFANote10Evaluator,
    encode_arch,
    encode_archs,
    ofa_tutorial_module,
    run_evolution_finder,
)
from nas.errors import UserError
from nas.evaluator import EVALUATORS
from nas.io import load_checkpoint
from nas.space import get_search_space

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "data" / "nasbench201" / "nb201_12epoch_accuracies.csv"
ROW1 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(scope="module")
def ofa_eval():
    return OFANote10Evaluator()


@pytest.fixture(scope="module")
def ofa_predictor():
    """The ofa package's own tutorial predictor with the same weights (its download switched off)."""
    cls = ofa_tutorial_module("accuracy_predictor").AccuracyPredictor
    predictor = cls(pretrained=False, device="cpu")
    predictor.model.load_state_dict(load_checkpoint(ROOT / "data" / "ofa" / "acc_predictor.pth"))
    predictor.model.eval()
    return predictor


def ofa_sample(arch):
    return {"ks": list(arch["ks"]), "e": list(arch["e"]), "d": list(arch["d"]), "r": [arch["r"]]}


def test_both_oracles_are_registered():
    assert EVALUATORS.get("ofa_note10") is OFANote10Evaluator
    assert EVALUATORS.get("nb201") is NB201Evaluator


# ---- ofa_note10 ---------------------------------------------------------------------------


def test_encoding_layout():
    arch = {"ks": [3, 5, 7, 5] * 5, "e": [6, 4, 3, 3] * 5, "d": [2, 3, 4, 2, 3], "r": 192, "w": 1.2}
    x = encode_arch(arch)
    assert x.shape == (128,) and x.dtype == np.float32
    assert set(np.unique(x)) == {0.0, 1.0}
    assert x.sum() == 2 * sum(arch["d"]) + 1
    assert x[0:3].tolist() == [1, 0, 0] and x[3:6].tolist() == [0, 1, 0]  # blocks 0, 1: k 3, 5
    assert x[6:12].tolist() == [0] * 6  # blocks 2, 3 of stage 0 (depth 2): inactive
    assert x[60:63].tolist() == [0, 0, 1] and x[63:66].tolist() == [0, 1, 0]  # e 6, 4
    assert x[66:72].tolist() == [0] * 6
    assert x[120:128].tolist() == [0, 0, 0, 0, 0, 1, 0, 0]  # (192 - 112) // 16 = 5
    assert x[3 * 10 : 3 * 11].tolist() == [0, 0, 1]  # block 10 = stage 2, block 2 (depth 4): k 7


def test_encoding_equals_ofa_spec2feats(ofa_eval, ofa_predictor):
    archs = ofa_eval.space.sample(300, np.random.default_rng(0))
    ofa_feats = torch.stack(
        [ofa_predictor.spec2feats(list(a["ks"]), list(a["e"]), list(a["d"]), a["r"]) for a in archs]
    )
    assert torch.equal(torch.from_numpy(encode_archs(archs)), ofa_feats)


def test_predictor_equals_ofa_predictor(ofa_eval, ofa_predictor):
    archs = ofa_eval.space.sample(500, np.random.default_rng(1))
    ofa_pred = ofa_predictor.predict_accuracy([ofa_sample(a) for a in archs])  # one batch
    ours = ofa_eval.measure_many(archs)
    assert [m["top1"] for m in ours] == [100.0 * p for p in ofa_pred[:, 0].tolist()]
    assert torch.equal(ofa_eval.predictor.predict_features(encode_archs(archs)), ofa_pred)
    for arch in archs[:20]:  # single archs: batch of one on both sides
        assert (
            ofa_eval.measure(arch)["top1"]
            == 100.0 * ofa_predictor.predict_accuracy([ofa_sample(arch)]).item()
        )
    top1 = [m["top1"] for m in ours]
    assert 70 < min(top1) and max(top1) < 85  # ImageNet top-1 of OFA w1.2 subnets, percent


def test_measure_counts_and_latency(ofa_eval):
    archs = ofa_eval.space.sample(5, np.random.default_rng(2))
    start = ofa_eval.n_evals
    one = ofa_eval.measure(archs[0])
    many = ofa_eval.measure_many(archs)
    assert ofa_eval.n_evals - start == 6
    assert set(one) == {"top1", "latency"}
    assert [m["latency"] for m in many] == [ofa_eval.latency_table.latency(a) for a in archs]
    assert one["top1"] == pytest.approx(many[0]["top1"], abs=1e-4)  # batch vs single: float32 rounding
    results = ofa_eval.evaluate(archs[:2] + [{**archs[2], "r": 200}])
    ids = [ofa_eval.space.arch_id(a) for a in archs[:2]]
    assert all(results[i].ok for i in ids)
    failed = [r for r in results.values() if not r.ok]
    assert (
        len(failed) == 1
        and failed[0].failure["type"] == "UserError"
        and "200" in failed[0].failure["message"]
    )
    with pytest.raises(UserError, match="resolution 200"):
        ofa_eval.measure_many([{**archs[0], "r": 200}])
    with pytest.raises(UserError, match="width"):
        ofa_eval.measure({**archs[0], "w": 1.0})


def test_data_dir_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        OFANote10Evaluator(data_dir=str(tmp_path / "nope"))
    for r in (160, 176, 192, 208, 224):
        (tmp_path / f"note10_{r}_lookup_table.yaml").write_bytes(
            (ROOT / "data" / "ofa" / f"note10_{r}_lookup_table.yaml").read_bytes()
        )
    with pytest.raises(UserError, match="acc_predictor.pth.*does not exist"):
        OFANote10Evaluator(data_dir=str(tmp_path))
    torch.save({"0.weight": torch.zeros(3, 3)}, tmp_path / "acc_predictor.pth")
    with pytest.raises(UserError, match="not OFA's accuracy predictor"):
        OFANote10Evaluator(data_dir=str(tmp_path))


def test_evolution_finder_tiny(ofa_eval):
    state = random.getstate(), np.random.get_state()[1].copy()
    result = run_evolution_finder(22.0, population_size=10, generations=3, seed=1, evaluator=ofa_eval)
    assert random.getstate() == state[0] and np.array_equal(np.random.get_state()[1], state[1])
    assert result.n_evals == 10 + 3 * 10
    assert result.latency <= 22.0
    assert result.latency == ofa_eval.latency_table.latency(result.arch)
    assert result.top1 == pytest.approx(ofa_eval.measure(result.arch)["top1"], abs=1e-4)
    ofa_eval.space.validate(result.arch)
    again = run_evolution_finder(22.0, population_size=10, generations=3, seed=1, evaluator=ofa_eval)
    assert again == result
    # outside EvolutionFinder's own [15, 60] ms range (where it would ask on stdin) it still runs
    low = run_evolution_finder(14.0, population_size=10, generations=2, seed=0, evaluator=ofa_eval)
    assert low.latency <= 14.0


def test_evolution_finder_rejects_impossible_constraint(ofa_eval):
    with pytest.raises(UserError, match="fastest subnet"):
        run_evolution_finder(9.0, population_size=10, generations=1, evaluator=ofa_eval)
    with pytest.raises(UserError, match="generations"):
        run_evolution_finder(25.0, population_size=10, generations=0, evaluator=ofa_eval)


# ---- nb201 --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def csv_rows():
    with open(CSV, newline="") as f:
        return list(csv.DictReader(f))


def test_table_covers_every_cell(csv_rows):
    table = nb201.load_table()
    assert len(table.archs) == 15625
    assert set(table.archs) == set(get_search_space("nb201").all_archs())
    assert table.archs[1] == csv_rows[1]["cellstr"] == ROW1


@pytest.mark.parametrize(
    "dataset,prefix", [("cifar10", "cifar10"), ("cifar100", "cifar100"), ("imagenet16", "imagenet")]
)
def test_known_row(csv_rows, dataset, prefix):
    ev = NB201Evaluator(dataset=dataset)
    m = {**ev.measure(ROW1), **ev.costs(ROW1)}
    assert m["top1"] == float(csv_rows[1][f"{prefix}-val"])
    assert m["top1_test"] == float(csv_rows[1][f"{prefix}-test"])
    space = get_search_space("nb201")
    n_classes, r = {"cifar10": (10, 32), "cifar100": (100, 32), "imagenet16": (120, 16)}[dataset]
    assert m["flops"] == m["macs"] == space.flops(ROW1, n_classes, r)
    assert {k: m[k] for k in ("params", "macs", "activations")} == space.costs(ROW1, n_classes, r)
    assert ev.n_evals == 1


def test_row1_values():
    ev = NB201Evaluator(dataset="cifar10")
    m = {**ev.measure(ROW1), **ev.costs(ROW1)}
    assert m["top1_test"] == 88.22 and m["top1"] == pytest.approx(82.834)
    assert m["flops"] == 113.95136  # 3 x 3x3 conv edges: 7.78304 + 3 x 35.3792
    assert NB201Evaluator(dataset="ImageNet16-120").measure(ROW1)["top1_test"] == pytest.approx(33.8)


def test_nb201_bad_inputs(tmp_path):
    with pytest.raises(
        UserError, match="unknown NAS-Bench-201 dataset 'svhn'; choose one of: cifar10, cifar100, imagenet16"
    ):
        NB201Evaluator(dataset="svhn")
    ev = NB201Evaluator()
    with pytest.raises(UserError, match="unknown operation 'conv_5x5'"):
        ev.measure(ROW1.replace("nor_conv_3x3", "conv_5x5"))
    result = ev.evaluate(["|none~0|+"])
    (only,) = result.values()
    assert not only.ok and only.failure["type"] == "UserError"
    small = tmp_path / "one_row.csv"
    with open(CSV) as f:
        small.write_text("".join(f.readline() for _ in range(2)))
    with pytest.raises(UserError, match="is not in the NAS-Bench-201 table"):
        NB201Evaluator(table=small).measure(ROW1)
    with pytest.raises(UserError, match="cannot read"):
        NB201Evaluator(table=tmp_path / "missing.csv")


def test_true_front_is_non_dominated():
    ev = NB201Evaluator(dataset="cifar10")
    points = ev.all_points()
    for dataset in ("cifar10", "cifar100", "imagenet16"):
        front = true_front(dataset)
        pts = NB201Evaluator(dataset=dataset).all_points()
        for p in front.points:  # nothing in the table dominates a front point
            dominated = np.all(pts <= p, axis=1) & np.any(pts < p, axis=1)
            assert not dominated.any()
        # every cell is weakly dominated by a front point
        covered = np.zeros(len(pts), dtype=bool)
        for p in front.points:
            covered |= np.all(pts >= p, axis=1)
        assert covered.all()
        assert np.all(np.diff(front.points[:, 1]) > 0) and np.all(np.diff(front.points[:, 0]) < 0)
        assert front.ideal.tolist() == [front.points[:, 0].min(), front.points[:, 1].min()]
        assert hv_ratio(front.points, dataset) == 1.0
        assert hv_ratio(pts, dataset) == 1.0
        assert len(front.archs) == len(front.points)
        ev_ds = NB201Evaluator(dataset=dataset)
        for arch, (err, flops) in zip(front.archs, front.points, strict=True):
            assert (100.0 - ev_ds.measure(arch)["top1"], ev_ds.costs(arch)["flops"]) == (err, flops)
    front = true_front("cifar10")
    assert front.points[0, 1] == 7.78304  # the cheapest cells are on the front
    worst = points[np.argmax(points[:, 0])]
    assert hv_ratio([worst]) == 0.0
    assert hv_ratio([front.nadir]) == 0.0
    singles = [hv_ratio([p]) for p in points[:1000]]  # one random cell alone: mostly worthless
    assert np.median(singles) == 0.0 and np.mean(singles) < 0.2
    assert 0 < hv_ratio([points[1]]) < 0.3  # row 1 (17.2% error, 114 MFLOPs) alone
    assert hv_ratio(np.vstack([front.points, points[:50]])) == 1.0


def test_random_search_anchors():
    """B2's anchors (CIFAR-10): random search averages 0.864 at 100 evaluations, 0.946 at 500."""
    assert np.mean(random_search_hv_ratios(100, seeds=range(300))) == pytest.approx(0.864, abs=0.01)
    assert np.mean(random_search_hv_ratios(500, seeds=range(300))) == pytest.approx(0.946, abs=0.01)
