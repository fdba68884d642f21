"""The DARTS cell search space (``darts``), its CIFAR evaluation network and its differentiable
supernet (Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019; partial channels:
Xu et al., "PC-DARTS", ICLR 2020).

A cell has two inputs, ``c_{k-2}`` and ``c_{k-1}`` (the outputs of the two previous cells), and 4
intermediate nodes; node ``i`` sums one operation on each of two *different* earlier states, input
0 = ``c_{k-2}``, 1 = ``c_{k-1}``, ``2 + j`` = node ``j`` (node ``i`` may use inputs ``0 .. i + 1``).
The cell's output concatenates the 4 nodes. A network has a *normal* cell and a *reduce* cell: in
the reduce cell every edge from an input (0 or 1) has stride 2.

**Architecture** (what ``net.subnet`` holds): DARTS's genotype as a dict::

    {"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ...],   # 8 pairs [op, input]
     "normal_concat": [2, 3, 4, 5],
     "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ...],   # 8 pairs
     "reduce_concat": [2, 3, 4, 5]}

pairs ``2i`` and ``2i + 1`` being node ``i``'s two edges, ops among :data:`CELL_OPS` (never
``none``). :meth:`DartsSpace.validate` returns a normalised copy (lists, ints) in the given edge
order, so ``decode(encode(a)) == a``; :meth:`DartsSpace.canonical` also sorts each node's two edges
by input, so genotypes that differ only in that order (the same network) share an ``arch_id``.
:data:`DARTS_V1`, :data:`DARTS_V2` and :data:`PC_DARTS` are the published cells, in their papers'
edge order.

**Genes** (32 integers): for the normal cell then the reduce cell, for node ``i`` = 0..3, for its
two edges: ``(input in 0..i+1, op index in CELL_OPS 0..6)``, i.e. gene ``16 c + 4 i + 2 e`` is
the input and ``16 c + 4 i + 2 e + 1`` the operation of edge ``e`` of node ``i`` of cell ``c``.
:meth:`DartsSpace.repair` makes the two inputs of a node distinct (the second moves to the next
input, cyclically), so sampling, NSGA-II and mutation only produce valid cells.

**Edges** (the rows of the supernet's tables, and of the features): the 14 (node, input) pairs in
the order node 0's inputs 0, 1; node 1's 0, 1, 2; node 2's 0..3; node 3's 0..4 (:data:`EDGES`).

**Operations** (``C`` -> ``C`` channels, stride ``s``; BatchNorm ``affine`` as given):
``none`` = zeros (of the halved map at stride 2); ``max_pool_3x3``, ``avg_pool_3x3`` (padding not
counted in the mean; in the search supernet followed by a non-affine BN, as DARTS does);
``skip_connect`` = identity, or :class:`FactorizedReduce` at stride 2; ``sep_conv_kxk`` = twice
(ReLU, depthwise k x k, pointwise 1x1, BN), stride on the first; ``dil_conv_kxk`` = ReLU,
depthwise k x k with dilation 2, pointwise 1x1, BN.

**Evaluation network** (:meth:`DartsSpace.build`, DARTS's CIFAR network): stem 3x3 conv to
``3 C`` + BN; ``layers`` cells, the cells at ``layers // 3`` and ``2 layers // 3`` reduce the map
and double ``C``; each cell preprocesses ``c_{k-2}`` with ReLU-conv1x1-BN (FactorizedReduce after a
reduction cell) and ``c_{k-1}`` with ReLU-conv1x1-BN to ``C`` channels; global average pool;
linear classifier. No auxiliary head and no drop-path, so parameters are the paper's count
(DARTS_V2 at ``C = 36``, 20 cells, 10 classes: 3.35 M; the paper reports 3.3 M).

**Supernet** (:class:`DartsSupernet`, DARTS's search network): stem to ``3 C``, ``cells`` cells
(reductions at ``cells // 3`` and ``2 cells // 3``), 14 mixed edges per cell over all 8
:data:`PRIMITIVES`, output the concat of the 4 nodes. Every normal cell shares the edge table
``"normal"`` and every reduce cell ``"reduce"`` (14 x 8 each).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.config import option
from nas.costs import measure_costs
from nas.errors import UserError
from nas.space import SEARCH_SPACES, SearchSpace
from weightsharing.ops import MixedOp, Zero
from weightsharing.supernet import SUPERNETS, CellSupernet, Path, Tables

PRIMITIVES = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
CELL_OPS = PRIMITIVES[1:]  # the operations of a derived cell; an op gene indexes this
CELL_TYPES = ("normal", "reduce")
N_NODES = 4
CONCAT = (2, 3, 4, 5)  # the cell's output: every intermediate node
NODE_OFFSET = (0, 2, 5, 9)  # row of the first edge entering node i
EDGES = tuple((node, inp) for node in range(N_NODES) for inp in range(node + 2))  # (node, input)
N_EDGES = len(EDGES)  # 14
GENES_PER_CELL = 4 * N_NODES  # two edges per node, (input, op) per edge
KEYS = ("normal", "normal_concat", "reduce", "reduce_concat")


def _genotype(normal: list[tuple[str, int]], reduce: list[tuple[str, int]]) -> dict[str, Any]:
    return {
        "normal": [[op, i] for op, i in normal],
        "normal_concat": list(CONCAT),
        "reduce": [[op, i] for op, i in reduce],
        "reduce_concat": list(CONCAT),
    }


# The published cells (DARTS first and second order, PC-DARTS on CIFAR-10), in the papers' order.
DARTS_V1 = _genotype(
    [("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
     ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
    [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
     ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
)  # fmt: skip
DARTS_V2 = _genotype(
    [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
     ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
     ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
)  # fmt: skip
PC_DARTS = _genotype(
    [("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 0), ("dil_conv_3x3", 1),
     ("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("avg_pool_3x3", 0), ("dil_conv_3x3", 1)],
    [("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_5x5", 2),
     ("sep_conv_3x3", 0), ("sep_conv_3x3", 3), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2)],
)  # fmt: skip


def edge_row(node: int, inp: int) -> int:
    """The row (edge index 0..13) of the edge from input ``inp`` into node ``node``."""
    return NODE_OFFSET[node] + inp


def reduction_cells(n: int) -> frozenset[int]:
    """The indices of the reduction cells among ``n`` cells (DARTS: ``n // 3`` and ``2 n // 3``)."""
    return frozenset({n // 3, 2 * n // 3})


# ---- the architecture ---------------------------------------------------------------------------


def validate_genotype(arch: Any) -> dict[str, Any]:
    """A normalised copy of the genotype ``arch`` (lists, ints, the given edge order), or a one-line
    :class:`UserError` naming what is wrong."""
    if hasattr(arch, "_asdict") and not isinstance(arch, Mapping):  # DARTS's Genotype namedtuple
        arch = arch._asdict()
    if not isinstance(arch, Mapping):
        raise UserError(
            f"a darts architecture is a genotype dict with keys {', '.join(KEYS)}, "
            f"not a {type(arch).__name__}"
        )
    missing = [k for k in KEYS if k not in arch]
    unknown = sorted(str(k) for k in arch if k not in KEYS)
    if missing or unknown:
        what = f"lacks {', '.join(missing)}" if missing else f"has unknown key(s) {', '.join(unknown)}"
        raise UserError(f"the darts genotype {what}; its keys are {', '.join(KEYS)}")
    out: dict[str, Any] = {}
    for cell in CELL_TYPES:
        pairs = arch[cell]
        if not isinstance(pairs, (list, tuple)) or len(pairs) != 2 * N_NODES:
            got = f"{len(pairs)} item(s)" if isinstance(pairs, (list, tuple)) else f"a {type(pairs).__name__}"
            raise UserError(
                f"darts genotype: {cell!r} must list {2 * N_NODES} [op, input] pairs (2 per node), got {got}"
            )
        clean = []
        for j, pair in enumerate(pairs):
            node = j // 2
            where = f"{cell}[{j}] (node {node})"
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise UserError(f"darts genotype: {where} = {pair!r} must be a pair [op, input]")
            op, inp = pair
            if op == "none":
                raise UserError(
                    f"darts genotype: {where} uses 'none', which a derived cell never does; "
                    f"choose one of: {', '.join(CELL_OPS)}"
                )
            if op not in CELL_OPS:
                raise UserError(
                    f"darts genotype: {where}: unknown operation {op!r}; choose one of: {', '.join(CELL_OPS)}"
                )
            if isinstance(inp, bool) or not isinstance(inp, (int, np.integer)):
                raise UserError(f"darts genotype: {where}: input {inp!r} must be an integer")
            if not 0 <= inp <= node + 1:
                raise UserError(
                    f"darts genotype: {where}: input {int(inp)} is out of range; node {node} takes inputs "
                    f"0..{node + 1} (0 = c_k-2, 1 = c_k-1, 2.. = earlier nodes)"
                )
            clean.append([str(op), int(inp)])
        for node in range(N_NODES):
            if clean[2 * node][1] == clean[2 * node + 1][1]:
                raise UserError(
                    f"darts genotype: both edges of {cell} node {node} take input {clean[2 * node][1]}; "
                    "the two inputs of a node must differ"
                )
        concat = arch[f"{cell}_concat"]
        if not isinstance(concat, (list, tuple, range)) or list(concat) != list(CONCAT):
            raise UserError(
                f"darts genotype: {cell}_concat must be {list(CONCAT)} (every intermediate node), "
                f"got {concat!r}"
            )
        out[cell] = clean
        out[f"{cell}_concat"] = list(CONCAT)
    return out


def canonical_genotype(arch: Any) -> dict[str, Any]:
    """:func:`validate_genotype` with each node's two edges sorted by input (the same network)."""
    arch = validate_genotype(arch)
    for cell in CELL_TYPES:
        pairs = arch[cell]
        arch[cell] = [
            p for node in range(N_NODES) for p in sorted(pairs[2 * node : 2 * node + 2], key=lambda p: p[1])
        ]
    return arch


@SEARCH_SPACES.register("darts")
class DartsSpace(SearchSpace):
    """DARTS cells and DARTS's CIFAR evaluation network (see the module docstring)."""

    name = "darts"
    capabilities = frozenset({"costs"})

    @dataclass
    class Options:
        init_channels: int = option(36, "initial channels C of the evaluation network (DARTS on CIFAR: 36)")
        layers: int = option(20, "cells of the evaluation network (DARTS on CIFAR: 20)")
        image_size: int = option(32, "input resolution in pixels of the evaluation network's costs")

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        o = self.options
        for flag in ("init_channels", "layers", "image_size"):
            v = getattr(o, flag)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise UserError(f"--{flag} {v!r} of the darts space must be a positive integer")
        self.xl = np.zeros(2 * GENES_PER_CELL, dtype=int)
        self.xu = np.array(
            [
                v
                for _ in CELL_TYPES
                for node in range(N_NODES)
                for _ in range(2)
                for v in (node + 1, len(CELL_OPS) - 1)
            ],
            dtype=int,
        )
        self._costs: dict[tuple[str, int, int], dict[str, float]] = {}

    # ---- encoding -----------------------------------------------------------------------------

    def validate(self, arch: Any) -> dict[str, Any]:
        return validate_genotype(arch)

    def canonical(self, arch: Any) -> dict[str, Any]:
        return canonical_genotype(arch)

    def encode(self, arch: Any) -> np.ndarray:
        arch = self.validate(arch)
        return np.array(
            [v for cell in CELL_TYPES for op, inp in arch[cell] for v in (inp, CELL_OPS.index(op))], dtype=int
        )

    def decode(self, x: np.ndarray) -> dict[str, Any]:
        x = self.check_genes(x)
        arch: dict[str, Any] = {}
        for c, cell in enumerate(CELL_TYPES):
            genes = x[c * GENES_PER_CELL : (c + 1) * GENES_PER_CELL]
            arch[cell] = [[CELL_OPS[genes[2 * e + 1]], int(genes[2 * e])] for e in range(2 * N_NODES)]
            arch[f"{cell}_concat"] = list(CONCAT)
        return self.validate(arch)

    def repair(self, x: np.ndarray) -> np.ndarray:
        """Where a node's two input genes are equal, the second becomes the next input (cyclically
        among the node's ``i + 2``); ``x`` itself when every node already has two distinct inputs."""
        out = None
        for c in range(len(CELL_TYPES)):
            for node in range(N_NODES):
                a = c * GENES_PER_CELL + 4 * node
                src = x if out is None else out
                if src[a] == src[a + 2]:
                    if out is None:
                        out = np.array(x, copy=True)
                    out[a + 2] = (out[a] + 1) % (node + 2)
        return x if out is None else out

    def features(self, arch: Any) -> np.ndarray:
        """One-hot (cell type, edge, operation): 2 x 14 x 7 = 196 values, 16 of them 1."""
        arch = self.validate(arch)
        out = np.zeros((len(CELL_TYPES), N_EDGES, len(CELL_OPS)))
        for c, cell in enumerate(CELL_TYPES):
            for j, (op, inp) in enumerate(arch[cell]):
                out[c, edge_row(j // 2, inp), CELL_OPS.index(op)] = 1.0
        return out.ravel()

    def feature_names(self) -> list[str]:
        """``<cell>_n<node>_in<input>.<op>`` in the order of :meth:`features`: each (cell, edge) is a
        feature family; a cell has no stages."""
        return [
            f"{cell}_n{node}_in{inp}.{op}" for cell in CELL_TYPES for node, inp in EDGES for op in CELL_OPS
        ]

    def growth_groups(self) -> list[np.ndarray]:
        """Node by node: the genes of node ``i`` of the normal cell and of the reduce cell together."""
        return [
            np.array([c * GENES_PER_CELL + 4 * node + g for c in range(len(CELL_TYPES)) for g in range(4)])
            for node in range(N_NODES)
        ]

    def smallest(self) -> dict[str, Any]:
        """The cheapest cells in params, MACs and activations: identity edges (no module) wherever
        the stride is 1, a max pool where the reduce cell must reduce (node 0's two edges and one edge of
        node 1)."""
        normal = [["skip_connect", inp] for _ in range(N_NODES) for inp in (0, 1)]
        reduce = [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["max_pool_3x3", 1], ["skip_connect", 2]]
        reduce += [["skip_connect", inp] for node in (2, 3) for inp in (node, node + 1)]
        return self.validate(
            {"normal": normal, "normal_concat": CONCAT, "reduce": reduce, "reduce_concat": CONCAT}
        )

    def largest(self) -> dict[str, Any]:
        """The most expensive cells: every edge a 5x5 separable convolution (the inputs do not change
        the costs of such a cell)."""
        pairs = [["sep_conv_5x5", inp] for _ in range(N_NODES) for inp in (0, 1)]
        return self.validate(
            {"normal": pairs, "normal_concat": CONCAT, "reduce": pairs, "reduce_concat": CONCAT}
        )

    # ---- networks -----------------------------------------------------------------------------

    def build(self, arch: Any, supernet: Any = None, n_classes: int = 10) -> nn.Module:
        """A freshly initialised evaluation network of ``arch`` (``channels``, ``layers`` of the
        options) for ``n_classes``."""
        arch = self.validate(arch)
        if supernet is not None:
            raise UserError(
                "the darts space builds its evaluation networks from scratch; the search supernet's "
                "weights do not fit them (other channels and cells)"
            )
        _check_n_classes(n_classes)
        return DartsNetwork(arch, self.options.init_channels, self.options.layers, n_classes)

    def costs(self, arch: Any, n_classes: int = 10, resolution: int | None = None) -> dict[str, float]:
        """``{"params", "macs", "activations"}`` in millions of :meth:`build` at batch 1, measured with
        :func:`nas.costs.measure_costs` on the CPU (the global torch RNG is left as it was) and cached
        by ``arch_id``; ``resolution`` defaults to the space's."""
        _check_n_classes(n_classes)
        res = self.options.image_size if resolution is None else resolution
        if isinstance(res, bool) or not isinstance(res, int) or res < 1:
            raise UserError(f"resolution {res!r} must be a positive integer")
        key = (self.arch_id(arch), n_classes, res)
        if key not in self._costs:
            with torch.random.fork_rng(devices=[]):  # the initial weights draw nothing from the caller's RNG
                model = self.build(arch, n_classes=n_classes)
            self._costs[key] = measure_costs(model, res, torch.device("cpu"))
        return dict(self._costs[key])


def _check_n_classes(n_classes: Any) -> None:
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1:
        raise UserError(f"n_classes {n_classes!r} must be a positive integer")


# ---- operations -----------------------------------------------------------------------------------


class StridedZero(Zero):
    """``none``: zeros of the output's shape (the map halved at stride 2)."""

    def __init__(self, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class ReLUConvBN(nn.Sequential):
    """ReLU, a k x k conv without bias ("same" padding), BN."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),  # the input feeds several edges: never modify it in place
            nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class FactorizedReduce(nn.Module):
    """Stride-2 ``c_in -> c_out``: ReLU, two stride-2 1x1 convs, the second on the map shifted by one
    pixel (zero-padded at the far edge, so odd maps work), concatenated, BN."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out < 2:
            raise UserError(f"a factorized reduction needs at least 2 output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class SepConv(nn.Sequential):
    """Twice (ReLU, depthwise k x k, pointwise 1x1, BN); the stride on the first depthwise conv."""

    def __init__(self, c: int, k: int, stride: int, affine: bool) -> None:
        layers: list[nn.Module] = []
        for s in (stride, 1):
            layers += [
                nn.ReLU(inplace=False),
                nn.Conv2d(c, c, k, stride=s, padding=k // 2, groups=c, bias=False),
                nn.Conv2d(c, c, 1, bias=False),
                nn.BatchNorm2d(c, affine=affine),
            ]
        super().__init__(*layers)


class DilConv(nn.Sequential):
    """ReLU, depthwise k x k with dilation 2 ("same" padding), pointwise 1x1, BN."""

    def __init__(self, c: int, k: int, stride: int, affine: bool) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, k, stride=stride, padding=k - 1, dilation=2, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )


def make_op(name: str, c: int, stride: int, affine: bool, search: bool = False) -> nn.Module:
    """The DARTS operation ``name`` on ``c`` channels at ``stride`` (``search``: a pool is followed by
    a non-affine BN, as in DARTS's search network)."""
    if name == "none":
        return StridedZero(stride)
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        pool: nn.Module = (
            nn.MaxPool2d(3, stride=stride, padding=1)
            if name == "max_pool_3x3"
            else nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
        )
        return nn.Sequential(pool, nn.BatchNorm2d(c, affine=False)) if search else pool
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine)
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        return SepConv(c, int(name[-1]), stride, affine)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        return DilConv(c, int(name[-1]), stride, affine)
    raise UserError(f"unknown operation {name!r}; choose one of: {', '.join(PRIMITIVES)}")


def _preprocess(
    c_pp: int, c_p: int, c: int, reduction_prev: bool, affine: bool
) -> tuple[nn.Module, nn.Module]:
    pre0 = FactorizedReduce(c_pp, c, affine) if reduction_prev else ReLUConvBN(c_pp, c, 1, affine=affine)
    return pre0, ReLUConvBN(c_p, c, 1, affine=affine)


# ---- the evaluation network -----------------------------------------------------------------------


class DartsCell(nn.Module):
    """One cell of a genotype: 8 operations, 4 nodes, output the concat of the 4 nodes."""

    def __init__(
        self, pairs: list[list[Any]], c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.pre0, self.pre1 = _preprocess(c_pp, c_p, c, reduction_prev, affine=True)
        self.inputs = [int(inp) for _, inp in pairs]
        self.ops = nn.ModuleList(
            make_op(op, c, 2 if reduction and inp < 2 else 1, affine=True) for op, inp in pairs
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for node in range(N_NODES):
            a, b = 2 * node, 2 * node + 1
            states.append(self.ops[a](states[self.inputs[a]]) + self.ops[b](states[self.inputs[b]]))
        return torch.cat([states[j] for j in CONCAT], dim=1)


class DartsNetwork(nn.Module):
    """DARTS's CIFAR network of a genotype (see the module docstring): no auxiliary head, no drop-path."""

    def __init__(self, arch: dict[str, Any], channels: int, layers: int, n_classes: int) -> None:
        super().__init__()
        c_stem = 3 * channels
        self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_pp, c_p, c = c_stem, c_stem, channels
        reductions, reduction_prev = reduction_cells(layers), False
        cells = []
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c *= 2
            cell_type = "reduce" if reduction else "normal"
            cells.append(DartsCell(arch[cell_type], c_pp, c_p, c, reduction, reduction_prev))
            c_pp, c_p, reduction_prev = c_p, len(CONCAT) * c, reduction
        self.cells = nn.ModuleList(cells)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(self.global_pooling(s1).flatten(1))


# ---- the supernet ---------------------------------------------------------------------------------


class DartsSearchCell(nn.Module):
    """A search cell: 14 mixed edges over the 8 :data:`PRIMITIVES` (rows of table ``key``)."""

    def __init__(
        self, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool, partial: int, affine: bool
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.key = "reduce" if reduction else "normal"
        self.c = c
        self.pre0, self.pre1 = _preprocess(c_pp, c_p, c, reduction_prev, affine=False)
        edges = []
        for _, inp in EDGES:
            stride = 2 if reduction and inp < 2 else 1
            bypass = nn.MaxPool2d(2, 2, ceil_mode=True) if stride == 2 and partial > 1 else None
            ops = [make_op(op, c // partial, stride, affine, search=True) for op in PRIMITIVES]
            edges.append(MixedOp(ops, partial, bypass))
        self.edges = nn.ModuleList(edges)

    def forward(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        weights: torch.Tensor | None,
        edge_weights: torch.Tensor | None,
        path: list[int] | None,
    ) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for node in range(N_NODES):
            total = None
            for inp in range(node + 2):
                k = edge_row(node, inp)
                if path is not None and int(path[k]) == 0:
                    continue  # `none` on a single path: the edge is not computed at all
                out = self.edges[k](
                    states[inp], None if weights is None else weights[k], None if path is None else path[k]
                )
                if edge_weights is not None:
                    out = out * edge_weights[k]
                total = out if total is None else total + out
            if total is None:  # a path without any edge into this node
                b, _, h, w = states[1].shape
                if self.reduction:
                    h, w = (h + 1) // 2, (w + 1) // 2
                total = states[1].new_zeros(b, self.c, h, w)
            states.append(total)
        return torch.cat(states[2:], dim=1)


@SUPERNETS.register("darts")
class DartsSupernet(CellSupernet):
    """DARTS's search network (see the module docstring); ``partial_channels`` K > 1 is PC-DARTS:
    1/K of the channels go through each mixed edge (a 2x2 max pool brings the others to the
    reduced size on stride-2 edges)."""

    space_name = "darts"
    op_names = PRIMITIVES
    independent_edges = False  # a node takes two of its inputs

    def __init__(
        self,
        n_classes: int,
        channels: int = 16,
        cells: int = 8,
        partial_channels: int = 1,
        affine: bool = False,
    ) -> None:
        super().__init__()
        if channels < 1 or cells < 1:
            raise UserError(f"--channels {channels} and --cells {cells} must be >= 1")
        if partial_channels < 1 or channels % partial_channels:
            raise UserError(
                f"--partial_channels {partial_channels} must be >= 1 and divide --channels {channels}"
            )
        self.config = {
            "channels": channels,
            "cells": cells,
            "partial_channels": partial_channels,
            "affine": affine,
        }
        c_stem = 3 * channels
        self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_pp, c_p, c = c_stem, c_stem, channels
        reductions, reduction_prev = reduction_cells(cells), False
        layers = []
        for i in range(cells):
            reduction = i in reductions
            if reduction:
                c *= 2
            layers.append(DartsSearchCell(c_pp, c_p, c, reduction, reduction_prev, partial_channels, affine))
            c_pp, c_p, reduction_prev = c_p, N_NODES * c, reduction
        self.cells = nn.ModuleList(layers)
        self.classifier = nn.Linear(c_p, n_classes)

    def arch_shapes(self) -> dict[str, tuple[int, int]]:
        return {key: (N_EDGES, len(PRIMITIVES)) for key in CELL_TYPES}

    def node_edges(self, key: str) -> list[list[int]]:
        return [[edge_row(node, inp) for inp in range(node + 2)] for node in range(N_NODES)]

    def forward(
        self,
        x: torch.Tensor,
        weights: Tables | None = None,
        edge_weights: Tables | None = None,
        path: Path | None = None,
    ) -> torch.Tensor:
        if weights is None and path is None:
            raise ValueError(
                "the darts supernet needs weights (the relaxation) or path (one operation per edge)"
            )
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            k = cell.key
            s0, s1 = (
                s1,
                cell(
                    s0,
                    s1,
                    None if weights is None else weights[k],
                    None if edge_weights is None else edge_weights[k],
                    None if path is None else path[k],
                ),
            )
        return self.classifier(s1.mean((2, 3)))

    def derive(
        self, weights: dict[str, np.ndarray], edge_weights: dict[str, np.ndarray] | None = None
    ) -> dict:
        """DARTS's rule: every edge into a node scores its strongest non-``none`` operation (times its
        edge weight when given, as PC-DARTS); each node keeps its two best edges (the lower input
        first on a tie) with that operation. Returns the canonical genotype."""
        arch: dict[str, Any] = {}
        for key in CELL_TYPES:
            w = _table(weights[key], (N_EDGES, len(PRIMITIVES)), key)
            e = None if edge_weights is None else _table(edge_weights[key], (N_EDGES,), key)
            pairs = []
            for node in range(N_NODES):
                scored = []
                for inp in range(node + 2):
                    k = edge_row(node, inp)
                    op = int(np.argmax(w[k, 1:]))
                    scored.append((w[k, 1 + op] * (1.0 if e is None else e[k]), inp, op))
                best = sorted(scored, key=lambda t: -t[0])[:2]  # stable: a tie keeps the lower input
                pairs += [[CELL_OPS[op], inp] for _, inp, op in sorted(best, key=lambda t: t[1])]
            arch[key] = pairs
            arch[f"{key}_concat"] = list(CONCAT)
        return arch

    def path_of(self, arch: Any) -> Path:
        """One op index (of :data:`PRIMITIVES`) per edge row; 0 (``none``) for edges not in the cell."""
        arch = validate_genotype(arch)
        path = {}
        for key in CELL_TYPES:
            p = [0] * N_EDGES
            for j, (op, inp) in enumerate(arch[key]):
                p[edge_row(j // 2, inp)] = PRIMITIVES.index(op)
            path[key] = p
        return path

    def ranked(self, weights: dict[str, np.ndarray], limit: int) -> list[dict]:
        """Up to ``limit`` distinct genotypes, :meth:`derive`'s first, then by decreasing product of
        the chosen operations' weights: best-first enumeration over the independent per-node choices
        (two distinct inputs, a non-``none`` operation on each)."""
        if limit < 1:
            return []
        derived = self.derive(weights)
        rows = []  # per (cell, node): (-log score sorted ascending, the choices in that order)
        for key in CELL_TYPES:
            logw = np.log(np.clip(_table(weights[key], (N_EDGES, len(PRIMITIVES)), key)[:, 1:], 1e-30, None))
            for node in range(N_NODES):
                choices, scores = [], []
                for i1, i2 in itertools.combinations(range(node + 2), 2):
                    s = np.add.outer(logw[edge_row(node, i1)], logw[edge_row(node, i2)])
                    for o1, o2 in itertools.product(range(len(CELL_OPS)), repeat=2):
                        choices.append(((CELL_OPS[o1], i1), (CELL_OPS[o2], i2)))
                        scores.append(-s[o1, o2])
                order = np.argsort(scores, kind="stable")
                rows.append((key, np.asarray(scores)[order], [choices[i] for i in order]))

        def cost(state: tuple[int, ...]) -> float:
            return float(sum(r[1][s] for r, s in zip(rows, state, strict=True)))

        start = (0,) * len(rows)
        heap, seen, out = [(cost(start), start)], {start}, [derived]
        while heap and len(out) < limit:
            _, state = heapq.heappop(heap)
            cells: dict[str, list[tuple[str, int]]] = {key: [] for key in CELL_TYPES}
            for (key, _, choices), s in zip(rows, state, strict=True):
                cells[key] += choices[s]
            arch = _genotype(cells["normal"], cells["reduce"])
            if arch != derived:
                out.append(arch)
            for j in range(len(rows)):
                if state[j] + 1 < len(rows[j][2]):
                    nxt = state[:j] + (state[j] + 1,) + state[j + 1 :]
                    if nxt not in seen:
                        seen.add(nxt)
                        heapq.heappush(heap, (cost(nxt), nxt))
        return out

    def random_path(self, gen: torch.Generator) -> Path:
        """A uniform valid cell per table: each node's two distinct inputs and their non-``none``
        operations drawn uniformly; ``none`` (0) on the other edges."""
        path = {}
        for key in CELL_TYPES:
            p = [0] * N_EDGES
            for node in range(N_NODES):
                inputs = torch.randperm(node + 2, generator=gen)[:2].tolist()
                ops = torch.randint(1, len(PRIMITIVES), (2,), generator=gen).tolist()
                for inp, op in zip(inputs, ops, strict=True):
                    p[edge_row(node, inp)] = op
            path[key] = p
        return path


def _table(t: Any, shape: tuple[int, ...], key: str) -> np.ndarray:
    """``t`` (array or tensor) as a float array of ``shape``."""
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().double().numpy()
    a = np.asarray(t, dtype=float)
    if a.shape != shape:
        raise ValueError(f"table {key!r} has shape {a.shape}; the darts supernet's is {shape}")
    return a
