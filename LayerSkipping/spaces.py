"""``skippingmobilenetv3``: OFA MobileNetV3 with an input-dependent gate on skippable blocks.

The ``mobilenetv3`` genes plus two gene groups of 20 (one gene per block slot, the slot order of
``ks`` and ``e``; gene ``j`` belongs to the supernet's block ``j + 1``, block 0 is never gated):

- ``gate_hidden``: the gate's hidden size, in {16, 32, 64};
- ``sparsity``: the gate's target sparsity (share of samples that skip the block), in
  {0, 0.5, 0.6, 0.7, 0.8}; 0 = no gate.

Only a block whose input and output have the same shape can be skipped: in OFA's MobileNetV3 that
is every block of a stage but its first (the first changes the channels, most also the stride).
The genes of a slot that cannot be gated, that the stage depth switches off or whose sparsity is 0
(then the hidden size has no effect) are reset by :meth:`canonical`, so :meth:`arch_id` names the
network that runs. ``net.subnet`` adds ``"gate_hidden": [20]`` and ``"sparsity": [20]``.

Differences from the reference (the layer-skipping thesis): its genes are read in the order of
the blocks that run (gene ``k`` gated the ``k``-th active block, so one gene lands on different
layers at different depths); here they follow the slots like ``ks`` and ``e``. Files with its keys
``gate_hidden_sizes`` / ``target_sparsities`` are read and mapped to the slots. It gated
shape-changing blocks too, ignored that gate in training and used an untrained projection at batch
size 1; here such blocks have no gate. It replaced OFA's head by a fresh classifier; here the
network is the OFA subnet, its trained head included. Its gates started mostly closed (logit bias
-0.7), which throws away most of an inherited network's computation before training; ours start
open (+0.7, ``--gate_bias``) and the sparsity terms close them (on the embedded CIFAR-10, 2 x 30
steps: top-1 40.1 vs 35.9 at a similar MAC saving).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from LayerSkipping.gates import GATE_TYPES, HIDDEN_SIZES, gate_counts, make_gate
from nas.config import option
from nas.errors import UserError
from nas.space import SEARCH_SPACES, Arch, GeneGroup
from NasSearchSpace.ofa_mbv3 import OFAMobileNetV3Space
from NasSearchSpace.ofa_mbv3_costs import analytic_block_counts, analytic_counts, millions, stage_sides
from NasSearchSpace.ofa_mbv3_layout import (
    MAX_DEPTH,
    N_BLOCKS,
    active_blocks,
    is_active,
    stage_widths,
)

SPARSITIES = (0.0, 0.5, 0.6, 0.7, 0.8)  # 0 = no gate
THESIS_KEYS = {"gate_hidden": "gate_hidden_sizes", "sparsity": "target_sparsities"}


def skippable(slot: int) -> bool:
    """Whether block slot ``slot`` (0..19) keeps its input's shape (every block but a stage's first)."""
    return slot % MAX_DEPTH != 0


@dataclass
class GatePlan:
    """The gates of one architecture, in network order."""

    slots: list[int]  # block slot (0..19) of each gate
    at: list[int]  # index in the built network's ``blocks`` (block 0 is the fixed first block)
    channels: list[int]
    sizes: list[int]
    hidden: list[int]
    targets: list[float]


@SEARCH_SPACES.register("skippingmobilenetv3")
class SkippingMobileNetV3Space(OFAMobileNetV3Space):
    """OFA MobileNetV3 + a gate hidden size and a target sparsity per block slot (0 = no gate)."""

    name = "skippingmobilenetv3"

    @dataclass
    class Options(OFAMobileNetV3Space.Options):
        gate_type: str = option("stable", f"gate network: {', '.join(GATE_TYPES)}")
        temperature: float = option(1.0, "gate temperature T: p = sigmoid(logit / T)")
        gate_bias: float = option(
            0.7,
            "initial bias of a gate's logit (0.7: open at first, the inherited network intact; "
            "the reference's -0.7: closed)",
        )

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        o = self.options
        if o.gate_type not in GATE_TYPES:
            raise UserError(f"--gate_type {o.gate_type!r} is not one of: {', '.join(GATE_TYPES)}")
        if not o.temperature > 0:
            raise UserError(f"--temperature {o.temperature} must be > 0")

    def extra_gene_groups(self) -> list[GeneGroup]:
        return [GeneGroup("gate_hidden", HIDDEN_SIZES, N_BLOCKS), GeneGroup("sparsity", SPARSITIES, N_BLOCKS)]

    def validate_extra(self, arch: dict[str, Any], out: dict[str, Any]) -> None:
        arch = _from_thesis_keys(arch, out["d"])
        for key, options in (("gate_hidden", HIDDEN_SIZES), ("sparsity", SPARSITIES)):
            v = arch.get(key)
            if not isinstance(v, list) or len(v) != N_BLOCKS:
                raise UserError(
                    f"subnet {key!r} must be a list of {N_BLOCKS} values in {list(options)} "
                    f"(one per block slot); is this a {self.name} subnet?"
                )
            for i, item in enumerate(v):
                if isinstance(item, bool) or not isinstance(item, (int, float)) or item not in options:
                    raise UserError(f"subnet {key}[{i}] = {item!r} is not one of {list(options)}")
            out[key] = [type(options[0])(item) for item in v]

    def canonical_extra(self, arch: dict[str, Any]) -> dict[str, Any]:
        hidden, sparsity = list(arch["gate_hidden"]), list(arch["sparsity"])
        for j in range(N_BLOCKS):
            if not (skippable(j) and is_active(arch["d"], j)):
                sparsity[j] = SPARSITIES[0]
            if sparsity[j] == SPARSITIES[0]:
                hidden[j] = HIDDEN_SIZES[0]
        return {**arch, "gate_hidden": hidden, "sparsity": sparsity}

    def features(self, arch: Arch):
        """The base features, then per slot the hidden-size gene (1..3, 0 = no gate) and the sparsity
        gene (0 = no gate, 1..4)."""
        arch = self.canonical(arch)
        x = super().features(arch)
        for j in range(N_BLOCKS):
            gated = arch["sparsity"][j] != SPARSITIES[0]
            x[self.group_slice("gate_hidden").start + j] += 1 if gated else 0
        return x

    def feature_names(self) -> list[str]:
        """The base names, then ``gate_hidden.s<s>.b<b>`` and ``sparsity.s<s>.b<b>`` per slot."""
        blocks = [f"s{j // MAX_DEPTH}.b{j % MAX_DEPTH}" for j in range(N_BLOCKS)]
        base = super().feature_names()[: -2 * N_BLOCKS]
        return [*base, *(f"gate_hidden.{b}" for b in blocks), *(f"sparsity.{b}" for b in blocks)]

    # ---- gates ----------------------------------------------------------------------------

    def gate_plan(self, arch: Arch) -> GatePlan:
        arch = self.canonical(arch)
        widths = stage_widths(self.width_mult)
        sizes = stage_sides(arch["r"])
        order = {slot: k + 1 for k, slot in enumerate(active_blocks(arch["d"]))}
        slots = [j for j in range(N_BLOCKS) if arch["sparsity"][j] != SPARSITIES[0]]
        return GatePlan(
            slots,
            [order[j] for j in slots],
            [widths[2 + j // MAX_DEPTH] for j in slots],
            [sizes[j // MAX_DEPTH] for j in slots],
            [arch["gate_hidden"][j] for j in slots],
            [arch["sparsity"][j] for j in slots],
        )

    def _gate_analysis(self, arch: Arch, n_classes: int) -> tuple[GatePlan, list[dict], list[dict]]:
        """The gate plan, each gate's integer counts and the 20 blocks' integer counts."""
        plan = self.gate_plan(arch)
        kind = self.options.gate_type
        gates = [
            gate_counts(kind, c, s, h) for c, s, h in zip(plan.channels, plan.sizes, plan.hidden, strict=True)
        ]
        return plan, gates, analytic_block_counts(self._base(arch), n_classes, self.width_mult)

    def gate_block_counts(self, arch: Arch, n_classes: int) -> dict[str, list[int]]:
        """Per gate (network order): its own params and MACs, and the MACs of the block it gates."""
        plan, gates, blocks = self._gate_analysis(arch, n_classes)
        return {
            "gate_macs": [g["macs"] for g in gates],
            "gate_params": [g["params"] for g in gates],
            "block_macs": [blocks[j]["macs"] for j in plan.slots],
        }

    # ---- costs and networks ---------------------------------------------------------------

    def costs(self, arch: Arch, n_classes: int, resolution: int | None = None) -> dict[str, Any]:
        """The whole network with every gate computed and every block run (what hooks count on
        :meth:`build`): params, MACs, activations; plus ``backbone_macs`` / ``backbone_params`` (the
        ungated twin), ``n_gates``, ``gate_macs`` (all gates) and ``skippable_macs`` (the gated
        blocks) in millions."""
        plan, gates, blocks = self._gate_analysis(arch, n_classes)
        full = analytic_counts(self._base(arch), n_classes, self.width_mult)
        out: dict[str, Any] = millions({key: full[key] + sum(g[key] for g in gates) for key in full})
        out["backbone_macs"] = full["macs"] / 1e6
        out["backbone_params"] = full["params"] / 1e6
        out["n_gates"] = len(plan.slots)
        out["gate_macs"] = sum(g["macs"] for g in gates) / 1e6
        out["skippable_macs"] = sum(blocks[j]["macs"] for j in plan.slots) / 1e6
        return out

    def build(self, arch: Arch, supernet: Any = None, n_classes: int = 1000) -> Any:
        """The gated network: the backbone with the supernet's weights for ``arch`` and freshly
        initialised gates (the caller seeds torch for a reproducible initialisation)."""
        from LayerSkipping.network import GatedNet

        arch = self.canonical(arch)
        backbone = super().build(arch, supernet, n_classes)
        plan = self.gate_plan(arch)
        o = self.options
        gates = [
            make_gate(o.gate_type, c, s, h, o.gate_bias)
            for c, s, h in zip(plan.channels, plan.sizes, plan.hidden, strict=True)
        ]
        return GatedNet(backbone, plan.at, gates, plan.targets, o.temperature, o.gate_type)


def _from_thesis_keys(arch: dict[str, Any], depths: list[int]) -> dict[str, Any]:
    """The thesis' ``gate_hidden_sizes`` / ``target_sparsities`` (gene ``k`` = the ``k``-th active
    block after block 0) mapped to our slot-ordered keys, when ours are absent."""
    if all(k in arch for k in THESIS_KEYS) or not any(v in arch for v in THESIS_KEYS.values()):
        return arch
    out = dict(arch)
    slots = active_blocks(depths)
    for key, theirs in THESIS_KEYS.items():
        if key in arch:
            continue
        v = arch.get(theirs)
        if not isinstance(v, list) or len(v) != N_BLOCKS:
            raise UserError(f"subnet {theirs!r} must be a list of {N_BLOCKS} values (the thesis' format)")
        fill = HIDDEN_SIZES[0] if key == "gate_hidden" else SPARSITIES[0]
        mapped = [fill] * N_BLOCKS
        for k, slot in enumerate(slots):
            mapped[slot] = v[k]
        out[key] = mapped
    return out
