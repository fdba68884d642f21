"""Objectives: minimised functions of the metrics, vectorised over architectures.

An objective is a registered component (:data:`OBJECTIVES`) with typed options; it reads the
metrics it names (``metrics``) from a :data:`MetricTable` (``{metric: array over rows}``) and
returns one value per row, lower is better. Any metric the run's evaluator or cost providers
report is an objective by its name without a class (:class:`MetricObjective`, minimised as it
is): ``--sec_obj avg_macs`` works as soon as a measure reports ``avg_macs``.

Before scoring, the search calls :meth:`Objective.prepare` with two metric tables: the archive as
it stood when the iteration being scored began (every row evaluated in an earlier iteration, with
the ``iteration`` that evaluated it; empty for the initial archive) and the population being scored
(the whole archive when the archive is scored, NSGA-II's predicted population inside NSGA-II).
Objectives with archive-level statistics (FlatNAS's alpha_norm) or population-level ones (NACHOS's
phi) compute them there. Which iteration is being scored (:meth:`Scorer.score`): the stats of
iteration ``k`` score the archive as iteration ``k`` (prepared with the rows of iterations
``0..k-1``); a strategy choosing the candidates of iteration ``k + 1`` scores the archive and
NSGA-II's population as iteration ``k + 1`` (prepared with every row). So an archive-level
statistic changes once per iteration, and within an iteration the archive and the candidates are
scored alike.

``top1`` is the top-1 error in percent; cost metrics are used as they are (millions, ms);
``tiny_ml`` is CNAS's penalised figure of merit over params, MACs and activations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.components import Component, NoOptions
from nas.config import option
from nas.errors import UserError
from nas.registry import Registry

OBJECTIVES: Registry = Registry("objective")

MetricTable = dict[str, np.ndarray]


def metric_table(rows: list[dict[str, Any]], names: Any = None) -> MetricTable:
    """``{name: float array}`` of the scalar metrics of ``rows`` (missing values are NaN)."""
    if names is None:
        names = dict.fromkeys(k for r in rows for k, v in r.items() if isinstance(v, (int, float)))
    return {n: np.array([_float(r.get(n)) for r in rows], dtype=float) for n in names}


def _float(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan


class Objective(Component):
    """A minimised quantity computed from metrics; subclasses implement :meth:`values`."""

    metrics: tuple[str, ...] = ()  # the metrics it reads
    unit: str = ""

    def prepare(self, archive: MetricTable, population: MetricTable) -> None:
        """Statistics of the archive (its rows of the iterations before the one being scored) and of
        the population being scored (default: none)."""

    def statistics(self) -> dict[str, float]:
        """What :meth:`prepare` computed, for the records (``iter_k.stats``; default: nothing)."""
        return {}

    def values(self, m: MetricTable) -> np.ndarray:
        return np.asarray(m[self.metrics[0]], dtype=float)

    def __call__(self, m: MetricTable | dict[str, Any]) -> np.ndarray | float:
        """Values for a table (an array), or for one result's metrics (a float)."""
        if all(np.ndim(m.get(k)) == 0 for k in self.metrics):  # one row
            return float(self.values({k: np.array([_float(m[k])]) for k in self.metrics})[0])
        return self.values(m)

    def check(self, smallest: dict[str, float]) -> None:
        """Refuse settings that not even the cheapest architecture meets (default: nothing to check)."""

    @classmethod
    def requires(cls, options: Any) -> list[tuple[str, dict[str, Any]]]:
        """The parts of a run this objective needs with these options: ``(role, {"name": ...,
        **options})`` of a measure or cost provider that reports its metric (``--latency_model
        lut:DIR`` asks for the table's cost provider). The run description adds each one it lacks,
        or sets those options on the one it has (default: none)."""
        return []

    def check_metrics(self, available: set[str]) -> None:
        """Refuse a run none of whose parts reports a metric this objective reads (a one-line
        ``UserError``; ``available``: what the evaluator and the cost providers report)."""
        missing = [m for m in self.metrics if m not in available]
        if missing:
            reported = ", ".join(sorted(available)) or "nothing"
            raise UserError(
                f"unknown objective {self.name!r}: it needs the metric(s) {', '.join(missing)}, which no "
                f"part of this run reports (evaluator and cost providers report: {reported}); choose "
                "another objective, or add a measure or cost provider"
            )

    @property
    def label(self) -> str:
        return f"{self.name} ({self.unit})" if self.unit else self.name


class MetricObjective(Objective):
    """A metric minimised as it is: what a name with no registered objective means."""

    Options = NoOptions

    def __init__(self, metric: str, options: Any = None) -> None:
        super().__init__(options)
        self.name, self.metrics, self.unit = metric, (metric,), ""


def register(cls: type[Objective]) -> type[Objective]:
    return OBJECTIVES.register(cls.name)(cls)


@register
class Top1Error(Objective):
    name, metrics, unit = "top1", ("top1",), "top-1 error %"

    def values(self, m: MetricTable) -> np.ndarray:
        return 100.0 - np.asarray(m["top1"], dtype=float)


def _metric_objective(name: str, unit: str) -> type[Objective]:
    cls = type(name.title(), (Objective,), {"name": name, "metrics": (name,), "unit": unit, "__doc__": unit})
    return register(cls)


for _name, _unit in (
    ("params", "M params"),
    ("macs", "M MACs"),
    ("activations", "M activations"),
    ("flops", "M FLOPs"),
):
    _metric_objective(_name, _unit)


@register
class TinyML(Objective):
    """``wp*(P + pen*max(0, P-pmax)) + wm*(M + pen*max(0, M-mmax)) + wa*(A + pen*max(0, A-amax))``."""

    name, metrics, unit = "tiny_ml", ("params", "macs", "activations"), "tiny_ml"

    @dataclass
    class Options:
        pmax: float = option(2.0, "tiny_ml: max params, millions")
        mmax: float = option(1e10, "tiny_ml: max MACs, millions")
        amax: float = option(5.0, "tiny_ml: max activations, millions")
        wp: float = option(1.0, "tiny_ml weight of params")
        wm: float = option(1 / 40, "tiny_ml weight of MACs")
        wa: float = option(1.0, "tiny_ml weight of activations")
        penalty: float = option(1e10, "tiny_ml penalty factor for exceeding a constraint")

    def values(self, m: MetricTable) -> np.ndarray:
        c = self.options
        p, mac, a = (np.asarray(m[k], dtype=float) for k in self.metrics)
        return (
            c.wp * (p + c.penalty * np.maximum(0.0, p - c.pmax))
            + c.wm * (mac + c.penalty * np.maximum(0.0, mac - c.mmax))
            + c.wa * (a + c.penalty * np.maximum(0.0, a - c.amax))
        )

    def check(self, smallest: dict[str, float]) -> None:
        c, m = self.options, smallest
        if self(m) >= c.penalty:
            raise UserError(
                f"no architecture meets the constraints: the smallest has params {m['params']:.3f} "
                f"(pmax {c.pmax}), MACs {m['macs']:.2f} (mmax {c.mmax}), activations "
                f"{m['activations']:.3f} (amax {c.amax}); relax --pmax/--mmax/--amax"
            )


def get_objective(name: str, options: Any = None, **kwargs: Any) -> Objective:
    """The registered objective ``name``, or the metric ``name`` minimised as it is."""
    if name in OBJECTIVES:
        return OBJECTIVES.get(name)(options, **kwargs)
    return MetricObjective(name, options)


def list_objectives() -> list[str]:
    return OBJECTIVES.names()


class Scorer:
    """The run's objectives together: the metrics they read and their values for a population."""

    def __init__(self, objectives: list[Objective]) -> None:
        self.objectives = list(objectives)
        self.metrics: tuple[str, ...] = tuple(dict.fromkeys(k for o in self.objectives for k in o.metrics))

    def __len__(self) -> int:
        return len(self.objectives)

    def score(
        self, archive: MetricTable, population: MetricTable | None = None, iteration: int | None = None
    ) -> np.ndarray:
        """Objective values [n, m] of ``population`` (default: the archive itself).

        Each objective is prepared first with the archive as it stood when ``iteration`` began (its
        rows of earlier iterations, by their ``iteration`` column) and with ``population``.
        ``iteration`` is the iteration being scored; by default the archive's latest when the
        archive itself is scored (what that iteration's stats show), the one after it when a
        population of new candidates is (what a strategy choosing them sees).
        """
        if iteration is None and population is None and "iteration" in archive and len(archive["iteration"]):
            iteration = int(np.max(archive["iteration"]))
        population = archive if population is None else population
        earlier = rows_before(archive, iteration)
        for o in self.objectives:
            o.prepare(earlier, population)
        n = len(next(iter(population.values()))) if population else 0
        return np.column_stack([np.asarray(o(population), dtype=float).reshape(n) for o in self.objectives])

    def statistics(self) -> dict[str, dict[str, float]]:
        """Each objective's :meth:`Objective.statistics` from its last :meth:`score` (those that have any)."""
        return {o.name: s for o in self.objectives if (s := o.statistics())}


def rows_before(table: MetricTable, iteration: int | None) -> MetricTable:
    """The rows of ``table`` evaluated before ``iteration`` (all of them for None, or when the table
    has no ``iteration`` column)."""
    if iteration is None or "iteration" not in table:
        return table
    keep = np.asarray(table["iteration"], dtype=float) < iteration
    return {k: np.asarray(v)[keep] for k, v in table.items()}
