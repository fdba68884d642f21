"""Surrogates (acc_predictor): registry, shapes, determinism, accuracy, Adaptive Switching, errors."""

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats

from acc_predictor.adaptive_switching import AdaptiveSwitching
from acc_predictor.common import CategoricalCodes, LinearBlocks, value_groups
from nas.errors import UserError
from nas.surrogate import (
    SURROGATES,
    Surrogate,
    fit_surrogate,
    get_surrogate,
    kfold_indices,
    list_surrogates,
    quality,
    surrogate_quality,
)

NAMES = list_surrogates()
W = np.random.default_rng(2024).uniform(0.2, 1.0, 46)


def genes(n: int, rng: np.random.Generator) -> np.ndarray:
    """Like OFA MobileNetV3 genes: 45 in {0, 1, 2} (kernel, expand, depth) and a resolution in 0..4."""
    X = rng.integers(0, 3, (n, 46)).astype(float)
    X[:, 45] = rng.integers(0, 5, n)
    return X


def smooth(X: np.ndarray) -> np.ndarray:
    """Weighted sum of the genes plus small interactions."""
    return X @ W + 0.3 * X[:, 0] * X[:, 1] - 0.2 * X[:, 2] * X[:, 45]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X, Xt = genes(100, rng), genes(300, rng)
    return X, smooth(X), Xt, smooth(Xt)


def test_registry_lists_and_rejects():
    assert NAMES == ["as", "carts", "gp", "mlp", "rbf", "ridge"]
    with pytest.raises(
        UserError, match="unknown surrogate 'nope'; choose one of: as, carts, gp, mlp, rbf, ridge"
    ):
        get_surrogate("nope", np.random.default_rng(0))
    with pytest.raises(ValueError, match="registered twice"):
        SURROGATES.register("rbf")(type(SURROGATES.get("rbf")))


@pytest.mark.parametrize("name", NAMES)
def test_fit_predict_shapes(name, data):
    X, y, Xt, _ = data
    model = get_surrogate(name, np.random.default_rng(0))
    assert isinstance(model, Surrogate) and model.name == name
    assert model.fit(X, y) is model
    for m in (0, 1, 7):
        p = model.predict(Xt[:m])
        assert p.shape == (m,) and p.dtype == float and np.all(np.isfinite(p))
    assert model.predict(Xt[:5].astype(int).tolist()).shape == (5,)  # any array-like of numbers


# Kendall tau of 300 held-out points after training on 100 (measured over 8 seeds: rbf, gp and as
# 0.92-0.94, ridge 0.93-0.95, mlp 0.76-0.81, carts 0.45-0.56). A constant or shuffled prediction
# scores about 0.
MIN_TAU = {"rbf": 0.85, "gp": 0.85, "ridge": 0.85, "as": 0.85, "mlp": 0.65, "carts": 0.35}


@pytest.mark.parametrize("name", NAMES)
def test_ranks_a_smooth_function(name, data):
    X, y, Xt, yt = data
    pred = get_surrogate(name, np.random.default_rng(1)).fit(X, y).predict(Xt)
    tau = stats.kendalltau(yt, pred).statistic
    assert tau > MIN_TAU[name], f"{name}: tau {tau:.3f}"


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_predictions_and_no_global_random_state(name, data):
    X, y, Xt, _ = data
    np_state, torch_state = np.random.get_state()[1].copy(), torch.random.get_rng_state().clone()
    a = get_surrogate(name, np.random.default_rng(5)).fit(X, y).predict(Xt)
    b = get_surrogate(name, np.random.default_rng(5)).fit(X, y).predict(Xt)
    np.testing.assert_array_equal(a, b)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    if name in ("carts", "mlp"):  # these do draw from the generator: another seed, another model
        c = get_surrogate(name, np.random.default_rng(6)).fit(X, y).predict(Xt)
        assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", NAMES)
def test_degenerate_data_does_not_crash(name):
    rng = np.random.default_rng(3)
    X = genes(20, rng)
    cases = {
        "constant y": (X, np.full(20, 0.25)),
        "duplicate rows": (np.vstack([X[:10], X[:10]]), smooth(X[:10]).repeat(2) + np.tile([0.0, 0.1], 10)),
        "constant features": (np.hstack([X[:, :4], np.ones((20, 42))]), smooth(X)),
        "identical rows": (np.ones((20, 46)), np.arange(20.0)),
    }
    for case, (Xc, yc) in cases.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no silent numerical trouble either
            p = get_surrogate(name, np.random.default_rng(0)).fit(Xc, yc).predict(Xc)
        assert p.shape == (20,) and np.all(np.isfinite(p)), case
        if case == "constant y":
            np.testing.assert_allclose(p, 0.25, atol=0.02)
        if case == "identical rows":  # nothing to tell the rows apart: predict about their mean
            np.testing.assert_allclose(p, 9.5, atol=0.5)


def test_rbf_interpolates_and_averages_duplicates():
    rng = np.random.default_rng(4)
    X = genes(40, rng)
    y = smooth(X)
    model = get_surrogate("rbf", rng).fit(X, y)
    np.testing.assert_allclose(model.predict(X), y, atol=1e-6)
    X2 = np.vstack([X, X[:5]])
    y2 = np.concatenate([y, y[:5] + 1.0])  # the same 5 points again, 1 higher
    np.testing.assert_allclose(get_surrogate("rbf", rng).fit(X2, y2).predict(X[:5]), y[:5] + 0.5, atol=1e-6)


def test_quality_by_hand():
    q = quality([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0])
    assert q["rmse"] == pytest.approx(math.sqrt(0.5))
    assert q["rho"] == pytest.approx(0.8)  # 1 - 6 * (0 + 1 + 1 + 0) / (4 * 15)
    assert q["tau"] == pytest.approx(2 / 3)  # 5 concordant pairs, 1 discordant, of 6
    q = quality([1.0, 1.0, 1.0], [0.0, 1.0, 2.0])  # the truth has no ranking
    assert q["rmse"] == pytest.approx(math.sqrt(2 / 3)) and math.isnan(q["rho"]) and math.isnan(q["tau"])
    assert quality([1.0, 2.0, 3.0], [5.0, 5.0, 5.0])["tau"] == 0.0  # a constant prediction ranks nothing


def test_surrogate_quality_matches_a_hand_computed_cross_validation():
    X = np.array([[i % 4, i // 4] for i in range(12)], dtype=float)
    y = X[:, 0] ** 2 + X[:, 1] + 0.1 * X[:, 0] * X[:, 1]
    got = surrogate_quality("rbf", X, y, np.random.default_rng(7), k=3)

    rng = np.random.default_rng(7)  # replay: the folds first, then one model per fold
    rmse, tau = [], []
    for test in kfold_indices(12, 3, rng):
        train = np.setdiff1d(np.arange(12), test)
        pred = get_surrogate("rbf", rng).fit(X[train], y[train]).predict(X[test])
        rmse.append(math.sqrt(sum((p - t) ** 2 for p, t in zip(pred, y[test], strict=True)) / len(test)))
        tau.append(stats.kendalltau(y[test], pred).statistic)
    assert sorted(np.concatenate(kfold_indices(12, 3, np.random.default_rng(7)))) == list(range(12))
    assert got["rmse"] == pytest.approx(np.mean(rmse))
    assert got["tau"] == pytest.approx(np.mean(tau))
    assert got["tau_std"] == pytest.approx(np.std(tau))
    assert got["k"] == 3 and got["n"] == 12
    assert 0 < got["rmse"] < np.std(y) and -1 <= got["rho"] <= 1


def test_constant_target_reports_nan_tau():
    X = genes(30, np.random.default_rng(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q = surrogate_quality("gp", X, np.ones(30), np.random.default_rng(0))
    assert math.isnan(q["tau"]) and math.isnan(q["rho"]) and q["rmse"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    "target, winners",
    [
        (lambda X: X @ W, {"rbf", "gp", "ridge"}),  # linear: exact for these, trees are step functions
        # steps on 3 of 46 genes: trees split on them, distance-based models see 43 irrelevant genes
        (lambda X: 3.0 * (X[:, 0] == 2) + 2.0 * ((X[:, 1] == 0) & (X[:, 2] > 0)), {"carts"}),
    ],
    ids=["linear", "steps"],
)
def test_adaptive_switching_picks_the_model_that_fits(target, winners):
    rng = np.random.default_rng(0)
    X = genes(80, rng)
    model, q = fit_surrogate("as", X, target(X), rng)
    assert q["chosen"] == model.chosen and model.chosen in winners
    cands = q["candidates"]
    assert set(cands) == {"ridge", "gp", "rbf", "carts", "mlp"}
    for s in cands.values():
        assert s["score"] == pytest.approx(s["tau"] - s["tau_std"])
        assert s["score"] <= cands[model.chosen]["score"]
    losers = [s["score"] for c, s in cands.items() if c not in winners]
    assert cands[model.chosen]["score"] > max(losers) + 0.1  # a clear win, not a coin flip
    assert q["tau"] == cands[model.chosen]["tau"] and q["rmse"] == cands[model.chosen]["rmse"]
    # predict delegates to the refitted winner
    np.testing.assert_array_equal(model.predict(X), model.model_.predict(X))


def test_fit_surrogate_returns_a_fitted_model_and_its_quality(data):
    X, y, Xt, _ = data
    model, q = fit_surrogate("gp", X, y, np.random.default_rng(0), k=4)
    assert model.predict(Xt).shape == (300,)
    assert set(q) == {"rmse", "rho", "tau", "tau_std", "k", "n"}
    assert q["k"] == 4 and q["n"] == 100 and q["tau"] > 0.8
    assert all(type(v) in (float, int) for v in q.values())  # plain numbers for the run statistics


def test_carts_threads_do_not_change_the_model(data, monkeypatch):
    X, y, Xt, _ = data
    threaded = get_surrogate("carts", np.random.default_rng(2)).fit(X, y)
    monkeypatch.setattr(SURROGATES.get("carts"), "n_threads", 1)
    serial = get_surrogate("carts", np.random.default_rng(2)).fit(X, y)
    np.testing.assert_array_equal(threaded.predict(Xt), serial.predict(Xt))
    np.testing.assert_array_equal(threaded.feature_importances_, serial.feature_importances_)


def test_carts_importances():
    rng = np.random.default_rng(0)
    X = genes(200, rng)
    X[:, 10] = 1.0  # a constant gene can never be split on
    y = 3.0 * X[:, 0] + X[:, 1]  # genes 2..45 have no influence
    imp = get_surrogate("carts", rng).fit(X, y).feature_importances_
    assert imp.shape == (46,) and imp.sum() == pytest.approx(1.0)
    assert np.argmax(imp) == 0 and np.argsort(imp)[-2] == 1
    assert imp[10] == 0.0
    # Trees whose feature subset lacks genes 0 and 1 can only split on the others, so those get
    # a little importance each (measured: at most 0.02), an order of magnitude below gene 0.
    assert imp[2:].max() < 0.05 and imp[2:].max() < imp[0] / 10


@pytest.mark.parametrize(
    "X, y, match",
    [
        ([[0.0, np.nan]] * 12, np.arange(12.0), "X has 12 NaN/inf value"),
        ([[0.0, 1.0]] * 12, [1.0] * 11 + [np.inf], "y has 1 NaN/inf value.*index 11"),
        ([[0.0, 1.0]] * 12, np.arange(11.0), "X has 12 rows but y has 11 values"),
        (np.arange(12.0), np.arange(12.0), "X must be 2-D"),
        ([["a", "b"]] * 12, np.arange(12.0), "not numeric"),
        (np.zeros((2, 3)), [1.0, 2.0], "needs at least 3 samples to fit, got 2"),
    ],
)
def test_bad_inputs_to_fit(X, y, match):
    with pytest.raises(UserError, match=match):
        get_surrogate("rbf", np.random.default_rng(0)).fit(X, y)


def test_bad_inputs_to_cross_validation_and_predict(data):
    X, y, *_ = data
    rng = np.random.default_rng(0)
    with pytest.raises(
        UserError, match="5-fold cross-validation of surrogate 'gp' needs at least 10 samples, got 6"
    ):
        surrogate_quality("gp", X[:6], y[:6], rng)
    with pytest.raises(UserError, match="integer k >= 2"):
        surrogate_quality("gp", X, y, rng, k=1)
    with pytest.raises(UserError, match="unknown surrogate 'svm'.*as, carts, gp, mlp, rbf, ridge"):
        surrogate_quality("svm", X, y, rng)
    with pytest.raises(
        UserError, match=r"'as' needs at least 10 samples for 5-fold cross-validation .* got 9"
    ):
        fit_surrogate("as", X[:9], y[:9], rng)
    with pytest.raises(UserError, match="NaN/inf"):
        fit_surrogate("as", np.where(X == 2, np.nan, X), y, rng)
    model = get_surrogate("carts", rng)
    with pytest.raises(RuntimeError, match="not fitted"):
        model.predict(X)
    model.fit(X, y)
    with pytest.raises(UserError, match="X has 45 features but the model was fitted on 46"):
        model.predict(X[:, :45])
    with pytest.raises(UserError, match="NaN/inf"):
        model.predict(np.full((2, 46), np.inf))


def test_adaptive_switching_takes_k_and_candidates(data):
    X, y, *_ = data
    model = AdaptiveSwitching(np.random.default_rng(0), k=3, candidates=("rbf", "carts")).fit(X[:40], y[:40])
    assert set(model.scores) == {"rbf", "carts"} and model.chosen == "rbf"
    assert all(len(s["tau_folds"]) == 3 for s in model.scores.values())
    with pytest.raises(ValueError, match="other surrogates"):
        AdaptiveSwitching(np.random.default_rng(0), candidates=("as", "rbf"))


# ---- feature transforms, ridge, the GP's blocks -----------------------------------------------


def ofa_like(n: int, rng: np.random.Generator) -> np.ndarray:
    """Like ``OFAMobileNetV3Space.features``: kernel/expand genes 1..3 (0 when the block is off),
    depths 0..2, resolution 0..4; blocks 0-1 of each stage always run, 2-3 only with depth >= 1, 2."""
    X = np.zeros((n, 46))
    X[:, 40:45] = rng.integers(0, 3, (n, 5))
    X[:, 45] = rng.integers(0, 5, n)
    for j in range(20):
        on = j % 4 < X[:, 40 + j // 4] + 2
        X[:, j] = np.where(on, rng.integers(1, 4, n), 0)
        X[:, 20 + j] = np.where(on, rng.integers(1, 4, n), 0)
    return X


@pytest.mark.parametrize("kind", ["onehot", "ordinal"])
def test_categorical_codes_round_trip(kind):
    rng = np.random.default_rng(0)
    X = np.column_stack(
        [
            rng.integers(0, 4, 50),  # 4 levels
            rng.choice([-1.5, 2.0, 7.0], 50),  # any values, not only 0..k
            np.full(50, 3.0),  # constant: not encoded
            rng.integers(0, 2, 50),  # binary
            rng.normal(size=50),  # 50 distinct values > max_levels: not encoded
        ]
    )
    codes = CategoricalCodes(X, kind, max_levels=16)
    assert codes.columns_ == [0, 1, 3]
    C = codes(X)
    per = {"onehot": [4, 3, 2], "ordinal": [3, 2, 1]}[kind]
    assert C.shape == (50, sum(per)) and set(np.unique(C)) == {0.0, 1.0}
    np.testing.assert_array_equal(codes.source_, np.repeat([0, 1, 3], per))
    np.testing.assert_array_equal(codes.inverse(C), X[:, [0, 1, 3]])  # exact round trip
    if kind == "onehot":
        np.testing.assert_array_equal(C[:, :4].sum(axis=1), 1)  # one indicator per feature
    else:
        np.testing.assert_array_equal(C[:, 3:5].sum(axis=1), [[-1.5, 2.0, 7.0].index(v) for v in X[:, 1]])
        np.testing.assert_array_equal(C[:, 5], X[:, 3])  # a binary feature codes to itself
    # a value never seen in training
    unseen = codes.inverse(codes(np.array([[2.5, 0.0, 3.0, 1.0, 0.0]])))
    np.testing.assert_array_equal(unseen, [[2.0 if kind == "ordinal" else 0.0, -1.5, 1.0]])
    with pytest.raises(ValueError, match="onehot.*ordinal"):
        CategoricalCodes(X, "dummy")


def test_value_groups_and_linear_blocks():
    X = ofa_like(200, np.random.default_rng(0))
    X[:, 7] = 2.0  # a constant column is left out
    always = [j for j in range(20) if j % 4 < 2]  # kernel / expand genes 1..3
    sometimes = [j for j in range(20) if j % 4 >= 2 and j != 7]  # 0..3
    expected = [
        always + [20 + j for j in always],
        sometimes + [20 + j for j in sometimes] + [27],
        [40, 41, 42, 43, 44],  # depths 0..2
        [45],  # resolution 0..4
    ]
    assert sorted(sorted(g.tolist()) for g in value_groups(X)) == sorted(sorted(g) for g in expected)
    phi = LinearBlocks(X)
    P = phi(X)
    # 4 blocks of features and 4 of their ordinal codes (every group has 3 or more values)
    assert phi.n_blocks == 8
    assert P.shape == (200, 45 + 20 * 2 + 19 * 3 + 5 * 2 + 4) and len(phi.block_) == P.shape[1]
    assert sorted(np.bincount(phi.block_).tolist()) == sorted([20, 19, 5, 1, 40, 57, 10, 4])
    np.testing.assert_allclose(P.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(P.std(axis=0), 1)
    # NAS-Bench-201-like one-hot features: one group, binary, so no code block
    B = np.eye(5)[np.random.default_rng(1).integers(0, 5, (60, 6))].reshape(60, 30)
    phi = LinearBlocks(B)
    assert phi.n_blocks == 1 and phi(B).shape == (60, 30)
    # more than max_levels values: one group, no codes
    R = np.random.default_rng(2).normal(size=(40, 3))
    assert [g.tolist() for g in value_groups(R)] == [[0, 1, 2]] and LinearBlocks(R).n_blocks == 1


@pytest.mark.parametrize("codes", ["ordinal", "onehot"])
@pytest.mark.parametrize("name", ["ridge", "gp"])
def test_linear_models_recover_a_linear_function_and_per_value_effects(name, codes, monkeypatch):
    monkeypatch.setattr(SURROGATES.get(name), "codes", codes)
    rng = np.random.default_rng(0)
    X, Xt = genes(150, rng), genes(200, rng)
    lin = lambda X: X @ W + 3.0  # noqa: E731
    model = get_surrogate(name, rng).fit(X, lin(X))
    np.testing.assert_allclose(model.predict(Xt), lin(Xt), atol=0.02)
    # A different effect for each value of a gene (not monotone, not linear): the codes carry it
    # exactly; the GP before the codes (linear in the gene + Matern) missed by up to 3.6 here.
    table = np.array([0.0, 2.0, -1.0, 0.5, 1.5])
    per_value = lambda X: X @ W + table[X[:, 45].astype(int)]  # noqa: E731
    model = get_surrogate(name, rng).fit(X, per_value(X))
    np.testing.assert_allclose(model.predict(Xt), per_value(Xt), atol=0.05)


def test_ridge_prior_scales_follow_the_evidence():
    """Only the resolution matters: the other blocks' prior variances collapse, its own stays."""
    rng = np.random.default_rng(1)
    X = ofa_like(120, rng)
    y = np.array([0.0, 1.0, 1.5, 1.7, 3.0])[X[:, 45].astype(int)] + rng.normal(0, 0.01, 120)
    model = get_surrogate("ridge", rng).fit(X, y)
    s = np.exp(model.theta_[:-1])  # prior variance per block, then the noise
    res_blocks = [b for b in range(model.phi_.n_blocks) if set(_block_sources(model.phi_, b)) == {45}]
    assert len(res_blocks) == 2  # the resolution itself and its codes
    others = [b for b in range(model.phi_.n_blocks) if b not in res_blocks]
    assert max(s[res_blocks]) > 100 * max(s[others])
    assert np.exp(model.theta_[-1]) < 1e-2  # the noise is small on this scale (unit target variance)


def _block_sources(phi: LinearBlocks, b: int) -> list[int]:
    """The input features behind the columns of block ``b``."""
    sources = np.r_[phi.feature_cols_, phi.codes_.source_[phi.code_cols_]]
    return sorted(set(sources[phi.block_ == b].tolist()))


@pytest.mark.parametrize("name", ["ridge", "gp"])
def test_likelihood_gradients_are_exact(name):
    """The analytic gradients of ridge's log evidence and the GP's log likelihood against finite
    differences, away from the optimum (where the gradient is not ~0)."""
    rng = np.random.default_rng(2)
    X = ofa_like(60, rng)
    y = X @ W[:46] + 0.3 * X[:, 0] * X[:, 45]
    model = get_surrogate(name, rng).fit(X, y)
    P, t = model.phi_(X), model.target_.forward(y)
    if name == "ridge":
        sizes = np.bincount(model.phi_.block_)
        f = lambda th: model._neg_log_evidence(th, P.T @ P, P.T @ t, t @ t, len(t), sizes)  # noqa: E731
    else:
        Z = model.scaler_(X)
        D2 = ((Z[:, None] - Z[None]) ** 2).sum(-1)
        f = lambda th: model._neg_log_likelihood(th, P, D2, t)  # noqa: E731
    theta = model.theta_ + rng.uniform(-0.5, 0.5, len(model.theta_))
    numeric = np.array([(f(theta + e)[0] - f(theta - e)[0]) / 2e-6 for e in 1e-6 * np.eye(len(theta))])
    grad = f(theta)[1]
    assert np.abs(grad).max() > 0.1
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-4 * np.abs(grad).max())


def test_b4_ridge_gp_and_as_rank_the_ofa_oracle():
    """B4 on seed 0: trained on 100 random archs of the ofa_note10 oracle, Kendall tau on 1,000 more
    (measured: ridge, gp and as 0.871; before the feature blocks gp 0.81)."""
    from benchmarks.ofa_note10 import OFANote10Evaluator

    evaluator = OFANote10Evaluator()
    space, rng = evaluator.space, np.random.default_rng(0)
    archs: dict[str, dict] = {}
    while len(archs) < 1100:
        for a in space.sample(1100 - len(archs), rng):
            archs.setdefault(space.arch_id(a), a)
    X = np.stack([space.features(a) for a in archs.values()])
    y = np.array([100.0 - m["top1"] for m in evaluator.measure_many(list(archs.values()))])
    for name in ("ridge", "gp", "as"):
        model = get_surrogate(name, np.random.default_rng([0, 1])).fit(X[:100], y[:100])
        tau = stats.kendalltau(y[100:], model.predict(X[100:])).statistic
        assert tau > 0.86, f"{name}: tau {tau:.3f}"
        if name == "as":
            assert model.chosen in ("ridge", "gp")


@pytest.mark.parametrize("name", ["ridge", "gp"])
def test_predictive_std_is_calibrated_and_grows_away_from_the_data(name, data):
    """gp and ridge give a predictive spread: the held-out errors are of its size (z-scores with a
    standard deviation near 1), the mean equals ``predict``'s, and far from the training rows it is
    wider than on them. carts gives its trees' spread; the other models say they have none."""
    X, y, Xt, yt = data
    rng = np.random.default_rng(1)
    noisy = y + rng.normal(0, 0.3, len(y))
    model = get_surrogate(name, np.random.default_rng(0)).fit(X, noisy)
    assert model.has_std
    mean, std = model.predict(Xt, return_std=True)
    assert np.allclose(mean, model.predict(Xt)) and mean.shape == std.shape == (len(Xt),)
    assert np.all(std > 0)
    z = (yt + rng.normal(0, 0.3, len(yt)) - mean) / std
    assert 0.5 < z.std() < 2.0, z.std()
    far = X[:20] + 6.0  # outside every gene's range
    assert (
        model.predict(far, return_std=True)[1].mean() > 1.5 * model.predict(X[:20], return_std=True)[1].mean()
    )
    for other in ("rbf", "mlp", "as"):
        assert not get_surrogate(other, np.random.default_rng(0)).has_std
    trees = get_surrogate("carts", np.random.default_rng(0)).fit(X, noisy)  # the trees' spread
    t_mean, t_std = trees.predict(Xt, return_std=True)
    assert np.allclose(t_mean, trees.predict(Xt)) and np.all(t_std >= 0) and t_std.mean() > 0
    with pytest.raises(UserError, match="no predictive spread"):
        get_surrogate("rbf", np.random.default_rng(0)).fit(X, y).predict(Xt, return_std=True)


def test_adaptive_switching_chooses_on_a_capped_subset(data, monkeypatch):
    """Above ``max_cv_samples`` rows the choice is cross-validated on a random subset (the winner
    is refitted on all rows); below it nothing changes, not even the random numbers drawn."""
    X, y, Xt, _ = data
    small = AdaptiveSwitching(np.random.default_rng(0)).fit(X, y)
    monkeypatch.setattr(AdaptiveSwitching, "max_cv_samples", 60)
    capped = AdaptiveSwitching(np.random.default_rng(0)).fit(X, y)
    assert small.cv_quality_["n"] == 100 and capped.cv_quality_["n"] == 60
    assert capped.model_.n_features_ == X.shape[1] and capped.predict(Xt).shape == (len(Xt),)
    monkeypatch.setattr(AdaptiveSwitching, "max_cv_samples", 100)
    same = AdaptiveSwitching(np.random.default_rng(0)).fit(X, y)
    assert np.array_equal(same.predict(Xt), small.predict(Xt))
