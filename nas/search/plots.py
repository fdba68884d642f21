"""Plots refreshed every iteration: the archive with its front, and hypervolume per iteration."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting  # noqa: E402

from nas.io import atomic_write_bytes  # noqa: E402


def _save(fig, path: str) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_search(save: str, search) -> None:
    folder = os.path.join(save, "plots")
    ok, F = search.scores()
    its = np.array([search.archive.iteration_of[r.arch_id] for r in ok])
    names = [o.label for o in search.objectives]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    if F.shape[1] > 1:
        sc = ax.scatter(F[:, 1], F[:, 0], c=its, cmap="viridis", s=14, alpha=0.8)
        front = NonDominatedSorting().do(F, only_non_dominated_front=True)
        order = front[np.argsort(F[front, 1])]
        ax.step(F[order, 1], F[order, 0], where="post", color="crimson", lw=1.5, label="front")
        ax.set_xlabel(names[1])
        ax.legend()
    else:
        sc = ax.scatter(np.arange(len(F)), F[:, 0], c=its, cmap="viridis", s=14)
        ax.set_xlabel("evaluation")
    ax.set_ylabel(names[0])
    fig.colorbar(sc, ax=ax, label="iteration")
    ax.set_title(f"archive after iteration {search.iteration} ({len(ok)} evaluated)")
    _save(fig, os.path.join(folder, "pareto.png"))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(len(search.hv)), search.hv, marker="o")
    ax.set_xlabel("iteration")
    ax.set_ylabel("hypervolume" if F.shape[1] > 1 else f"best {names[0]}")
    ax.grid(alpha=0.3)
    _save(fig, os.path.join(folder, "hv.png"))
