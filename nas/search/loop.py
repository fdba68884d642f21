"""The search loop: initial archive, then per iteration surrogate fit, NSGA-II, subset selection,
evaluation and bookkeeping. Crash-safe: every evaluation is written as soon as it finishes and
every iteration ends with an atomic ``iter_k.stats``; a resumed run re-uses both.

Randomness: iteration ``k`` draws from ``np.random.default_rng([seed, k])`` only, so a search
resumed after a kill makes exactly the choices the uninterrupted one made.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import time
from collections.abc import Callable, Sequence

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from tqdm import tqdm

from nas.config import save_config
from nas.errors import UserError
from nas.evaluation import Evaluator, Result
from nas.io import read_json, save_checkpoint, write_json
from nas.search.archive import Archive, read_stats, write_archive_csv, write_stats
from nas.search.config import SearchConfig
from nas.search.executors import InProcessExecutor
from nas.search.moea import optimise
from nas.search.objectives import Constraints, Objective, check_feasible, get_objective
from nas.search.selection import SELECTIONS, select
from nas.space import Arch, SearchSpace
from nas.surrogate import fit_surrogate, min_cv_samples

# Settings a resumed search must share with the run it continues.
RESUME_KEYS = ("benchmark", "search_space", "first_obj", "sec_obj", "seed", "lr", "ur", "rstep", "dataset")


def latest_stats(save: str) -> str | None:
    found = [
        (int(m.group(1)), p)
        for p in glob.glob(os.path.join(save, "iter_*.stats"))
        if (m := re.search(r"iter_(\d+)\.stats$", p))
    ]
    return max(found)[1] if found else None


class Search:
    def __init__(
        self,
        cfg: SearchConfig,
        space: SearchSpace,
        evaluator: Evaluator,
        log: Callable = tqdm.write,
        executor=None,
    ):
        self.cfg, self.space, self.evaluator, self._print = cfg, space, evaluator, log
        self.executor = executor if executor is not None else InProcessExecutor(evaluator)
        constraints = Constraints(cfg.pmax, cfg.mmax, cfg.amax, cfg.wp, cfg.wm, cfg.wa, cfg.penalty)
        self.objectives: list[Objective] = [get_objective(cfg.first_obj, constraints)]
        if cfg.sec_obj:
            self.objectives.append(get_objective(cfg.sec_obj, constraints))
        if cfg.top1min > 0 and cfg.first_obj != "top1":
            raise UserError(f"--top1min applies to --first_obj top1, not {cfg.first_obj!r}; drop it")
        if not 0 <= cfg.top1min < 100:
            raise UserError(f"--top1min {cfg.top1min} must be a top-1 percentage in [0, 100)")
        if cfg.n_doe < 2 or cfg.n_iter < 1 or cfg.iterations < 0:
            raise UserError("--n_doe must be >= 2, --n_iter >= 1 and --iterations >= 0")
        if cfg.selection not in SELECTIONS:
            raise UserError(f"unknown --selection {cfg.selection!r}; choose one of: {', '.join(SELECTIONS)}")
        if cfg.n_iter > cfg.pop_size:
            raise UserError(
                f"--n_iter {cfg.n_iter} exceeds the {cfg.pop_size} candidates NSGA-II supplies per "
                "iteration; lower --n_iter or raise --pop_size"
            )
        need = min_cv_samples(cfg.predictor, 5)
        if cfg.iterations > 0 and cfg.n_doe < need:  # the surrogate is first fitted in iteration 1
            raise UserError(
                f"--n_doe {cfg.n_doe} is too small for --predictor {cfg.predictor}, whose 5-fold "
                f"cross-validation needs at least {need} architectures; raise --n_doe"
            )
        probe = evaluator.exact_metrics(space.smallest())
        for obj in self.objectives:
            if all(m in probe for m in obj.metrics):
                check_feasible(obj, probe)
        self.archive = Archive()
        self.hv: list[float] = []
        self.surrogate_log: list[dict] = []
        self.timings: list[dict] = []  # per iteration: evaluation and search-overhead seconds
        self.hv_ref: list[float] | None = None
        self.iteration = -1

    # ---- bookkeeping ----------------------------------------------------------------------

    def log(self, msg: str) -> None:
        self._print(msg)
        with open(os.path.join(self.cfg.save, "log.txt"), "a") as f:
            f.write(msg + "\n")

    def objective_values(self, results: Sequence[Result]) -> np.ndarray:
        return np.array([[obj(r.metrics) for obj in self.objectives] for r in results], dtype=float)

    def _prepare_objectives(self) -> None:
        metrics = [r.metrics for r in self.archive.ok()]
        for obj in self.objectives:
            obj.prepare(metrics)

    def _hypervolume(self) -> float:
        F = self.objective_values(self.archive.ok())
        if len(self.objectives) == 1:
            return float(F[:, 0].min())
        if self.hv_ref is None:  # 1.01 x the nadir of the initial archive
            nadir = F.max(axis=0)
            self.hv_ref = (nadir + 0.01 * np.abs(nadir) + 1e-12).tolist()
        return float(HV(ref_point=np.array(self.hv_ref))(F))

    def _save_iteration(self, candidates: list[str]) -> None:
        k, cfg = self.iteration, self.cfg
        write_stats(
            os.path.join(cfg.save, f"iter_{k}.stats"),
            iteration=k,
            archive=self.archive.to_json(),
            candidates=candidates,
            hv=self.hv,
            hv_ref=self.hv_ref,
            surrogate=self.surrogate_log,
            timings=self.timings,
            objectives=[o.name for o in self.objectives],
            config=dataclasses.asdict(cfg),
        )
        ok = self.archive.ok()
        names = [f"f{j + 1}_{o.name}" for j, o in enumerate(self.objectives)]
        values = {
            r.arch_id: dict(zip(names, f, strict=True))
            for r, f in zip(ok, self.objective_values(ok), strict=True)
        }
        write_archive_csv(os.path.join(cfg.save, "archive.csv"), self.archive, values)
        from nas.search.plots import plot_search

        plot_search(cfg.save, self)

    # ---- evaluation -----------------------------------------------------------------------

    def evaluate(self, archs: list[Arch]) -> list[Result]:
        """Evaluate and record each architecture, re-using any evaluation already on disk.

        Each result is written as soon as it arrives; the archive takes them in ``archs`` order.
        """
        k = self.iteration
        folders = [os.path.join(self.cfg.save, f"iter_{k}", f"net_{self.space.arch_id(a)}") for a in archs]
        results: list[Result | None] = [None] * len(archs)
        for i, folder in enumerate(folders):
            if os.path.isfile(os.path.join(folder, "net.stats")):  # finished before a kill: keep it
                results[i] = Result.from_json(read_json(os.path.join(folder, "net.stats"), "net.stats"))
        todo = [i for i, r in enumerate(results) if r is None]
        bar = tqdm(total=len(todo), desc=f"iter {k} evaluate", leave=False, dynamic_ncols=True, disable=None)
        for j, result in self.executor.map([archs[i] for i in todo]):
            i = todo[j]
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

    def _record(self, result: Result, folder: str) -> None:
        write_json(os.path.join(folder, "net.subnet"), result.arch)
        if result.weights is not None:
            save_checkpoint(
                os.path.join(folder, "ckpt.pth"), {"state_dict": result.weights, "arch": result.arch}
            )
            result.weights = None  # on disk now; the archive keeps metrics only
        if not result.ok:
            fail_dir = os.path.join(self.cfg.save, "failed", result.arch_id)
            write_json(os.path.join(fail_dir, "net.subnet"), result.arch)
            write_json(os.path.join(fail_dir, "failure.json"), result.failure)
        write_json(os.path.join(folder, "net.stats"), result.to_json())  # last: its presence means "done"

    # ---- the loop -------------------------------------------------------------------------

    def initial_archs(self, rng: np.random.Generator) -> list[Arch]:
        archs = {self.space.arch_id(a): a for a in (self.space.smallest(), self.space.largest())}
        while len(archs) < self.cfg.n_doe:
            for a in self.space.sample(self.cfg.n_doe, rng):
                archs.setdefault(self.space.arch_id(a), a)
                if len(archs) == self.cfg.n_doe:
                    break
        return list(archs.values())

    def resume(self, path: str) -> None:
        stats_path = path if os.path.isfile(path) else latest_stats(path)
        if stats_path is None:
            raise UserError(
                f"--resume {path!r}: no iter_k.stats file there; give a run directory or stats file"
            )
        stats = read_stats(stats_path)
        old = stats.get("config", {})
        for key in RESUME_KEYS:
            if old.get(key) != getattr(self.cfg, key):
                raise UserError(
                    f"--resume {stats_path}: that search used {key}={old.get(key)!r}, not "
                    f"{getattr(self.cfg, key)!r}; use the same settings"
                )
        self.archive = stats["archive_obj"]
        self.iteration = int(stats["iteration"])
        self.hv = list(stats["hv"])
        self.hv_ref = stats.get("hv_ref")
        self.surrogate_log = list(stats.get("surrogate", []))
        self.timings = list(stats.get("timings", []))
        self.log(f"resumed from {stats_path}: {len(self.archive)} architectures, iteration {self.iteration}")

    def run(self) -> Archive:
        cfg = self.cfg
        os.makedirs(cfg.save, exist_ok=True)
        if cfg.resume:
            self.resume(cfg.resume)
        save_config(cfg, os.path.join(cfg.save, "config.yaml"))
        if self.iteration < 0:
            self.iteration = 0
            t0 = time.time()
            self.evaluate(self.initial_archs(np.random.default_rng([cfg.seed, 0])))
            if not self.archive.ok():
                raise UserError("every architecture of the initial archive failed; see failed/ for why")
            self._prepare_objectives()
            self.hv.append(self._hypervolume())
            self.timings.append({"iteration": 0, "eval_s": time.time() - t0, "search_s": 0.0})
            self._save_iteration([r.arch_id for r in self.archive])
            self.log(self._summary(None))
        bar = tqdm(
            total=cfg.iterations,
            initial=self.iteration,
            desc="search",
            unit="iter",
            dynamic_ncols=True,
            disable=None,
        )
        while self.iteration < cfg.iterations:
            if self._stagnated():
                self.log(f"stopping: no hypervolume gain in {cfg.hv_patience} iterations")
                break
            self.step()
            bar.update()
        bar.close()
        return self.archive

    def _stagnated(self) -> bool:
        p = self.cfg.hv_patience
        if p <= 0 or len(self.hv) <= p:
            return False
        better = (lambda a, b: a > b) if len(self.objectives) > 1 else (lambda a, b: a < b)
        return not any(better(h, self.hv[-p - 1]) for h in self.hv[-p:])

    def step(self) -> None:
        """One iteration: surrogate, NSGA-II, subset selection, evaluation, stats."""
        cfg = self.cfg
        self.iteration += 1
        k = self.iteration
        rng = np.random.default_rng([cfg.seed, k])
        t0 = time.time()
        self._prepare_objectives()
        ok = self.archive.ok()
        X = np.stack([self.space.features(r.arch) for r in ok])
        F = self.objective_values(ok)
        fns, quality = [], None
        for j, obj in enumerate(self.objectives):
            exact = self._exact_fn(obj)
            if exact is not None:
                fns.append(exact)
                continue
            model, q = fit_surrogate(cfg.predictor, X, F[:, j], rng)
            if j == 0:
                quality = q
            self.surrogate_log.append({"iteration": k, "objective": obj.name, **_jsonable(q)})
            fns.append(lambda archs, m=model: m.predict(np.stack([self.space.features(a) for a in archs])))
        front = (
            NonDominatedSorting().do(F, only_non_dominated_front=True)
            if F.shape[1] > 1
            else [F[:, 0].argmin()]
        )
        seeds = np.stack([self.space.encode(ok[i].arch) for i in front])
        constraints = []
        if cfg.top1min > 0:  # predicted top-1 error <= 100 - top1min
            constraints.append(lambda archs: fns[0](archs) - (100.0 - cfg.top1min))
        pop_X, pop_F = optimise(
            self.space, fns, seeds, rng, cfg.pop_size, cfg.n_gen, constraints, known=self.archive.results
        )
        cands, cand_F = [], []
        for x, f in zip(pop_X, pop_F, strict=True):
            arch = self.space.decode(x)
            aid = self.space.arch_id(arch)
            if cfg.top1min > 0 and f[0] > 100.0 - cfg.top1min:
                continue  # predicted below --top1min
            if aid not in self.archive and aid not in {self.space.arch_id(c) for c in cands}:
                cands.append(arch)
                cand_F.append(f)
        chosen = []
        if cands:
            cand_F = np.array(cand_F)
            if len(self.objectives) > 1:
                pick = select(cfg.selection, F, cand_F, cfg.n_iter, np.array(self.hv_ref), rng)
            else:
                pick = np.argsort(cand_F[:, 0], kind="stable")[: cfg.n_iter]
            chosen = [cands[i] for i in pick]
        if len(chosen) < cfg.n_iter:  # NSGA-II's population has converged: spend the budget anyway
            self.log(f"iteration {k}: NSGA-II offered {len(chosen)} new architectures; adding random ones")
            taken = {self.space.arch_id(a) for a in chosen}
            for _ in range(100):
                drawn = self.space.sample(cfg.n_iter, rng)
                if constraints:  # random ones obey --top1min too
                    feasible = np.all([g(drawn) <= 0 for g in constraints], axis=0)
                    drawn = [a for a, ok in zip(drawn, feasible, strict=True) if ok]
                for a in drawn:
                    aid = self.space.arch_id(a)
                    if aid not in self.archive and aid not in taken and len(chosen) < cfg.n_iter:
                        taken.add(aid)
                        chosen.append(a)
                if len(chosen) == cfg.n_iter:
                    break
        overhead = time.time() - t0
        t1 = time.time()
        results = self.evaluate(chosen)
        self._prepare_objectives()
        self.hv.append(self._hypervolume())
        self.timings.append({"iteration": k, "eval_s": time.time() - t1, "search_s": overhead})
        self._save_iteration([r.arch_id for r in results])
        self.log(self._summary(quality))

    def _exact_fn(self, obj: Objective):
        """A function computing ``obj`` for architectures without evaluating them, if possible."""
        probe = self.evaluator.exact_metrics(self.space.smallest())
        if not all(m in probe for m in obj.metrics):
            return None
        return lambda archs: np.array([obj(self.evaluator.exact_metrics(a)) for a in archs], dtype=float)

    def _summary(self, quality: dict | None) -> str:
        ok = self.archive.ok()
        first = self.objectives[0]
        best = min(first(r.metrics) for r in ok)
        tau = f"{quality['tau']:.3f}" if quality and quality.get("tau") is not None else "-"
        chosen = f" ({quality['chosen']})" if quality and "chosen" in quality else ""
        return (
            f"iter {self.iteration}: archive {len(self.archive)} ({len(self.archive.failed())} failed)  "
            f"hv {self.hv[-1]:.6g}  surrogate tau {tau}{chosen}  best {best:.3f} {first.unit or first.name}  "
            f"eval {self.timings[-1]['eval_s']:.1f}s  search {self.timings[-1]['search_s']:.1f}s"
        )


def _jsonable(d: dict) -> dict:
    out = {}
    for key, v in d.items():
        if isinstance(v, dict):
            out[key] = _jsonable(v)
        elif isinstance(v, (np.floating, float)):
            out[key] = None if not np.isfinite(v) else float(v)
        elif isinstance(v, (np.integer, int)):
            out[key] = int(v)
        else:
            out[key] = v
    return out
