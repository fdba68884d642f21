"""Training-free scores in a search (nas.search.scores): --prefilter keeps the best-scored of
--prefilter_factor times the proposals, --proxy_features extends the surrogates' features; the
proxies plug-in provides them on real networks."""

import numpy as np
import pytest

from nas.errors import UserError
from nas.plugins import plugin_list
from nas.search.description import RunSpec
from nas.search.factory import build_run
from nas.search.loop import Search
from nas.search.scores import ARCH_SCORES, prefilter
from proxies.search import feature_scale
from tests.toy_search import toy_config, toy_search


@ARCH_SCORES.register("toy_small")
def toy_small(space, evaluator, seed):
    """Higher for fewer MACs (a deterministic stand-in for a proxy)."""
    return lambda archs: -np.array([space.costs(a, 10)["macs"] for a in archs])


def test_prefilter_keeps_the_best_scored_in_proposal_order():
    score = lambda archs: np.array([float(a) for a in archs])[:, None]  # noqa: E731
    assert prefilter([3, 1, np.nan, 5, 4], score, 2) == [5, 4]
    assert prefilter([2, 2, 1], score, 1) == [2]  # ties: the first proposed
    assert prefilter([1, 2], score, 3) == [1, 2]


def test_prefilter_and_proxy_features_in_a_run(tmp_path):
    plain = toy_search(toy_config(tmp_path / "plain", strategy="random")).run()
    filtered = toy_search(
        toy_config(tmp_path / "pf", strategy="random", prefilter="toy_small", prefilter_factor=3)
    ).run()
    assert len(filtered) == len(plain) == 16 + 3 * 4
    macs = lambda archive: np.mean([r.metrics["macs"] for r in archive])  # noqa: E731
    assert macs(filtered) < 0.8 * macs(plain)  # the cheapest third of every batch of proposals
    again = toy_search(
        toy_config(tmp_path / "pf2", strategy="random", prefilter="toy_small", prefilter_factor=3)
    ).run()
    assert again.to_json() == filtered.to_json()
    run = build_run(toy_config(tmp_path / "f", proxy_features=["toy_small"]))
    a = run.space.smallest()
    X = run.ctx.features([a, run.space.largest()])
    assert X.shape == (2, len(run.space.features(a)) + 1) and X[0, -1] > X[1, -1]
    with pytest.raises(UserError, match="unknown training-free score 'nope'"):
        build_run(toy_config(tmp_path / "x", prefilter="nope"))
    with pytest.raises(UserError, match="--prefilter_factor 0"):
        build_run(toy_config(tmp_path / "y", prefilter="toy_small", prefilter_factor=0))


def test_proxy_scores_reach_the_run_monotone_and_finite():
    s = np.array([-np.inf, -5.0, 0.0, 2.0, 1e50])
    f = feature_scale(s)
    assert np.all(np.isfinite(f)) and np.all(np.diff(f) > 0) and f[0] == -100.0
    assert np.isclose(f[-1], np.log1p(1e50)) and f[2] == 0.0


def test_a_real_proxy_prefilters_an_nb201_search(tmp_path):
    """The proxies plug-in's params score on real NAS-Bench-201 networks (cifar100: 100 classes,
    scored on the embedded CIFAR-10 images)."""
    flat = dict(
        benchmark="nb201", dataset="cifar100", strategy="random", sec_obj="none", n_doe=4, n_iter=2,
        iterations=1, plot_every=-1, prefilter="params", prefilter_factor=2, save=str(tmp_path / "r"),
    )  # fmt: skip
    run = build_run(RunSpec.from_flat(flat, plugins=plugin_list()), log=lambda *_: None)
    archive = Search(run, log=lambda *_: None).run()
    assert len(archive) == 6 and not archive.failed()
    scores = run.prefilter([r.arch for r in archive])[:, 0]  # log(1 + #params in millions), 100 classes
    assert np.allclose(scores, np.log1p([run.space.costs(r.arch, 100)["params"] for r in archive]))
