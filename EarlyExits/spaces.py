"""Early-exit search spaces: OFA MobileNetV3 plus exits at the stage boundaries.

- ``eemobilenetv3`` (EDANAS): the ``mobilenetv3`` genes plus one gene per boundary after stages
  1-4, ``t`` in {0.1, 0.2, 1}: 1 means no exit there, otherwise an exit whose score-margin
  threshold is t. ``net.subnet`` adds ``"t": [4 floats]``.
- ``cbnmobilenetv3`` (NACHOS): the ``mobilenetv3`` genes plus one bit per boundary, ``"b": [4
  ints]``, at least one set (:meth:`repair` maps the all-zero vector NSGA-II or sampling may draw
  to a valid one); the thresholds are tuned after training.

The exit genes are appended after the resolution gene as a gene group, so encoding and decoding
round-trip with and without a resolution gene (CNAS's EDANAS decoder read its thresholds from
the last five genes, which at a fixed resolution picks up an expand-ratio gene and drops t3).

An exit taps the output of the last active block of its stage; the final exit is the backbone's
own classifier. :meth:`EarlyExitSpace.exit_costs` gives the exact cost of every exit, and
:meth:`EarlyExitSpace.costs` those of the whole network (backbone + every head), equal to the hook
counts on :meth:`EarlyExitSpace.build`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from EarlyExits.heads import HEADS, choose_pools, head_counts, make_head
from nas.config import option
from nas.errors import UserError
from nas.space import SEARCH_SPACES, Arch, GeneGroup
from NasSearchSpace.ofa_mbv3 import OFAMobileNetV3Space
from NasSearchSpace.ofa_mbv3_costs import analytic_counts, analytic_stage_counts, millions, stage_sides
from NasSearchSpace.ofa_mbv3_layout import N_STAGES, stage_widths

N_BOUNDARIES = N_STAGES - 1  # exits may follow stages 1-4; stage 5 ends in the final classifier
THRESHOLDS = (0.1, 0.2, 1.0)  # EDANAS's threshold genes; 1.0 = no exit


@dataclass
class ExitPlan:
    """Where the early exits of one architecture sit and what their heads are."""

    stages: list[int]  # stage (0-based) each early exit follows
    taps: list[int]  # index in the built network's ``blocks`` whose output the exit reads
    channels: list[int]
    sizes: list[int]  # side of the feature map the exit reads
    pools: list[int]  # max-pool kernel of each head (nachos heads; 1 otherwise)
    head: str
    n_out: int  # outputs of each head: classes (+ 1 confidence unit)
    thresholds: list[float] = field(default_factory=list)  # searched thresholds (eemobilenetv3)


class EarlyExitSpace(OFAMobileNetV3Space):
    """What both early-exit spaces share: the exit plan, the network and the exact costs."""

    exit_key = ""  # the architecture key of the exit genes
    confidence = False  # heads carry a confidence unit (NACHOS training)
    max_exits = N_BOUNDARIES  # early exits a network can have (post_search.py --n_exits checks it)

    @dataclass
    class Options(OFAMobileNetV3Space.Options):
        exit_head: str = option("nachos", f"exit head: {', '.join(HEADS)}")

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        if self.options.exit_head not in HEADS:
            raise UserError(f"--exit_head {self.options.exit_head!r} is not one of: {', '.join(HEADS)}")

    # ---- exits ----------------------------------------------------------------------------

    def exit_stages(self, arch: Arch) -> list[int]:
        """The stages (0..3) followed by an early exit."""
        raise NotImplementedError

    def feature_names(self) -> list[str]:
        """The base names, then ``exit.s<k>`` for the exit gene after stage ``k`` (family ``exit``)."""
        return [*super().feature_names()[:-N_BOUNDARIES], *(f"exit.s{s}" for s in range(N_BOUNDARIES))]

    def n_exits(self, arch: Arch) -> int:
        """Early exits (the final classifier not counted)."""
        return len(self.exit_stages(arch))

    def _analysis(self, arch: Arch, n_classes: int) -> tuple[ExitPlan, list[dict], dict, list[dict]]:
        """The exit plan, the backbone's integer costs up to each stage and in full, and each head's:
        computed once for what :meth:`exit_plan`, :meth:`exit_counts` and :meth:`costs` report."""
        arch = self.validate(arch)
        base = {k: arch[k] for k in ("ks", "e", "d", "r", "w")}
        stage = analytic_stage_counts(base, n_classes, self.width_mult)
        full = analytic_counts(base, n_classes, self.width_mult)
        stages = self.exit_stages(arch)
        widths = stage_widths(self.width_mult)
        sizes_all = stage_sides(arch["r"])
        taps = [int(np.sum(arch["d"][: s + 1])) for s in stages]  # blocks[0] is the fixed first block
        channels = [widths[2 + s] for s in stages]
        sizes = [sizes_all[s] for s in stages]
        n_out = n_classes + (1 if self.confidence else 0)
        head = self.options.exit_head
        pools = [1] * len(stages)
        if head == "nachos" and stages:
            pools = choose_pools([stage[s]["macs"] for s in stages], channels, sizes, full["macs"], n_out)
        thresholds = [arch["t"][s] for s in stages] if "t" in arch else []
        plan = ExitPlan(stages, taps, channels, sizes, pools, head, n_out, thresholds)
        heads = [head_counts(head, c, z, n_out, k) for c, z, k in zip(channels, sizes, pools, strict=True)]
        return plan, stage, full, heads

    def exit_plan(self, arch: Arch, n_classes: int) -> ExitPlan:
        return self._analysis(arch, n_classes)[0]

    def exit_counts(self, arch: Arch, n_classes: int) -> dict[str, list[int]]:
        """Exact integer costs per exit (early exits, then the final one):

        - ``exit_macs``: MACs a sample pays when it leaves there: the backbone up to the exit plus
          every head evaluated on the way (earlier heads it did not take included);
        - ``exit_params``: parameters of the backbone up to the exit plus that exit's head;
        - ``head_macs`` / ``head_params``: the heads alone (the final one: 0, it is the backbone's).
        """
        return _exit_counts(*self._analysis(arch, n_classes))

    def exit_costs(self, arch: Arch, n_classes: int) -> dict[str, list[float]]:
        """:meth:`exit_counts` in millions."""
        return {k: [v / 1e6 for v in vs] for k, vs in self.exit_counts(arch, n_classes).items()}

    # ---- costs and networks ---------------------------------------------------------------

    def costs(self, arch: Arch, n_classes: int, resolution: int | None = None) -> dict[str, Any]:
        """The whole network (backbone + every head): params, MACs (what a sample that runs every
        exit pays) and activations; plus ``backbone_macs`` / ``backbone_params`` (the single-exit
        twin), ``n_exits`` and the per-exit ``exit_macs`` (millions)."""
        plan, stage, full, heads = self._analysis(arch, n_classes)
        total = {key: full[key] + sum(h[key] for h in heads) for key in full}
        out: dict[str, Any] = millions(total)
        out["backbone_macs"] = full["macs"] / 1e6
        out["backbone_params"] = full["params"] / 1e6
        out["n_exits"] = len(plan.stages)
        out["exit_macs"] = [v / 1e6 for v in _exit_counts(plan, stage, full, heads)["exit_macs"]]
        return out

    def build(self, arch: Arch, supernet: Any = None, n_classes: int = 1000) -> Any:
        """The early-exit network: the backbone with the supernet's weights for ``arch`` and freshly
        initialised heads (the caller seeds torch for a reproducible initialisation)."""
        from EarlyExits.network import EarlyExitNet

        arch = self.validate(arch)
        backbone = super().build(arch, supernet, n_classes)
        n_classes = backbone.classifier.linear.out_features
        plan = self.exit_plan(arch, n_classes)
        heads = [
            make_head(plan.head, c, s, plan.n_out, k)
            for c, s, k in zip(plan.channels, plan.sizes, plan.pools, strict=True)
        ]
        return EarlyExitNet(backbone, plan.taps, heads, self.confidence)


@SEARCH_SPACES.register("eemobilenetv3")
class EEMobileNetV3Space(EarlyExitSpace):
    """EDANAS: OFA MobileNetV3 + a threshold gene per stage boundary (1 = no exit there)."""

    name = "eemobilenetv3"
    exit_key = "t"

    @dataclass
    class Options(EarlyExitSpace.Options):
        exit_head: str = option("edanas", f"exit head: {', '.join(HEADS)}")

    def extra_gene_groups(self) -> list[GeneGroup]:
        return [GeneGroup("t", THRESHOLDS, N_BOUNDARIES)]

    def validate_extra(self, arch: dict[str, Any], out: dict[str, Any]) -> None:
        t = arch.get("t")
        if not isinstance(t, list) or len(t) != N_BOUNDARIES:
            raise UserError(
                f"subnet 't' must be a list of {N_BOUNDARIES} exit thresholds in {list(THRESHOLDS)}"
            )
        for i, v in enumerate(t):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or float(v) not in THRESHOLDS:
                raise UserError(f"subnet t[{i}] = {v!r} is not one of {list(THRESHOLDS)} (1 = no exit)")
        out["t"] = [float(v) for v in t]

    def exit_stages(self, arch: Arch) -> list[int]:
        return [s for s, t in enumerate(arch["t"]) if t != 1.0]


@SEARCH_SPACES.register("cbnmobilenetv3")
class CBNMobileNetV3Space(EarlyExitSpace):
    """NACHOS: OFA MobileNetV3 + one exit bit per stage boundary (at least one set); heads with a
    confidence unit; thresholds tuned after training."""

    name = "cbnmobilenetv3"
    exit_key = "b"
    confidence = True

    def extra_gene_groups(self) -> list[GeneGroup]:
        return [GeneGroup("b", (0, 1), N_BOUNDARIES)]

    def validate_extra(self, arch: dict[str, Any], out: dict[str, Any]) -> None:
        b = arch.get("b")
        if not isinstance(b, list) or len(b) != N_BOUNDARIES:
            raise UserError(f"subnet 'b' must be a list of {N_BOUNDARIES} exit bits (0 or 1)")
        for i, v in enumerate(b):
            if isinstance(v, bool) or v not in (0, 1):
                raise UserError(f"subnet b[{i}] = {v!r} must be 0 or 1")
        if not any(b):
            raise UserError(
                "subnet 'b' has no exit bit set; a cbnmobilenetv3 network needs at least one early exit"
            )
        out["b"] = [int(v) for v in b]

    def repair(self, x: np.ndarray) -> np.ndarray:
        """No exit bit set -> one bit set, at a boundary that depends on the other genes (so the
        repaired vectors spread over the four boundaries instead of piling on one)."""
        bits = self.group_slice("b")
        if np.any(x[bits]):
            return x
        y = np.array(x, copy=True)
        y[bits.start + int(np.sum(x[: bits.start])) % N_BOUNDARIES] = 1
        return y

    def exit_stages(self, arch: Arch) -> list[int]:
        return [s for s, b in enumerate(arch["b"]) if b]


def _exit_counts(plan: ExitPlan, stage: list[dict], full: dict, heads: list[dict]) -> dict[str, list[int]]:
    """See :meth:`EarlyExitSpace.exit_counts`."""
    out: dict[str, list[int]] = {"exit_macs": [], "exit_params": [], "head_macs": [], "head_params": []}
    paid = 0
    for s, h in zip(plan.stages, heads, strict=True):
        paid += h["macs"]
        out["exit_macs"].append(stage[s]["macs"] + paid)
        out["exit_params"].append(stage[s]["params"] + h["params"])
        out["head_macs"].append(h["macs"])
        out["head_params"].append(h["params"])
    out["exit_macs"].append(full["macs"] + paid)
    out["exit_params"].append(full["params"])
    out["head_macs"].append(0)
    out["head_params"].append(0)
    return out
