"""The early-exit network: an OFA MobileNetV3 backbone with heads at its stage boundaries.

``forward(x)`` runs every head on every sample and returns the list of logits (early exits, then
the final classifier): what training and the simulated evaluation use, and what a tool that
knows nothing of exits sees (:func:`nas.scoring.final_output` takes the last). ``outputs(x)`` adds
the confidences of heads with a confidence unit. :meth:`EarlyExitNet.exit_forward` is the
inference that really stops: a sample leaves at the first exit whose policy fires and nothing
after that exit is computed for it (at batch size 1 the network returns there; in a batch only
the samples that have not left continue).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from EarlyExits.policies import ExitPolicy
from EarlyExits.runtime import backbone_tail


class EarlyExitNet(nn.Module):
    """``backbone`` (ofa's ``MobileNetV3``) with ``heads[i]`` reading the output of
    ``backbone.blocks[taps[i]]``; heads with ``confidence`` have one extra output unit whose
    sigmoid is the exit probability."""

    def __init__(
        self, backbone: nn.Module, taps: Sequence[int], heads: Sequence[nn.Module], confidence: bool
    ) -> None:
        super().__init__()
        if len(taps) != len(heads) or list(taps) != sorted(set(taps)):
            raise ValueError(f"taps {list(taps)} must be increasing, one per head")
        self.backbone = backbone
        self.heads = nn.ModuleList(heads)
        self.taps = [int(t) for t in taps]
        self.confidence = confidence
        self.frozen_backbone = False

    @property
    def n_exits(self) -> int:
        """Early exits (the final classifier not counted)."""
        return len(self.heads)

    def new_modules(self) -> list[nn.Module]:
        """The exit heads: what training adds to the inherited backbone (``--new_lr_mult`` scales
        their learning rate)."""
        return list(self.heads)

    def freeze_backbone(self, frozen: bool = True) -> None:
        """Train the heads only: the backbone's parameters get no gradient and its BatchNorm
        statistics stay as they are (the backbone stays in eval mode)."""
        self.frozen_backbone = frozen
        for p in self.backbone.parameters():
            p.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> EarlyExitNet:
        super().train(mode)
        if self.frozen_backbone:
            self.backbone.eval()
        return self

    def _split(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.confidence:
            return out, None
        return out[:, :-1], torch.sigmoid(out[:, -1].float())

    def outputs(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """Every exit's logits (early exits, then the final one) and, with confidence units, the
        early exits' exit probabilities."""
        logits, conf = [], []
        x = self.backbone.first_conv(x)
        k = 0
        for j, block in enumerate(self.backbone.blocks):
            x = block(x)
            if k < len(self.taps) and j == self.taps[k]:
                lg, c = self._split(self.heads[k](x))
                logits.append(lg)
                conf.append(c)
                k += 1
        logits.append(backbone_tail(self.backbone, x))
        return logits, (conf if self.confidence else None)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.outputs(x)[0]

    def runtime(self, policy: str, thresholds: Sequence[float]) -> nn.Module:
        """The network cut into stages (one per exit) with the exit rule, as a module whose
        ``forward(x)`` returns ``(logits, exit index)`` like :meth:`exit_forward`; shares the weights
        (see :mod:`EarlyExits.runtime`)."""
        from EarlyExits.runtime import EarlyExitRuntime, Stage, Tail

        blocks = list(self.backbone.blocks)
        stages, start = [], 0
        for k, tap in enumerate(self.taps):
            stem = self.backbone.first_conv if k == 0 else None
            stages.append(Stage(blocks[start : tap + 1], self.heads[k], stem))
            start = tap + 1
        stem = self.backbone.first_conv if not self.taps else None
        stages.append(Stage(blocks[start:], Tail(self.backbone), stem))
        n_classes = self.backbone.classifier.linear.out_features
        return EarlyExitRuntime(stages, list(thresholds), policy, self.confidence, n_classes)

    def deployable(self, stats: dict | None) -> nn.Module:
        """The runtime with the thresholds and policy a ``net.stats`` records (``"early_exit"`` from
        ``train.py ee``, else the search's ``metrics``); without them, or without thresholds, the
        thresholds of every early exit are 1.0 with the default policy (a warning for the user)."""
        stats = stats or {}
        rec = stats.get("early_exit") or stats.get("metrics") or {}
        policy = rec.get("policy") or ("cumulative" if self.confidence else "score_margin")
        thresholds = rec.get("thresholds")
        if thresholds is None or len(thresholds) != self.n_exits:
            thresholds = [1.0] * self.n_exits
        return self.runtime(policy, thresholds)

    @torch.no_grad()
    def exit_forward(
        self, x: torch.Tensor, policy: ExitPolicy, thresholds: Sequence[float]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference that stops: ``(logits [n, classes], exit index [n])``. Samples that leave are
        dropped from the batch; when none is left, nothing more is computed (:meth:`runtime`)."""
        if len(thresholds) != self.n_exits:
            raise ValueError(f"{len(thresholds)} thresholds for {self.n_exits} early exits")
        return self.runtime(policy.name, thresholds)(x)
