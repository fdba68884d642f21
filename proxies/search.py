"""Every proxy as a training-free score of the search loop (:data:`nas.search.scores.ARCH_SCORES`):
``msunas.py --proxy_features jacob_cov swap`` (surrogate features) and ``--prefilter jacob_cov``
(pre-ranking of candidates).

A run's networks are scored as :class:`~proxies.scorer.ProxyScorer` scores them (freshly
initialised with the run's seed, one fixed batch of 16 training images: B15's setting), with the
run's class count and input size; the images are the run's dataset's when its evaluator scores
networks on images, else (a benchmark table such as NAS-Bench-201's cifar100 or imagenet16) the
embedded CIFAR-10's, resized to the run's image size. Scores are cached by architecture for the
whole run and reach the run through :func:`feature_scale`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nas.data import DATASETS
from nas.search.scores import ARCH_SCORES, ScoreFn
from nas.space import SearchSpace
from proxies.scorer import ProxyScorer
from proxies.scores import PROXIES


def scorer_for_run(proxy: str, space: SearchSpace, evaluator: Any, seed: int) -> ProxyScorer:
    """The :class:`ProxyScorer` of ``proxy`` for a run of ``space`` evaluated by ``evaluator``."""
    dataset = getattr(getattr(evaluator, "options", None), "dataset", None)
    own = getattr(evaluator, "uses_measures", False) and dataset in DATASETS.names()
    data_dir = getattr(evaluator.options, "data", None) if own else None
    resolution = None if own or space.has("resolution") else getattr(evaluator, "image_size", None)
    return ProxyScorer(
        space,
        [proxy],
        dataset=dataset if own else "cifar10_embedded",
        data=data_dir,
        resolution=resolution,
        n_classes=getattr(evaluator, "n_classes", None),
        batch_size=16,
        seed=seed,
    )


def feature_scale(scores: np.ndarray) -> np.ndarray:
    """``sign(s) log(1 + |s|)``, degenerate networks (``-inf``) at -100: monotone, so rankings and
    the pre-ranking filter are unchanged, and finite and tame for surrogates (synflow spans about
    1e0 to 1e50)."""
    out = np.sign(scores) * np.log1p(np.abs(scores))
    return np.where(np.isfinite(out), out, -100.0)


def _factory(proxy: str):
    def make(space: SearchSpace, evaluator: Any, seed: int) -> ScoreFn:
        scorer = scorer_for_run(proxy, space, evaluator, seed)
        return lambda archs: feature_scale(scorer.scores(archs)[:, 0].astype(float))

    make.__doc__ = f"The {proxy} proxy of a run's architectures (higher = better)."
    return make


for _name in PROXIES.names():
    ARCH_SCORES.register(_name)(_factory(_name))
