"""Plots of a weight-sharing run: the architecture weights epoch by epoch."""

from __future__ import annotations

import math
import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_arch_weights(history: list[dict[str, Any]], op_names: tuple[str, ...], folder: str) -> str | None:
    """``folder/arch_weights.png``: one panel per edge, the probability of every operation against the
    epoch (tables side by side: ``cell``, or ``normal`` and ``reduce``). Returns the path (None when
    there is nothing to draw)."""
    rows = [h for h in history if h.get("weights")]
    if not rows:
        return None
    tables = list(rows[-1]["weights"])
    n_edges = max(len(rows[-1]["weights"][k]) for k in tables)
    cols = min(n_edges, 7)
    lines = math.ceil(n_edges / cols)
    fig, axes = plt.subplots(
        lines * len(tables), cols, figsize=(2.3 * cols, 1.9 * lines * len(tables)), squeeze=False, sharey=True
    )
    epochs = [h["epoch"] for h in rows]
    colours = plt.get_cmap("tab10")
    for t, key in enumerate(tables):
        n = len(rows[-1]["weights"][key])
        for e in range(lines * cols):
            ax = axes[t * lines + e // cols][e % cols]
            if e >= n:
                ax.axis("off")
                continue
            for o, op in enumerate(op_names):
                ax.plot(
                    epochs, [h["weights"][key][e][o] for h in rows], color=colours(o % 10), label=op, lw=1.3
                )
            ax.set_title(f"{key} edge {e}", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("probability", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(op_names), 8), fontsize=7, frameon=False)
    fig.suptitle("architecture weights per edge (x: epoch)", fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "arch_weights.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
