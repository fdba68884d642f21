"""The gated network: an OFA MobileNetV3 whose residual blocks may be skipped per input.

A skippable block (input and output of the same shape, so OFA's block is ``x + conv(x)``) gets a
gate (:mod:`LayerSkipping.gates`) that reads the block's input. What the block returns depends on
the network's gate mode (:meth:`GatedNet.set_mode`):

- ``soft`` (training; in eval mode it acts as ``hard``): ``x + p * conv(x)`` with
  ``p = sigmoid(logit / T)``;
- ``hard`` (training and the batched evaluation, the default): ``x + g * conv(x)`` with ``g`` = 1
  when the gate is open (``logit > 0``, i.e. ``p > 0.5``) in the forward pass and the gradient of
  ``p`` (straight-through estimator);
  every block is computed, so hooks count the whole network plus its gates;
- ``skip`` (inference that saves time): the same decisions, but ``conv`` runs only for the samples
  whose gate is open (at batch size 1 a closed block is not computed at all). Same outputs as
  ``hard`` (tested); the reference added the identity twice at batch size 1;
- ``open``: gates computed, every block runs (what the gates cost on top of the backbone);
- ``off``: gates not computed, every block runs (the same computation as the ungated twin).

Each forward pass leaves the gates' logits of its samples on the blocks; :meth:`GatedNet.outputs`
returns their probabilities and decisions with the logits. ``forward`` returns the logits only, so
the engine's accuracy, BatchNorm recalibration and export see an ordinary classifier.

:meth:`GatedNet.fused` gives the inference form that batch-1 latency times: each gate's BatchNorm
folded into the layer before it and no dropout (same decisions and logits, fewer calls). At batch
size 1 a closed block is decided with one comparison of the logit, without building the probability.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn as nn

from nas.errors import UserError

MODES = ("soft", "hard", "skip", "open", "off")
GATE_KEYS = {"stable": ".gate.bn.", "conv": ".gate.body.", "attention": ".gate.channel."}  # one per type


def gate_type_of(state_dict) -> str | None:
    """The gate type whose parameters a state dict holds (None: no gates)."""
    return next((k for k, key in GATE_KEYS.items() if any(key in name for name in state_dict)), None)


def straight_through(p: torch.Tensor, hard: torch.Tensor) -> torch.Tensor:
    """The hard decision ``hard`` (0/1) in the forward pass, the gradient of ``p`` in the backward one."""
    return hard + (p - p.detach())


class GatedBlock(nn.Module):
    """OFA's ``ResidualBlock`` (identity shortcut) with a gate in front of its residual branch."""

    def __init__(self, block: nn.Module, gate: nn.Module, temperature: float) -> None:
        super().__init__()
        if type(getattr(block, "shortcut", None)).__name__ != "IdentityLayer":
            raise ValueError("only a block with an identity shortcut (same input and output shape) is gated")
        self.conv = block.conv  # the residual branch
        self.gate = gate
        self.temperature = temperature
        self.mode = "hard"
        self.logit: torch.Tensor | None = None  # of the last forward pass, per sample

    @property
    def prob(self) -> torch.Tensor | None:
        """The last forward pass's open probabilities ``sigmoid(logit / T)``."""
        return None if self.logit is None else torch.sigmoid(self.logit / self.temperature)

    @property
    def open(self) -> torch.Tensor | None:
        """The last forward pass's decisions, 1 = the block runs (``logit > 0``, i.e. ``p > 0.5``)."""
        return None if self.logit is None else (self.logit > 0).to(self.logit.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = "hard" if self.mode == "soft" and not self.training else self.mode  # soft: training only
        if mode == "off":
            self.logit = None
            return x + self.conv(x)
        self.logit = logit = self.gate(x)
        if mode == "open":
            return x + self.conv(x)
        if mode == "soft":
            return x + self.prob[:, None, None, None] * self.conv(x)
        if mode == "hard":
            return x + straight_through(self.prob, self.open)[:, None, None, None] * self.conv(x)
        if len(x) == 1:  # skip, one sample: one comparison
            return x + self.conv(x) if logit.item() > 0 else x
        idx = torch.nonzero(logit > 0).flatten()  # skip: the residual branch of open samples only
        if len(idx) == 0:
            return x
        if len(idx) == len(x):
            return x + self.conv(x)
        out = x.clone()
        out[idx] = x[idx] + self.conv(x[idx])
        return out


class GatedNet(nn.Module):
    """``backbone`` (ofa's ``MobileNetV3``) with ``gates[i]`` in front of ``backbone.blocks[at[i]]``
    and ``targets[i]`` its target sparsity (share of samples for which the block is skipped)."""

    def __init__(
        self,
        backbone: nn.Module,
        at: Sequence[int],
        gates: Sequence[nn.Module],
        targets: Sequence[float],
        temperature: float = 1.0,
        gate_type: str = "",
    ) -> None:
        super().__init__()
        if len(at) != len(gates) or len(at) != len(targets) or list(at) != sorted(set(at)):
            raise ValueError(f"gate positions {list(at)} must be increasing, one per gate and target")
        for i, g in zip(at, gates, strict=True):
            backbone.blocks[i] = GatedBlock(backbone.blocks[i], g, temperature)
        self.backbone = backbone
        self.at = [int(i) for i in at]
        self.gate_type = gate_type
        self.register_buffer("targets", torch.tensor(list(targets), dtype=torch.float32), persistent=False)
        self.mode = "hard"

    @property
    def n_gates(self) -> int:
        return len(self.at)

    def gated_blocks(self) -> list[GatedBlock]:
        return [self.backbone.blocks[i] for i in self.at]

    def new_modules(self) -> list[nn.Module]:
        """The gates: what training adds to the inherited backbone (``--new_lr_mult`` scales their rate)."""
        return [b.gate for b in self.gated_blocks()]

    def set_mode(self, mode: str) -> GatedNet:
        if mode not in MODES:
            raise ValueError(f"gate mode {mode!r} is not one of {MODES}")
        self.mode = mode
        for b in self.gated_blocks():
            b.mode = mode
        return self

    def fused(self) -> GatedNet:
        """An inference copy (eval mode, same mode) whose gates are in their fused form (each gate
        type's ``fused()``: BatchNorm folded into the layer before it, no dropout)."""
        net = copy.deepcopy(self).eval()
        for b in net.gated_blocks():
            b.gate = b.gate.fused()
        return net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As ``nn.Module``'s, but weights of another gate type are a one-line error naming it."""
        theirs = gate_type_of(state_dict)
        if self.gate_type and theirs and theirs != self.gate_type:
            raise UserError(
                f"the checkpoint holds {theirs} gates, this network has {self.gate_type} gates: "
                f"pass --gate_type {theirs}"
            )
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits, gate probabilities [n, gates] and hard decisions [n, gates] (1 = block runs)."""
        logits = self.backbone(x)
        blocks = self.gated_blocks()
        if not blocks or self.mode == "off":
            empty = x.new_zeros(len(x), 0)
            return logits, empty, empty
        return logits, torch.stack([b.prob for b in blocks], 1), torch.stack([b.open for b in blocks], 1)
