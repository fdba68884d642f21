"""How close predicted latencies are to true ones: the figures B11 and B12 report.

``rmse`` is a true root-mean-square error, ``sqrt(mean((pred - true)^2))``. The latency seed
averaged ``sqrt((pred - true)^2 + 1e-6)`` per sample, which is the mean absolute error, and called
it RMSE; here that figure is ``mae``, and the two differ whenever the errors are not all equal.
``within5`` / ``within10`` are nn-Meter's accuracy: the share (%) of networks whose relative
error ``|pred - true| / true`` is at most 5% / 10%.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from nas.errors import UserError

# name -> (column title, format) in the order the tables print them
METRICS: dict[str, tuple[str, str]] = {
    "rmse": ("RMSE ms", "{:.4f}"),
    "mae": ("MAE ms", "{:.4f}"),
    "mape": ("MAPE %", "{:.2f}"),
    "within5": ("+-5% %", "{:.1f}"),
    "within10": ("+-10% %", "{:.1f}"),
    "spearman": ("Spearman", "{:.4f}"),
    "kendall": ("Kendall", "{:.4f}"),
}


def latency_metrics(
    y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray
) -> dict[str, Any]:
    """``n``, ``rmse``, ``mae`` (ms), ``mape`` (%), ``within5``, ``within10`` (% of samples),
    ``max_abs`` (ms), ``bias`` (mean of pred - true, ms), ``spearman`` and ``kendall`` (NaN for
    fewer than 2 samples or constant values).

    ``y_true`` must be positive (latencies); both must be finite and of the same length.
    """
    t = np.asarray(y_true, dtype=float).reshape(-1)
    p = np.asarray(y_pred, dtype=float).reshape(-1)
    if t.shape != p.shape:
        raise UserError(f"latency metrics need as many predictions as true values ({len(p)} vs {len(t)})")
    if t.size == 0:
        raise UserError("latency metrics need at least one sample")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
        raise UserError("latency metrics need finite values (a prediction or label is NaN or infinite)")
    if np.any(t <= 0):
        raise UserError("latency metrics need positive true latencies (a label is <= 0 ms)")
    err = p - t
    rel = np.abs(err) / t
    out: dict[str, Any] = {
        "n": int(t.size),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "mape": float(100 * np.mean(rel)),
        "within5": float(100 * np.mean(rel <= 0.05 + 1e-12)),
        "within10": float(100 * np.mean(rel <= 0.10 + 1e-12)),
        "max_abs": float(np.max(np.abs(err))),
        "bias": float(np.mean(err)),
    }
    out["spearman"], out["kendall"] = _rank_correlations(t, p)
    return out


def _rank_correlations(t: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    if t.size < 2 or np.all(t == t[0]) or np.all(p == p[0]):
        return math.nan, math.nan
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = stats.spearmanr(t, p).statistic
        tau = stats.kendalltau(t, p).statistic
    return float(rho), float(tau)


def format_table(
    rows: Sequence[dict[str, Any]], keys: Sequence[str], metrics: Sequence[str], after: Sequence[str] = ()
) -> str:
    """A Markdown table: the ``keys`` columns of each row as they are, then ``metrics`` formatted,
    then the ``after`` columns as they are."""
    head = [*keys, *(METRICS[m][0] if m in METRICS else m for m in metrics), *after]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [str(row.get(k, "")) for k in keys]
        for m in metrics:
            v = row.get(m)
            fmt = METRICS.get(m, ("", "{:.4g}"))[1]
            cells.append(
                "" if v is None else "nan" if isinstance(v, float) and math.isnan(v) else fmt.format(v)
            )
        cells += [str(row.get(k, "")) for k in after]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
