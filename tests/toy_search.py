"""A cheap deterministic evaluator on the OFA space (registered as ``toy``), and toy runs.

The module is a plug-in (``--plugins tests.toy_search``): worker processes load it by that name.
``python tests/run_toy_search.py SAVE ITERATIONS [--resume] [--delay S]`` runs a toy search for
the kill tests.
"""

import math
import time
from dataclasses import dataclass, field

from nas.config import option
from nas.evaluator import EVALUATORS, Evaluator
from nas.plugins import plugin_list
from nas.search.description import RunSpec
from nas.search.factory import build_run
from nas.search.loop import Search
from nas.space import get_search_space

PLUGIN = "tests.toy_search"


@EVALUATORS.register("toy")
class ToyEvaluator(Evaluator):
    """top1 grows with MACs and resolution; ids starting with ``fail_prefixes`` raise."""

    @dataclass
    class Options:
        fail_prefixes: list[str] = field(default_factory=list, metadata={"help": "ids that fail"})
        delay: float = option(0.0, "seconds each evaluation sleeps")
        dataset: str = option("cifar10_embedded", "the dataset name the run records (nothing is loaded)")
        die_after: int | None = option(None, "stop the process as a kill would, at this evaluation")

    def __init__(self, options=None, **kwargs):
        super().__init__(options, **kwargs)
        if self.space is None:
            self.space = get_search_space("mobilenetv3", lr=32, ur=64, rstep=8)
        self.n_classes = 10

    def metric_names(self):
        return {"top1"}

    def measure(self, arch):
        time.sleep(self.options.delay)
        self.calls = getattr(self, "calls", 0) + 1
        if self.options.die_after is not None and self.calls > self.options.die_after:
            raise KeyboardInterrupt("killed")  # not an Exception: nothing records it, the run stops here
        if self.space.arch_id(arch).startswith(tuple(self.options.fail_prefixes)):
            raise RuntimeError("injected failure")
        c = self.space.costs(arch, 10)
        return {
            "top1": 40
            + 8 * math.log(c["macs"])
            + 0.1 * sum(arch["e"])
            - 0.05 * sum(arch["ks"])
            + arch["r"] / 16
        }


def toy_config(save, **kw) -> RunSpec:
    """The description of a toy run (16 + 3 x 4 evaluations, carts, top-1 vs MACs); ``kw`` are
    flat options that override it."""
    base = dict(
        save=str(save),
        n_doe=16,
        n_iter=4,
        iterations=3,
        pop_size=20,
        n_gen=5,
        predictor="carts",
        sec_obj="macs",
        lr=32,
        ur=64,
        rstep=8,
        seed=0,
        evaluator="toy",
        trainer=None,
        measures=[],
        plot_every=0,  # the plots once, after the last iteration: the suite's time
    )
    if kw.get("strategy", "msunas") != "msunas":  # the surrogate and NSGA-II settings are msunas's
        base = {k: v for k, v in base.items() if k not in ("pop_size", "n_gen", "predictor")}
    base.update(kw)
    return RunSpec.from_flat(base, plugins=plugin_list([PLUGIN]))


def toy_search(spec, fail_prefixes=(), delay=0.0, log=lambda *_: None):
    spec = spec.copy()
    spec.apply_flat({"fail_prefixes": list(fail_prefixes), "delay": delay})
    return Search(build_run(spec, log=log), log=log)


class GPUSetEvaluator(ToyEvaluator):
    """Reports which GPUs its worker process was given (CUDA_VISIBLE_DEVICES)."""

    def metric_names(self):
        return {"top1", "first_gpu", "n_visible"}

    def measure(self, arch):
        import os

        time.sleep(self.options.delay)
        gpus = [int(g) for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
        return {"top1": 50.0, "first_gpu": float(gpus[0]) if gpus else -1.0, "n_visible": float(len(gpus))}


def gpu_set_evaluator():
    return GPUSetEvaluator(delay=0.2, space=get_search_space("mobilenetv3", lr=32, ur=32))


class CrashingEvaluator(GPUSetEvaluator):
    """Its process dies (``os._exit``: all an executor sees of a segfault or an OOM kill) on the
    architectures whose ids start with ``fail_prefixes``."""

    def measure(self, arch):
        import os

        if self.space.arch_id(arch).startswith(tuple(self.options.fail_prefixes)):
            os._exit(1)
        return super().measure(arch)


def broken_factory():
    """An evaluator factory that fails, as a worker without the dataset would."""
    raise RuntimeError("no dataset here")
