"""The ``gates`` measure: a gated network scored as it runs, on the validation split, hard gates.

``avg_macs = base + sum(gate MACs) - sum_g(MACs of block g * P(block g skipped))``, with the exact
per-block and per-gate MACs of the analytic model and ``P(skipped)`` the share of validation
images whose gate ``g`` is closed; ``base`` is the ungated backbone. Reported (lists: one entry per
gate, network order): ``avg_macs``, ``mac_saving`` (``1 - avg_macs / base``), ``open_rate`` (hard),
``open_prob`` (mean probability), ``skip_rate`` (share of images skipping at least one block),
``gate_slots`` (the block slot of each gate), ``n_gates``, ``open_top1`` (top-1 with every block
run: what the gates cost in accuracy), ``gate_type`` and ``temperature`` (so every tool rebuilds
the same gates). The test split is never read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from LayerSkipping.trainer import require_gated_space
from nas.measures import MEASURES, EvalContext, Measure


@dataclass
class GateOutputs:
    """Per validation image: predictions with hard gates and with every block, gate values."""

    logits: torch.Tensor  # [n, classes], hard gates
    open_logits: torch.Tensor  # [n, classes], every block run (gates computed)
    prob: torch.Tensor  # [n, gates]
    open: torch.Tensor  # [n, gates], 1 = block runs
    labels: torch.Tensor


@torch.no_grad()
def collect_gates(model: torch.nn.Module, batches) -> GateOutputs:
    was_training, mode = model.training, model.mode
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {
        k: [] for k in ("logits", "open_logits", "prob", "open", "labels")
    }
    try:
        for x, y in batches:
            model.set_mode("hard")
            logits, p, g = model.outputs(x)
            model.set_mode("open")
            parts["open_logits"].append(model(x).float().cpu())
            for k, v in (("logits", logits), ("prob", p), ("open", g), ("labels", y)):
                parts[k].append(v.float().cpu() if k != "labels" else v.cpu())
    finally:
        model.set_mode(mode)
        model.train(was_training)
    if not parts["labels"]:
        raise ValueError("no batches to score")
    return GateOutputs(**{k: torch.cat(v) for k, v in parts.items()})


def avg_macs(counts: dict[str, list[int]], base_macs: int, open_rate: list[float]) -> float:
    """Millions: ``base + sum(gate MACs) - sum(block MACs * (1 - open rate))``."""
    saved = sum(b * (1.0 - r) for b, r in zip(counts["block_macs"], open_rate, strict=True))
    return (base_macs + sum(counts["gate_macs"]) - saved) / 1e6


def gate_report(space: Any, arch: Any, out: GateOutputs, n_classes: int) -> dict[str, Any]:
    """What the ``gates`` measure reports, from the outputs of a split."""
    counts = space.gate_block_counts(arch, n_classes)
    costs = space.costs(arch, n_classes)
    base = round(costs["backbone_macs"] * 1e6)
    rate = out.open.mean(0).tolist() if out.open.shape[1] else []
    am = avg_macs(counts, base, rate)
    return {
        "top1": 100.0 * (out.logits.argmax(1) == out.labels).float().mean().item(),
        "open_top1": 100.0 * (out.open_logits.argmax(1) == out.labels).float().mean().item(),
        "avg_macs": am,
        "mac_saving": 1.0 - am / costs["backbone_macs"],
        "n_gates": len(rate),
        "gate_slots": space.gate_plan(arch).slots,
        "open_rate": rate,
        "open_prob": out.prob.mean(0).tolist() if out.prob.shape[1] else [],
        "skip_rate": (out.open < 0.5).any(1).float().mean().item() if out.open.shape[1] else 0.0,
        "gate_type": space.options.gate_type,
        "temperature": space.options.temperature,
    }


@MEASURES.register("gates")
class Gates(Measure):
    """Gate statistics and avg_macs of a gated network on the validation split (module docstring)."""

    provides = (
        "top1", "open_top1", "avg_macs", "mac_saving", "n_gates", "gate_slots", "open_rate",
        "open_prob", "skip_rate", "gate_type", "temperature",
    )  # fmt: skip

    def check(self, space: Any) -> None:
        require_gated_space(space, "the gates measure")

    def measure(self, model: torch.nn.Module, arch: Any, ctx: EvalContext) -> dict[str, Any]:
        out = collect_gates(model, ctx.valid_batches(arch))
        return gate_report(ctx.space, arch, out, ctx.n_classes)
