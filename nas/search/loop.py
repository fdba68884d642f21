"""The search loop: the initial archive, then per iteration the strategy's candidates, their
evaluation and the bookkeeping. Crash-safe: every evaluation is written as soon as it finishes and
every iteration ends with an atomic ``iter_k.stats`` (with the run description and the strategy's
state); a resumed run re-uses both.

Randomness: iteration ``k`` draws from ``np.random.default_rng([seed, k])`` only, so a search
resumed after a kill makes exactly the choices the uninterrupted one made.

Hypervolume (``hv`` in the stats, ``--hv_patience``): after every iteration ``k`` the whole archive
is re-scored as iteration ``k`` (objectives prepared with the rows of iterations ``0..k-1``, see
:mod:`nas.search.objectives`; what they computed goes into ``objective_stats``), and the history is
recomputed from it:
``hv[j]`` is the hypervolume of the archive members evaluated in iterations ``0..j``, minimised
objectives, reference point 1.01 x the nadir of the initial archive's (re-scored) objective
values. For objectives that never change (most) this is the hypervolume each iteration had; for
objectives re-normalised every iteration (FlatNAS's ``top1_robust``) the history stays comparable
across iterations. Single-objective runs record the best first objective instead.
"""

from __future__ import annotations

import glob
import os
import re
import time
from collections.abc import Callable

import numpy as np
from pymoo.indicators.hv import HV
from tqdm import tqdm

from nas.errors import UserError
from nas.io import read_json, save_checkpoint, write_json
from nas.result import Result
from nas.search.archive import Archive, read_stats, write_archive_csv, write_stats
from nas.search.description import RunSpec, is_description
from nas.search.factory import Run, make_executor
from nas.search.scores import prefilter
from nas.search.selection import reference_point
from nas.space import Arch


def latest_stats(save: str) -> str | None:
    found = [
        (int(m.group(1)), p)
        for p in glob.glob(os.path.join(save, "iter_*.stats"))
        if (m := re.search(r"iter_(\d+)\.stats$", p))
    ]
    return max(found)[1] if found else None


def stats_path_of(path: str) -> str:
    """``path`` (a run directory or one stats file) as a stats file, or a one-line error."""
    stats = path if os.path.isfile(path) else latest_stats(path) if os.path.isdir(path) else None
    if stats is None:
        raise UserError(f"--resume {path!r}: no iter_k.stats file there; give a run directory or stats file")
    return stats


def resume_differences(old: RunSpec, new: RunSpec) -> list[str]:
    """What a resumed run may not change: the preset, space, evaluator's dataset, objectives,
    strategy and seed (the evaluations on disk were made with them)."""
    out = []
    pairs = [
        ("benchmark", old.preset, new.preset),
        ("search space", old.space and old.space.to_dict(), new.space and new.space.to_dict()),
        ("objectives", [p.to_dict() for p in old.objectives], [p.to_dict() for p in new.objectives]),
        ("strategy", old.strategy and old.strategy.name, new.strategy and new.strategy.name),
        ("seed", old.loop.seed, new.loop.seed),
        ("evaluator", old.evaluator and old.evaluator.name, new.evaluator and new.evaluator.name),
    ]
    for what in ("dataset",):
        a = getattr(old.evaluator.options, what, None) if old.evaluator else None
        b = getattr(new.evaluator.options, what, None) if new.evaluator else None
        pairs.append((what, a, b))
    for what, a, b in pairs:
        if a != b:
            out.append(f"{what} {a!r}, not {b!r}")
    return out


class Search:
    """Runs a built :class:`~nas.search.factory.Run`; ``executor`` overrides the described one."""

    def __init__(self, run: Run, log: Callable[[str], None] = tqdm.write, executor=None) -> None:
        self.run_, self.spec, self.space = run, run.spec, run.space
        self.evaluator, self.costs, self.scorer, self.strategy = (
            run.evaluator,
            run.costs,
            run.scorer,
            run.strategy,
        )
        self.ctx = run.ctx
        self.ctx.log = self.log
        self.ctx.save = self.spec.loop.save
        self._print = log
        self.executor = executor
        self.archive: Archive = run.ctx.archive
        self.hv: list[float] = []
        self.surrogate_log = run.ctx.surrogate_log
        self.timings: list[dict] = []  # per iteration: evaluation and search-overhead seconds
        self.hv_ref: list[float] | None = None
        self.iteration = -1
        self._plotted: int | None = None  # the iteration the plots on disk show

    @property
    def save(self) -> str:
        return self.spec.loop.save

    @property
    def objectives(self):
        return self.scorer.objectives

    # ---- bookkeeping ----------------------------------------------------------------------

    def log(self, msg: str) -> None:
        self._print(msg)
        with open(os.path.join(self.save, "log.txt"), "a") as f:
            f.write(msg + "\n")

    def scores(self) -> tuple[list[Result], np.ndarray]:
        """The successful archive members and their objective values, re-scored now."""
        ok, _, F = self.ctx.archive_scores(self.iteration)  # as this iteration: its own stats
        return ok, F

    def _hypervolume_history(self) -> list[float]:
        ok, F = self.scores()
        its = np.array([self.archive.iteration_of[r.arch_id] for r in ok])
        single = F.shape[1] == 1
        if not single:
            self.hv_ref = reference_point(F, its).tolist()
            self.ctx.hv_ref = self.hv_ref
            indicator = HV(ref_point=np.array(self.hv_ref))
        out = []
        for j in range(self.iteration + 1):
            Fj = F[its <= j]
            if len(Fj) == 0:
                out.append(float("nan"))
            else:
                out.append(float(Fj[:, 0].min()) if single else float(indicator(Fj)))
        return out

    def _save_iteration(self, candidates: list[str]) -> None:
        k = self.iteration
        ok, F = self.scores()  # also prepares the objectives as this iteration: their statistics
        write_stats(
            os.path.join(self.save, f"iter_{k}.stats"),
            iteration=k,
            archive=self.archive.to_json(),
            candidates=candidates,
            hv=self.hv,
            hv_ref=self.hv_ref,
            surrogate=self.surrogate_log,
            timings=self.timings,
            objectives=[o.name for o in self.objectives],
            objective_stats=self.scorer.statistics(),
            strategy=self.strategy.state_dict(),
            run=self.spec.to_dict(),
        )
        names = [f"f{j + 1}_{o.name}" for j, o in enumerate(self.objectives)]
        values = {r.arch_id: dict(zip(names, f, strict=True)) for r, f in zip(ok, F, strict=True)}
        write_archive_csv(os.path.join(self.save, "archive.csv"), self.archive, values)
        every = self.spec.loop.plot_every
        if every > 0 and k % every == 0:
            self._plot()

    def _plot(self) -> None:
        from nas.search.plots import plot_search

        plot_search(self.save, self)
        self._plotted = self.iteration

    # ---- evaluation -----------------------------------------------------------------------

    def evaluate(self, archs: list[Arch]) -> list[Result]:
        """Evaluate and record each architecture, re-using any evaluation already on disk.

        Each result gets the cost providers' exact metrics and is written as soon as it arrives;
        the archive takes them in ``archs`` order.
        """
        k = self.iteration
        folders = [os.path.join(self.save, f"iter_{k}", f"net_{self.space.arch_id(a)}") for a in archs]
        results: list[Result | None] = [None] * len(archs)
        for i, folder in enumerate(folders):
            if os.path.isfile(os.path.join(folder, "net.stats")):  # finished before a kill: keep it
                results[i] = Result.from_json(read_json(os.path.join(folder, "net.stats"), "net.stats"))
        todo = [i for i, r in enumerate(results) if r is None]
        bar = tqdm(total=len(todo), desc=f"iter {k} evaluate", leave=False, dynamic_ncols=True, disable=None)
        for j, result in self.executor.map([archs[i] for i in todo]):
            i = todo[j]
            self._add_costs(result)
            self._record(result, folders[i])
            results[i] = result
            bar.update()
        bar.close()
        for result in results:
            if not result.ok:
                self.log(
                    f"  evaluation of {result.arch_id} failed: {result.failure['type']}: "
                    f"{result.failure['message']}"
                )
            self.archive.add(result, k)
        return results

    def _add_costs(self, result: Result) -> None:
        if not result.ok:
            return
        try:
            result.metrics = {**result.metrics, **self.costs.metrics(result.arch)}
        except Exception as e:  # a cost provider that cannot price this architecture
            weights = result.weights
            failed = Result.failed(result.arch_id, result.arch, e)
            result.metrics, result.failure, result.weights = failed.metrics, failed.failure, weights

    def _record(self, result: Result, folder: str) -> None:
        write_json(os.path.join(folder, "net.subnet"), result.arch)
        if result.weights is not None:
            save_checkpoint(
                os.path.join(folder, "ckpt.pth"), {"state_dict": result.weights, "arch": result.arch}
            )
            result.weights = None  # on disk now; the archive keeps metrics only
        if not result.ok:
            fail_dir = os.path.join(self.save, "failed", result.arch_id)
            write_json(os.path.join(fail_dir, "net.subnet"), result.arch)
            write_json(os.path.join(fail_dir, "failure.json"), result.failure)
        write_json(os.path.join(folder, "net.stats"), result.to_json())  # last: its presence means "done"

    # ---- the loop -------------------------------------------------------------------------

    def resume(self, path: str) -> None:
        stats_path = stats_path_of(path)
        stats = read_stats(stats_path)
        old = stats_description(stats, self.spec.plugins)
        diff = resume_differences(old, self.spec)
        if diff:
            raise UserError(f"--resume {stats_path}: that search used {diff[0]}; use the same settings")
        self.archive.results.clear()
        self.archive.iteration_of.clear()
        for r in stats["archive_obj"]:
            self.archive.add(r, stats["archive_obj"].iteration_of[r.arch_id])
        self.iteration = int(stats["iteration"])
        self.hv = list(stats["hv"])
        self.hv_ref = stats.get("hv_ref")
        self.ctx.hv_ref = self.hv_ref
        self.surrogate_log[:] = list(stats.get("surrogate", []))
        self.timings = list(stats.get("timings", []))
        if "strategy" in stats:
            self.strategy.load_state_dict(stats["strategy"])
        else:  # a run of an older version: its strategy learns from the archive alone
            self.strategy.tell(self.archive.ok())
        self.log(f"resumed from {stats_path}: {len(self.archive)} architectures, iteration {self.iteration}")

    def run(self) -> Archive:
        """Resume if asked, start the executor, run the remaining iterations; returns the archive."""
        loop = self.spec.loop
        os.makedirs(self.save, exist_ok=True)
        if loop.resume:
            self.resume(loop.resume)
        from nas.config import save_yaml

        save_yaml(self.spec.to_dict(), os.path.join(self.save, "config.yaml"))
        own_executor = self.executor is None
        if own_executor:
            self.executor = make_executor(self.run_)
        try:
            self.executor.start()
            self._loop()
        finally:
            if own_executor:
                self.executor.close()
        return self.archive

    def _loop(self) -> None:
        loop = self.spec.loop
        if self.iteration < 0:
            self.iteration = 0
            t0 = time.time()
            results = self.evaluate(
                self._ask(lambda: self.strategy.initial(np.random.default_rng([loop.seed, 0])), "n_doe")
            )
            if not self.archive.ok():
                raise UserError("every architecture of the initial archive failed; see failed/ for why")
            self.strategy.tell(results)
            self.hv = self._hypervolume_history()
            self.timings.append({"iteration": 0, "eval_s": time.time() - t0, "search_s": 0.0})
            self._save_iteration([r.arch_id for r in self.archive])
            self.log(self._summary())
        bar = tqdm(
            total=loop.iterations,
            initial=self.iteration,
            desc="search",
            unit="iter",
            dynamic_ncols=True,
            disable=None,
        )
        while self.iteration < loop.iterations:
            if self._stagnated():
                self.log(f"stopping: no hypervolume gain in {loop.hv_patience} iterations")
                break
            self.step()
            bar.update()
        bar.close()
        if self._plotted != self.iteration and self.spec.loop.plot_every >= 0:
            self._plot()  # the last iteration's plots (also after a stop on --hv_patience)

    def _ask(self, propose: Callable[[], list[Arch]], budget: str) -> list[Arch]:
        """The strategy's proposals; with ``--prefilter``, it proposes ``--prefilter_factor`` times
        the budget (``ctx.n_doe`` or ``ctx.n_iter``) and the best-scored are kept."""
        if self.run_.prefilter is None:
            return propose()
        k = getattr(self.ctx, budget)
        setattr(self.ctx, budget, k * self.spec.loop.prefilter_factor)
        try:
            proposed = propose()
        finally:
            setattr(self.ctx, budget, k)
        return prefilter(proposed, self.run_.prefilter, k)

    def _stagnated(self) -> bool:
        p = self.spec.loop.hv_patience
        if p <= 0 or len(self.hv) <= p:
            return False
        better = (lambda a, b: a > b) if len(self.objectives) > 1 else (lambda a, b: a < b)
        return not any(better(h, self.hv[-p - 1]) for h in self.hv[-p:])

    def step(self) -> None:
        """One iteration: the strategy's candidates, their evaluation, stats."""
        self.iteration += 1
        k = self.iteration
        t0 = time.time()
        chosen = self._ask(
            lambda: self.strategy.ask(np.random.default_rng([self.spec.loop.seed, k])), "n_iter"
        )
        overhead = time.time() - t0
        t1 = time.time()
        results = self.evaluate(chosen)
        self.strategy.tell(results)
        self.hv = self._hypervolume_history()
        self.timings.append({"iteration": k, "eval_s": time.time() - t1, "search_s": overhead})
        self._save_iteration([r.arch_id for r in results])
        self.log(self._summary())

    def _summary(self) -> str:
        ok, F = self.scores()
        first = self.objectives[0]
        quality = self.strategy.quality if self.iteration > 0 else None
        tau = f"{quality['tau']:.3f}" if quality and quality.get("tau") is not None else "-"
        chosen = f" ({quality['chosen']})" if quality and "chosen" in quality else ""
        prepared = "".join(
            f"  {name}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items())
            for name, values in self.scorer.statistics().items()
        )  # e.g. top1_robust's alpha_norm
        return (
            f"iter {self.iteration}: archive {len(self.archive)} ({len(self.archive.failed())} failed)  "
            f"hv {self.hv[-1]:.6g}  surrogate tau {tau}{chosen}  best {F[:, 0].min():.3f} "
            f"{first.unit or first.name}  eval {self.timings[-1]['eval_s']:.1f}s  "
            f"search {self.timings[-1]['search_s']:.1f}s{prepared}"
        )


def stats_description(stats: dict, plugins: list[str] | None = None) -> RunSpec:
    """The run description a stats file recorded (``run``), or the flat ``config`` of older runs;
    the plug-ins it names (default ones for older runs) are loaded first."""
    from nas.plugins import load_plugins, plugin_list
    from nas.search.description import legacy_flat

    run = stats.get("run")
    if isinstance(run, dict) and is_description(run):
        load_plugins(run.get("plugins") or plugin_list())
        return RunSpec.from_dict(run)
    plugins = load_plugins(plugins or plugin_list())
    spec = RunSpec.default(plugins)
    old = stats.get("config", {}) or {}
    if old.get("benchmark"):
        spec.use_preset(old["benchmark"])
    spec.apply_flat(legacy_flat(old), strict=False)
    return spec
