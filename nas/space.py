"""The SearchSpace contract: an exact integer encoding of architectures plus how to build them.

A space is a registered component (:data:`SEARCH_SPACES`). Its genes are integers ``x`` with
exact per-gene bounds ``[xl, xu]``; spaces whose architectures are dicts of lists (the OFA
MobileNetV3 family) describe their genes as named :class:`GeneGroup` s, so a subclass appends
groups (exit thresholds, gate sizes, sparsities, DVFS levels) without re-slicing, and
``encode``/``decode`` work from the groups alone.

Optional capabilities are declared in ``capabilities`` and checked once, with a clear error, by
:meth:`SearchSpace.require`:

- ``supernet``: ``make_supernet(n_classes)``, ``activate(supernet, arch)``, ``load_weights(supernet,
  path)`` and ``build(arch, supernet)`` with inherited weights;
- ``costs``: ``costs(arch, n_classes, resolution=None)``, analytic params / MACs / activations
  (millions, batch 1) equal to :func:`nas.costs.measure_costs` on the built network;
- ``block_costs``: ``block_costs(arch, n_classes)`` (per block) and ``stage_costs(arch,
  n_classes)`` (the network up to the end of each stage), from the same analytic model;
- ``resolution``: the architecture carries its input resolution (``resolution(arch)``).
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from nas.components import Component
from nas.errors import UserError
from nas.io import read_json, write_json
from nas.registry import Registry

Arch = Any  # JSON-serialisable; what ``net.subnet`` holds (a dict for most spaces, a string for nb201)

# capability -> the methods a space that declares it must define
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "supernet": ("make_supernet", "activate", "load_weights"),
    "costs": ("costs",),
    "block_costs": ("block_costs", "stage_costs"),
    "resolution": ("resolution",),
}
CAPABILITY_HELP = {
    "supernet": "weight-sharing supernet",
    "costs": "analytic cost model (params, MACs, activations)",
    "block_costs": "analytic per-block and per-stage costs",
    "resolution": "input-resolution gene",
}


@dataclass(frozen=True)
class GeneGroup:
    """``size`` consecutive genes encoding ``arch[key]``; each gene is an index into ``options``.

    ``scalar``: ``arch[key]`` is one value (``size`` 1) rather than a list. ``family`` names the
    group's feature columns (default: ``key``).
    """

    key: str
    options: tuple
    size: int = 1
    scalar: bool = False

    def index(self, value: Any, where: str) -> int:
        try:
            return self.options.index(value)
        except ValueError:
            raise UserError(f"{where} = {value!r} is not one of {list(self.options)}") from None


class SearchSpace(Component):
    """A space of architectures with integer genes ``x`` in ``[xl, xu]`` (inclusive, per gene)."""

    capabilities: ClassVar[frozenset[str]] = frozenset()
    # spaces of early-exit networks: how many early exits a network can have (their evaluations
    # report an ``n_exits`` metric; ``post_search.py --n_exits`` filters on it); None: single exit
    max_exits: ClassVar[int | None] = None
    xl: np.ndarray
    xu: np.ndarray
    gene_groups: tuple[GeneGroup, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for cap in cls.capabilities:  # a developer error, caught when the class is defined
            missing = [m for m in CAPABILITIES.get(cap, ("?",)) if not callable(getattr(cls, m, None))]
            if cap not in CAPABILITIES or missing:
                raise TypeError(f"{cls.__name__} declares capability {cap!r} but lacks {missing or cap}")

    @property
    def n_var(self) -> int:
        return len(self.xl)

    @classmethod
    def for_arch(cls, arch: Any, **options: Any) -> SearchSpace:
        """A space of this kind that holds ``arch`` (a ``net.subnet`` read by a tool): the default
        options (and ``options``) unless a space knows better (the OFA space takes the width and
        resolution from it)."""
        return cls(**options)

    # ---- capabilities ---------------------------------------------------------------------

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    def require(self, capability: str, purpose: str) -> None:
        """Raise a one-line error unless this space has ``capability`` (``purpose`` says what needs it)."""
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r}; one of {sorted(CAPABILITIES)}")
        if not self.has(capability):
            raise UserError(
                f"search space {self.name!r} has no {CAPABILITY_HELP[capability]}, which {purpose} needs; "
                "choose another --search_space"
            )

    # ---- genes ----------------------------------------------------------------------------

    def set_gene_groups(self, groups: Sequence[GeneGroup]) -> None:
        """Define the genes from ``groups`` (in gene order): sets ``gene_groups``, ``xl`` and ``xu``."""
        self.gene_groups = tuple(groups)
        self.xl = np.zeros(sum(g.size for g in groups), dtype=int)
        self.xu = np.concatenate([np.full(g.size, len(g.options) - 1, dtype=int) for g in groups])

    def group_slice(self, key: str) -> slice:
        """The genes of group ``key``."""
        start = 0
        for g in self.gene_groups:
            if g.key == key:
                return slice(start, start + g.size)
            start += g.size
        raise KeyError(f"search space {self.name!r} has no gene group {key!r}")

    def encode(self, arch: Arch) -> np.ndarray:
        """Architecture -> integer genes; ``decode(encode(a)) == a`` exactly (via the gene groups)."""
        arch = self.validate(arch)
        genes: list[int] = []
        for g in self.gene_groups:
            values = [arch[g.key]] if g.scalar else arch[g.key]
            genes += [g.index(v, f"{g.key}[{i}]" if not g.scalar else g.key) for i, v in enumerate(values)]
        return np.array(genes, dtype=int)

    def decode(self, x: np.ndarray) -> Arch:
        """Integer genes -> architecture; raises on genes outside ``[xl, xu]`` (via the gene groups)."""
        x = self.check_genes(x)
        arch, start = {}, 0
        for g in self.gene_groups:
            values = [g.options[i] for i in x[start : start + g.size]]
            arch[g.key] = values[0] if g.scalar else values
            start += g.size
        return self.finish_decode(arch)

    def finish_decode(self, arch: dict[str, Any]) -> Arch:
        """Hook of :meth:`decode`: add what the genes do not hold (e.g. the width of the space)."""
        return arch

    def check_genes(self, x: np.ndarray) -> np.ndarray:
        """``x`` as an int array after checking its shape, integrality and per-gene bounds."""
        x = np.asarray(x)
        if x.shape != (self.n_var,):
            raise UserError(f"expected {self.n_var} genes, got shape {x.shape}")
        if not np.all(x == np.round(x)):
            raise UserError("genes must be integers")
        x = x.astype(int)
        bad = np.flatnonzero((x < self.xl) | (x > self.xu))
        if len(bad):
            j = int(bad[0])
            raise UserError(f"gene {j} = {x[j]} is outside its bounds [{self.xl[j]}, {self.xu[j]}]")
        return x

    def repair(self, x: np.ndarray) -> np.ndarray:
        """In-bounds integer genes -> genes of a valid architecture (default: unchanged).

        Spaces with constraints between genes (at least one exit bit set) map the few invalid
        vectors to valid ones here; sampling, NSGA-II's offspring and mutation call it, so they
        never produce an architecture :meth:`decode` refuses. Must return ``x`` itself (same
        values) when ``x`` is valid.
        """
        return x

    @abstractmethod
    def validate(self, arch: Any) -> Arch:
        """Return ``arch`` if it is a valid member of this space, else raise ``UserError``."""

    def sample(self, n: int, rng: np.random.Generator) -> list[Arch]:
        """``n`` architectures drawn uniformly per gene."""
        x = rng.integers(self.xl, self.xu + 1, size=(n, self.n_var))
        return [self.decode(self.repair(row)) for row in x]

    def smallest(self) -> Arch:
        """The cheapest architecture (default: every gene at its lower bound)."""
        return self.decode(self.repair(self.xl))

    def largest(self) -> Arch:
        """The most expensive architecture (default: every gene at its upper bound)."""
        return self.decode(self.repair(self.xu))

    def mutate(self, arch: Arch, rng: np.random.Generator, tries: int = 100) -> Arch:
        """A different network one gene away from ``arch``: a random gene set to another value.

        Changes of genes without effect (e.g. a block the depth switches off) are redrawn, so the
        result always has another :meth:`arch_id` (unless every one-gene change is such, after
        ``tries`` draws: then ``arch`` itself comes back).
        """
        x, own = self.encode(arch), self.arch_id(arch)
        movable = np.flatnonzero(self.xu > self.xl)
        for _ in range(tries if len(movable) else 0):
            j = int(rng.choice(movable))
            y = x.copy()
            y[j] = rng.choice([v for v in range(self.xl[j], self.xu[j] + 1) if v != x[j]])
            child = self.decode(self.repair(y))
            if self.arch_id(child) != own:
                return child
        return arch

    def neighbours(self, arch: Arch) -> list[Arch]:
        """Every distinct network one gene away from ``arch`` (gene order, then value order)."""
        x, seen, out = self.encode(arch), {self.arch_id(arch)}, []
        for j in range(self.n_var):
            for v in range(self.xl[j], self.xu[j] + 1):
                if v != x[j]:
                    y = x.copy()
                    y[j] = v
                    if not np.array_equal(self.repair(y), y):
                        continue  # not a valid architecture
                    child = self.decode(y)
                    aid = self.arch_id(child)
                    if aid not in seen:
                        seen.add(aid)
                        out.append(child)
        return out

    def growth_groups(self) -> list[np.ndarray]:
        """The genes in the order a progressive search (``pnas``) fixes them, as groups of gene
        indices that together cover every gene once: a network "grows" by one group at a time.
        Default: one group per gene group (one per gene for a space without gene groups); spaces
        with a natural order override it (cells by node, MobileNetV3 by stage)."""
        if not self.gene_groups:
            return [np.array([j]) for j in range(self.n_var)]
        return [np.arange(self.n_var)[self.group_slice(g.key)] for g in self.gene_groups]

    def canonical(self, arch: Arch) -> Arch:
        """The representative of ``arch``'s equivalence class (genes that have no effect reset)."""
        return arch

    def arch_id(self, arch: Arch) -> str:
        """A stable 12-hex-digit id of the network ``arch`` describes (same network, same id)."""
        blob = json.dumps(self.canonical(arch), sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    def features(self, arch: Arch) -> np.ndarray:
        """Features for surrogate models; the integer genes unless a space knows better."""
        return self.encode(arch).astype(float)

    def feature_names(self) -> list[str]:
        """One name per column of :meth:`features` (a space that overrides one overrides both).

        Convention: dot-separated tokens ``family[.s<stage>][.more]``. The first token is the gene
        family (``ks``, ``e``, ``d``, ``r``, ``edge3``, and later task genes such as ``exit``); a
        token ``s<k>`` places the column in stage ``k`` (none: the column is global); any other
        tokens (``b<j>`` a block within its stage, an operation name) only make the name unique.
        Analysis tools group columns by family and by stage with these names. Default: the gene
        group's key (``key.<i>`` within a group of several genes), else ``x<i>``.
        """
        if not self.gene_groups:
            return [f"x{i}" for i in range(self.n_var)]
        return [g.key if g.size == 1 else f"{g.key}.{i}" for g in self.gene_groups for i in range(g.size)]

    def resolution(self, arch: Arch) -> int | None:
        """The input resolution ``arch`` carries (spaces with the ``resolution`` capability)."""
        return None

    @abstractmethod
    def build(self, arch: Arch, supernet: Any = None, n_classes: int = 1000) -> Any:
        """A stand-alone network for ``arch`` (weights inherited from ``supernet`` if given)."""

    def read_subnet(self, path: str | os.PathLike) -> Arch:
        """Read and validate a ``net.subnet`` file."""
        return self.validate(read_json(path, "subnet file"))

    def write_subnet(self, path: str | os.PathLike, arch: Arch) -> None:
        write_json(path, self.validate(arch))


SEARCH_SPACES: Registry[type[SearchSpace]] = Registry("search space")


def get_search_space(name: str, options: Any = None, **kwargs: Any) -> SearchSpace:
    """Instantiate a registered search space, e.g. ``get_search_space("mobilenetv3", lr=32, ur=64)``."""
    return SEARCH_SPACES.get(name)(options, **kwargs)


def list_search_spaces() -> list[str]:
    return SEARCH_SPACES.names()
