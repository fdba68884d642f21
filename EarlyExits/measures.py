"""The ``exits`` measure: an early-exit network scored as it would run, on the validation split.

Every exit's outputs are computed once on the validation images (the simulated evaluation,
identical in its decisions to the real early exit, see :mod:`EarlyExits.policies`); the
thresholds are the architecture's own (``eemobilenetv3``'s ``t`` genes) or tuned on those same
validation images (``--tune``; always for ``cbnmobilenetv3``, whose genes hold none). The test
split is never read. Reported (the lists have one entry per exit, the final one last):

``top1`` (the early-exit network, replacing the final classifier's), ``backbone_top1``,
``exit_ratio``, ``exit_acc`` (top-1 of the samples leaving there; None when none does),
``exit_acc_all`` (top-1 of every sample at that exit), ``exit_macs`` (cumulative), ``thresholds``,
``avg_macs``, ``n_exits`` and ``ece`` (of the early-exit network's predictions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from EarlyExits.policies import EXIT_POLICIES, Outputs, ece, evaluate, get_policy, scores, tune
from EarlyExits.spaces import EarlyExitSpace
from nas.config import option
from nas.errors import UserError
from nas.measures import MEASURES, EvalContext, Measure


def default_policy(space: EarlyExitSpace) -> str:
    """Score margin for heads without a confidence unit (EDANAS), cumulative confidence otherwise."""
    return "cumulative" if space.confidence else "score_margin"


def require_exit_space(space: Any, what: str) -> None:
    if not isinstance(space, EarlyExitSpace):
        raise UserError(
            f"{what} needs an early-exit search space (eemobilenetv3 or cbnmobilenetv3), not {space.name!r}"
        )


@torch.no_grad()
def collect_outputs(model: torch.nn.Module, batches) -> Outputs:
    """Every exit's logits (and confidences) over ``batches``, on the CPU."""
    was_training = model.training
    model.eval()
    logits, conf, labels = None, None, []
    for x, y in batches:
        lg, cf = model.outputs(x)
        if logits is None:
            logits = [[] for _ in lg]
            conf = None if cf is None else [[] for _ in cf]
        for i, t in enumerate(lg):
            logits[i].append(t.float().cpu())
        if cf is not None:
            for i, t in enumerate(cf):
                conf[i].append(t.float().cpu())
        labels.append(y.cpu())
    model.train(was_training)
    if logits is None:
        raise ValueError("no batches to score")
    return Outputs(
        [torch.cat(t) for t in logits],
        None if conf is None else [torch.cat(t) for t in conf],
        torch.cat(labels),
    )


@dataclass
class ExitOptions:
    policy: str = option(
        "auto",
        f"exit policy: auto, {', '.join(EXIT_POLICIES.names()) or 'none'} "
        "(auto: score_margin for eemobilenetv3, cumulative for cbnmobilenetv3)",
    )
    tune: bool | None = option(
        None,
        "tune the thresholds on the validation split (default: cbnmobilenetv3 yes, eemobilenetv3 "
        "no: its genes hold them)",
    )
    mmax: float | None = option(
        None, "avg_macs budget, millions (threshold repair and NACHOS's loss); none: no budget"
    )
    top1min: float = option(0.0, "threshold repair keeps top-1 (percent) at or above this")


def exit_report(
    space: EarlyExitSpace,
    arch: Any,
    out: Outputs,
    n_classes: int,
    options: ExitOptions,
    thresholds: list[float] | None = None,
) -> dict[str, Any]:
    """The early-exit metrics of ``arch`` from its outputs on a split (see the module docstring);
    the thresholds are ``thresholds`` if given (tuned on another split), else the genes' or tuned
    on ``out``."""
    policy_name = default_policy(space) if options.policy == "auto" else options.policy
    policy = get_policy(policy_name)
    if policy.needs_confidence and out.conf is None:
        raise UserError(f"--policy {policy_name} needs heads with a confidence unit (cbnmobilenetv3)")
    plan = space.exit_plan(arch, n_classes)
    exit_macs = space.exit_costs(arch, n_classes)["exit_macs"]
    score = scores(out, policy)
    if thresholds is None:  # cbnmobilenetv3's genes hold none: always tuned
        if options.tune or not plan.thresholds:
            thresholds = tune(out, score, exit_macs, options.mmax, options.top1min)
        else:
            thresholds = list(plan.thresholds)
    st = evaluate(out, score, thresholds, exit_macs)
    probs = torch.stack([F.softmax(lg, 1) for lg in out.logits], 1)[torch.arange(len(st.exits)), st.exits]
    return {
        "top1": st.top1,
        "backbone_top1": 100.0 * (out.logits[-1].argmax(1) == out.labels).float().mean().item(),
        "exit_ratio": st.ratio,
        "exit_acc": st.acc_taken,
        "exit_acc_all": [100.0 * (lg.argmax(1) == out.labels).float().mean().item() for lg in out.logits],
        "exit_macs": exit_macs,
        "thresholds": thresholds,
        "avg_macs": st.avg_macs,
        "n_exits": len(plan.stages),
        "ece": ece(probs, out.labels),
    }


@MEASURES.register("exits")
class Exits(Measure):
    """Early-exit statistics on the validation split (thresholds from the genes or tuned there)."""

    Options = ExitOptions
    provides = (
        "top1", "backbone_top1", "exit_ratio", "exit_acc", "exit_acc_all", "exit_macs", "thresholds",
        "avg_macs", "n_exits", "ece",
    )  # fmt: skip

    def check(self, space: Any) -> None:
        require_exit_space(space, "the exits measure")
        if self.options.policy != "auto":
            policy = EXIT_POLICIES.get(self.options.policy)
            if policy.needs_confidence and not space.confidence:
                raise UserError(
                    f"--policy {self.options.policy} needs heads with a confidence unit (cbnmobilenetv3)"
                )

    def measure(self, model: torch.nn.Module, arch: Any, ctx: EvalContext) -> dict[str, Any]:
        out = collect_outputs(model, ctx.valid_batches(arch))
        return exit_report(ctx.space, arch, out, ctx.n_classes, self.options)
