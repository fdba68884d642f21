"""A cheap deterministic evaluator on the OFA space, and a runnable search for kill tests.

python tests/toy_search.py SAVE ITERATIONS [--resume] [--delay S]
"""

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas.evaluation import Evaluator  # noqa: E402
from nas.search.config import SearchConfig  # noqa: E402
from nas.search.loop import Search  # noqa: E402
from nas.space import get_search_space  # noqa: E402


class ToyEvaluator(Evaluator):
    """top1 grows with MACs and resolution; ids starting with ``fail_prefixes`` raise."""

    def __init__(self, space, fail_prefixes=(), delay=0.0):
        self.space, self.fail_prefixes, self.delay = space, tuple(fail_prefixes), delay

    def measure(self, arch):
        time.sleep(self.delay)
        if self.space.arch_id(arch).startswith(self.fail_prefixes):
            raise RuntimeError("injected failure")
        c = self.space.costs(arch, 10)
        top1 = 40 + 8 * math.log(c["macs"]) + 0.1 * sum(arch["e"]) - 0.05 * sum(arch["ks"]) + arch["r"] / 16
        return {"top1": top1, **c}

    def exact_metrics(self, arch):
        return self.space.costs(arch, 10)


def toy_config(save, **kw):
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
    )
    base.update(kw)
    return SearchConfig(**base)


def toy_search(cfg, fail_prefixes=(), delay=0.0, log=lambda *_: None):
    space = get_search_space("mobilenetv3", lr=cfg.lr, ur=cfg.ur, rstep=cfg.rstep)
    return Search(cfg, space, ToyEvaluator(space, fail_prefixes, delay), log=log)


if __name__ == "__main__":
    from nas.plugins import load_plugins

    load_plugins()
    p = argparse.ArgumentParser()
    p.add_argument("save")
    p.add_argument("iterations", type=int)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--delay", type=float, default=0.0)
    a = p.parse_args()
    cfg = toy_config(a.save, iterations=a.iterations, resume=a.save if a.resume else None)
    toy_search(cfg, delay=a.delay, log=print).run()


class GPUSetEvaluator(ToyEvaluator):
    """Reports which GPUs its worker process was given (CUDA_VISIBLE_DEVICES)."""

    def measure(self, arch):
        import os

        time.sleep(self.delay)
        gpus = [int(g) for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
        return {"top1": 50.0, "first_gpu": float(gpus[0]) if gpus else -1.0, "n_visible": float(len(gpus))}


def gpu_set_evaluator():
    return GPUSetEvaluator(get_search_space("mobilenetv3", lr=32, ur=32), delay=0.2)


class CrashingEvaluator(GPUSetEvaluator):
    """Its process dies (``os._exit``: all an executor sees of a segfault or an OOM kill) on the
    architectures whose ids start with ``fail_prefixes``."""

    def measure(self, arch):
        import os

        if self.space.arch_id(arch).startswith(self.fail_prefixes):
            os._exit(1)
        return super().measure(arch)


def broken_factory():
    """An evaluator factory that fails, as a worker without the dataset would."""
    raise RuntimeError("no dataset here")
