"""The ``ofa_note10`` oracle: OFA's ImageNet accuracy predictor + Samsung Note10 latency tables.

An :class:`~nas.evaluator.Evaluator` over the OFA MobileNetV3 ``w1.2`` space with resolutions
160, 176, ..., 224 that answers in microseconds, so a search loop can be validated on a CPU
(``BENCHMARKS.md``, B1 and B4). Both models are the OFA authors' (MIT licence, ``data/ofa/``):

- ``top1``: OFA's accuracy predictor, ``Sequential(Linear(128, 400), ReLU, Linear(400, 400), ReLU,
  Linear(400, 400), ReLU, Linear(400, 1))`` on the 128-d encoding of :func:`encode_arch`; it
  outputs ImageNet top-1 as a fraction (no base accuracy is added), reported here in percent.
- ``latency``: Note10 milliseconds from the look-up tables
  (:class:`NasSearchSpace.ofa_mbv3_latency.LatencyTable`).

Both equal (``==``) the ``ofa`` package's own ``ofa.tutorial.AccuracyPredictor`` and
``LatencyEstimator`` on the same inputs (tests). The predictor runs in float32 on the CPU; a
batch and single rows go through different matrix kernels, so ``measure(a)["top1"]`` and the
same arch's value inside a larger ``measure_many`` batch can differ in the last float32 bit
(about 1e-5 percentage points), exactly as OFA's own predictor does.

:func:`run_evolution_finder` runs OFA's ``EvolutionFinder`` (the B1 peer) on this oracle.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn as nn

from nas.config import option
from nas.errors import UserError
from nas.evaluator import EVALUATORS, Evaluator
from nas.io import load_checkpoint
from nas.search.description import PRESETS, Preset
from nas.space import Arch, get_search_space
from NasSearchSpace.ofa_mbv3_latency import LatencyTable
from NasSearchSpace.ofa_mbv3_layout import E_OPTIONS, KS_OPTIONS, MAX_DEPTH, N_BLOCKS, N_STAGES

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "ofa"
PREDICTOR_FILE = "acc_predictor.pth"
WIDTH_MULT = 1.2
RESOLUTIONS = (160, 176, 192, 208, 224)

# The 128-d encoding of OFA's predictor: 20 blocks x 3 kernel one-hots, 20 x 3 expand one-hots,
# 8 resolution one-hots for r = 112, 128, ..., 224.
R_BASE, R_STEP, N_R = 112, 16, 8
N_FEATURES = 2 * 3 * N_BLOCKS + N_R  # 128


def encode_arch(arch: Arch) -> np.ndarray:
    """The 128-d float32 input of OFA's accuracy predictor for ``{"ks", "e", "d", "r"}``.

    ``[3*j + index of ks[j] in (3, 5, 7)]`` and ``[60 + 3*j + index of e[j] in (3, 4, 6)]`` are 1
    for every active block ``j`` (block ``j % 4`` of stage ``j // 4`` runs when ``j % 4 < d[j // 4]``;
    inactive blocks stay all-zero), and ``[120 + (r - 112) // 16]`` is 1.
    """
    x = np.zeros(N_FEATURES, dtype=np.float32)
    _fill(x, arch)
    return x


def encode_archs(archs: Sequence[Arch]) -> np.ndarray:
    """:func:`encode_arch` of each arch, stacked to ``(n, 128)``."""
    x = np.zeros((len(archs), N_FEATURES), dtype=np.float32)
    for row, arch in zip(x, archs, strict=True):
        _fill(row, arch)
    return x


def _fill(x: np.ndarray, arch: Arch) -> None:
    ks, es, ds, r = arch["ks"], arch["e"], arch["d"], arch["r"]
    for s in range(N_STAGES):
        for i in range(ds[s]):
            j = s * MAX_DEPTH + i
            x[3 * j + KS_OPTIONS.index(ks[j])] = 1.0
            x[3 * N_BLOCKS + 3 * j + E_OPTIONS.index(es[j])] = 1.0
    if (r - R_BASE) % R_STEP or not 0 <= (r - R_BASE) // R_STEP < N_R:
        raise UserError(f"resolution {r} has no slot in OFA's predictor encoding (112, 128, ..., 224)")
    x[2 * 3 * N_BLOCKS + (r - R_BASE) // R_STEP] = 1.0


def make_predictor_net() -> nn.Sequential:
    """The (untrained) network of OFA's accuracy predictor, 128-400-400-400-1 with ReLUs."""
    return nn.Sequential(
        nn.Linear(N_FEATURES, 400),
        nn.ReLU(),
        nn.Linear(400, 400),
        nn.ReLU(),
        nn.Linear(400, 400),
        nn.ReLU(),
        nn.Linear(400, 1),
    )


class AccuracyPredictor:
    """OFA's ImageNet accuracy predictor loaded from its state dict (``acc_predictor.pth``)."""

    def __init__(self, path: str | os.PathLike) -> None:
        state = load_checkpoint(path, "OFA accuracy predictor")
        self.net = make_predictor_net()
        try:
            self.net.load_state_dict(state)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(
                f"{str(path)!r} is not OFA's accuracy predictor (a 128-400-400-400-1 MLP state dict): {first}"
            ) from None
        self.net.eval()
        self.path = str(path)

    @torch.no_grad()
    def predict_features(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Predicted top-1 fractions, shape ``(n, 1)`` float32, for encoded archs ``x`` ``(n, 128)``."""
        return self.net(torch.as_tensor(x, dtype=torch.float32))

    def predict(self, archs: Sequence[Arch]) -> list[float]:
        """Predicted top-1 fractions (0..1) of ``archs`` as Python floats (the float32 values)."""
        if not archs:
            return []
        return self.predict_features(encode_archs(archs))[:, 0].tolist()


@EVALUATORS.register("ofa_note10")
class OFANote10Evaluator(Evaluator):
    """Predicted ImageNet top-1 (percent) and Note10 latency (ms) of OFA MobileNetV3 w1.2 subnets.

    ``data_dir`` holds ``acc_predictor.pth`` and ``note10_<r>_lookup_table.yaml`` for r in 160..224
    (default: the repository's ``data/ofa/``). ``n_evals`` counts the architectures measured
    (each predictor call on one architecture counts once, batched or not). In a search the
    ``lut_latency`` cost provider computes the same latency exactly inside NSGA-II.
    """

    @dataclass
    class Options:
        data_dir: str | None = option(
            None,
            "folder with OFA's acc_predictor.pth and the Note10 tables (default: the repository's data/ofa)",
        )

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        data_dir = Path(DEFAULT_DATA_DIR if self.options.data_dir is None else self.options.data_dir)
        self.data_dir = data_dir
        if self.space is None:
            self.space = get_search_space("mobilenetv3", lr=160, ur=224, rstep=16, width_mult=WIDTH_MULT)
        elif self.space.name != "mobilenetv3" or self.space.width_mult != WIDTH_MULT:
            raise UserError(f"the ofa_note10 evaluator scores OFA MobileNetV3 w{WIDTH_MULT} subnets")
        self.n_classes = 1000
        self.latency_table = LatencyTable(
            data_dir, device="note10", resolutions=RESOLUTIONS, width_mult=WIDTH_MULT
        )
        self.predictor = AccuracyPredictor(data_dir / PREDICTOR_FILE)
        self.n_evals = 0

    def _check(self, arch: Any) -> Arch:
        arch = self.space.validate(arch)
        if arch["r"] not in self.space.resolutions:
            raise UserError(
                f"resolution {arch['r']} is not one of the benchmark's {list(self.space.resolutions)}"
            )
        return arch

    def measure(self, arch: Arch) -> dict[str, float]:
        """``{"top1": predicted ImageNet top-1 in percent, "latency": Note10 ms}``."""
        return self.measure_many([arch])[0]

    def measure_many(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        """:meth:`measure` of many archs with one predictor call (the fast path); any invalid
        arch raises ``UserError`` before anything is counted."""
        archs = [self._check(a) for a in archs]
        top1 = self.predictor.predict(archs)
        latency = self.latency_table.latency_many(archs)
        self.n_evals += len(archs)
        return [{"top1": 100.0 * t, "latency": ms} for t, ms in zip(top1, latency, strict=True)]

    def metric_names(self) -> set[str]:
        return {"top1", "latency"}


# B1: OFA w1.2 space, OFA's ImageNet predictor as the oracle, Note10 latency; 100 + 25 x 8 = 300.
# Mean top-1 gap to the peer over 3 seeds: spread 40 x 20 -0.67, hvi 40 x 20 -0.55, spread 100 x 60
# -0.38, hvi 100 x 60 -0.24 (benchmarks/README.md).
PRESETS.register("ofa_note10")(
    Preset(
        {
            "space": {"name": "mobilenetv3", "width_mult": WIDTH_MULT, "lr": 160, "ur": 224, "rstep": 16},
            "evaluator": {"name": "ofa_note10"},
            "trainer": None,
            "measures": [],
            "costs": [{"name": "lut_latency", "lut_dir": str(DEFAULT_DATA_DIR), "lut_device": "note10"}],
            "objectives": ["top1", "latency"],
            "strategy": {
                "name": "msunas",
                "predictor": "as",
                "selection": "hvi",
                "pop_size": 100,
                "n_gen": 60,
            },
            "loop": {"n_doe": 100, "n_iter": 8, "iterations": 25},
        },
        "OFA MobileNetV3 w1.2 with OFA's ImageNet accuracy predictor and the Note10 latency tables",
    )
)


# ---- the B1 peer: OFA's own EvolutionFinder -----------------------------------------------


@functools.cache
def ofa_tutorial_module(name: str) -> ModuleType:
    """``ofa/tutorial/<name>.py`` of the installed ``ofa`` package, loaded on its own.

    ``import ofa.tutorial`` runs the package's ``__init__``, which imports ``gdown`` (for its
    model-zoo downloads), a dependency the toolkit neither needs nor installs; the modules used
    here import only torch, numpy, tqdm, yaml and ``ofa.utils``.
    """
    spec = importlib.util.find_spec("ofa")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the 'ofa' package is not installed; pip install -r requirements.txt")
    path = Path(next(iter(spec.submodule_search_locations))) / "tutorial" / f"{name}.py"
    module_name = f"_ofa_tutorial_{name}"
    mod_spec = importlib.util.spec_from_file_location(module_name, path)
    if mod_spec is None or mod_spec.loader is None or not path.is_file():
        raise UserError(f"the installed 'ofa' package has no {path}; install the version in requirements.txt")
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[module_name] = module
    mod_spec.loader.exec_module(module)
    return module


def ofa_sample_to_arch(sample: dict[str, Any]) -> Arch:
    """An ``EvolutionFinder`` sample (``"r"`` is a one-element list) -> our arch dict (w1.2)."""
    return {
        "ks": list(sample["ks"]),
        "e": list(sample["e"]),
        "d": list(sample["d"]),
        "r": int(sample["r"][0]),
        "w": WIDTH_MULT,
    }


class _AccuracyAdapter:
    """``predict_accuracy(samples) -> (n, 1) tensor of fractions``, the interface EvolutionFinder calls."""

    def __init__(self, evaluator: OFANote10Evaluator) -> None:
        self.evaluator = evaluator

    def predict_accuracy(self, samples: list[dict[str, Any]]) -> torch.Tensor:
        archs = [self.evaluator._check(ofa_sample_to_arch(s)) for s in samples]
        self.evaluator.n_evals += len(archs)
        return self.evaluator.predictor.predict_features(encode_archs(archs))


class _LatencyAdapter:
    """``predict_efficiency(sample) -> ms``, the interface EvolutionFinder calls (not an evaluation)."""

    def __init__(self, table: LatencyTable) -> None:
        self.table = table
        self.n_calls = 0

    def predict_efficiency(self, sample: dict[str, Any]) -> float:
        self.n_calls += 1
        return self.table.latency(ofa_sample_to_arch(sample))


class EvolutionResult(NamedTuple):
    """What :func:`run_evolution_finder` found."""

    arch: Arch  # the best arch (w1.2 arch dict)
    top1: float  # its predicted top-1, percent
    latency: float  # its Note10 latency, ms
    n_evals: int  # predictor evaluations used (population + generations x population)


# EvolutionFinder asks on stdin for a new constraint outside this range; we set ours afterwards.
_OFA_NOTE10_RANGE = (15, 60)


def run_evolution_finder(
    constraint: float,
    population_size: int = 100,
    generations: int = 500,
    seed: int = 0,
    evaluator: OFANote10Evaluator | None = None,
    verbose: bool = False,
) -> EvolutionResult:
    """Run OFA's ``EvolutionFinder`` (regularised evolution) at Note10 latency <= ``constraint`` ms.

    Our predictor and look-up tables are plugged in through thin adapter objects; the finder's
    own defaults are kept (mutation probability 0.1, parent ratio 0.25, mutation ratio 0.5;
    population 100 and 500 generations = 50,100 evaluations unless given). Its sampling uses the
    global ``random`` and ``numpy.random`` generators: they are seeded with ``seed`` for the run
    and restored afterwards. Its ``ArchManager`` draws ks {3,5,7}, e {3,4,6}, d {2,3,4} and
    r {160,...,224}, exactly this benchmark's space.
    """
    if isinstance(population_size, bool) or not isinstance(population_size, int) or population_size < 2:
        raise UserError(f"population_size {population_size!r} must be an integer >= 2")
    if isinstance(generations, bool) or not isinstance(generations, int) or generations < 1:
        raise UserError(f"generations {generations!r} must be a positive integer")
    evaluator = OFANote10Evaluator() if evaluator is None else evaluator
    floor = evaluator.latency_table.min_latency()
    if not constraint > floor:
        raise UserError(
            f"latency constraint {constraint} ms is not above the fastest subnet's {floor:.3f} ms; "
            "no architecture (or too few to sample) satisfies it"
        )
    finder_cls = ofa_tutorial_module("evolution_finder").EvolutionFinder
    latency = _LatencyAdapter(evaluator.latency_table)
    finder = finder_cls(
        "note10",
        min(max(constraint, _OFA_NOTE10_RANGE[0]), _OFA_NOTE10_RANGE[1]),
        latency,
        _AccuracyAdapter(evaluator),
        population_size=population_size,
        max_time_budget=generations,
    )
    finder.set_efficiency_constraint(constraint)
    py_state, np_state = random.getstate(), np.random.get_state()
    start = evaluator.n_evals
    try:
        random.seed(seed)
        np.random.seed(seed)
        _, (top1, sample, ms) = finder.run_evolution_search(verbose=verbose)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return EvolutionResult(ofa_sample_to_arch(sample), 100.0 * top1, ms, evaluator.n_evals - start)
