"""The factory: one place that builds a run's components from its description.

``msunas.py``, worker processes and Ray actors (:class:`EvaluatorFactory`), ``--resume``,
``post_search.py`` and the tools all build through here, so a plug-in's components and options
reach every process the same way. :func:`build_run` checks the whole description with the cheap
parts (space, un-set-up evaluator, cost providers, objectives, strategy) before anything
expensive (dataset, supernet, worker processes) happens.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from nas.cost_providers import COST_PROVIDERS, CostModel
from nas.errors import UserError
from nas.evaluator import EVALUATORS, Evaluator
from nas.measures import MEASURES
from nas.pipeline import SubnetEvaluator  # noqa: F401 (registers the 'subnet' evaluator)
from nas.plugins import load_plugins
from nas.search.archive import Archive
from nas.search.description import ROLE_TITLES, RunSpec
from nas.search.objectives import Scorer, get_objective
from nas.search.scores import ScoreFn, build_scores
from nas.search.strategies import STRATEGIES
from nas.search.strategy import SearchContext, Strategy
from nas.space import SEARCH_SPACES, SearchSpace
from nas.training.trainers import TRAINERS


def _require(spec: RunSpec, role: str) -> Any:
    part = getattr(spec, role)
    if part is None:
        raise UserError(
            f"the run names no {ROLE_TITLES[role]}; give --{'search_space' if role == 'space' else role}"
        )
    return part


def build_space(spec: RunSpec) -> SearchSpace:
    part = _require(spec, "space")
    return SEARCH_SPACES.get(part.name)(part.options)


def build_evaluator(spec: RunSpec, space: SearchSpace | None = None) -> Evaluator:
    """The run's evaluator (cheap: :meth:`~nas.evaluator.Evaluator.setup` is not called)."""
    space = build_space(spec) if space is None else space
    part = _require(spec, "evaluator")
    cls = EVALUATORS.get(part.name)
    if spec.trainer is not None and not cls.uses_trainer:
        raise UserError(f"evaluator {part.name!r} trains nothing; leave out --trainer (or --trainer none)")
    if spec.measures and not cls.uses_measures:
        raise UserError(f"evaluator {part.name!r} takes no measures; leave out --measures")
    trainer = None if spec.trainer is None else TRAINERS.get(spec.trainer.name)(spec.trainer.options)
    measures = [MEASURES.get(p.name)(p.options) for p in spec.measures]
    if cls.uses_measures and not measures:
        raise UserError(f"evaluator {part.name!r} needs at least one measure, e.g. --measures accuracy")
    return cls(part.options, space=space, seed=spec.loop.seed, trainer=trainer, measures=measures)


def build_costs(spec: RunSpec, space: SearchSpace, evaluator: Evaluator) -> CostModel:
    return CostModel(
        [COST_PROVIDERS.get(p.name)(p.options, space=space, evaluator=evaluator) for p in spec.costs]
    )


def build_scorer(spec: RunSpec) -> Scorer:
    if not spec.objectives:
        raise UserError("the run has no objective; give --first_obj (e.g. top1)")
    return Scorer([get_objective(p.name, p.options) for p in spec.objectives])


@dataclass
class Run:
    """The built components of a run (everything cheap; the evaluator is not set up yet)."""

    spec: RunSpec
    space: SearchSpace
    evaluator: Evaluator
    costs: CostModel
    scorer: Scorer
    strategy: Strategy
    ctx: SearchContext
    # the --prefilter score of candidates (None: every proposed architecture is evaluated)
    prefilter: ScoreFn | None = None


def build_run(spec: RunSpec, evaluator: Evaluator | None = None, log: Any = print) -> Run:
    """Build and check every component of ``spec``; ``evaluator`` replaces the described one
    (tests, notebooks). Raises a one-line :class:`UserError` for anything that cannot work."""
    load_plugins(spec.plugins)
    loop = spec.loop
    if loop.n_doe < 1 or loop.n_iter < 1 or loop.iterations < 0:
        raise UserError("--n_doe and --n_iter must be >= 1 and --iterations >= 0")
    space = build_space(spec)
    evaluator = build_evaluator(spec, space) if evaluator is None else evaluator
    costs = build_costs(spec, space, evaluator)
    scorer = build_scorer(spec)
    available = set(evaluator.metric_names()) | set(costs.names)
    for obj in scorer.objectives:
        obj.check_metrics(available)
    if costs.names:
        smallest = costs.metrics(space.smallest())
        for obj in scorer.objectives:
            if all(m in smallest for m in obj.metrics):
                obj.check(smallest)
    part = _require(spec, "strategy")
    ctx = SearchContext(space, scorer, costs, Archive(), loop.n_doe, loop.n_iter, loop.seed, log)
    strategy = STRATEGIES.get(part.name)(part.options, ctx=ctx)
    if len(scorer) > 1 and not strategy.multi_objective:
        raise UserError(f"strategy {part.name!r} is single-objective; give one objective (--sec_obj none)")
    if len(scorer) == 1 and not strategy.single_objective:
        raise UserError(f"strategy {part.name!r} needs two objectives or more; give --sec_obj")
    strategy.check()
    need = strategy.min_archive()
    if loop.iterations > 0 and loop.n_doe < need:
        predictor = getattr(strategy.options, "predictor", None)
        why = (
            f"--predictor {predictor}, whose 5-fold cross-validation needs at least {need} architectures"
            if predictor and need > 2
            else f"strategy {part.name!r}, which learns from at least {need} initial architectures"
        )
        raise UserError(f"--n_doe {loop.n_doe} is too small for {why}; raise --n_doe")
    check_executor(spec)
    if loop.prefilter_factor < 1:
        raise UserError(f"--prefilter_factor {loop.prefilter_factor} must be >= 1")
    if loop.proxy_features:
        ctx.extra_features = build_scores(loop.proxy_features, space, evaluator, loop.seed)
    prefilter = build_scores([loop.prefilter], space, evaluator, loop.seed) if loop.prefilter else None
    return Run(spec, space, evaluator, costs, scorer, strategy, ctx, prefilter)


def n_jobs_of(spec: RunSpec) -> int:
    e = spec.executor
    return e.n_jobs if e.n_jobs is not None else (e.n_gpus // max(e.gpu, 1) or 1)


def check_executor(spec: RunSpec) -> None:
    e, n = spec.executor, n_jobs_of(spec)
    if n < 1:
        raise UserError(f"--n_jobs {n} must be >= 1")
    if e.n_gpus < 0 or (e.n_gpus > 0 and (e.gpu < 1 or n * e.gpu > e.n_gpus)):
        raise UserError(f"{n} jobs x --gpu {e.gpu} GPUs need {n * e.gpu} GPUs but --n_gpus is {e.n_gpus}")


class EvaluatorFactory:
    """Builds (and sets up) the evaluator of a run description in another process; picklable."""

    def __init__(self, spec: RunSpec) -> None:
        self.description = spec.to_dict()

    def __call__(self) -> Evaluator:
        load_plugins(self.description["plugins"])
        spec = RunSpec.from_dict(self.description)
        evaluator = build_evaluator(spec)
        evaluator.ensure_setup()
        return evaluator

    def plugin_paths(self) -> list[str]:
        """Folders a worker must have on its path to import the run's plug-ins given as paths."""
        return [os.path.dirname(p.rstrip(os.sep)) for p in self.description["plugins"] if os.path.isabs(p)]


def make_executor(run: Run) -> Any:
    """The executor the description asks for (worker processes and Ray actors start here)."""
    from nas.search.executors import InProcessExecutor, LocalProcessExecutor, RayExecutor

    spec, e = run.spec, run.spec.executor
    n = n_jobs_of(spec)
    if e.ray_address is not None:
        return RayExecutor(EvaluatorFactory(spec), run.space, n, e.n_gpus, e.gpu, e.ray_address)
    if n > 1 or e.n_gpus > 0:
        return LocalProcessExecutor(EvaluatorFactory(spec), run.space, n, e.n_gpus, e.gpu)
    return InProcessExecutor(run.evaluator)
