"""The demo plug-in's parts (see the package docstring)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.config import option
from nas.cost_providers import COST_PROVIDERS, CostProvider
from nas.costs import measure_costs
from nas.errors import UserError
from nas.evaluator import EVALUATORS, Evaluator
from nas.measures import MEASURES, EvalContext, Measure
from nas.search.objectives import OBJECTIVES, MetricTable, Objective
from nas.search.strategy import STRATEGIES, Strategy, fill_random
from nas.space import SEARCH_SPACES, GeneGroup, SearchSpace
from nas.training.trainers import TRAINERS, LoopTrainer

WIDTHS, DEPTHS, N_STAGES = (8, 16, 24), (1, 2), 3


class DemoNet(nn.Module):
    """Stages of 3x3 conv + BN + ReLU (``d`` per stage, the first of a stage with stride 2),
    global average pooling, a linear classifier; ``forward`` returns the logits of a head after
    every stage (a list, as early-exit networks do), the last one being the network's own."""

    def __init__(self, widths: list[int], depths: list[int], n_classes: int) -> None:
        super().__init__()
        c, self.stages, self.heads = 3, nn.ModuleList(), nn.ModuleList()
        for w, d in zip(widths, depths, strict=True):
            layers = []
            for i in range(d):
                layers += [nn.Conv2d(c, w, 3, stride=2 if i == 0 else 1, padding=1, bias=False)]
                layers += [nn.BatchNorm2d(w), nn.ReLU()]
                c = w
            self.stages.append(nn.Sequential(*layers))
            self.heads.append(nn.Linear(w, n_classes))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for stage, head in zip(self.stages, self.heads, strict=True):
            x = stage(x)
            outs.append(head(x.mean((2, 3))))
        return outs


@SEARCH_SPACES.register("demo_cnn")
class DemoSpace(SearchSpace):
    """3 stages, each a width in (8, 16, 24) and a depth in (1, 2): 216 networks."""

    capabilities = frozenset()

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self.set_gene_groups([GeneGroup("w", WIDTHS, N_STAGES), GeneGroup("d", DEPTHS, N_STAGES)])

    def validate(self, arch: Any) -> dict:
        ok = isinstance(arch, dict) and set(arch) == {"w", "d"}
        ok = ok and all(isinstance(arch[k], list) and len(arch[k]) == N_STAGES for k in ("w", "d"))
        if not ok or any(w not in WIDTHS for w in arch["w"]) or any(d not in DEPTHS for d in arch["d"]):
            raise UserError(f"a demo_cnn network is {{'w': 3 of {WIDTHS}, 'd': 3 of {DEPTHS}}}, got {arch!r}")
        return {"w": list(arch["w"]), "d": list(arch["d"])}

    def build(self, arch: Any, supernet: Any = None, n_classes: int = 10) -> nn.Module:
        arch = self.validate(arch)
        return DemoNet(arch["w"], arch["d"], n_classes)


@COST_PROVIDERS.register("demo_costs")
class DemoCosts(CostProvider):
    """Params and MACs measured with forward hooks on the built network (32 px, 10 classes)."""

    def provides(self) -> tuple[str, ...]:
        return ("params", "macs")

    def metrics(self, arch: Any) -> dict[str, float]:
        costs = measure_costs(self.space.build(arch, n_classes=10), 32, "cpu")
        return {"params": costs["params"], "macs": costs["macs"]}


@TRAINERS.register("demo_sgd")
class DemoTrainer(LoopTrainer):
    """The engine's training loop with this plug-in's loss: cross-entropy at every stage's head,
    the deeper ones weighted more (a deep-supervision loss, like the early-exit trainers')."""

    provides = ("train_loss",)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs = model(x)
        weights = torch.arange(1, len(outs) + 1, dtype=torch.float32) / len(outs)
        loss = sum(w * F.cross_entropy(o, y) for w, o in zip(weights, outs, strict=True))
        return loss, outs[-1]


@MEASURES.register("demo_heads")
class DemoHeads(Measure):
    """Top-1 (percent) of every stage's head on the validation split: a structured metric."""

    provides = ("head_top1",)

    @torch.no_grad()
    def measure(self, model: nn.Module, arch: Any, ctx: EvalContext) -> dict[str, Any]:
        model.eval()
        hits, n = None, 0
        for x, y in ctx.valid_batches(arch):
            right = torch.stack([(o.argmax(1) == y).sum() for o in model(x)])
            hits = right if hits is None else hits + right
            n += len(y)
        return {"head_top1": [100.0 * float(h) / n for h in hits]}


@OBJECTIVES.register("demo_phi")
class DemoPhi(Objective):
    """NACHOS-like cost with a budget, which needs the population it scores: with phi the share of
    that population within ``budget``, ``phi * macs + (1 - phi) * penalty * max(0, macs - budget)``."""

    name, metrics, unit = "demo_phi", ("macs",), "M MACs (penalised)"

    @dataclass
    class Options:
        budget: float = option(1.0, "demo_phi: MAC budget, millions")
        penalty: float = option(10.0, "demo_phi: penalty factor beyond the budget")

    def prepare(self, archive: MetricTable, population: MetricTable) -> None:
        self.phi = float(np.mean(np.asarray(population["macs"]) <= self.options.budget))

    def values(self, m: MetricTable) -> np.ndarray:
        macs, o = np.asarray(m["macs"], dtype=float), self.options
        return self.phi * macs + (1 - self.phi) * o.penalty * np.maximum(0.0, macs - o.budget)


@EVALUATORS.register("demo_oracle")
class DemoOracle(Evaluator):
    """A cheap synthetic ``top1`` (no data): wider and deeper networks score higher, with a seeded
    wiggle per architecture."""

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self.n_classes = 10

    def metric_names(self) -> set[str]:
        return {"top1"}

    def measure(self, arch: Any) -> dict[str, float]:
        score = sum(math.log(w) * d for w, d in zip(arch["w"], arch["d"], strict=True))
        wiggle = np.random.default_rng(int(self.space.arch_id(arch), 16)).normal(0, 0.5)
        return {"top1": 40.0 + 3.0 * score + float(wiggle)}


@STRATEGIES.register("demo_walk")
class DemoWalk(Strategy):
    """A stateful strategy: mutations of the best architecture so far (first objective), with a
    counter of its asks kept in its state (restored on resume)."""

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self.asks = 0

    def ask(self, rng: np.random.Generator) -> list:
        self.asks += 1
        ok, _, F = self.ctx.archive_scores()
        best = ok[int(np.argmin(F[:, 0]))].arch
        children, taken = [], set()
        for _ in range(50):
            child = self.ctx.space.mutate(best, rng)
            if len(children) < self.ctx.n_iter and self.ctx.is_new(child, taken):
                taken.add(self.ctx.space.arch_id(child))
                children.append(child)
        self.ctx.log(f"demo_walk: ask {self.asks} around {self.ctx.space.arch_id(best)}")
        return fill_random(self.ctx, children, rng)

    def state_dict(self) -> dict:
        return {"asks": self.asks}

    def load_state_dict(self, state: dict) -> None:
        self.asks = int(state["asks"])
