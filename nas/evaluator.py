"""The Evaluator contract: measure architectures, one :class:`~nas.result.Result` per architecture id.

An evaluator is a registered component (:data:`EVALUATORS`) built in two steps, so that a run is
checked before anything expensive happens and the expensive part runs only where evaluations run:

1. the constructor is cheap (options checked, class count known, files looked for): the driver
   builds one to check the run description;
2. :meth:`Evaluator.setup` does the expensive part (a dataset loaded, a supernet built) once, in
   the process that evaluates: this one for in-process evaluation, each worker process or Ray
   actor otherwise. :meth:`Evaluator.evaluate_one` calls it on first use.

Evaluators that run the pipeline build -> train -> measures (:mod:`nas.pipeline`) take a
registered trainer and measures; oracles (table look-ups, accuracy predictors) take neither.
Cheap exact metrics (analytic costs, table latency) are not an evaluator's: cost providers
(:mod:`nas.cost_providers`) compute them in the driver and the search merges them into results.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from nas.components import Component
from nas.registry import Registry
from nas.result import Result
from nas.space import Arch, SearchSpace

EVALUATORS: Registry = Registry("evaluator")


class Evaluator(Component):
    """Measures architectures of ``space``. Subclasses implement :meth:`measure` (and
    :meth:`setup` for their expensive part, :meth:`metric_names` for what they report)."""

    # whether the evaluator runs a trainer and measures (the pipeline) or ignores them (an oracle)
    uses_trainer: ClassVar[bool] = False
    uses_measures: ClassVar[bool] = False

    def __init__(
        self,
        options: Any = None,
        *,
        space: SearchSpace | None = None,
        seed: int = 0,
        trainer: Any = None,
        measures: Sequence[Any] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(options, **kwargs)
        self.space = space
        self.seed = seed
        self.trainer = trainer
        self.measures = list(measures)
        self.n_classes: int | None = None  # classes of the task, when known without setup
        self.image_size: int | None = None  # input side when architectures carry no resolution
        self._ready = False
        if space is not None:  # parts that need a kind of space say so now, not in a worker
            for part in [trainer, *self.measures]:
                if part is not None:
                    part.check(space)

    def metric_names(self) -> set[str]:
        """The metrics :meth:`measure` reports (objectives are checked against them before a run)."""
        return set()

    def setup(self) -> None:
        """The expensive part (data, supernet), done once in the evaluating process (default: none)."""

    def ensure_setup(self) -> None:
        if not self._ready:
            self.setup()
            self._ready = True

    @abstractmethod
    def measure(self, arch: Arch) -> dict[str, Any]:
        """Metrics of one architecture (``top1`` in percent, costs in millions, latency in ms)."""

    def measure_with_weights(self, arch: Arch) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """:meth:`measure`, plus trained weights worth saving (default: none)."""
        return self.measure(arch), None

    def evaluate_one(self, arch: Arch) -> Result:
        """:meth:`measure_with_weights` with any exception turned into a failure record."""
        arch_id = self.space.arch_id(arch)
        try:
            self.ensure_setup()
            metrics, weights = self.measure_with_weights(arch)
            return Result(arch_id, arch, metrics, weights=weights)
        except Exception as e:  # recorded with its traceback; the search goes on
            return Result.failed(arch_id, arch, e)

    def evaluate(self, archs: Sequence[Arch]) -> dict[str, Result]:
        """Evaluate in this process; a dict ``arch_id -> Result``."""
        return {r.arch_id: r for r in map(self.evaluate_one, archs)}
