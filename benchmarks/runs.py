"""Running searches for the benchmark scripts: a preset's run, in this process, from flat options."""

from __future__ import annotations

import time
from typing import Any

from nas.plugins import plugin_list
from nas.search.archive import read_stats
from nas.search.description import RunSpec
from nas.search.factory import build_run
from nas.search.loop import Search, latest_stats


def run_preset(
    preset: str, save: str, overrides: dict[str, Any] | None = None, evaluator: Any = None
) -> tuple[Search, list[dict], float, list[str]]:
    """Run the ``--benchmark preset`` search with flat ``overrides`` (``seed``, ``sec_obj``, ...) into
    ``save``; ``evaluator`` replaces the preset's (to count its evaluations). Returns the search,
    the metrics of its successful evaluations as the run recorded them, the wall time and the log."""
    spec = RunSpec.from_flat({"benchmark": preset, "save": save, **(overrides or {})}, plugins=plugin_list())
    lines: list[str] = []
    t0 = time.time()
    search = Search(build_run(spec, evaluator=evaluator, log=lines.append), log=lines.append)
    search.run()
    wall = time.time() - t0
    stats = read_stats(latest_stats(save))
    return search, [dict(r.metrics) for r in stats["archive_obj"].ok()], wall, lines
