"""One evaluation's outcome, keyed by architecture id: metrics, or a failure record with its cause.

Results are keyed by architecture id, never paired by position, and a failure is a record with
its cause, never a fake score (the reference code shifted every later result onto the wrong
architecture after one failure, and scored failures ``top1 = 0``).

Metrics are scalars (``top1`` in percent, costs in millions, latency in ms) or structured values
(a list per exit, a list per block, a dict of named values); ``net.stats`` and ``iter_k.stats``
keep them as they are, ``archive.csv`` flattens them (:func:`flatten`: ``exit_ratio.0``,
``exit_ratio.1``, ...) and surrogates and objectives read the scalars.
"""

from __future__ import annotations

import math
import traceback
from dataclasses import dataclass, field
from typing import Any

Arch = Any


@dataclass
class Result:
    """What one evaluation measured (``metrics``) or why it failed (``failure``)."""

    arch_id: str
    arch: Arch
    metrics: dict[str, Any] = field(default_factory=dict)
    failure: dict[str, str] | None = None  # {"type", "message", "traceback"}
    # trained weights worth keeping (a fine-tuned candidate's state dict); saved as ckpt.pth by
    # the search, never part of the JSON
    weights: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.failure is None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.arch_id, "arch": self.arch, "metrics": self.metrics}
        if self.failure is not None:
            out["failure"] = self.failure
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Result:
        return cls(d["id"], d["arch"], dict(d.get("metrics", {})), d.get("failure"))

    @classmethod
    def failed(cls, arch_id: str, arch: Arch, exc: BaseException) -> Result:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(arch_id, arch, {}, {"type": type(exc).__name__, "message": str(exc), "traceback": tb})


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Structured metrics as flat columns: lists become ``name.0``, ``name.1``, ..., dicts
    ``name.key``; scalars keep their names."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            out.update(flatten({str(i): v for i, v in enumerate(value)}, f"{name}."))
        else:
            out[name] = value
    return out


def is_scalar(value: Any) -> bool:
    """A finite-or-not number (what surrogates and objectives can use), not a bool or a structure."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(float(value))
