"""Where analysis tools put their outputs, and how: a fresh folder per experiment, every figure
as PNG and PDF, every number as JSON (all written atomically)."""

from __future__ import annotations

import io
import os
import re
from typing import Any

from nas.io import atomic_write_bytes, write_json

ANALYSIS_ROOT = os.path.join("results", "analysis")


def experiment_name(path: str) -> str:
    """A folder-safe name for the experiment at ``path`` (a run directory or a file in one)."""
    path = os.path.abspath(path)
    if os.path.isfile(path):
        path = os.path.dirname(path)
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", os.path.basename(path)).strip("-") or "experiment"


def output_dir(tool: str, experiment: str, override: str | None = None, root: str = ANALYSIS_ROOT) -> str:
    """``override`` if given, else a new ``<root>/<tool>/<experiment>[-k]/`` that never overwrites."""
    if override:
        os.makedirs(override, exist_ok=True)
        return override
    base = os.path.join(root, tool, experiment)
    path, k = base, 1
    while True:
        try:
            os.makedirs(path)
            return path
        except FileExistsError:
            k += 1
            path = f"{base}-{k}"


def save_figure(fig, stem: str, dpi: int = 120) -> list[str]:
    """``stem.png`` and ``stem.pdf``; closes the figure. Returns the two paths."""
    import matplotlib.pyplot as plt

    paths = []
    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=dpi, bbox_inches="tight")
        atomic_write_bytes(f"{stem}.{ext}", buf.getvalue())
        paths.append(f"{stem}.{ext}")
    plt.close(fig)
    return paths


def save_numbers(path: str, numbers: Any) -> str:
    write_json(path, numbers)
    return path
