"""The archive of evaluated architectures and the ``iter_k.stats`` files that hold it.

An ``iter_k.stats`` file is versioned JSON, written atomically::

    {"schema": "msunas-stats/2", "iteration": k,
     "archive": [{"id", "arch", "metrics", "iteration"[, "failure"]}, ...],
     "candidates": [ids evaluated in iteration k], "hv": [hv after iteration 0..k], "hv_ref": [...],
     "surrogate": [{"iteration", "metric", "rmse", "rho", "tau", ...}, ...],
     "timings": [{"iteration", "eval_s", "search_s"}, ...],
     "objectives": [first, second, ...],
     "objective_stats": {objective: {what it computed from the archive, e.g. alpha_norm}},
     "strategy": {the strategy's state},
     "run": {the run description, nas.search.description}}

Files of schema ``msunas-stats/1`` (before run descriptions: a flat ``"config"`` instead of
``"run"``, no ``"strategy"``) are read too, so older runs resume and post-search as before.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from typing import Any

from nas.errors import UserError
from nas.io import atomic_write_bytes, read_json, write_json
from nas.result import Result, flatten

SCHEMA = "msunas-stats/2"
READABLE = (SCHEMA, "msunas-stats/1")


class Archive:
    """Results keyed by architecture id, in the order they were added."""

    def __init__(self) -> None:
        self.results: dict[str, Result] = {}
        self.iteration_of: dict[str, int] = {}

    def add(self, result: Result, iteration: int) -> None:
        self.results[result.arch_id] = result
        self.iteration_of[result.arch_id] = iteration

    def __contains__(self, arch_id: object) -> bool:
        return arch_id in self.results

    def __len__(self) -> int:
        return len(self.results)

    def ok(self) -> list[Result]:
        return [r for r in self.results.values() if r.ok]

    def failed(self) -> list[Result]:
        return [r for r in self.results.values() if not r.ok]

    def __iter__(self) -> Iterator[Result]:
        return iter(self.results.values())

    def to_json(self) -> list[dict[str, Any]]:
        return [{**r.to_json(), "iteration": self.iteration_of[r.arch_id]} for r in self]

    @classmethod
    def from_json(cls, rows: list[dict[str, Any]]) -> Archive:
        a = cls()
        for row in rows:
            a.add(Result.from_json(row), int(row.get("iteration", 0)))
        return a


def write_stats(path: str | os.PathLike, **fields: Any) -> None:
    write_json(path, {"schema": SCHEMA, **fields})


def read_stats(path: str | os.PathLike) -> dict[str, Any]:
    stats = read_json(path, "stats file")
    if not isinstance(stats, dict) or stats.get("schema") not in READABLE:
        found = stats.get("schema") if isinstance(stats, dict) else type(stats).__name__
        raise UserError(
            f"{str(path)!r} is not a stats file of this toolkit (schema {found!r}, expected {SCHEMA!r}); "
            "resume from an iter_k.stats that msunas.py wrote"
        )
    try:
        stats["archive_obj"] = Archive.from_json(stats["archive"])
    except (KeyError, TypeError) as e:
        raise UserError(f"stats file {str(path)!r} is damaged ({type(e).__name__}: {e})") from None
    return stats


def write_archive_csv(
    path: str | os.PathLike, archive: Archive, objectives: dict[str, dict[str, float]]
) -> None:
    """One row per evaluated architecture: id, iteration, status, metrics, objective values, arch.

    ``objectives`` maps an architecture id to ``{objective name: value}`` (successful ones only);
    structured metrics (a list per exit, a dict) are flattened to ``name.0``, ``name.key`` columns.
    """
    flat = {r.arch_id: flatten(r.metrics) for r in archive}
    metric_names = sorted({k for m in flat.values() for k in m})
    objective_names = list(next(iter(objectives.values()), {}))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "iteration", "status", *metric_names, *objective_names, "arch"])
    for r in archive:
        objs = objectives.get(r.arch_id, {})
        w.writerow(
            [
                r.arch_id,
                archive.iteration_of[r.arch_id],
                "ok" if r.ok else f"failed: {r.failure['type']}",
                *[flat[r.arch_id].get(k, "") for k in metric_names],
                *[objs.get(k, "") for k in objective_names],
                json.dumps(r.arch, separators=(",", ":")),
            ]
        )
    atomic_write_bytes(path, buf.getvalue().encode())
