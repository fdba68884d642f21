"""Energy in a search: ``--sec_obj energy --energy_model profile:NAME|measured``.

The ``energy`` objective (mJ per inference, minimised) reads the metric ``energy``; its option
``--energy_model`` says which part of the run reports it (added by the run description, as
``--latency_model`` does for latency):

- ``profile:NAME`` (or ``profile:FILE.yaml``): the ``modelled_energy`` cost provider, the device
  profile's model (:mod:`hardware.profiles`) at its top DVFS setting, from the network's exact
  MACs and the bytes it moves; reports ``energy`` and ``energy_latency`` (the profile's latency),
  provenance ``modelled:<profile>``. On a profile without DVFS (``local-vm``, this host) energy is
  the profile's constant power times latency: collinear with latency, which the run says (a
  warning) instead of reporting a trade-off that is not there.
- ``measured``: the ``energy`` measure, the trained network's energy per inference at batch size 1
  read from the machine's counters (Zeus, RAPL or NVML, :mod:`hardware.energy`) with the idle
  baseline removed, provenance ``measured:<source>``. A machine without counters (a VM) is refused
  when the run is built, with the fix (a profile).

Without ``--energy_model`` the metric must come from a part the run already has (the ``hadas``
measure of the bi-level search reports it).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import torch

from hardware.latency import parse_source
from hardware.measure import random_input
from nas.config import option
from nas.cost_providers import COST_PROVIDERS, CostProvider
from nas.measures import MEASURES, EvalContext, Measure
from nas.search.objectives import OBJECTIVES, Objective

MODELS = "profile:NAME (a device profile: local-vm, jetson-agx-xavier or a YAML file) or measured"


def parse_energy_model(text: str) -> tuple[str, str | None]:
    """``("profile", NAME)`` or ``("measured", None)``."""
    return parse_source(text, "--energy_model", ("profile",), ("measured",), MODELS)


@OBJECTIVES.register("energy")
class Energy(Objective):
    """Energy per inference in mJ, from the part ``--energy_model`` names."""

    name, metrics, unit = "energy", ("energy",), "mJ"

    @dataclass
    class Options:
        energy_model: str | None = option(
            None, f"where energy comes from: {MODELS}; none: a part the run already has (the hadas measure)"
        )

    @classmethod
    def requires(cls, options: Any) -> list[tuple[str, dict[str, Any]]]:
        if options.energy_model is None:
            return []
        kind, where = parse_energy_model(options.energy_model)
        if kind == "profile":
            return [("costs", {"name": "modelled_energy", "device_profile": where})]
        return [("measures", {"name": "energy"})]


def warn_if_collinear(profile: Any) -> None:
    from hardware.profiles import collinear_with_latency

    if collinear_with_latency(profile):
        print(
            f"warning: device profile {profile.name!r} sets no frequency: energy = constant power x "
            "latency, collinear with latency; an energy-latency front would show no trade-off",
            file=sys.stderr,
        )


@COST_PROVIDERS.register("modelled_energy")
class ModelledEnergy(CostProvider):
    """``energy`` (mJ) and ``energy_latency`` (ms) of a network from a device profile at its top
    DVFS setting, from the exact MACs and the bytes moved (``hardware.hadas.backbone_costs``'s
    definition: weights read once, activations written and read once)."""

    @dataclass
    class Options:
        device_profile: str = option("local-vm", "device profile: local-vm, jetson-agx-xavier or a YAML file")
        dtype_bytes: int = option(4, "bytes per weight and activation (4: float32, 2: float16)")

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        from hardware.profiles import get_profile

        self.space.require("costs", "the modelled_energy cost provider")
        self.profile = get_profile(self.options.device_profile)
        self.n_classes = getattr(self.evaluator, "n_classes", None) or 1000
        warn_if_collinear(self.profile)

    def provides(self) -> tuple[str, ...]:
        return ("energy", "energy_latency")

    def metrics(self, arch: Any) -> dict[str, float]:
        c = self.space.costs(arch, self.n_classes)
        mb = self.options.dtype_bytes * (c["params"] + 2 * c["activations"])
        top = self.profile.max_setting()
        return {
            "energy": float(self.profile.energy_mj(c["macs"], mb, top)),
            "energy_latency": float(self.profile.latency_ms(c["macs"], mb, top)),
        }


@MEASURES.register("energy")
class MeasuredEnergy(Measure):
    """Energy per inference (mJ) of the trained network at batch size 1 from the machine's energy
    counters, idle baseline removed; ``energy_provenance`` says which counters."""

    provides = ("energy", "energy_provenance")

    @dataclass
    class Options:
        energy_source: str = option("auto", "counters to read: auto, zeus, rapl or nvml")
        energy_seconds: float = option(2.0, "length of the measuring window (and of the idle baseline), s")

    def check(self, space: Any) -> None:
        from hardware.energy import require_energy_source

        require_energy_source(self.options.energy_source)

    def measure(self, model: torch.nn.Module, arch: Any, ctx: EvalContext) -> dict[str, Any]:
        from hardware.energy import energy_per_call

        r = ctx.resolution(arch)
        x = random_input((1, 3, r, r), ctx.seed, ctx.device)
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                reading = energy_per_call(
                    lambda: model(x), self.options.energy_seconds, source=self.options.energy_source
                )
        finally:
            model.train(was_training)
        return {"energy": reading.mj_per_call, "energy_provenance": reading.provenance}
