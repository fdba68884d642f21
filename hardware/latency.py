"""Latency in a search: ``--sec_obj latency --latency_model lut:DIR|predictor:FILE|measured``.

The ``latency`` objective (ms, minimised) reads the metric ``latency``; its option
``--latency_model`` says which part of the run reports it, and the run description adds that part
(:meth:`nas.search.objectives.Objective.requires`):

- ``lut:DIR``: the ``lut_latency`` cost provider, the sum of the layers' means in the OFA-format
  tables of ``DIR`` (OFA's published Note10 tables in ``data/ofa``, or a table measured here with
  ``tools/build_latency_lut.py``), computed in the driver;
- ``predictor:FILE``: the ``latency_predictor`` cost provider, a model trained with
  ``tools/latency_predictor.py train``, computed in the driver;
- ``measured``: the ``latency`` measure, the trained network timed at batch size 1 on the device
  that evaluates it, inside the evaluation (the median of ``--latency_repeats`` calls; its
  inter-quartile range is reported as ``latency_iqr``).

Without ``--latency_model`` the metric must come from a part the run already has (``--costs
lut_latency --lut_dir DIR``, as the ``ofa_note10`` benchmark preset does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hardware.measure import TimingProtocol, random_input, time_call
from nas.config import option
from nas.cost_providers import COST_PROVIDERS, CostProvider
from nas.errors import UserError
from nas.measures import MEASURES, EvalContext, Measure
from nas.search.objectives import OBJECTIVES, Objective

MODELS = "lut:DIR, predictor:FILE or measured"


def parse_source(text: str, flag: str, with_path: tuple[str, ...], bare: tuple[str, ...], usage: str):
    """``(kind, where)`` of a ``KIND:WHERE`` or bare ``KIND`` value of ``flag``; else a one-line error."""
    kind, _, where = str(text).partition(":")
    if (kind in bare and not where) or (kind in with_path and where):
        return kind, where or None
    raise UserError(f"{flag} {text!r}: use {usage}")


def parse_latency_model(text: str) -> tuple[str, str | None]:
    """``("lut", DIR)``, ``("predictor", FILE)`` or ``("measured", None)``."""
    return parse_source(
        text, "--latency_model", ("lut", "predictor"), ("measured",), f"{MODELS} (e.g. lut:data/ofa)"
    )


@OBJECTIVES.register("latency")
class Latency(Objective):
    """Latency in ms, from the part ``--latency_model`` names."""

    name, metrics, unit = "latency", ("latency",), "ms"

    @dataclass
    class Options:
        latency_model: str | None = option(
            None,
            f"where latency comes from: {MODELS} (timed on the evaluating device); none: a part the "
            "run already has (e.g. --costs lut_latency)",
        )

    @classmethod
    def requires(cls, options: Any) -> list[tuple[str, dict[str, Any]]]:
        if options.latency_model is None:
            return []
        kind, where = parse_latency_model(options.latency_model)
        if kind == "lut":
            return [("costs", {"name": "lut_latency", "lut_dir": where})]
        if kind == "predictor":
            return [("costs", {"name": "latency_predictor", "predictor_file": where})]
        return [("measures", {"name": "latency"})]


@COST_PROVIDERS.register("latency_predictor")
class PredictedLatency(CostProvider):
    """``latency`` (ms) from a latency predictor file (``tools/latency_predictor.py train``)."""

    @dataclass
    class Options:
        predictor_file: str | None = option(None, "latency predictor file made by tools/latency_predictor.py")

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        from hardware.predictors import load_predictor

        if self.options.predictor_file is None:
            raise UserError("the latency_predictor cost provider needs --predictor_file (or --latency_model)")
        if getattr(self.space, "width_mult", None) is None:
            raise UserError(f"latency predictors price OFA MobileNetV3 subnets, not {self.space.name!r}")
        self.predictor = load_predictor(self.options.predictor_file)

    def provides(self) -> tuple[str, ...]:
        return ("latency",)

    def metrics(self, arch: Any) -> dict[str, float]:
        return {"latency": float(self.predictor.predict([self.space.validate(arch)])[0])}


@MEASURES.register("latency")
class MeasuredLatency(Measure):
    """The trained network timed at batch size 1 on the evaluating device: ``latency`` (median ms)
    and ``latency_iqr`` over ``--latency_repeats`` calls after ``--latency_warmup``, channels_last,
    eval mode, at the process's thread count (reported as ``latency_threads``)."""

    provides = ("latency", "latency_iqr")

    @dataclass
    class Options:
        latency_warmup: int = option(10, "untimed calls before timing (measured latency)")
        latency_repeats: int = option(30, "timed calls; the median is the latency (measured latency)")

    def measure(self, model: torch.nn.Module, arch: Any, ctx: EvalContext) -> dict[str, Any]:
        protocol = TimingProtocol(
            device=str(ctx.device),
            threads=torch.get_num_threads(),
            warmup=self.options.latency_warmup,
            repeats=self.options.latency_repeats,
            seed=ctx.seed,
        )
        r = ctx.resolution(arch)
        x = random_input((1, 3, r, r), ctx.seed, ctx.device)
        was_training = model.training
        net, x = protocol.prepare(model, x)
        try:
            ms = time_call(net, x, protocol.warmup, protocol.repeats)
        finally:
            model.train(was_training)
            model.to(memory_format=torch.contiguous_format)
        q1, med, q3 = np.percentile(ms, [25, 50, 75])
        return {"latency": float(med), "latency_iqr": float(q3 - q1), "latency_threads": protocol.threads}
