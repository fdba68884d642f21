"""Device choice: CUDA when present, CPU otherwise, with the same commands."""

from __future__ import annotations

import torch

from nas.errors import UserError


def resolve_device(spec: str | None = None) -> torch.device:
    """``None``/``"auto"`` -> ``cuda`` when available else ``cpu``; ``"0"`` -> ``cuda:0``."""
    if spec in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.isdigit():
        spec = f"cuda:{spec}"
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise UserError(f"bad --device {spec!r}; use auto, cpu, cuda, cuda:N or N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {spec} asks for CUDA but none is available; use --device cpu")
    return dev
