"""Objectives: a name -> a function of a result's metrics, always minimised.

``top1`` becomes the top-1 error in percent; cost metrics are used as they are (millions, ms);
``tiny_ml`` is CNAS's penalised figure of merit over params, MACs and activations. Objectives
that need statistics of the whole archive (FlatNAS's alpha_norm) or of the predicted population
(NACHOS's phi) override :meth:`Objective.prepare`, which the loop calls every iteration with the
archive's metrics before anything is scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nas.errors import UserError
from nas.registry import Registry

OBJECTIVES: Registry = Registry("objective")


@dataclass(frozen=True)
class Constraints:
    """CNAS's constraints and weights (params, MACs, activations in millions)."""

    pmax: float = 2.0
    mmax: float = 1e10
    amax: float = 5.0
    wp: float = 1.0
    wm: float = 1 / 40
    wa: float = 1.0
    penalty: float = 1e10


class Objective:
    """A minimised quantity computed from the metrics of one evaluated architecture."""

    name: str = ""
    metrics: tuple[str, ...] = ()  # the result metrics it reads
    unit: str = ""

    def __init__(self, constraints: Constraints = Constraints()) -> None:
        self.constraints = constraints

    def prepare(self, archive_metrics: Sequence[dict[str, float]]) -> None:
        """Archive-level statistics, recomputed every iteration (default: none)."""

    def __call__(self, m: dict[str, float]) -> float:
        return float(m[self.metrics[0]])


def register(cls: type[Objective]) -> type[Objective]:
    return OBJECTIVES.register(cls.name)(cls)


@register
class Top1Error(Objective):
    name, metrics, unit = "top1", ("top1",), "top-1 error %"

    def __call__(self, m: dict[str, float]) -> float:
        return 100.0 - float(m["top1"])


def _metric_objective(name: str, unit: str) -> type[Objective]:
    cls = type(name.title(), (Objective,), {"name": name, "metrics": (name,), "unit": unit})
    return register(cls)


for _name, _unit in (
    ("params", "M params"),
    ("macs", "M MACs"),
    ("activations", "M activations"),
    ("flops", "M FLOPs"),
    ("latency", "ms"),
):
    _metric_objective(_name, _unit)


@register
class TinyML(Objective):
    """``wp*(P + pen*max(0, P-pmax)) + wm*(M + pen*max(0, M-mmax)) + wa*(A + pen*max(0, A-amax))``."""

    name, metrics, unit = "tiny_ml", ("params", "macs", "activations"), "tiny_ml"

    def __call__(self, m: dict[str, float]) -> float:
        c = self.constraints
        p, mac, a = float(m["params"]), float(m["macs"]), float(m["activations"])
        return (
            c.wp * (p + c.penalty * max(0.0, p - c.pmax))
            + c.wm * (mac + c.penalty * max(0.0, mac - c.mmax))
            + c.wa * (a + c.penalty * max(0.0, a - c.amax))
        )


def get_objective(name: str, constraints: Constraints = Constraints()) -> Objective:
    return OBJECTIVES.get(name)(constraints)


def list_objectives() -> list[str]:
    return OBJECTIVES.names()


def check_feasible(objective: Objective, metrics_of_smallest: dict[str, float]) -> None:
    """Refuse constraints that not even the cheapest architecture meets."""
    if isinstance(objective, TinyML) and objective(metrics_of_smallest) >= objective.constraints.penalty:
        c, m = objective.constraints, metrics_of_smallest
        raise UserError(
            f"no architecture meets the constraints: the smallest has params {m['params']:.3f} "
            f"(pmax {c.pmax}), MACs {m['macs']:.2f} (mmax {c.mmax}), activations {m['activations']:.3f} "
            f"(amax {c.amax}); relax --pmax/--mmax/--amax"
        )
