"""A deployable early-exit network: stages and the exit rule as one TorchScript-able module.

:meth:`EarlyExitNet.runtime <EarlyExits.network.EarlyExitNet.runtime>` cuts the network into
stages, stage ``k`` running the backbone from the previous exit's tap to exit ``k``'s tap and exit
``k``'s head (the last stage: the rest of the backbone and its classifier); each returns
``(features, head output)``. :class:`EarlyExitRuntime` chains them with the exit rule written in
tensor operations only, so ``torch.jit.script`` keeps its control flow: samples that leave are
dropped from the batch and a stage runs only while samples are left. ``tools/export.py`` traces
the stages (OFA's modules are not scriptable), scripts the runtime (TorchScript), or writes one
ONNX file per stage for onnxruntime users who apply the rule between stages themselves.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

POLICY_CODES = {"score_margin": 0, "entropy": 1, "cumulative": 2}


# The exit scores, in tensor operations only (TorchScript compiles them; the policies call them too).


def margin_score(logits: torch.Tensor) -> torch.Tensor:
    """Top-1 minus top-2 softmax probability."""
    top2 = F.softmax(logits.float(), dim=1).topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


def entropy_score(logits: torch.Tensor) -> torch.Tensor:
    """``1 - H(softmax) / log(n_classes)`` (1 = certain)."""
    logp = F.log_softmax(logits.float(), dim=1)
    return 1.0 - (-(logp.exp() * logp).sum(dim=1)) / math.log(logits.shape[1])


def cumulative_score(
    p: torch.Tensor, q_total: torch.Tensor, survive: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(Q_i, Q_i, prod_{j<=i} (1 - p_j))`` from the exit probability ``p_i`` and the previous
    ``Q_{i-1}`` and ``prod_{j<i} (1 - p_j)``: the score and the two carried values."""
    q_total = q_total + p.float() * survive
    return q_total, q_total, survive * (1 - p.float())


class Stage(nn.Module):
    """Backbone blocks from one tap to the next, then a head (or the backbone's tail)."""

    def __init__(self, blocks: list[nn.Module], head: nn.Module, stem: nn.Module | None = None) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.ModuleList(blocks)
        self.head = head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.stem is not None:
            x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return x, self.head(x)


class Tail(nn.Module):
    """The backbone after its last block: final expand, global pooling, feature mix, classifier."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.final_expand_layer = backbone.final_expand_layer
        self.feature_mix_layer = backbone.feature_mix_layer
        self.classifier = backbone.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return backbone_tail(self, x)


def backbone_tail(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What ofa's MobileNetV3 runs after its last block, with ``m``'s layers of those names."""
    x = m.final_expand_layer(x)
    x = x.mean(3, keepdim=True).mean(2, keepdim=True)
    x = m.feature_mix_layer(x)
    return m.classifier(x.view(x.size(0), -1))


class EarlyExitRuntime(nn.Module):
    """``forward(x) -> (logits [n, classes], exit index [n])`` with the real early exit."""

    def __init__(
        self, stages: list[nn.Module], thresholds: list[float], policy: str, confidence: bool, n_classes: int
    ) -> None:
        super().__init__()
        if len(thresholds) != len(stages) - 1:
            raise ValueError(f"{len(thresholds)} thresholds for {len(stages) - 1} early exits")
        self.stages = nn.ModuleList(stages)
        self.register_buffer("thresholds", torch.tensor(list(thresholds) + [0.0], dtype=torch.float32))
        self.policy = POLICY_CODES[policy]
        self.confidence = confidence
        self.n_classes = n_classes
        self.n_exits = len(stages) - 1

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        out = torch.zeros(n, self.n_classes, dtype=x.dtype, device=x.device)
        where = torch.full((n,), self.n_exits, dtype=torch.long, device=x.device)
        alive = torch.arange(n, device=x.device)
        q_total = torch.zeros(n, device=x.device)
        survive = torch.ones(n, device=x.device)
        k = 0
        for stage in self.stages:
            if alive.numel() > 0:  # nothing runs once every sample has left
                x, o = stage(x)
                if k < self.n_exits:
                    logits = o[:, : self.n_classes] if self.confidence else o
                    if self.policy == 0:
                        score = margin_score(logits)
                    elif self.policy == 1:
                        score = entropy_score(logits)
                    else:
                        score, q_total, survive = cumulative_score(torch.sigmoid(o[:, -1]), q_total, survive)
                    fire = score >= self.thresholds[k]
                    out[alive[fire]] = logits[fire]
                    where[alive[fire]] = k
                    keep = ~fire
                    alive, x, q_total, survive = alive[keep], x[keep], q_total[keep], survive[keep]
                else:
                    out[alive] = o
            k += 1
        return out, where

    # ---- export (tools/export.py calls these on any model's ``deployable`` runtime) ----------

    def stage_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The input of every stage when ``x`` goes through them all (no sample leaving)."""
        inputs = []
        with torch.no_grad():
            for stage in self.stages:
                inputs.append(x)
                x = stage(x)[0]
        return inputs

    @torch.jit.unused
    def torchscript(self, example: torch.Tensor) -> torch.jit.ScriptModule:
        """This runtime as TorchScript: each stage traced on its input for ``example`` (the batch
        stays dynamic), the exit rule scripted, so the saved file keeps the control flow."""
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning
            )
            traced = [
                torch.jit.trace(stage, inp, check_trace=False)
                for stage, inp in zip(self.stages, self.stage_inputs(example), strict=True)
            ]
            copy = EarlyExitRuntime(
                traced, self.thresholds[:-1].tolist(), self.policy_name(), self.confidence, self.n_classes
            )
            return torch.jit.script(copy)

    @torch.jit.unused
    def policy_name(self) -> str:
        return next(name for name, c in POLICY_CODES.items() if c == self.policy)

    @torch.jit.unused
    def describe(self) -> dict:
        """What a user of the per-stage files needs: the rule, the thresholds, the stages' outputs."""
        return {
            "policy": self.policy_name(),
            "thresholds": self.thresholds[:-1].tolist(),
            "confidence_unit": self.confidence,
            "n_classes": self.n_classes,
            "rule": "stage k maps its input to (features, out); for k < n_exits, out holds the logits "
            "(and, with confidence_unit, one more column whose sigmoid is the exit probability); a sample "
            "leaves at the first k whose score >= thresholds[k] (score_margin: top-1 minus top-2 softmax "
            "probability; entropy: 1 - entropy / log(n_classes); cumulative: Q_k = Q_{k-1} + p_k * "
            "prod_{j<k}(1 - p_j)); the features of the others go to stage k + 1; the last stage's out is "
            "the final logits",
        }
