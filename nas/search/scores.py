"""Training-free scores of architectures in a search: surrogate features and a pre-ranking filter.

A plug-in registers, under each score's name, a factory in :data:`ARCH_SCORES`:
``factory(space, evaluator, seed) -> ScoreFn``, where a ``ScoreFn`` maps architectures to one
score each (higher = better, deterministic under the seed, cheap compared with an evaluation;
the ``proxies`` plug-in registers its zero-cost proxies: ``synflow``, ``naswot``, ...). The run
uses them two ways (:class:`nas.search.config.LoopOptions`):

- ``--proxy_features NAME ...``: the scores are appended to every surrogate's features
  (:attr:`nas.search.strategy.SearchContext.extra_features`), for every strategy that fits one;
- ``--prefilter NAME``: the strategy proposes ``--prefilter_factor`` times as many architectures
  as are evaluated (the initial archive too), and the best-scored ones are evaluated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nas.registry import Registry
from nas.space import Arch, SearchSpace

ScoreFn = Callable[[list[Arch]], np.ndarray]
ARCH_SCORES: Registry = Registry("training-free score")


def build_scores(names: Sequence[str], space: SearchSpace, evaluator: Any, seed: int) -> ScoreFn:
    """One function giving the scores ``names`` of architectures as columns [n, len(names)]."""
    fns = [ARCH_SCORES.get(n)(space, evaluator, seed) for n in names]

    def scores(archs: list[Arch]) -> np.ndarray:
        if not archs:
            return np.zeros((0, len(fns)))
        return np.column_stack([np.asarray(f(archs), dtype=float).reshape(len(archs)) for f in fns])

    return scores


def prefilter(archs: list[Arch], score: ScoreFn, k: int) -> list[Arch]:
    """The ``k`` of ``archs`` with the highest score (ties and non-finite scores: proposal order),
    in proposal order."""
    if len(archs) <= k:
        return list(archs)
    s = score(archs)[:, 0]
    s = np.where(np.isfinite(s), s, -np.inf)
    keep = np.sort(np.argsort(-s, kind="stable")[:k])
    return [archs[i] for i in keep]
