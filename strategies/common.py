"""What the model-based strategies share: the run's objectives on candidates, with surrogates.

:class:`ModelledObjectives` fits one surrogate per metric the objectives read that no cost
provider computes (top-1 and any other expensive metric) on the archive, and scores candidate
architectures as the run's objectives see them: exact metrics from the cost providers, predicted
ones from the surrogates, either their mean or draws from their predictive spread (for Thompson
sampling and Monte-Carlo expected improvement). Objectives are scored as the iteration being
chosen sees them (:meth:`nas.search.strategy.SearchContext.archive_scores`).
"""

from __future__ import annotations

import numpy as np
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from nas.errors import UserError
from nas.search.objectives import MetricTable
from nas.search.strategy import SearchContext
from nas.space import Arch
from nas.surrogate import SURROGATES, get_surrogate


def check_predictor(name: str | None, ctx: SearchContext, strategy: str, spread: bool = False) -> None:
    """Refuse a missing or unknown surrogate (one without a spread when ``spread``), before a run."""
    predicted = [m for m in ctx.scorer.metrics if m not in ctx.costs.names]
    if name is None:
        if predicted:
            raise UserError(
                f"strategy {strategy} needs --predictor (registered: {', '.join(SURROGATES.names())})"
            )
        return
    model = get_surrogate(name, np.random.default_rng(0))
    if spread and not model.has_std:
        with_std = [n for n in SURROGATES.names() if get_surrogate(n, np.random.default_rng(0)).has_std]
        raise UserError(
            f"--predictor {name} has no predictive spread, which strategy {strategy} needs; "
            f"use one of: {', '.join(with_std)}"
        )


class ModelledObjectives:
    """The run's objectives for candidate architectures, from the archive's surrogates."""

    def __init__(self, ctx: SearchContext, predictor: str | None, rng: np.random.Generator) -> None:
        self.ctx = ctx
        self.iteration = ctx.next_iteration()
        self.ok, self.A, self.F = ctx.archive_scores(self.iteration)
        self.predicted = [m for m in ctx.scorer.metrics if m not in ctx.costs.names]
        self.models = {}
        if self.predicted:
            X = ctx.features([r.arch for r in self.ok])
            for m in self.predicted:
                self.models[m] = get_surrogate(predictor, rng).fit(X, self.A[m])

    def table(self, archs: list[Arch], draws: int = 0, rng: np.random.Generator | None = None) -> MetricTable:
        """Metrics of ``archs``: predicted means, or with ``draws`` > 0 that many independent draws
        per architecture from the predictive spread (rows ``[draw 0 of every arch, draw 1, ...]``)."""
        table = self.ctx.costs.table(archs)
        if draws:
            table = {k: np.tile(v, draws) for k, v in table.items()}
        if self.models:
            X = self.ctx.features(archs)
            for m, model in self.models.items():
                if draws:
                    mean, std = model.predict(X, return_std=True)
                    z = rng.standard_normal((draws, len(archs)))
                    table[m] = (mean[None, :] + std[None, :] * z).ravel()
                else:
                    table[m] = model.predict(X)
        return table

    def scores(self, archs: list[Arch], draws: int = 0, rng: np.random.Generator | None = None) -> np.ndarray:
        """Objective values: [n, m] for the means, [draws, n, m] for draws."""
        F = self.ctx.scorer.score(self.A, self.table(archs, draws, rng), iteration=self.iteration)
        return F.reshape(draws, len(archs), -1) if draws else F


def ranking(F: np.ndarray) -> np.ndarray:
    """Row indices best first: by value for one objective, by non-dominated front (then the first
    objective within a front) for several."""
    if F.shape[1] == 1:
        return np.argsort(F[:, 0], kind="stable")
    fronts = NonDominatedSorting().do(F)
    return np.concatenate([f[np.argsort(F[f, 0], kind="stable")] for f in fronts])


def new_unique(ctx: SearchContext, archs: list[Arch], taken: set[str] | None = None) -> list[Arch]:
    """``archs`` without repeats, without members of the archive and of ``taken`` (order kept)."""
    taken = set() if taken is None else set(taken)
    out = []
    for a in archs:
        if ctx.is_new(a, taken):
            taken.add(ctx.space.arch_id(a))
            out.append(a)
    return out
