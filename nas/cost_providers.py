"""Cost providers: exact, cheap metrics of an architecture computed in the driver.

Analytic costs, look-up-table latency, a latency predictor, a device profile's energy: a cost
provider (registered in :data:`COST_PROVIDERS`) computes them from the architecture alone, so the
search computes the objectives that use them inside NSGA-II instead of predicting them, and
merges them into every evaluation's metrics. It is built with the run's space and (cheap,
un-set-up) evaluator, whose ``n_classes`` and ``image_size`` it may use.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from nas.components import Component
from nas.errors import UserError
from nas.registry import Registry
from nas.space import Arch, SearchSpace

COST_PROVIDERS: Registry = Registry("cost provider")


class CostProvider(Component):
    """Exact metrics ``provides()`` of an architecture, from the architecture alone."""

    def __init__(
        self, options: Any = None, *, space: SearchSpace, evaluator: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(options, **kwargs)
        self.space, self.evaluator = space, evaluator

    @abstractmethod
    def provides(self) -> tuple[str, ...]:
        """The metric names :meth:`metrics` returns."""

    @abstractmethod
    def metrics(self, arch: Arch) -> dict[str, float]: ...


@COST_PROVIDERS.register("analytic")
class AnalyticCosts(CostProvider):
    """Params, MACs and activations (millions, batch 1) from the space's analytic cost model, for the
    evaluator's class count (and input size, for spaces without a resolution gene)."""

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self.space.require("costs", "the analytic cost provider")
        self.n_classes = getattr(self.evaluator, "n_classes", None)
        if self.n_classes is None:
            raise UserError("the analytic cost provider needs the class count of the evaluator's dataset")
        self.image_size = getattr(self.evaluator, "image_size", None)

    def provides(self) -> tuple[str, ...]:
        return ("params", "macs", "activations")

    def metrics(self, arch: Arch) -> dict[str, float]:
        if self.space.has("resolution") or self.image_size is None:
            return self.space.costs(arch, self.n_classes)
        return self.space.costs(arch, self.n_classes, self.image_size)


class CostModel:
    """The run's cost providers together: ``metrics(arch)`` merges theirs, ``names`` lists them."""

    def __init__(self, providers: Sequence[CostProvider]) -> None:
        self.providers = list(providers)
        self.names: tuple[str, ...] = tuple(dict.fromkeys(n for p in self.providers for n in p.provides()))

    def metrics(self, arch: Arch) -> dict[str, float]:
        out: dict[str, float] = {}
        for p in self.providers:
            out.update(p.metrics(arch))
        return out

    def table(self, archs: Sequence[Arch]) -> dict[str, Any]:
        """``{metric: array}`` over ``archs`` (the form objectives read)."""
        import numpy as np

        rows = [self.metrics(a) for a in archs]
        return {n: np.array([r[n] for r in rows], dtype=float) for n in self.names}
