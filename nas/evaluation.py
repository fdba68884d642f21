"""The Evaluator contract: measure architectures, one :class:`Result` per architecture id.

Results are keyed by architecture id, never paired by position, and a failure is a record with
its cause, never a fake score (the reference code shifted every later result onto the wrong
architecture after one failure, and scored failures ``top1 = 0``).
"""

from __future__ import annotations

import traceback
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nas.registry import Registry
from nas.space import Arch, SearchSpace

EVALUATORS: Registry = Registry("evaluator")


@dataclass
class Result:
    """What one evaluation measured (``metrics``) or why it failed (``failure``)."""

    arch_id: str
    arch: Arch
    metrics: dict[str, float] = field(default_factory=dict)
    failure: dict[str, str] | None = None  # {"type", "message", "traceback"}
    # trained weights worth keeping (a fine-tuned candidate's state dict); saved as ckpt.pth by
    # the search, never part of the JSON
    weights: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.failure is None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.arch_id, "arch": self.arch, "metrics": self.metrics}
        if self.failure is not None:
            out["failure"] = self.failure
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Result:
        return cls(d["id"], d["arch"], dict(d.get("metrics", {})), d.get("failure"))

    @classmethod
    def failed(cls, arch_id: str, arch: Arch, exc: BaseException) -> Result:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(arch_id, arch, {}, {"type": type(exc).__name__, "message": str(exc), "traceback": tb})


class Evaluator(ABC):
    """Measures architectures of ``space``. Subclasses implement :meth:`measure`."""

    space: SearchSpace

    @abstractmethod
    def measure(self, arch: Arch) -> dict[str, float]:
        """Metrics of one architecture (``top1`` in percent, costs in millions, latency in ms)."""

    def exact_metrics(self, arch: Arch) -> dict[str, float]:
        """Metrics known without evaluating (analytic costs, look-up-table latency).

        The search computes objectives from these inside NSGA-II instead of predicting them.
        """
        return {}

    def measure_with_weights(self, arch: Arch) -> tuple[dict[str, float], dict[str, Any] | None]:
        """:meth:`measure`, plus trained weights worth saving (default: none)."""
        return self.measure(arch), None

    def evaluate_one(self, arch: Arch) -> Result:
        """:meth:`measure_with_weights` with any exception turned into a failure record."""
        arch_id = self.space.arch_id(arch)
        try:
            metrics, weights = self.measure_with_weights(arch)
            return Result(arch_id, arch, metrics, weights=weights)
        except Exception as e:  # recorded with its traceback; the search goes on
            return Result.failed(arch_id, arch, e)

    def evaluate(self, archs: Sequence[Arch]) -> dict[str, Result]:
        """Evaluate in this process; a dict ``arch_id -> Result``."""
        return {r.arch_id: r for r in map(self.evaluate_one, archs)}
