"""``pnas``: progressive search with a predictor (Liu et al. 2018, "Progressive Neural
Architecture Search"), mapped onto fixed-length spaces.

PNAS grows cells block by block: the cells of ``b`` blocks are expanded by every possible next
block, a predictor trained on the networks evaluated so far ranks the expansions, and the best
``K`` (the beam) are trained; repeat. A space of fixed length has no "smaller" networks, so here a
network grows by *fixing groups of genes in order* (:meth:`nas.space.SearchSpace.growth_groups`:
a NAS-Bench-201 cell node by node, an OFA MobileNetV3 resolution first and then stage by stage,
a task space's own genes after them); the genes not fixed yet keep the beam member's values.
Step ``s`` expands each beam member by every combination of group ``s``'s genes (a random
``--pnas_expansions`` of them when there are more), the surrogate (``--predictor``) fitted on the
archive ranks all expansions (one objective: by predicted value; several: by predicted
non-dominated rank and hypervolume gain, :func:`nas.search.selection.select`), and the best
``n_iter`` new ones are evaluated. The beam for the next step is the ``--beam`` best evaluated
networks of this step's and the previous beam (one objective: lowest value; several: lowest
non-dominated rank). After the last group the growth starts again from the first (refinement
rounds), so the search runs for any budget. The first beam is the best of the initial archive.

State (``iter_k.stats``): the step and the beam, so a resumed search grows exactly on.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.config import option
from nas.errors import UserError
from nas.result import Result
from nas.search.selection import reference_point, select
from nas.search.strategy import STRATEGIES, Strategy, fill_random
from nas.space import Arch
from strategies.common import ModelledObjectives, check_predictor, new_unique, ranking


@STRATEGIES.register("pnas")
class Progressive(Strategy):
    @dataclass
    class Options:
        predictor: str | None = option(
            "gp", "pnas: surrogate that ranks the expansions (a registered surrogate)"
        )
        beam: int = option(5, "pnas: networks kept and expanded at each step (PNAS's K)")
        pnas_expansions: int = option(
            200, "pnas: expansions of one beam member at most (a random subset when a group has more)"
        )

    def __init__(self, options=None, **kwargs) -> None:
        super().__init__(options, **kwargs)
        self.groups = self.ctx.space.growth_groups()
        self.step = 0
        self.beam: list[Arch] = []

    def check(self) -> None:
        o = self.options
        check_predictor(o.predictor, self.ctx, "pnas")
        if o.beam < 1 or o.pnas_expansions < 1:
            raise UserError(f"--beam {o.beam} and --pnas_expansions {o.pnas_expansions} must be >= 1")

    def min_archive(self) -> int:
        return 3

    def tell(self, results: list[Result]) -> None:
        ctx = self.ctx
        ok, _, F = ctx.archive_scores()
        if not ok:
            return
        row = {r.arch_id: i for i, r in enumerate(ok)}
        if self.beam:  # this step's evaluations and the previous beam compete for the next beam
            ids = [ctx.space.arch_id(a) for a in self.beam] + [r.arch_id for r in results if r.ok]
            self.step += 1
        else:  # the initial archive
            ids = [r.arch_id for r in ok]
        pool = [row[i] for i in dict.fromkeys(ids) if i in row]
        best = ranking(F[pool])[: self.options.beam]
        self.beam = [ok[pool[i]].arch for i in best]

    def expansions(self, rng: np.random.Generator) -> list[Arch]:
        """Every beam member with the genes of this step's group set every possible way."""
        space = self.ctx.space
        group = self.groups[self.step % len(self.groups)]
        values = [range(space.xl[j], space.xu[j] + 1) for j in group]
        n_all = int(np.prod([len(v) for v in values]))
        out: list[Arch] = []
        for member in self.beam:
            x = space.encode(member)
            if n_all <= self.options.pnas_expansions:
                combos = itertools.product(*values)
            else:
                combos = (
                    [v[int(rng.integers(len(v)))] for v in values]
                    for _ in range(self.options.pnas_expansions)
                )
            for combo in combos:
                y = x.copy()
                y[group] = combo
                out.append(space.decode(space.repair(y)))
        return new_unique(self.ctx, out)

    def ask(self, rng: np.random.Generator) -> list[Arch]:
        o, ctx = self.options, self.ctx
        cands = self.expansions(rng)
        if len(cands) <= ctx.n_iter:
            return fill_random(ctx, cands, rng)
        model = ModelledObjectives(ctx, o.predictor, rng)
        P = model.scores(cands)
        if P.shape[1] == 1:
            pick = ranking(P)[: ctx.n_iter]
        else:
            pick = select("hvi", model.F, P, ctx.n_iter, reference_point(model.F, model.A["iteration"]), rng)
        return [cands[i] for i in pick]

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "beam": list(self.beam)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state.get("step", 0))
        self.beam = list(state.get("beam", []))
