"""Import a run of the reference framework (CNAS / nsganetv2) as an msunas.py run directory.

    python tools/import_cnas_run.py results/cnas/edanas-r32-cifar10 results/imported/edanas-r32-cifar10
    python tools/import_cnas_run.py old/iter_30.stats results/imported/old --sec_obj macs --dataset cifar100

``SRC`` is a CNAS run directory (its ``iter_<k>.stats`` with the highest ``k``: the final archive,
which holds every earlier entry) or one such file, of the form::

    {"archive": [[config, top1_err_percent, sec_obj_value(, exit_ratios)], ...], "candidates": [...]}

The configs may be in CNAS's compact form (``ks`` and ``e`` list only the active blocks); they
are validated by the search space and written in the full form. ``--search_space auto`` takes
``eemobilenetv3`` when the configs hold exit thresholds (``t``), else ``mobilenetv3``; the space's
resolutions are those of the configs (``lr = ur = r`` when they share one). Nothing under ``SRC``
is ever written.

``DEST`` becomes a run directory as the search loop writes it, every architecture in iteration 0
(the reference's iterations cannot be told apart from its final archive):

- ``iter_0/net_<id>/net.subnet`` and ``net.stats`` per architecture (``failed/<id>/`` with
  ``net.subnet`` and ``failure.json`` for the failed ones);
- ``iter_0.stats`` (schema ``msunas-stats/2``: the archive, the hypervolume with the loop's
  reference point, the run description, and a top-level ``"imported"`` record of the source);
- ``config.yaml`` (the run description: the space, objectives ``top1`` and ``--sec_obj``; no
  evaluator, no strategy: nothing of this toolkit evaluated or searched), ``archive.csv``,
  ``plots/pareto.png``, ``plots/hv.png`` and ``log.txt``.

Metrics per architecture: ``top1`` = 100 - the reference's top-1 error (accuracy %, this toolkit's
convention), the second objective under the name ``--sec_obj`` (default ``avg_macs``),
``exit_ratio`` when the entry has exit ratios, ``n_exits`` in early-exit spaces, and
``"imported": {"from": <source stats file>, "note": "metrics as the reference measured them"}``
(in the metrics, so it follows the network into ``post_search.py``'s choices and the tools'
numbers). Entries the reference scored with its penalty values (top-1 error >= 100 %, or a second
objective >= 1e12) are failure records, not points. An architecture listed twice (same id) is
kept once, the first entry, with a note.

``--dataset`` is recorded in that ``"imported"`` record (the description has no evaluator to hold it).

Afterwards ``python post_search.py --expr DEST`` chooses networks (architectures only: an
imported run has no weights and names no evaluator that could rebuild them) and ``python
tools/plot_search.py --expr DEST`` plots it.
Refused with a one-line error (exit status 2), before anything is written: a ``DEST`` that already
holds a run (an ``iter_*.stats``) or lies inside ``SRC``, a ``SRC`` without ``iter_<k>.stats``, and
a file that is not in the CNAS format.
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import re
import sys
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nas.cli import run_cli  # noqa: E402
from nas.config import add_arguments, option  # noqa: E402
from nas.errors import UserError  # noqa: E402

EXPECTED = (
    'expected the CNAS format {"archive": [[config, top1_err_percent, sec_obj_value(, exit_ratios)], ...], '
    '"candidates": [...]}'
)
NOTE = "metrics as the reference measured them"
PENALTY = 1e12  # a second objective this large is the reference's mark of a failed evaluation, not a cost
RESERVED = ("top1", "exit_ratio", "n_exits", "imported")  # metric names the import writes itself


@dataclass
class ImportConfig:
    """Flags of ``tools/import_cnas_run.py`` (``SRC`` and ``DEST`` are positional)."""

    search_space: str = option(
        "auto",
        "search space of the configs: auto (eemobilenetv3 when they hold exit thresholds 't', else "
        "mobilenetv3) or a registered space name",
    )
    dataset: str = option("cifar10", "the dataset the reference searched on (recorded; nothing is loaded)")
    sec_obj: str = option(
        "avg_macs",
        "name of the second objective, the third item of every archive entry (avg_macs, macs, ...)",
    )


# ---- reading the source -------------------------------------------------------------------------


def iter_files(folder: str) -> list[tuple[int, str]]:
    """``(k, path)`` of the ``iter_<k>.stats`` files directly in ``folder``, by ``k``."""
    found = []
    for path in glob.glob(os.path.join(glob.escape(folder), "iter_*.stats")):
        m = re.fullmatch(r"iter_(\d+)\.stats", os.path.basename(path))
        if m and os.path.isfile(path):
            found.append((int(m.group(1)), path))
    return sorted(found)


def source_file(src: str) -> str:
    """The stats file to import: ``src`` itself, or the highest-``k`` ``iter_<k>.stats`` in it."""
    if os.path.isfile(src):
        return src
    if not os.path.isdir(src):
        raise UserError(f"SRC {src!r} does not exist; give a CNAS run directory or one of its iter_<k>.stats")
    found = iter_files(src)
    if not found:
        raise UserError(
            f"SRC {src!r} holds no iter_<k>.stats file; give a CNAS run directory or one of its "
            "iter_<k>.stats"
        )
    return found[-1][1]


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _short(v: Any, n: int = 80) -> str:
    text = repr(v)
    return text if len(text) <= n else text[: n - 3] + "..."


def read_cnas(path: str) -> list[list]:
    """The archive entries of a CNAS stats file, each checked for its form."""
    from nas.io import read_json

    data = read_json(path, "CNAS stats file")
    if isinstance(data, dict) and "schema" in data:
        raise UserError(
            f"{path!r} is a stats file of this toolkit (schema {data['schema']!r}), not a CNAS one; "
            "use its run directory as it is"
        )
    if not isinstance(data, dict) or not isinstance(data.get("archive"), list):
        found = f"keys {_short(sorted(data))}" if isinstance(data, dict) else f"a JSON {type(data).__name__}"
        raise UserError(f"{path!r} is not a CNAS stats file (it holds {found}); {EXPECTED}")
    if "candidates" in data and not isinstance(data["candidates"], list):
        raise UserError(f"{path!r}: 'candidates' is {_short(data['candidates'])}, not a list; {EXPECTED}")
    archive = data["archive"]
    if not archive:
        raise UserError(f"{path!r}: the archive is empty; nothing to import")
    for i, e in enumerate(archive):
        ok = (
            isinstance(e, list)
            and len(e) in (3, 4)
            and isinstance(e[0], dict)
            and _number(e[1])
            and _number(e[2])
            and (len(e) == 3 or e[3] is None or (isinstance(e[3], list) and all(map(_number, e[3]))))
        )
        if not ok:
            raise UserError(f"{path!r}: archive[{i}] is {_short(e)}; {EXPECTED}")
        if e[1] < 0:
            raise UserError(f"{path!r}: archive[{i}] has top-1 error {e[1]!r} %; it must be >= 0. {EXPECTED}")
    return archive


# ---- the space and the run description ----------------------------------------------------------


def choose_space(name: str, configs: list[dict]) -> Any:
    """The search space that holds ``configs``: its resolutions and width are theirs."""
    from nas.components import NoOptions, option_names
    from nas.space import SEARCH_SPACES

    if name == "auto":
        with_t = sum("t" in c for c in configs)
        if 0 < with_t < len(configs):
            raise UserError(
                f"{with_t} of {len(configs)} configs hold exit thresholds 't' and the others do not; "
                "name the space with --search_space"
            )
        name = "eemobilenetv3" if with_t else "mobilenetv3"
    cls = SEARCH_SPACES.get(name)
    names = option_names(getattr(cls, "Options", NoOptions))
    kwargs: dict[str, Any] = {}
    rs = sorted({c["r"] for c in configs if isinstance(c.get("r"), int) and not isinstance(c["r"], bool)})
    if "lr" in names and "ur" in names and rs:
        kwargs.update(lr=rs[0], ur=rs[-1])
        if len(rs) > 1 and "rstep" in names:
            kwargs["rstep"] = math.gcd(*(r - rs[0] for r in rs[1:]))
    widths = {c.get("w", 1.0) for c in configs if _number(c.get("w", 1.0))}
    if "width_mult" in names and len(widths) == 1:
        kwargs["width_mult"] = widths.pop()
    return cls(**kwargs)


def check_sec_obj(name: str) -> None:
    from nas.search.objectives import get_objective

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or ""):
        raise UserError(f"--sec_obj {name!r}: give the metric name of the third item, e.g. avg_macs or macs")
    if name in RESERVED:
        raise UserError(
            f"--sec_obj {name!r}: that metric name is written by the import itself; choose another"
        )
    try:
        metrics = get_objective(name).metrics
    except UserError:
        metrics = ()
    if tuple(metrics) != (name,):
        raise UserError(
            f"--sec_obj {name!r} is an objective computed from other metrics; name the metric the third item "
            "holds (avg_macs, macs, params, ...)"
        )


def run_description(space: Any, sec_obj: str, dest: str, n: int) -> Any:
    """The description of the imported run: its space and objectives; no evaluator, trainer,
    measures, cost providers or strategy (nothing of this toolkit evaluated or searched)."""
    from nas.components import options_dict
    from nas.plugins import plugin_list
    from nas.search.description import RunSpec

    package = type(space).__module__.split(".")[0]
    plugins = list(dict.fromkeys([*plugin_list(), *([package] if package != "nas" else [])]))
    spec = RunSpec(plugins=plugins)
    spec.apply(
        {
            "space": {"name": space.name, **options_dict(space.options)},
            "objectives": ["top1", sec_obj],
            "loop": {"save": dest, "seed": 0, "iterations": 0, "n_doe": n},
        }
    )
    return spec


# ---- converting ---------------------------------------------------------------------------------


def convert(entries: list[list], space: Any, sec_obj: str, source: str, log) -> tuple[list, dict]:
    """Results (archive order, one per architecture id) and what the conversion noted."""
    from nas.result import Result

    marker = {"from": source, "note": NOTE}
    results, first_of, duplicates = [], {}, []
    for i, entry in enumerate(entries):
        config, err, value = entry[0], float(entry[1]), float(entry[2])
        ratios = entry[3] if len(entry) == 4 else None
        try:
            arch = space.validate(config)
            aid = space.arch_id(arch)
        except UserError as e:
            raise UserError(f"{source}: archive[{i}] is not a network of {space.name}: {e}") from None
        if aid in first_of:
            duplicates.append((i, first_of[aid], aid))
            continue
        first_of[aid] = i
        if not (math.isfinite(err) and math.isfinite(value)) or err >= 100 or value >= PENALTY:
            message = (
                f"the reference scored archive[{i}] with top-1 error {entry[1]!r} % and {sec_obj} "
                f"{entry[2]!r} (its mark of a failed or refused evaluation)"
            )
            failure = {"type": "ReferencePenalty", "message": message, "traceback": ""}
            results.append(Result(aid, arch, {"imported": marker}, failure))
            continue
        metrics: dict[str, Any] = {"top1": 100.0 - err, sec_obj: value}
        n_exits = space.n_exits(arch) if callable(getattr(space, "n_exits", None)) else None
        if ratios is not None:
            if n_exits is not None and len(ratios) != n_exits + 1:
                raise UserError(
                    f"{source}: archive[{i}] has {len(ratios)} exit ratios for a network with {n_exits} "
                    f"early exits; expected {n_exits + 1} (one per exit, the final classifier last)"
                )
            metrics["exit_ratio"] = [float(x) for x in ratios]
        if n_exits is not None:
            metrics["n_exits"] = n_exits
        metrics["imported"] = marker
        results.append(Result(aid, arch, metrics))
    if duplicates:
        shown = ", ".join(f"archive[{i}] = archive[{j}] ({aid})" for i, j, aid in duplicates[:5])
        more = f" and {len(duplicates) - 5} more" if len(duplicates) > 5 else ""
        log(
            f"note: {len(duplicates)} archive entries repeat an earlier architecture (same id); "
            f"kept the first of each: {shown}{more}"
        )
    failed = [r for r in results if not r.ok]
    if len(failed) == len(results):
        raise UserError(
            f"{source}: every archive entry carries the reference's penalty scores; nothing to import"
        )
    return results, {"duplicates": [{"entry": i, "same_as": j, "id": aid} for i, j, aid in duplicates]}


def hypervolume(F) -> tuple[list[float], list[float] | None]:
    """The loop's history for one iteration: ``[hv]`` with reference point 1.01 x the nadir
    (single objective: the best first objective)."""
    import numpy as np
    from pymoo.indicators.hv import HV

    if F.shape[1] == 1:
        return [float(F[:, 0].min())], None
    nadir = F.max(axis=0)
    ref = nadir + 0.01 * np.abs(nadir) + 1e-12
    return [float(HV(ref_point=ref)(F))], ref.tolist()


class _Plotted:
    """What :func:`nas.search.plots.plot_search` reads from a search, for the imported archive."""

    def __init__(self, archive, objectives, ok, F, hv) -> None:
        self.archive, self.objectives, self._ok, self._F, self.hv = archive, objectives, ok, F, hv
        self.iteration = 0

    def scores(self):
        return self._ok, self._F


# ---- the import ---------------------------------------------------------------------------------


def check_dest(dest: str, src: str) -> None:
    """Refuse a ``dest`` that is ``src`` or lies inside it, is a file, or already holds a run."""
    real_dest, real_src = os.path.realpath(dest), os.path.realpath(src)
    if real_dest == real_src or real_dest.startswith(real_src.rstrip(os.sep) + os.sep):
        raise UserError(
            f"DEST {dest!r} is SRC {src!r} or lies inside it; SRC is never written to: give another folder"
        )
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise UserError(f"DEST {dest!r} is a file; give a new folder for the imported run")
    if os.path.isdir(dest):
        runs = [os.path.basename(p) for _, p in iter_files(dest)]
        if runs:
            raise UserError(
                f"DEST {dest!r} already holds a run ({', '.join(runs[:3])}); give a new folder "
                "(nothing was written)"
            )


def import_cnas_run(src: str, dest: str, cfg: ImportConfig | None = None, log=print) -> dict[str, Any]:
    """Write the run directory ``dest`` from the CNAS run ``src``; returns a summary.

    Everything is read and checked before ``dest`` is created; ``iter_0.stats`` is written last
    (as the loop does: its presence means the run is complete)."""
    cfg = cfg or ImportConfig()
    source = os.path.abspath(source_file(src))
    check_dest(dest, src)
    check_sec_obj(cfg.sec_obj)
    entries = read_cnas(source)
    space = choose_space(cfg.search_space, [e[0] for e in entries])
    results, noted = convert(entries, space, cfg.sec_obj, source, log)

    import numpy as np

    from nas.config import save_yaml
    from nas.io import write_json
    from nas.search.archive import Archive, write_archive_csv, write_stats
    from nas.search.factory import build_scorer
    from nas.search.objectives import metric_table
    from nas.search.plots import plot_search

    spec = run_description(space, cfg.sec_obj, dest, len(results))
    archive = Archive()
    for r in results:
        archive.add(r, 0)
    ok = archive.ok()
    scorer = build_scorer(spec)
    table = metric_table([r.metrics for r in ok])
    table["iteration"] = np.zeros(len(ok))
    F = scorer.score(table)
    hv, hv_ref = hypervolume(F)

    for r in archive:  # as the loop records each evaluation: net.stats last
        folder = os.path.join(dest, "iter_0", f"net_{r.arch_id}")
        write_json(os.path.join(folder, "net.subnet"), r.arch)
        if not r.ok:
            write_json(os.path.join(dest, "failed", r.arch_id, "net.subnet"), r.arch)
            write_json(os.path.join(dest, "failed", r.arch_id, "failure.json"), r.failure)
        write_json(os.path.join(folder, "net.stats"), r.to_json())
    save_yaml(spec.to_dict(), os.path.join(dest, "config.yaml"))
    names = [f"f{j + 1}_{o.name}" for j, o in enumerate(scorer.objectives)]
    values = {r.arch_id: dict(zip(names, f, strict=True)) for r, f in zip(ok, F, strict=True)}
    write_archive_csv(os.path.join(dest, "archive.csv"), archive, values)
    plot_search(dest, _Plotted(archive, scorer.objectives, ok, F, hv))
    imported = {
        "from": source,
        "format": "CNAS / nsganetv2 iter_k.stats",
        "dataset": cfg.dataset,
        "note": f"{NOTE}: top1 = 100 - their top-1 error (%), {cfg.sec_obj} = their second objective; "
        "no weights (post_search.py --no-weights)",
        "entries": len(entries),
        "architectures": len(archive),
        "failed": len(archive.failed()),
        **noted,
    }
    lines = [
        f"imported {len(archive)} architectures from {source} ({len(entries)} archive entries, "
        f"{len(noted['duplicates'])} duplicates left out, {len(archive.failed())} failed), "
        f"dataset {cfg.dataset}",
        f"space {space.name} {_space_text(space)}, objectives top1, {cfg.sec_obj}; "
        f"hv {hv[0]:.6g}, best {F[:, 0].min():.3f} {scorer.objectives[0].unit or 'top1'}",
    ]
    with open(os.path.join(dest, "log.txt"), "a") as f:
        f.write("\n".join(lines) + "\n")
    write_stats(
        os.path.join(dest, "iter_0.stats"),
        iteration=0,
        archive=archive.to_json(),
        candidates=[r.arch_id for r in archive],
        hv=hv,
        hv_ref=hv_ref,
        surrogate=[],
        timings=[],
        objectives=[o.name for o in scorer.objectives],
        strategy={},
        run=spec.to_dict(),
        imported=imported,
    )
    for line in lines:
        log(line)
    return {"stats": os.path.join(dest, "iter_0.stats"), "space": space, **imported}


def _space_text(space: Any) -> str:
    o = space.options
    if hasattr(o, "lr") and hasattr(o, "ur"):
        return f"(r {o.lr})" if o.lr == o.ur else f"(r {o.lr}..{o.ur} step {o.rstep})"
    return ""


# ---- command line -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Input and output formats: the module docstring (tools/import_cnas_run.py).",
    )
    p.add_argument(
        "src", metavar="SRC", help="CNAS run directory (its highest iter_<k>.stats) or one iter_<k>.stats"
    )
    p.add_argument("dest", metavar="DEST", help="new run directory to write (must not hold a run)")
    add_arguments(p, ImportConfig)
    args = vars(p.parse_args(argv))
    cfg = ImportConfig(**{k: v for k, v in args.items() if k not in ("src", "dest")})
    import_cnas_run(args["src"], args["dest"], cfg)
    print(
        f"next: python post_search.py --expr {args['dest']}; "
        f"python tools/plot_search.py --expr {args['dest']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
