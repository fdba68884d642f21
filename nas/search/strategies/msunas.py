"""``msunas``: surrogate-assisted NSGA-II with subset selection (MSuNAS / NSGANetV2).

Per iteration: a surrogate per metric the objectives read that no cost provider computes (top-1,
and any other expensive metric), fitted on the archive; NSGA-II (a GA for one objective) on the
objectives of the predicted and exactly computed metrics, seeded with the archive's
non-dominated set; then ``n_iter`` of its final population by subset selection (``spread``:
even gaps of the second objective along the front; ``hvi``: greedy predicted hypervolume gain)
or, single-objective, the best predicted; random architectures fill up when NSGA-II offers too
few new ones. ``--top1min`` makes predicted top-1 below it infeasible inside NSGA-II.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from nas.config import option
from nas.errors import UserError
from nas.search.moea import optimise
from nas.search.objectives import MetricTable
from nas.search.selection import SELECTIONS, reference_point, select
from nas.search.strategy import STRATEGIES, Strategy, fill_random
from nas.space import Arch
from nas.surrogate import SURROGATES, fit_surrogate, min_cv_samples


@STRATEGIES.register("msunas")
class MSuNAS(Strategy):
    @dataclass
    class Options:
        predictor: str | None = option(
            None, "surrogate of the predicted metrics (a registered surrogate; presets set one, e.g. as)"
        )
        pop_size: int = option(40, "NSGA-II population on the surrogate")
        n_gen: int = option(20, "NSGA-II generations on the surrogate per iteration")
        selection: str = option(
            "spread",
            "how the n_iter candidates are chosen from NSGA-II's population: spread (NSGANetV2: even "
            "gaps along the second objective) or hvi (greedy predicted hypervolume gain; best with a "
            "larger NSGA-II, e.g. --pop_size 100 --n_gen 60)",
            choices=list(SELECTIONS),
        )
        top1min: float = option(
            0.0, "minimum top-1 %: NSGA-II treats architectures predicted below it as infeasible (0: off)"
        )

    def check(self) -> None:
        o, ctx = self.options, self.ctx
        if o.predictor is None and self.predicted():
            raise UserError(
                f"strategy msunas needs --predictor (registered: {', '.join(SURROGATES.names())})"
            )
        if o.predictor is not None:
            SURROGATES.get(o.predictor)
        if o.selection not in SELECTIONS:
            raise UserError(f"unknown --selection {o.selection!r}; choose one of: {', '.join(SELECTIONS)}")
        if o.pop_size < 2 or o.n_gen < 1:
            raise UserError("--pop_size must be >= 2 and --n_gen >= 1")
        if ctx.n_iter > o.pop_size:
            raise UserError(
                f"--n_iter {ctx.n_iter} exceeds the {o.pop_size} candidates NSGA-II supplies per "
                "iteration; lower --n_iter or raise --pop_size"
            )
        if o.top1min > 0 and "top1" not in self.predicted():
            raise UserError("--top1min needs the top1 metric among the objectives' (e.g. --first_obj top1)")
        if not 0 <= o.top1min < 100:
            raise UserError(f"--top1min {o.top1min} must be a top-1 percentage in [0, 100)")

    def min_archive(self) -> int:
        """The fewest successful evaluations the surrogate's cross-validation needs."""
        return min_cv_samples(self.options.predictor, 5) if self.predicted() else 1

    def predicted(self) -> list[str]:
        """The metrics the objectives read that no cost provider computes: the surrogates' targets."""
        return [m for m in self.ctx.scorer.metrics if m not in self.ctx.costs.names]

    def ask(self, rng: np.random.Generator) -> list[Arch]:
        o, ctx = self.options, self.ctx
        space = ctx.space
        iteration = ctx.next_iteration()
        ok, A, F = ctx.archive_scores(iteration)  # re-scored before anything is fitted or chosen
        X = ctx.features([r.arch for r in ok])
        models, self.quality = {}, None
        for j, metric in enumerate(self.predicted()):
            model, q = fit_surrogate(o.predictor, X, A[metric], rng)
            models[metric] = model
            if j == 0:
                self.quality = q
            ctx.surrogate_log.append({"iteration": iteration, "metric": metric, **_jsonable(q)})

        def population(archs: list[Arch]) -> MetricTable:
            table = ctx.costs.table(archs)
            if models:
                Xp = ctx.features(archs)
                table.update({m: model.predict(Xp) for m, model in models.items()})
            return table

        def scores(archs: list[Arch]) -> np.ndarray:
            return ctx.scorer.score(A, population(archs), iteration=iteration)

        constraints = []
        if o.top1min > 0:  # feasible where the predicted top-1 >= top1min
            constraints.append(lambda archs: o.top1min - population(archs)["top1"])

        front = (
            NonDominatedSorting().do(F, only_non_dominated_front=True)
            if F.shape[1] > 1
            else [F[:, 0].argmin()]
        )
        seeds = np.stack([space.encode(ok[i].arch) for i in front])
        pop_X, pop_F = optimise(
            space, scores, seeds, rng, o.pop_size, o.n_gen, constraints, ctx.archive.results, len(ctx.scorer)
        )
        pop = [space.decode(x) for x in pop_X]
        below = constraints[0](pop) > 0 if constraints else np.zeros(len(pop), dtype=bool)
        cands, cand_F, taken = [], [], set()
        for arch, f, out in zip(pop, pop_F, below, strict=True):
            if out:
                continue  # predicted below --top1min
            if ctx.is_new(arch, taken):
                taken.add(space.arch_id(arch))
                cands.append(arch)
                cand_F.append(f)
        chosen = []
        if cands:
            cand_F = np.array(cand_F)
            if F.shape[1] > 1:
                # the reference point of the objectives as scored now (they may be re-normalised)
                ref = reference_point(F, A["iteration"])
                pick = select(o.selection, F, cand_F, ctx.n_iter, ref, rng)
            else:
                pick = np.argsort(cand_F[:, 0], kind="stable")[: ctx.n_iter]
            chosen = [cands[i] for i in pick]
        if len(chosen) < ctx.n_iter:  # NSGA-II's population has converged: spend the budget anyway
            ctx.log(
                f"iteration {iteration}: NSGA-II offered {len(chosen)} new architectures; adding random ones"
            )
            feasible = (
                (lambda archs: np.all([g(archs) <= 0 for g in constraints], axis=0)) if constraints else None
            )
            chosen = fill_random(ctx, chosen, rng, feasible)
        return chosen


def _jsonable(d: dict) -> dict:
    out: dict[str, Any] = {}
    for key, v in d.items():
        if isinstance(v, dict):
            out[key] = _jsonable(v)
        elif isinstance(v, (np.floating, float)):
            out[key] = None if not np.isfinite(v) else float(v)
        elif isinstance(v, (np.integer, int)):
            out[key] = int(v)
        else:
            out[key] = v
    return out
