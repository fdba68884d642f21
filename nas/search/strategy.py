"""The Strategy contract: which architectures a search evaluates next (ask / tell).

A strategy is a registered component (:data:`STRATEGIES`): the loop (:mod:`nas.search.loop`)
asks it for the initial archive, then every iteration for ``n_iter`` new architectures, evaluates
them and tells it the results; everything else (evaluation, records, hypervolume, stats files,
resume) is the loop's. A strategy's state goes into every ``iter_k.stats`` (``state_dict``) and
comes back on ``--resume`` (``load_state_dict``); its randomness comes only from the generator
the loop passes (``np.random.default_rng([seed, k])`` in iteration ``k``), so a resumed search
makes exactly the choices the uninterrupted one made.

:class:`SearchContext` is what a strategy sees of the run: the space, the objectives, the cost
providers, the archive and the loop's settings.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nas.components import Component
from nas.cost_providers import CostModel
from nas.registry import Registry
from nas.result import Result
from nas.search.archive import Archive
from nas.search.objectives import MetricTable, Scorer, metric_table
from nas.space import Arch, SearchSpace

STRATEGIES: Registry = Registry("search strategy")


@dataclass
class SearchContext:
    """What a strategy sees of the run (the archive is the loop's, updated as results arrive)."""

    space: SearchSpace
    scorer: Scorer
    costs: CostModel
    archive: Archive
    n_doe: int
    n_iter: int
    seed: int = 0
    log: Callable[[str], None] = print
    hv_ref: list[float] | None = None
    surrogate_log: list[dict[str, Any]] = field(default_factory=list)
    # more surrogate features per architecture (e.g. zero-cost proxy scores), appended to the space's
    extra_features: Callable[[list[Arch]], np.ndarray] | None = None
    # the run directory: a strategy whose state is too large for iter_k.stats (a supernet's weights)
    # writes it to files below it and names them in its state_dict (None: no run directory)
    save: str | None = None

    def features(self, archs: list[Arch]) -> np.ndarray:
        """Surrogate features [n, d] of ``archs``: the space's, then any ``extra_features``."""
        X = np.stack([self.space.features(a) for a in archs]).astype(float)
        return X if self.extra_features is None else np.hstack([X, self.extra_features(archs)])

    def archive_table(self, results: list[Result] | None = None) -> MetricTable:
        """Metrics of the successful archive members (or ``results``), with their ``iteration``."""
        results = self.archive.ok() if results is None else results
        table = metric_table([r.metrics for r in results])
        table["iteration"] = np.array([self.archive.iteration_of[r.arch_id] for r in results], dtype=float)
        return table

    def next_iteration(self) -> int:
        """The iteration after the archive's latest: the one a strategy is choosing candidates for."""
        return max(self.archive.iteration_of.values(), default=-1) + 1

    def archive_scores(self, iteration: int | None = None) -> tuple[list[Result], MetricTable, np.ndarray]:
        """The successful archive members, their metrics and their objective values, re-scored now as
        ``iteration`` sees them (objectives prepared with the rows of earlier iterations; default:
        :meth:`next_iteration`, what a strategy choosing candidates sees)."""
        ok = self.archive.ok()
        table = self.archive_table(ok)
        iteration = self.next_iteration() if iteration is None else iteration
        return ok, table, self.scorer.score(table, table, iteration=iteration)

    def is_new(self, arch: Arch, taken: set[str]) -> bool:
        aid = self.space.arch_id(arch)
        return aid not in self.archive and aid not in taken


class Strategy(Component):
    """Proposes architectures; subclasses implement :meth:`ask` (and :meth:`tell` if they learn)."""

    # the rows of the run's objectives this strategy can handle: 1 (single), 2+ (multi) or both
    multi_objective: bool = True
    single_objective: bool = True

    def __init__(self, options: Any = None, *, ctx: SearchContext, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self.ctx = ctx
        self.quality: dict[str, Any] | None = None  # what the summary line shows (a surrogate's)

    def check(self) -> None:
        """Refuse settings that cannot work, before anything is evaluated (default: nothing)."""

    def min_archive(self) -> int:
        """The fewest successful initial evaluations :meth:`ask` can work from (``--n_doe``'s floor)."""
        return 2

    def initial(self, rng: np.random.Generator) -> list[Arch]:
        """The initial archive: the smallest and the largest architecture, then random ones, ``n_doe``
        distinct networks in all."""
        space, n = self.ctx.space, self.ctx.n_doe
        archs = {space.arch_id(a): a for a in (space.smallest(), space.largest())}
        while len(archs) < n:
            for a in space.sample(n, rng):
                archs.setdefault(space.arch_id(a), a)
                if len(archs) == n:
                    break
        return list(archs.values())[:n]

    @abstractmethod
    def ask(self, rng: np.random.Generator) -> list[Arch]:
        """Up to ``n_iter`` architectures to evaluate next, none of them in the archive."""

    def tell(self, results: list[Result]) -> None:
        """The results of the architectures :meth:`initial` or :meth:`ask` proposed (default: nothing)."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state for exact resume (default: none)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (default: nothing)."""


def fill_random(
    ctx: SearchContext,
    chosen: list[Arch],
    rng: np.random.Generator,
    feasible: Callable[[list[Arch]], np.ndarray] | None = None,
    tries: int = 100,
    n: int | None = None,
) -> list[Arch]:
    """``chosen`` topped up to ``n`` (default ``n_iter``) with random new architectures (``feasible``
    ones only)."""
    n = ctx.n_iter if n is None else n
    chosen = list(chosen)
    taken = {ctx.space.arch_id(a) for a in chosen}
    for _ in range(tries):
        if len(chosen) >= n:
            break
        drawn = ctx.space.sample(n, rng)
        if feasible is not None:
            drawn = [a for a, ok in zip(drawn, feasible(drawn), strict=True) if ok]
        for a in drawn:
            if ctx.is_new(a, taken) and len(chosen) < n:
                taken.add(ctx.space.arch_id(a))
                chosen.append(a)
    return chosen


def list_strategies() -> list[str]:
    return STRATEGIES.names()
