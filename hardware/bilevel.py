"""HADAS's bi-level search: backbones outside, exits + DVFS inside, for error, latency and energy.

- **Outer**: the engine's search (NSGA-II with surrogates, ``msunas``) over the backbones of the
  ``hadasmobilenetv3`` space: OFA MobileNetV3 genes only, every backbone built with an exit head
  after each of stages 1-4, all trained with it (``--trainer ee_joint``).
- **Inner**, per evaluated backbone, in the ``hadas`` measure: every head's outputs on the
  validation split give the exit statistics (per-sample policy scores and correctness at each
  exit, so exit ratios and per-exit accuracy follow from any thresholds), the space's exact
  counts give each path's MACs and bytes, and :func:`hardware.hadas.inner_search` (NSGA-II over
  threshold levels per boundary + DVFS levels of the device profile, ``--inner_evals``
  evaluations) finds the backbone's inner front of (error, expected latency, expected energy),
  weighted by exit ratios.

The backbone's metrics are those of one point of its inner front, the deployment the run reports:
the least expected energy among the points whose error is within ``--max_drop`` points of the
backbone's own final classifier (its ``top1`` is that point's); the whole inner front is kept in
the evaluation (``hadas_front``, a JSON list of points), so ``post_search.py`` writes it into
every chosen network's ``net.stats``. Objectives: ``--objectives top1 energy latency`` (or any two).

HADAS's published code leaves every evaluation function empty; this is a working version of its
design (see :mod:`hardware.hadas` for where the inner objectives differ: exit-ratio weighting).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch

from EarlyExits.measures import collect_outputs
from EarlyExits.spaces import N_BOUNDARIES, EarlyExitSpace
from nas.config import option
from nas.errors import UserError
from nas.measures import MEASURES, EvalContext, Measure
from nas.space import SEARCH_SPACES, Arch
from NasSearchSpace.ofa_mbv3 import OFAMobileNetV3Space


@SEARCH_SPACES.register("hadasmobilenetv3")
class HadasMobileNetV3Space(EarlyExitSpace):
    """OFA MobileNetV3 backbones with an exit head after each of stages 1-4 (no exit genes: the
    inner search places and sets the exits)."""

    name = "hadasmobilenetv3"

    @dataclass
    class Options(EarlyExitSpace.Options):
        exit_head: str = option("edanas", "exit head: edanas or nachos")

    def exit_stages(self, arch: Arch) -> list[int]:
        return list(range(N_BOUNDARIES))

    def feature_names(self) -> list[str]:
        return OFAMobileNetV3Space.feature_names(self)


def choose(front: Any, backbone_error: float, max_drop: float) -> int:
    """Index of the point with the least energy whose error is at most ``backbone_error +
    max_drop`` (else the point with the least error)."""
    F = np.asarray(front.F)
    ok = np.flatnonzero(F[:, 0] <= backbone_error + max_drop + 1e-9)
    if not len(ok):
        return int(np.argmin(F[:, 0]))
    return int(ok[np.lexsort((F[ok, 1], F[ok, 2]))][0])


@MEASURES.register("hadas")
class Hadas(Measure):
    """The inner search of one backbone on the validation split (see the module docstring)."""

    provides = (
        "top1", "backbone_top1", "latency", "energy", "hadas_choice", "hadas_front", "inner_evals",
        "energy_provenance",
    )  # fmt: skip

    @dataclass
    class Options:
        device_profile: str = option(
            "jetson-agx-xavier", "device profile: local-vm, jetson-agx-xavier or a YAML file"
        )
        inner_evals: int = option(50, "inner-search evaluations per backbone (HADAS: about 50)")
        inner_pop: int = option(10, "inner NSGA-II population (HADAS: 10)")
        inner_mode: str = option("joint", "inner genes: joint (exits + DVFS), exits or dvfs")
        inner_dvfs: str = option(
            "model",
            "DVFS in the inner search: model (each exit configuration's DVFS front from the profile, "
            "modelled profiles only), front or levels (searched genes, as on a real board)",
        )
        max_drop: float = option(1.0, "the reported point: least energy within this many top-1 points")
        inner_policy: str = option("score_margin", "exit policy scoring the samples at each head")
        dtype_bytes: int = option(2, "bytes per weight and activation on the device (2: float16)")

    def check(self, space: Any) -> None:
        from hardware.hadas import DVFS_GENES, MODES
        from hardware.profiles import get_profile

        if not isinstance(space, HadasMobileNetV3Space):
            raise UserError(f"the hadas measure needs --search_space hadasmobilenetv3, not {space.name!r}")
        if self.options.inner_mode not in MODES:
            raise UserError(f"--inner_mode {self.options.inner_mode!r}: choose one of {', '.join(MODES)}")
        if self.options.inner_dvfs not in DVFS_GENES:
            raise UserError(
                f"--inner_dvfs {self.options.inner_dvfs!r}: choose one of {', '.join(DVFS_GENES)}"
            )
        if self.options.inner_evals < 1 or self.options.inner_pop < 2:
            raise UserError("--inner_evals must be >= 1 and --inner_pop >= 2")
        get_profile(self.options.device_profile)

    @cached_property
    def profile(self) -> Any:
        from hardware.profiles import get_profile

        return get_profile(self.options.device_profile)

    def measure(self, model: torch.nn.Module, arch: Any, ctx: EvalContext) -> dict[str, Any]:
        from hardware.hadas import backbone_costs, exit_data_from_outputs, inner_search

        o = self.options
        out = collect_outputs(model, ctx.valid_batches(arch))
        costs = backbone_costs(ctx.space, arch, ctx.n_classes, o.dtype_bytes)
        data = exit_data_from_outputs(
            out, o.inner_policy, costs, source=f"validation, {len(out.labels)} images"
        )
        front = inner_search(
            data, self.profile, o.inner_evals, ctx.seed, mode=o.inner_mode, pop_size=o.inner_pop,
            dvfs_genes=o.inner_dvfs,
        )  # fmt: skip
        backbone_error = 100.0 * (1.0 - float(data.correct[:, -1].mean()))
        rows = front.rows()
        pick = rows[choose(front, backbone_error, o.max_drop)]
        return {
            "top1": 100.0 - pick["error"],
            "backbone_top1": 100.0 - backbone_error,
            "latency": pick["latency_ms"],
            "energy": pick["energy_mj"],
            "hadas_choice": pick,
            "hadas_front": json.dumps(rows, separators=(",", ":")),  # one column of archive.csv
            "inner_evals": front.evaluations,
            "energy_provenance": self.profile.provenance,
        }
