"""HADAS's inner search: expected costs weighted by exit ratios, the exhaustive front, NSGA-II against
it, the ablation modes and bad inputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from hardware.hadas import (
    DVFS_GENES,
    ExitData,
    all_configs,
    backbone_costs,
    config_stats,
    evaluate,
    exhaustive_front,
    exit_data_from_outputs,
    hv_ratio,
    inner_search,
    non_dominated_3d,
)
from hardware.profiles import get_profile, profile_from_dict
from nas.errors import UserError

SRC = {"source": "test"}


def small_profile(static_w: float = 2.0) -> object:
    """Two domains, 3 and 2 levels (6 settings): compute on the gpu, memory on the emc, fixed host time."""
    return profile_from_dict({
        "name": "small", "dvfs": True, "dtype_bytes": {"value": 4, **SRC},
        "static_w": {"value": static_w, **SRC},
        "compute": {"domain": "gpu", "gmacs": {"value": 1.0, **SRC}},
        "memory": {"domain": "emc", "gbps": {"value": 2.0, **SRC}},
        "host": {"domain": None, "ms": {"value": 0.5, **SRC}},
        "domains": {
            "gpu": {"mhz": {"value": [250, 500, 1000], **SRC}, "p_max_w": {"value": 8.0, **SRC},
                    "v_min": {"value": 0.5, **SRC}, "v_max": {"value": 1.0, **SRC}},
            "emc": {"mhz": {"value": [500, 1000], **SRC}, "p_max_w": {"value": 2.0, **SRC},
                    "v_min": {"value": 1.0, **SRC}, "v_max": {"value": 1.0, **SRC}},
        },
    })  # fmt: skip


def synthetic(n: int, seed: int = 0) -> ExitData:
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    scores = np.clip(
        (1 - u)[:, None] * np.array([0.5, 0.6, 0.75, 0.9]) + 0.1 * rng.standard_normal((n, 4)), 0, 1
    )
    acc = np.array([0.45, 0.55, 0.65, 0.72, 0.78])
    correct = rng.random((n, 5)) < np.clip(acc[None] + 0.4 * (0.5 - u)[:, None], 0, 1)
    return ExitData(scores, correct, [1, 3, 6, 10, 14], [2, 4, 7, 10, 12], [0.3, 0.3, 0.4, 0.4],
                    [0.5, 0.5, 0.6, 0.6], "synthetic")  # fmt: skip


@pytest.fixture(scope="module")
def xavier():
    return get_profile("jetson-agx-xavier")


@pytest.fixture(scope="module")
def data():
    return synthetic(300)


@pytest.fixture(scope="module")
def fronts(data, xavier):
    return {m: exhaustive_front(data, xavier, mode=m) for m in ("joint", "exits", "dvfs")}


def test_expected_costs_weighted_by_exit_ratios_by_hand():
    """4 samples: thresholds 0.1 at exits 1 and 2 (levels 1), no exit at 3 and 4."""
    scores = [[0.5, 0.0, 0.0, 0.0], [0.05, 0.3, 0.9, 0.9], [0.0, 0.0, 0.9, 0.9], [0.0, 0.05, 0.0, 0.0]]
    correct = [[1, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    bb_macs, bb_mb = [1.0, 2.0, 4.0, 6.0, 10.0], [0.5, 1.0, 2.0, 3.0, 4.0]
    head_macs, head_mb = [0.1, 0.2, 0.3, 0.4], [0.05, 0.1, 0.15, 0.2]
    data = ExitData(scores, correct, bb_macs, bb_mb, head_macs, head_mb)
    p = small_profile()
    genes = np.array([[1, 1, 0, 0, 1, 0]])  # gpu at 500 MHz, emc at 500 MHz
    f = evaluate(data, p, genes)[0]
    # sample 0 leaves at exit 1 (right), sample 1 at exit 2 (wrong), 2 and 3 at the final (right, wrong)
    q = [0.25, 0.25, 0.0, 0.0, 0.5]
    path_macs = [1.0 + 0.1, 2.0 + 0.1 + 0.2, 0, 0, 10.0 + 0.1 + 0.2]
    path_mb = [0.5 + 0.05, 1.0 + 0.05 + 0.1, 0, 0, 4.0 + 0.05 + 0.1]
    # t = macs / 1 GMAC/s * (1000 / 500) + mb / 2 GB/s * (1000 / 500) + 0.5 ms host
    t = [m * 2.0 + b / 2.0 * 2.0 + 0.5 for m, b in zip(path_macs, path_mb, strict=True)]
    power = 2.0 + 8.0 * 0.5 * (((0.5 + 0.5 * (500 - 250) / 750) / 1.0) ** 2) + 2.0 * 0.5
    assert f[0] == pytest.approx(50.0)
    assert f[1] == pytest.approx(sum(qi * ti for qi, ti in zip(q, t, strict=True)))
    assert f[2] == pytest.approx(power * f[1])
    # HADAS's unweighted mean over exits would differ: the weighting is what makes it an expectation
    st = config_stats(data, genes[:, :4])
    assert st.ratio[0].tolist() == q and st.macs[0] == pytest.approx(np.dot(q, path_macs))


def test_exit_rule_matches_the_early_exit_plug_in():
    from EarlyExits.policies import exit_index

    data = synthetic(200, seed=3)
    grid = (0.1, 0.2, 0.4, 0.6)
    configs = all_configs(grid)[::37]
    st = config_stats(data, configs, grid)
    for c, ratio in zip(configs, st.ratio, strict=True):
        thr = [grid[t - 1] if t else 2.0 for t in c]  # no exit: a threshold no score reaches
        idx = exit_index(torch.tensor(data.scores), thr).numpy()
        assert np.allclose(np.bincount(idx, minlength=5) / data.n, ratio)


def brute_force_front(F: np.ndarray) -> set[tuple]:
    keep = set()
    for f in F:
        dominated = np.any(np.all(F <= f, axis=1) & np.any(F < f, axis=1))
        if not dominated:
            keep.add(tuple(np.round(f, 9)))
    return keep


def test_exhaustive_front_is_the_exact_non_dominated_set():
    data = synthetic(120, seed=1)
    p = small_profile()
    grid = (0.2, 0.5)
    fr = exhaustive_front(data, p, grid)
    genes = np.array([[*c, *s] for c in all_configs(grid) for s in p.settings()])
    F = evaluate(data, p, genes, grid)
    assert fr.evaluations == len(genes) == 81 * 6
    assert {tuple(np.round(f, 9)) for f in fr.F} == brute_force_front(F)
    assert np.allclose(evaluate(data, p, fr.genes, grid), fr.F)  # the genes give the points


def test_non_dominated_3d_with_ties():
    rng = np.random.default_rng(0)
    F = rng.integers(0, 6, size=(400, 3)).astype(float)
    got = non_dominated_3d(F)
    assert {tuple(f) for f in F[got]} == brute_force_front(F)
    assert len(got) == len({tuple(f) for f in F[got]})  # duplicates kept once


def test_search_never_beats_the_exhaustive_front(data, xavier, fronts):
    from pymoo.util.nds.non_dominated_sorting import find_non_dominated

    joint = fronts["joint"]
    assert joint.evaluations == 625 * 3654
    assert len(find_non_dominated(joint.F)) == len(joint.F)  # non-dominated
    for genes in DVFS_GENES:
        res = inner_search(data, xavier, 40, seed=1, dvfs_genes=genes)
        assert res.evaluations <= 40 and len(res.F)
        assert np.allclose(evaluate(data, xavier, res.genes), res.F)
        tol = 1e-9 * np.abs(joint.F).max(0)  # the same point, summed in another order
        for f in res.F:  # no search point strictly dominates an exhaustive one
            assert not np.any(np.all(f <= joint.F + tol, axis=1) & np.any(f < joint.F - tol, axis=1))
        r = hv_ratio(res, joint)
        assert 0.0 < r <= 1.0 + 1e-9, (genes, r)
    assert hv_ratio(joint, joint) == pytest.approx(1.0)


def test_exits_only_and_dvfs_only_are_subsets_of_joint(data, xavier, fronts):
    joint = fronts["joint"].F
    top = xavier.max_setting()
    assert np.all(fronts["exits"].genes[:, 4:] == top)
    assert np.all(fronts["dvfs"].genes[:, :4] == 0)
    for mode in ("exits", "dvfs"):
        for f in fronts[mode].F:  # every point is weakly dominated by a point of the joint front
            assert np.any(np.all(joint <= f + 1e-12, axis=1))
        assert hv_ratio(fronts[mode], fronts["joint"]) <= 1.0 + 1e-9
        res = inner_search(data, xavier, 30, seed=0, mode=mode)
        assert np.all(res.genes[:, 4:] == top) if mode == "exits" else np.all(res.genes[:, :4] == 0)


def test_collinear_profile_warns(data):
    with pytest.warns(UserWarning, match="collinear with latency on profile 'local-vm'"):
        fr = exhaustive_front(data, "local-vm")
    assert fr.notes and np.allclose(fr.F[:, 2] / fr.F[:, 1], 7.5)


def test_bad_inputs_are_one_line_errors(data, xavier):
    z5, z4 = [0] * 5, [0] * 4
    cases = [
        (lambda: exhaustive_front(data, "jetson-nano"), "unknown device profile 'jetson-nano'"),
        (lambda: ExitData(np.zeros((5, 3)), np.zeros((5, 5)), z5, z5, z4, z4), r"shape \[N > 0, 4\]"),
        (lambda: ExitData(np.zeros((5, 4)), np.zeros((4, 5)), z5, z5, z4, z4), "correctness"),
        (lambda: ExitData(np.zeros((5, 4)), np.zeros((5, 5)), z4, z5, z4, z4), "backbone_macs"),
        (lambda: exhaustive_front(data, xavier, mode="both"), "unknown inner-search mode 'both'"),
        (lambda: inner_search(data, xavier, 10, dvfs_genes="all"), "unknown dvfs_genes 'all'"),
        (lambda: inner_search(data, xavier, 0), "n_evals >= 1"),
        (lambda: evaluate(data, xavier, np.zeros((1, 5), dtype=int)), "4 threshold levels \\+ 3 DVFS levels"),
        (lambda: config_stats(data, np.array([[5, 0, 0, 0]])), "threshold levels must be in 0..4"),
        (lambda: hv_ratio(np.zeros((2, 3)), np.zeros((2, 2))), "same m"),
    ]  # fmt: skip
    for fn, message in cases:
        with pytest.raises(UserError, match=message) as e:
            fn()
        assert "\n" not in str(e.value)


def test_exit_data_from_an_early_exit_network():
    from EarlyExits.policies import Outputs
    from nas.space import SEARCH_SPACES

    space = SEARCH_SPACES.get("eemobilenetv3")(lr=32, ur=32)
    arch = space.middle()
    costs = backbone_costs(space, arch, 10, dtype_bytes=4)
    full = space.validate({**arch, "t": [0.1] * 4})
    ref = space.exit_costs(full, 10)
    paths = costs["backbone_macs"] + np.append(np.cumsum(costs["head_macs"]), costs["head_macs"].sum())
    assert np.allclose(paths, ref["exit_macs"]) and np.allclose(costs["head_macs"], ref["head_macs"][:4])
    assert costs["backbone_macs"][-1] == pytest.approx(space.costs(full, 10)["backbone_macs"])
    assert np.all(costs["backbone_mb"] > 0) and np.all(np.diff(costs["backbone_mb"]) > 0)
    g = torch.Generator().manual_seed(0)
    out = Outputs(
        [torch.randn(50, 10, generator=g) for _ in range(5)], None, torch.randint(0, 10, (50,), generator=g)
    )
    d = exit_data_from_outputs(out, "score_margin", costs, "test")
    assert d.scores.shape == (50, 4) and d.correct.shape == (50, 5)
    assert d.correct[:, 2].tolist() == (out.logits[2].argmax(1) == out.labels).tolist()
    two = Outputs(out.logits[:3], None, out.labels)
    with pytest.raises(UserError, match="a head at each of the 4 boundaries; the network has 2"):
        exit_data_from_outputs(two, "score_margin", costs)


def test_grid_of_every_config_and_itertools_agree():
    assert {tuple(c) for c in all_configs((0.1, 0.5))} == set(itertools.product(range(3), repeat=4))
