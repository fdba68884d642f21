"""``bo``: Bayesian optimisation with the surrogate registry (BANANAS-style candidates).

Per iteration: one surrogate with a predictive spread per predicted metric (``--predictor``:
``gp``, a Gaussian process; ``carts``, a bag of trees whose spread is the trees' disagreement, as
in random-forest BO; ``ridge``), fitted on the archive (:mod:`strategies.common`). Candidates, as
in BANANAS (White et al. 2021): every one-gene neighbour of the ``--bo_parents`` best archive
members (when a neighbourhood is larger than the share of ``--bo_candidates`` it may take, a
random sample of it), plus random architectures (``--bo_random`` of the candidates); never an
evaluated one. A space with no more gene vectors than ``--bo_candidates`` (NAS-Bench-201's
15,625 with ``--bo_candidates 15625``) is scored whole. Acquisition:

- ``ei`` (one objective): expected improvement over the archive's best, estimated by Monte Carlo
  on ``--bo_draws`` draws of the predicted metrics put through the run's objectives (so any
  objective, however it transforms the metric, is handled); the ``n_iter`` highest are evaluated.
- ``ts``: Thompson sampling with independent draws per candidate (BANANAS's ITS). One objective:
  each of the ``n_iter`` picks is the best of a fresh draw; several objectives (Archai's
  MoBananas): one draw, then non-dominated sorting and greedy hypervolume improvement
  (:func:`nas.search.selection.select`, ``hvi``) on the drawn values.

Nothing is carried between iterations but the archive, so the state is empty and a resumed
search refits exactly what the uninterrupted one fitted.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from nas.config import option
from nas.errors import UserError
from nas.search.selection import reference_point, select
from nas.search.strategy import STRATEGIES, Strategy, fill_random
from nas.space import Arch
from strategies.common import ModelledObjectives, check_predictor, new_unique, ranking

ACQUISITIONS = ("auto", "ei", "ts")


@STRATEGIES.register("bo")
class BayesianOptimisation(Strategy):
    @dataclass
    class Options:
        predictor: str | None = option(
            "gp", "surrogate with a predictive spread of the predicted metrics (gp, carts or ridge)"
        )
        acquisition: str = option(
            "auto",
            "bo: ei (Monte-Carlo expected improvement; one objective), ts (Thompson sampling; several "
            "objectives: non-dominated sorting of a draw, then hypervolume gain) or auto (ei for one "
            "objective, ts for several)",
            choices=list(ACQUISITIONS),
        )
        bo_candidates: int = option(1000, "bo: candidates scored by the acquisition per iteration")
        bo_parents: int = option(10, "bo: best archive members whose one-gene neighbours are candidates")
        bo_random: float = option(0.5, "bo: share of the candidates drawn at random (exploration)")
        bo_draws: int = option(64, "bo: Monte-Carlo draws of the expected improvement")

    def check(self) -> None:
        o = self.options
        check_predictor(o.predictor, self.ctx, "bo", spread=True)
        if o.acquisition not in ACQUISITIONS:
            raise UserError(
                f"unknown --acquisition {o.acquisition!r}; choose one of: {', '.join(ACQUISITIONS)}"
            )
        if o.acquisition == "ei" and len(self.ctx.scorer) > 1:
            raise UserError(
                "--acquisition ei is for one objective; several objectives use --acquisition ts "
                "(non-dominated sorting of a Thompson draw, then hypervolume gain)"
            )
        if o.bo_candidates < self.ctx.n_iter or o.bo_parents < 1 or o.bo_draws < 1:
            raise UserError(
                f"--bo_candidates {o.bo_candidates} must be >= --n_iter {self.ctx.n_iter}, "
                "--bo_parents and --bo_draws >= 1"
            )
        if not 0 <= o.bo_random <= 1:
            raise UserError(f"--bo_random {o.bo_random} must be a share in [0, 1]")

    def min_archive(self) -> int:
        return 3  # the surrogates' fewest training rows

    def candidates(self, model: ModelledObjectives, rng: np.random.Generator) -> list[Arch]:
        """New architectures near the best of the archive, plus a random share; every new
        architecture when the space has no more gene vectors than ``--bo_candidates``."""
        o, ctx = self.options, self.ctx
        space = ctx.space
        if np.prod((space.xu - space.xl + 1).astype(float)) <= o.bo_candidates:
            grid = itertools.product(*(range(lo, hi + 1) for lo, hi in zip(space.xl, space.xu, strict=True)))
            return new_unique(ctx, [space.decode(space.repair(np.array(x))) for x in grid])
        n_random = int(round(o.bo_random * o.bo_candidates))
        n_local = o.bo_candidates - n_random
        parents = [model.ok[i].arch for i in ranking(model.F)[: o.bo_parents]]
        per_parent = max(1, -(-n_local // len(parents)))
        local: list[Arch] = []
        for parent in parents:
            near = new_unique(ctx, ctx.space.neighbours(parent))
            if len(near) > per_parent:
                near = [near[i] for i in np.sort(rng.choice(len(near), per_parent, replace=False))]
            local += near
        return fill_random(ctx, new_unique(ctx, local)[:n_local], rng, tries=5, n=o.bo_candidates)

    def ask(self, rng: np.random.Generator) -> list[Arch]:
        o, ctx = self.options, self.ctx
        model = ModelledObjectives(ctx, o.predictor, rng)
        cands = self.candidates(model, rng)
        if len(cands) <= ctx.n_iter:
            return fill_random(ctx, cands, rng)
        k = ctx.n_iter
        if len(ctx.scorer) > 1:  # MoBananas: one Thompson draw, non-dominated sorting, hypervolume
            drawn = model.scores(cands, 1, rng)[0]
            ref = reference_point(model.F, model.A["iteration"])
            return [cands[i] for i in select("hvi", model.F, drawn, k, ref, rng)]
        if o.acquisition == "ts":  # a fresh independent draw per pick (auto: ei)
            drawn = model.scores(cands, k, rng)[:, :, 0]
            picked: list[int] = []
            for d in drawn:
                d[picked] = np.inf
                picked.append(int(np.argmin(d)))
            return [cands[i] for i in picked]
        best = float(model.F[:, 0].min())
        drawn = model.scores(cands, o.bo_draws, rng)[:, :, 0]
        ei = np.maximum(best - drawn, 0.0).mean(axis=0)
        mean = model.scores(cands)[:, 0]
        order = np.lexsort((mean, -ei))  # highest EI; ties (e.g. all zero): the best predicted mean
        return [cands[i] for i in order[:k]]
