"""FlatNAS's first objective: top-1 error and flatness in one number, re-normalised every iteration.

::

    top1_robust = alpha * top1_err + alpha_norm * (1 - alpha) * robustness

``top1_err = 100 - top1`` and ``robustness`` (the ``robustness`` measure, :mod:`robustness.flatness`:
mean top-1 change in points under weight noise; ``--robust_sigma`` names another sigma of its
curve) are metrics; ``alpha`` is ``--alpha`` (0.5). ``alpha_norm`` brings robustness to the scale
of the error so that ``alpha`` weighs like for like::

    alpha_norm = mean(top1_err) / mean(robustness)

**Over which networks, and when** (decided from CNAS's ``cnas.py``, ``compute_alpha_norm`` and
``explainability.get_archive``, and ``train.py``): in its iteration ``it >= 1`` CNAS computes
alpha_norm from ``iter_{it-1}``, which ``get_archive`` reads as every network evaluated in
iterations ``0..it-1`` (all ``iter_j`` folders with ``j <= it-1``), i.e. the whole archive as it
stood when iteration ``it`` began, not only the previous iteration's candidates; for the initial
archive (iteration 0) alpha_norm is 1.0. It then re-scores every archive entry with that value
before fitting the surrogates and choosing candidates, passes it to the candidates' evaluation, and
stores it in ``iter_<it>.stats``. Here the same: in iteration ``k``, alpha_norm is computed from the
successful evaluations of iterations ``0..k-1`` (1.0 for ``k = 0``) and used for everything scored
as iteration ``k``: the whole archive re-scored at the start of the iteration, before the
surrogates are fitted and anything is selected (``msunas``), NSGA-II's predicted candidates, and
the iteration's records (``iter_k.stats``: ``objective_stats.top1_robust.alpha_norm``;
``archive.csv``: ``f1_top1_robust``; the hypervolume history). The engine supplies the earlier rows:
:meth:`nas.search.objectives.Scorer.score` prepares objectives with the archive rows of the
iterations before the one being scored. A resumed search recomputes it from the archive's
``iteration`` column, so it scores exactly as an uninterrupted one.

Where we differ from the reference: CNAS fits its surrogate on ``top1_robust`` itself, whose values
move whenever alpha_norm does; our surrogates predict the metrics (``top1`` and ``robustness``, one
surrogate each) and the objective combines the predictions, so the re-normalisation never moves a
surrogate's target. When every earlier network has robustness 0 (no noise changed a prediction),
CNAS divides by zero; alpha_norm stays 1.0 here. CNAS rounds ``top1_robust`` to 2 decimals; we don't.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.config import option
from nas.errors import UserError
from nas.search.objectives import OBJECTIVES, MetricTable, Objective
from robustness.flatness import robustness_metric


def alpha_norm(archive: MetricTable, metric: str = "robustness") -> float:
    """``mean(100 - top1) / mean(metric)`` over the rows of ``archive`` that have both (1.0 when
    there are none, or when their mean robustness is not positive)."""
    err = 100.0 - np.asarray(archive.get("top1", []), dtype=float)
    rob = np.asarray(archive.get(metric, []), dtype=float)
    keep = np.isfinite(err) & np.isfinite(rob)
    if not keep.any() or rob[keep].mean() <= 0:
        return 1.0
    return float(err[keep].mean() / rob[keep].mean())


@OBJECTIVES.register("top1_robust")
class Top1Robust(Objective):
    """``alpha * top1_err + alpha_norm * (1 - alpha) * robustness`` (module docstring)."""

    name, unit = "top1_robust", ""

    @dataclass
    class Options:
        alpha: float = option(
            0.5, "top1_robust: weight of the top-1 error, in [0, 1]; 1 - alpha weighs robustness"
        )
        robust_sigma: float | None = option(
            None,
            "top1_robust: the noise sigma whose robustness it reads, one of the robustness measure's "
            "--sigma (none: the first)",
        )

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        o = self.options
        if not 0.0 <= o.alpha <= 1.0:
            raise UserError(f"--alpha {o.alpha} must be in [0, 1] (the weight of top-1 error in top1_robust)")
        if o.robust_sigma is not None and o.robust_sigma <= 0:
            raise UserError(
                f"--robust_sigma {o.robust_sigma} must be > 0 (one of the robustness measure's --sigma)"
            )
        self.metrics = ("top1", robustness_metric(o.robust_sigma))
        self.alpha_norm = 1.0

    def check_metrics(self, available: set[str]) -> None:
        if "robustness" not in available:
            raise UserError(
                "objective top1_robust needs the robustness measure: add it, e.g. "
                "--measures accuracy robustness"
            )
        if self.metrics[1] not in available:
            measured = sorted(float(m.split("@", 1)[1]) for m in available if m.startswith("robustness@"))
            raise UserError(
                f"--robust_sigma {self.options.robust_sigma:g} is not among the measured sigmas (--sigma "
                f"{' '.join(f'{s:g}' for s in measured)}); add it to --sigma or name one of those"
            )
        super().check_metrics(available)

    def prepare(self, archive: MetricTable, population: MetricTable) -> None:
        self.alpha_norm = alpha_norm(archive, self.metrics[1])

    def statistics(self) -> dict[str, float]:
        return {"alpha_norm": self.alpha_norm}

    def values(self, m: MetricTable) -> np.ndarray:
        a = self.options.alpha
        err = 100.0 - np.asarray(m["top1"], dtype=float)
        return a * err + self.alpha_norm * (1.0 - a) * np.asarray(m[self.metrics[1]], dtype=float)
