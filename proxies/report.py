"""Proxy results on disk and their correlation with accuracy (for tools/score_proxies.py and B15).

:class:`ResultsCSV` appends one row per architecture as soon as it is scored (so a killed run
resumes where it stopped); :func:`correlations` gives Spearman and Kendall of every proxy against
an accuracy column; :func:`plot_correlations` draws one scatter panel per proxy (proxy rank vs
accuracy); :func:`rank_aggregate` is the AZ-NAS-style rank aggregation of several proxies.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import UserError


def arch_text(arch: Any) -> str:
    """An architecture as one CSV cell: a string as it is, anything else as compact JSON."""
    return arch if isinstance(arch, str) else json.dumps(arch, sort_keys=True, separators=(",", ":"))


def arch_from_text(text: str) -> Any:
    return json.loads(text) if text[:1] in "{[" else text


class ResultsCSV:
    """A CSV of rows keyed by ``arch_id``, appended to and flushed row by row; re-opening it with the
    same columns resumes (rows already there are kept and :meth:`done` lists them)."""

    def __init__(self, path: str | os.PathLike, columns: Sequence[str]) -> None:
        self.path = Path(path)
        self.columns = ["arch_id", *[c for c in columns if c != "arch_id"]]
        self.rows: dict[str, dict[str, str]] = {}
        if self.path.is_file() and self.path.stat().st_size > 0:
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                if reader.fieldnames != self.columns:
                    raise UserError(
                        f"{self.path} holds other columns ({', '.join(reader.fieldnames or [])}) than this "
                        f"run ({', '.join(self.columns)}); use another output folder or the same proxies"
                    )
                for row in reader:
                    if None not in row.values():  # a row cut short by a kill is scored again
                        self.rows[row["arch_id"]] = row
            if len(self.rows) < sum(1 for _ in open(self.path)) - 1:
                self._rewrite()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._rewrite()

    def _rewrite(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, self.columns)
            w.writeheader()
            w.writerows(self.rows.values())
        os.replace(tmp, self.path)

    def done(self) -> set[str]:
        return set(self.rows)

    def append(self, row: dict[str, Any]) -> None:
        row = {c: _cell(row.get(c, "")) for c in self.columns}
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns).writerow(row)
            f.flush()
        self.rows[row["arch_id"]] = row

    def column(self, name: str, ids: Sequence[str] | None = None) -> np.ndarray:
        """Column ``name`` as floats (empty cells NaN) for ``ids`` (default: every row, file order)."""
        ids = list(self.rows) if ids is None else ids
        return np.array([float(self.rows[i][name]) if self.rows[i][name] != "" else np.nan for i in ids])


def _cell(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return repr(float(v))  # exact round trip; inf and -inf are read back by float()
    return str(v)


def rank_aggregate(columns: Sequence[np.ndarray]) -> np.ndarray:
    """AZ-NAS's rank aggregation (Lee & Ham, CVPR 2024): ``sum_k log(rank_k / n)``, ranks ascending
    (1 = lowest score, ties averaged); higher = better on every proxy at once."""
    from scipy.stats import rankdata

    n = len(columns[0])
    return np.sum([np.log(rankdata(np.nan_to_num(c, nan=-np.inf)) / n) for c in columns], axis=0)


def correlations(values: dict[str, np.ndarray], target: np.ndarray) -> dict[str, dict[str, float]]:
    """``{proxy: {"spearman", "kendall", "n"}}`` of every proxy against ``target`` (pairs with a
    NaN left out; ``-inf``, a degenerate network, ranks lowest)."""
    from scipy import stats

    out = {}
    for name, v in values.items():
        v = np.asarray(v, dtype=float)
        ok = ~np.isnan(v) & ~np.isnan(target)
        if ok.sum() < 3 or np.all(v[ok] == v[ok][0]):
            out[name] = {"spearman": math.nan, "kendall": math.nan, "n": int(ok.sum())}
            continue
        rho = stats.spearmanr(v[ok], target[ok]).statistic
        tau = stats.kendalltau(v[ok], target[ok]).statistic
        out[name] = {"spearman": float(rho), "kendall": float(tau), "n": int(ok.sum())}
    return out


def format_correlations(table: dict[str, dict[str, float]], seconds: dict[str, float] | None = None) -> str:
    w = max(12, *(len(n) for n in table))
    lines = [f"{'proxy':<{w}} {'spearman':>9} {'kendall':>8} {'n':>6}" + ("  median s" if seconds else "")]
    for name, r in table.items():
        line = f"{name:<{w}} {r['spearman']:>9.3f} {r['kendall']:>8.3f} {r['n']:>6d}"
        if seconds:
            line += f"  {seconds.get(name, math.nan):8.3f}"
        lines.append(line)
    return "\n".join(lines)


def plot_correlations(
    values: dict[str, np.ndarray],
    target: np.ndarray,
    table: dict[str, dict[str, float]],
    ylabel: str,
    stem: Path,
) -> list[str]:
    """One scatter panel per proxy (its rank among the networks vs ``target``), rho in the title;
    ``stem``.png and ``stem``.pdf."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import rankdata

    names = list(values)
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        v = np.nan_to_num(np.asarray(values[name], dtype=float), nan=-np.inf)
        ax.scatter(rankdata(v), target, s=4, alpha=0.5)
        ax.set_title(f"{name}: rho = {table[name]['spearman']:.3f}", fontsize=9)
        ax.set_xlabel("proxy rank", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    out = []
    for ext in (".png", ".pdf"):
        fig.savefig(stem.with_suffix(ext), dpi=130)
        out.append(str(stem.with_suffix(ext)))
    plt.close(fig)
    return out
