"""NACHOS's second objective: a cost with a budget whose penalty depends on the population.

With ``phi`` the share of the population being scored (NSGA-II's predicted population inside
NSGA-II, the archive when the archive is scored) whose cost is within ``mmax``::

    phi * c + (1 - phi) * max(0, c - mmax) * penalty

so while most candidates meet the budget the objective is the plain cost, and when few do,
exceeding it dominates. ``c`` is ``avg_macs`` by default (``--nachos_metric``). Plain ``avg_macs``
needs no class: any metric is an objective by its name (``--sec_obj avg_macs``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nas.config import option
from nas.errors import UserError
from nas.search.objectives import OBJECTIVES, MetricTable, Objective


@OBJECTIVES.register("nachos")
class NachosObjective(Objective):
    name, unit = "nachos", "M MACs (penalised beyond mmax)"

    @dataclass
    class Options:
        nachos_metric: str = option("avg_macs", "nachos objective: the cost metric it penalises")
        mmax: float | None = option(
            None, "budget of the cost metric, millions (required by the nachos objective)"
        )
        penalty: float = option(1e10, "nachos objective: penalty factor beyond the budget")

    def __init__(self, options=None, **kwargs) -> None:
        super().__init__(options, **kwargs)
        if self.options.mmax is None:
            raise UserError("--sec_obj nachos needs a budget: pass --mmax (millions of MACs)")
        self.metrics = (self.options.nachos_metric,)
        self.phi = 1.0

    def prepare(self, archive: MetricTable, population: MetricTable) -> None:
        c = np.asarray(population[self.metrics[0]], dtype=float)
        self.phi = float(np.mean(c <= self.options.mmax)) if len(c) else 1.0

    def values(self, m: MetricTable) -> np.ndarray:
        c, o = np.asarray(m[self.metrics[0]], dtype=float), self.options
        return self.phi * c + (1 - self.phi) * np.maximum(0.0, c - o.mmax) * o.penalty
