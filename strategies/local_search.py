"""``ls``: local search over one-gene neighbourhoods, with restarts (and Pareto local search).

One objective, first improvement (White et al. 2021, "Local search is state of the art for
NAS benchmarks"; NASLib's default, a strong NAS-Bench-201 baseline): the walk's centre starts at
the best architecture of the initial archive; its neighbours (every network one gene away,
:meth:`nas.space.SearchSpace.neighbours`) are evaluated in a random order, ``n_iter`` per
iteration; as soon as one beats the centre, it becomes the centre (the first improving one in
that order). A centre none of whose neighbours beats it is a local optimum: the walk restarts
from the best evaluated architecture that has not been a centre yet (NASLib restarts from a random
one; ours uses what the archive already knows, and the random architectures below keep it
diverse). When a neighbourhood has fewer unevaluated members left than the iteration's budget,
random architectures fill the batch (they are the candidates of the next restart).

Several objectives: Pareto local search (Paquete et al. 2004): the centre is a non-dominated
archive member not explored yet; all its neighbours are evaluated, then the next one.

State (``iter_k.stats``): the centre, its neighbours still to evaluate (in their order), the
neighbours proposed so far and the explored centres, so a resumed search walks on exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from nas.config import option
from nas.errors import UserError
from nas.search.strategy import STRATEGIES, Strategy, fill_random
from nas.space import Arch
from strategies.common import ranking


@STRATEGIES.register("ls")
class LocalSearch(Strategy):
    @dataclass
    class Options:
        ls_max_neighbours: int = option(
            0, "local search: evaluate at most this many neighbours of a centre before moving on (0: all)"
        )

    def __init__(self, options=None, **kwargs) -> None:
        super().__init__(options, **kwargs)
        self.centre: Arch | None = None
        self.queue: list[Arch] = []  # the centre's neighbours not proposed yet, in walk order
        self.proposed: list[str] = []  # ids of the centre's neighbours proposed so far, in order
        self.explored: list[str] = []  # ids of the centres left (improved on, or neighbourhood done)

    def check(self) -> None:
        if self.options.ls_max_neighbours < 0:
            raise UserError(f"--ls_max_neighbours {self.options.ls_max_neighbours} must be >= 0 (0: all)")

    def min_archive(self) -> int:
        return 1

    def ask(self, rng: np.random.Generator) -> list[Arch]:
        ctx = self.ctx
        ok, _, F = ctx.archive_scores()
        row = {r.arch_id: i for i, r in enumerate(ok)}
        chosen: list[Arch] = []
        taken: set[str] = set()  # proposed in this call: evaluated after it
        while len(chosen) < ctx.n_iter:
            centre_id = None if self.centre is None else ctx.space.arch_id(self.centre)
            if centre_id in row and F.shape[1] == 1:
                better = [a for a in self.proposed if a in row and F[row[a], 0] < F[row[centre_id], 0]]
                if better:  # first improvement: the first better neighbour, in walk order
                    self._move(ok[row[better[0]]].arch, rng)
                    continue
            if self.queue:
                arch = self.queue.pop(0)
                aid = ctx.space.arch_id(arch)
                self.proposed.append(aid)
                if ctx.is_new(arch, taken):
                    taken.add(aid)
                    chosen.append(arch)
                continue
            if any(a in taken for a in self.proposed):
                break  # the rest of this neighbourhood is being evaluated: wait for it
            centre = self._next_centre(ok, F, rng)  # a local optimum (or, several objectives, done)
            if centre is None:
                break
            self._move(centre, rng)
        return fill_random(ctx, chosen, rng)

    def _move(self, centre: Arch, rng: np.random.Generator) -> None:
        """Make ``centre`` the walk's centre (the one it leaves is done with): its neighbours in a
        random order."""
        if self.centre is not None:
            self.explored.append(self.ctx.space.arch_id(self.centre))
        neighbours = self.ctx.space.neighbours(centre)
        order = rng.permutation(len(neighbours))
        cap = self.options.ls_max_neighbours or len(neighbours)
        self.centre, self.queue, self.proposed = centre, [neighbours[i] for i in order[:cap]], []

    def _next_centre(self, ok: list, F: np.ndarray, rng: np.random.Generator) -> Arch | None:
        """The best evaluated architecture not explored yet (several objectives: a random member of
        the best front among the unexplored)."""
        done = set(self.explored)
        left = [i for i, r in enumerate(ok) if r.arch_id not in done]
        if not left:
            return None
        if F.shape[1] == 1:
            return ok[left[int(ranking(F[left])[0])]].arch
        front = NonDominatedSorting().do(F[left], only_non_dominated_front=True)
        return ok[left[int(rng.choice(front))]].arch

    def state_dict(self) -> dict[str, Any]:
        return {
            "centre": self.centre,
            "queue": list(self.queue),
            "proposed": list(self.proposed),
            "explored": list(self.explored),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.centre = state.get("centre")
        self.queue = list(state.get("queue", []))
        self.proposed = list(state.get("proposed", []))
        self.explored = list(state.get("explored", []))
