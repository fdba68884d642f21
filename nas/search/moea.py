"""NSGA-II (pymoo) on surrogate-predicted and exactly computed objectives, integer genes.

pymoo's SBX crossover and polynomial mutation act on floats; a rounding repair maps every
offspring back to integers, and the problem's bounds are the search space's exact per-gene
``xl``/``xu`` (the reference code used ``xu = 2`` for every gene, which made the resolution gene
and any gene with more than three options unreachable).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.algorithms.soo.nonconvex.ga import GA
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.optimize import minimize

from nas.space import Arch, SearchSpace

# Maps decoded architectures to their objective values [n, m] (minimised).
ScoreFn = Callable[[list[Arch]], np.ndarray]
# Maps decoded architectures to one constraint column (feasible where <= 0).
ConstraintFn = Callable[[list[Arch]], np.ndarray]


class SurrogateProblem(Problem):
    """Objective values from ``scores``; inequality ``constraints`` (feasible where ``<= 0``)."""

    def __init__(
        self, space: SearchSpace, scores: ScoreFn, n_obj: int, constraints: Sequence[ConstraintFn] = ()
    ) -> None:
        super().__init__(
            n_var=space.n_var,
            n_obj=n_obj,
            n_ieq_constr=len(constraints),
            xl=space.xl,
            xu=space.xu,
            vtype=int,
        )
        self.space, self.scores, self.constraints = space, scores, list(constraints)

    def _evaluate(self, x, out, *args, **kwargs):
        archs = [self.space.decode(row) for row in np.rint(x).astype(int)]
        out["F"] = np.asarray(self.scores(archs), dtype=float).reshape(len(archs), self.n_obj)
        if self.constraints:
            out["G"] = np.column_stack([g(archs) for g in self.constraints])


class GeneRepair(Repair):
    """Offspring back to valid genes: rounded to integers, then the space's own repair
    (:meth:`nas.space.SearchSpace.repair`, e.g. at least one exit bit set)."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space

    def _do(self, problem, X, **kwargs):
        X = np.clip(np.rint(X).astype(int), self.space.xl, self.space.xu)
        return np.array([self.space.repair(row) for row in X], dtype=float).reshape(X.shape)


class ArchDuplicates(DuplicateElimination):
    """Duplicates are the same architecture (``arch_id``), not the same genes, and offspring that
    repeat an architecture of ``known`` (the archive) are discarded too.

    Genes of inactive blocks do not change the network, so gene-level duplicate elimination let
    the population fill up with copies of one architecture (the quickstart's first runs ended
    with no new architecture at all). pymoo's mating compares offspring with the current
    population (``other`` given); only then are archive members rejected, so the archive's
    front still seeds the initial population.
    """

    def __init__(self, space: SearchSpace, known: Collection[str] = ()) -> None:
        super().__init__()
        self.space, self.known = space, set(known)
        self._ids: dict[tuple[int, ...], str] = {}  # genes -> arch id: the population is compared often

    def key(self, ind) -> str:
        genes = tuple(np.rint(ind.X).astype(int).tolist())
        aid = self._ids.get(genes)
        if aid is None:
            aid = self._ids[genes] = self.space.arch_id(self.space.decode(np.array(genes)))
        return aid

    def _do(self, pop, other, is_duplicate):
        seen = set() if other is None else self.known | {self.key(o) for o in other}
        for i, ind in enumerate(pop):
            k = self.key(ind)
            is_duplicate[i] = k in seen
            seen.add(k)
        return is_duplicate


def initial_population(space: SearchSpace, seeds: np.ndarray, pop_size: int, rng: np.random.Generator):
    """The archive's best genes first, random ones to fill ``pop_size``; no duplicate rows."""
    rows = [tuple(r) for r in np.asarray(seeds, dtype=int)]
    while len(set(rows)) < pop_size:
        rows.append(tuple(space.repair(rng.integers(space.xl, space.xu + 1))))
    unique = list(dict.fromkeys(rows))[:pop_size]
    return np.array(unique, dtype=int)


def optimise(
    space: SearchSpace,
    scores: ScoreFn,
    seeds: np.ndarray,
    rng: np.random.Generator,
    pop_size: int = 40,
    n_gen: int = 20,
    constraints: Sequence[ConstraintFn] = (),
    known: Collection[str] = (),
    n_obj: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Final population ``(X, F)`` of NSGA-II (a GA for one objective) started from ``seeds``.

    With ``constraints`` (feasible where every column is ``<= 0``) pymoo prefers feasible
    solutions, and among infeasible ones the least violating. Offspring never repeat an
    architecture of ``known`` (ids), so the final population holds as many new ones as it can.
    """
    if n_obj is None:  # one call on the seeds tells the number of objectives
        n_obj = np.asarray(scores([space.decode(seeds[0])])).reshape(1, -1).shape[1]
    repair = GeneRepair(space)
    kw = dict(
        pop_size=pop_size,
        sampling=initial_population(space, seeds, pop_size, rng).astype(float),
        crossover=SBX(prob=0.9, eta=15, repair=repair, vtype=float),
        mutation=PM(eta=20, repair=repair, vtype=float),
        eliminate_duplicates=ArchDuplicates(space, known),
    )
    algorithm = NSGA2(**kw) if n_obj > 1 else GA(**kw)
    res = minimize(
        SurrogateProblem(space, scores, n_obj, constraints),
        algorithm,
        ("n_gen", n_gen),
        seed=int(rng.integers(2**31 - 1)),
        verbose=False,
    )
    X = np.rint(res.pop.get("X")).astype(int)
    return X, res.pop.get("F")
