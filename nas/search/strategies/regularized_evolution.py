"""``re``: regularised (aging) evolution, Real et al. 2019 ("Regularized Evolution for Image
Classifier Architecture Search", AAAI).

A population of the ``population`` most recently evaluated architectures; each child comes from
a tournament: ``sample_size`` members drawn at random, the best of them (one objective: the
lowest value; several: a random member of the sample's non-dominated front) mutated in one gene
(:meth:`nas.space.SearchSpace.mutate`). After each iteration's ``n_iter`` children are evaluated
they join the population and the oldest members leave (aging, not the worst: the
regularisation). The initial archive fills the population first. The population (ids, oldest
first) is the strategy's state in ``iter_k.stats``, so resume is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from nas.config import option
from nas.errors import UserError
from nas.result import Result
from nas.search.strategy import STRATEGIES, Strategy, fill_random
from nas.space import Arch


@STRATEGIES.register("re")
class RegularizedEvolution(Strategy):
    @dataclass
    class Options:
        population: int = option(30, "regularised evolution: population size (the most recent evaluations)")
        sample_size: int = option(10, "regularised evolution: tournament size (members drawn per child)")

    def __init__(self, options=None, **kwargs) -> None:
        super().__init__(options, **kwargs)
        self.population: list[str] = []  # arch ids, oldest first

    def check(self) -> None:
        o = self.options
        if o.population < 2 or not 1 <= o.sample_size <= o.population:
            raise UserError(
                f"--population {o.population} must be >= 2 and --sample_size {o.sample_size} in 1..population"
            )

    def tell(self, results: list[Result]) -> None:
        self.population += [r.arch_id for r in results if r.ok]
        del self.population[: max(0, len(self.population) - self.options.population)]

    def ask(self, rng: np.random.Generator) -> list[Arch]:
        ctx = self.ctx
        ok, _, F = ctx.archive_scores()
        row = {r.arch_id: i for i, r in enumerate(ok)}
        members = [m for m in self.population if m in row]
        if not members:
            return fill_random(ctx, [], rng)
        children, taken = [], set()
        for _ in range(20 * ctx.n_iter):
            if len(children) == ctx.n_iter:
                break
            sample = rng.choice(len(members), min(self.options.sample_size, len(members)), replace=False)
            parent = ok[row[members[self._best(F[[row[members[i]] for i in sample]], rng, sample)]]]
            child = ctx.space.mutate(parent.arch, rng)
            if ctx.is_new(child, taken):
                taken.add(ctx.space.arch_id(child))
                children.append(child)
        return fill_random(ctx, children, rng)  # mutations that kept repeating known networks

    @staticmethod
    def _best(F: np.ndarray, rng: np.random.Generator, sample: np.ndarray) -> int:
        """The winner of a tournament (an index into ``sample``)."""
        if F.shape[1] == 1:
            return int(sample[int(np.argmin(F[:, 0]))])
        front = NonDominatedSorting().do(F, only_non_dominated_front=True)
        return int(sample[int(rng.choice(front))])

    def state_dict(self) -> dict:
        return {"population": list(self.population)}

    def load_state_dict(self, state: dict) -> None:
        self.population = list(state.get("population", []))
