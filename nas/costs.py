"""Cost metrics of a network, measured with forward hooks on any ``nn.Module``.

Definitions (``MISSION.md``, "Cost metrics"), all in millions at batch size 1:

- ``params``: number of parameters of the module (``sum(p.numel())``, shared tensors once).
- ``macs``: multiply-accumulates of one forward pass, counted on leaf ``nn.Conv2d`` modules as
  ``output elements x in_channels/groups x kh x kw`` and on leaf ``nn.Linear`` modules as
  ``in_features x out_features`` per output row. Bias adds, normalisation, activations, pooling,
  element-wise products (SE gating, residual adds) are not MACs. This equals
  ``torch.utils.flop_counter.FlopCounterMode`` total / 2 for networks made of these layers.
- ``activations``: sum of the output sizes (numel) of leaf ``Conv2d``, ``Linear``, ``Flatten``,
  ``BatchNorm2d``, ``AvgPool2d`` and ``MaxPool2d`` modules. Functional ops (``x.mean``, ``x.view``,
  ``F.relu``) and other module types (``AdaptiveAvgPool2d``, activations, dropout) do not count.

Counting is done on exact integers; only the final totals are divided by 1e6, so an analytic
model that computes the same integers gives ``==``-equal floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from nas.device import resolve_device
from nas.errors import UserError

MAC_TYPES = (nn.Conv2d, nn.Linear)
ACTIVATION_TYPES = (nn.Conv2d, nn.Linear, nn.Flatten, nn.BatchNorm2d, nn.AvgPool2d, nn.MaxPool2d)
METHODS = ("analytic", "hooks")


def count_params(model: nn.Module) -> int:
    """Number of parameters (each shared tensor counted once, trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def module_macs(module: nn.Module, output: torch.Tensor) -> int:
    """MACs of one call of a ``Conv2d`` or ``Linear`` that produced ``output``."""
    if isinstance(module, nn.Conv2d):
        # weight is (out, in/groups, kh, kw): every output element reads in/groups x kh x kw inputs
        return output.numel() * module.weight[0].numel()
    rows = output.numel() // module.out_features
    return rows * module.in_features * module.out_features


def _is_leaf(module: nn.Module) -> bool:
    return next(module.children(), None) is None


def _single_device(model: nn.Module) -> torch.device | None:
    devices = {t.device for t in (*model.parameters(), *model.buffers())}
    return devices.pop() if len(devices) == 1 else None


def _input_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def count_costs(
    model: nn.Module, resolution: int, device: torch.device | str | None = None, in_channels: int = 3
) -> dict[str, int]:
    """Exact integer counts ``{"params", "macs", "activations"}`` of a batch-1 forward.

    The forward runs on ``device`` (default: CUDA when available, else CPU) in eval mode under
    ``torch.no_grad()`` on a zero image of ``in_channels x resolution x resolution``. The model's
    train/eval mode and device are restored and the hooks removed afterwards, also on errors.
    """
    if isinstance(device, str) or device is None:
        device = resolve_device(device)
    if not isinstance(resolution, int) or isinstance(resolution, bool) or resolution < 1:
        raise UserError(f"resolution {resolution!r} must be a positive integer")
    counts = {"macs": 0, "activations": 0}

    def hook(module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(module, MAC_TYPES):
            counts["macs"] += module_macs(module, output)
        if isinstance(module, ACTIVATION_TYPES):
            counts["activations"] += output.numel()

    was_training = model.training
    home = _single_device(model)
    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if _is_leaf(m) and isinstance(m, (*MAC_TYPES, *ACTIVATION_TYPES))
    ]
    try:
        if home is not None and home != device:
            model.to(device)
        model.eval()
        x = torch.zeros(1, in_channels, resolution, resolution, dtype=_input_dtype(model), device=device)
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
        if home is not None and home != device:
            model.to(home)
    return {"params": count_params(model), **counts}


def measure_costs(
    model: nn.Module, resolution: int, device: torch.device | str | None = None, in_channels: int = 3
) -> dict[str, float]:
    """``{"params", "macs", "activations"}`` in millions, measured with forward hooks.

    See :func:`count_costs` for how the forward pass is run.
    """
    return to_millions(count_costs(model, resolution, device, in_channels))


def to_millions(counts: dict[str, int]) -> dict[str, float]:
    """Integer counts -> the same keys in millions (``n / 1e6``, the one rounding step)."""
    return {key: counts[key] / 1e6 for key in ("params", "macs", "activations")}


def space_costs(
    space: Any,
    archs: Sequence[Any],
    n_classes: int,
    method: str = "analytic",
    device: torch.device | str | None = None,
    resolution: int = 32,
) -> list[dict[str, float]]:
    """Costs of ``archs`` of ``space`` (validated first), from its analytic model or with hooks.

    ``hooks`` builds each network with ``space.build(arch, n_classes=...)`` and measures it at the
    arch's own resolution (``space.resolution(arch)``; ``resolution`` for spaces without one);
    ``analytic`` calls ``space.costs``.
    """
    if method not in METHODS:
        raise UserError(f"unknown cost method {method!r}; choose one of: {', '.join(METHODS)}")
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1:
        raise UserError(f"n_classes {n_classes!r} must be a positive integer")
    archs = [space.validate(a) for a in archs]
    if method == "analytic":
        space.require("costs", "--method analytic (use --method hooks)")
        return [space.costs(a, n_classes, space.resolution(a) or resolution) for a in archs]
    if isinstance(device, str) or device is None:
        device = resolve_device(device)
    out = []
    for a in archs:
        model = space.build(a, n_classes=n_classes)
        out.append(measure_costs(model, space.resolution(a) or resolution, device))
    return out
