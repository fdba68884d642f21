"""The NAS-Bench-201 cell space (``nb201``): 6 edges x 5 operations = 15,625 cells.

The architecture *is* NAS-Bench-201's cell string, for example::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

A cell is a DAG of 4 nodes; node 0 is the cell's input, node ``i`` (1..3) is the sum of one
operation on each earlier node ``j`` (``op~j``), and node 3 is the cell's output. The string
lists node 1's edge, then node 2's, then node 3's (groups separated by ``+``), each group in the
order of its input nodes. Genes follow the same order::

    x[0] = 1<-0   x[1] = 2<-0   x[2] = 2<-1   x[3] = 3<-0   x[4] = 3<-1   x[5] = 3<-2

each an index 0..4 into ``OPS = (none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3)``.
Encoding and decoding round-trip exactly; :meth:`NB201Space.validate` accepts only well-formed
strings (it returns them unchanged, so the string is its own canonical form and
:meth:`arch_id` hashes it). Equivalent cells (e.g. an edge whose node feeds nothing) keep
distinct ids, because NAS-Bench-201 trained and tabulated each of the 15,625 strings separately.

The network (written here in torch, the layout of NAS-Bench-201's "tiny network")::

    stem        3x3 conv 3 -> 16 (no bias), BN
    stage 1     5 cells with C = 16
    reduction   residual block 16 -> 32: [ReLU, 3x3 conv stride 2, BN, ReLU, 3x3 conv, BN]
                + shortcut [2x2 average pool stride 2, 1x1 conv (no bias)]
    stage 2     5 cells with C = 32
    reduction   residual block 32 -> 64
    stage 3     5 cells with C = 64
    head        BN, ReLU, global average pool, Linear 64 -> n_classes

Cell operations (all C -> C, stride 1): ``none`` = zeros (``x * 0``, no module counted),
``skip_connect`` = identity, ``nor_conv_kxk`` = ReLU, kxk conv (no bias, padding k // 2), BN,
``avg_pool_3x3`` = 3x3 average pool, stride 1, padding 1, padding not counted in the mean.

Costs (:meth:`NB201Space.costs`) follow :mod:`nas.costs` (params, MACs and activations in
millions at batch size 1) and are computed analytically, equal (``==``) to the hook-based
measurement on :meth:`NB201Space.build`. "FLOPs" in NAS-Bench-201 are multiply-accumulates of the
convolutions and the classifier, i.e. our ``macs``: :meth:`NB201Space.flops` returns them, from
7.78 M (no convolution in the cells) to 220.12 M (all 3x3 convolutions) at 32x32 with 10
classes, and 1.95 M to 55.04 M at 16x16 with 120 classes (ImageNet16-120), matching the
published ranges.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from nas.errors import UserError
from nas.space import SEARCH_SPACES, SearchSpace

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to node, from node), gene order
N_NODES = 4
N_EDGES = len(EDGES)
N_CELLS = len(OPS) ** N_EDGES  # 15,625
STEM_C = 16
STAGE_C = (16, 32, 64)
CELLS_PER_STAGE = 5

# |op~0|+|op~0|op~1|+|op~0|op~1|op~2| with named groups e0..e5 in gene order
_CELL_RE = re.compile(
    r"^\|(?P<e0>{o})~0\|\+\|(?P<e1>{o})~0\|(?P<e2>{o})~1\|\+\|(?P<e3>{o})~0\|(?P<e4>{o})~1\|(?P<e5>{o})~2\|$".replace(
        "{o}", "|".join(OPS)
    )
)


def cell_string(ops: tuple[str, ...] | list[str]) -> str:
    """The cell string of six operation names in gene order."""
    groups, k = [], 0
    for node in range(1, N_NODES):
        groups.append("|" + "|".join(f"{ops[k + j]}~{j}" for j in range(node)) + "|")
        k += node
    return "+".join(groups)


def cell_ops(arch: str) -> tuple[str, ...]:
    """The six operation names of a well-formed cell string, in gene order."""
    m = _CELL_RE.match(arch) if isinstance(arch, str) else None
    if m is None:
        raise UserError(_why_malformed(arch))
    return tuple(m[f"e{i}"] for i in range(N_EDGES))


def _why_malformed(arch: Any) -> str:
    """A message naming what is wrong with a string that is not a cell string."""
    example = cell_string(("nor_conv_3x3",) * N_EDGES)
    if not isinstance(arch, str):
        return f"an nb201 architecture is a cell string like {example!r}, not a {type(arch).__name__}"
    groups = arch.split("+")
    if len(groups) != N_NODES - 1:
        return f"cell string {arch!r} must have {N_NODES - 1} node groups separated by '+', like {example!r}"
    for node, group in enumerate(groups, start=1):
        if not (group.startswith("|") and group.endswith("|") and len(group) > 1):
            return f"cell string {arch!r}: node {node}'s group {group!r} must start and end with '|'"
        edges = group[1:-1].split("|")
        if len(edges) != node:
            return f"cell string {arch!r}: node {node} needs {node} edge(s) 'op~j', got {group!r}"
        for j, edge in enumerate(edges):
            op, sep, src = edge.partition("~")
            if op not in OPS:
                return f"cell string {arch!r}: unknown operation {op!r}; choose one of: {', '.join(OPS)}"
            if sep != "~" or src != str(j):
                return f"cell string {arch!r}: edge {edge!r} of node {node} must read '{op}~{j}'"
    return f"{arch!r} is not a cell string like {example!r}"


@SEARCH_SPACES.register("nb201")
class NB201Space(SearchSpace):
    """NAS-Bench-201 cells; an architecture is its cell string (see the module docstring)."""

    name = "nb201"
    capabilities = frozenset({"costs"})

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self.xl = np.zeros(N_EDGES, dtype=int)
        self.xu = np.full(N_EDGES, len(OPS) - 1, dtype=int)

    # ---- encoding -------------------------------------------------------------------------

    def validate(self, arch: Any) -> str:
        cell_ops(arch)
        return arch

    def encode(self, arch: str) -> np.ndarray:
        return np.array([OPS.index(op) for op in cell_ops(arch)], dtype=int)

    def decode(self, x: np.ndarray) -> str:
        x = self.check_genes(x)
        return cell_string([OPS[i] for i in x])

    def features(self, arch: str) -> np.ndarray:
        """One-hot operation per edge (30 values): op indices have no order a surrogate could use."""
        out = np.zeros((N_EDGES, len(OPS)))
        out[np.arange(N_EDGES), self.encode(arch)] = 1.0
        return out.ravel()

    def feature_names(self) -> list[str]:
        """``edge<i>.<op>`` (edge ``i`` in gene order, see the module docstring), in the order of
        :meth:`features`: each edge is a gene family; a cell has no stages."""
        return [f"edge{i}.{op}" for i in range(N_EDGES) for op in OPS]

    def growth_groups(self) -> list[np.ndarray]:
        """A cell grows node by node: node 1's edge, node 2's two edges, node 3's three."""
        return [np.array([0]), np.array([1, 2]), np.array([3, 4, 5])]

    def all_archs(self) -> Iterator[str]:
        """All 15,625 cell strings, in gene order (last edge fastest)."""
        for ops in itertools.product(OPS, repeat=N_EDGES):
            yield cell_string(ops)

    def smallest(self) -> str:
        """The cheapest cell: every edge ``none`` (7.78 M MACs on CIFAR)."""
        return super().smallest()

    def largest(self) -> str:
        """The most expensive cell: every edge a 3x3 convolution."""
        return cell_string(("nor_conv_3x3",) * N_EDGES)

    # ---- networks -------------------------------------------------------------------------

    def build(self, arch: str, supernet: nn.Module | None = None, n_classes: int = 10) -> nn.Module:
        """A freshly initialised NAS-Bench-201 network of the cell ``arch`` for ``n_classes``."""
        ops = cell_ops(arch)
        if supernet is not None:
            raise UserError(
                "the nb201 space has no weight-sharing supernet; its networks are built from scratch"
            )
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1:
            raise UserError(f"n_classes {n_classes!r} must be a positive integer")
        return NB201Network(ops, n_classes)

    def cost_counts(self, arch: str, n_classes: int = 10, resolution: int = 32) -> dict[str, int]:
        """Exact integer ``{"params", "macs", "activations"}`` of the network at batch size 1."""
        ops = cell_ops(arch)
        _check_costs_args(n_classes, resolution)
        n1 = ops.count("nor_conv_1x1")
        n3 = ops.count("nor_conv_3x3")
        npool = ops.count("avg_pool_3x3")
        params = 3 * STEM_C * 9 + 2 * STEM_C
        h = resolution
        macs = h * h * STEM_C * 3 * 9
        acts = 2 * h * h * STEM_C  # stem conv and BN outputs
        c_prev = STEM_C
        for stage, c in enumerate(STAGE_C):
            if stage > 0:  # residual reduction block c_prev -> c, output map h // 2
                h //= 2
                area = h * h
                params += 9 * c_prev * c + 2 * c + 9 * c * c + 2 * c + c_prev * c
                macs += area * c * (9 * c_prev + 9 * c + c_prev)
                acts += area * (2 * c + 2 * c + c_prev + c)  # conv_a+BN, conv_b+BN, pool, 1x1 conv
            area = h * h
            # per cell: each conv edge is conv + BN; each pool edge outputs one map; none/skip count nothing
            params += CELLS_PER_STAGE * (n1 * (c * c + 2 * c) + n3 * (9 * c * c + 2 * c))
            macs += CELLS_PER_STAGE * area * c * c * (n1 + 9 * n3)
            acts += CELLS_PER_STAGE * area * c * (2 * n1 + 2 * n3 + npool)
            c_prev = c
        params += 2 * c_prev + c_prev * n_classes + n_classes  # final BN, classifier
        macs += c_prev * n_classes
        acts += h * h * c_prev + n_classes  # final BN output, classifier output
        return {"params": params, "macs": macs, "activations": acts}

    def costs(self, arch: str, n_classes: int = 10, resolution: int = 32) -> dict[str, float]:
        """``{"params", "macs", "activations"}`` in millions (batch 1, ``resolution`` x ``resolution``).

        Analytic; equal (``==``) to :func:`nas.costs.measure_costs` on :meth:`build`. Use 32 for
        CIFAR-10/100 and 16 for ImageNet16-120.
        """
        counts = self.cost_counts(arch, n_classes, resolution)
        return {key: counts[key] / 1e6 for key in ("params", "macs", "activations")}

    def flops(self, arch: str, n_classes: int = 10, resolution: int = 32) -> float:
        """NAS-Bench-201's "FLOPs": multiply-accumulates in millions (our ``macs``), batch 1."""
        return self.cost_counts(arch, n_classes, resolution)["macs"] / 1e6


def _check_costs_args(n_classes: int, resolution: int) -> None:
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1:
        raise UserError(f"n_classes {n_classes!r} must be a positive integer")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 4 or resolution % 4:
        raise UserError(
            f"resolution {resolution!r} must be a positive multiple of 4 (the network halves the map twice)"
        )


# ---- the network --------------------------------------------------------------------------


class ReLUConvBN(nn.Sequential):
    """ReLU, then a square conv without bias ("same" padding), then BN."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),  # the input is shared by several edges: never modify it in place
            nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    """The ``none`` operation: an all-zero map of the input's shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, c: int) -> nn.Module:
    """A cell operation ``name`` on ``c`` channels, stride 1."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise UserError(f"unknown operation {name!r}; choose one of: {', '.join(OPS)}")


class Cell(nn.Module):
    """The 4-node DAG of a cell string; every edge keeps the shape ``c x h x w``."""

    def __init__(self, ops: tuple[str, ...], c: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(make_op(op, c) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        k = 0
        for node in range(1, N_NODES):
            out = self.edges[k](nodes[0])
            for j in range(1, node):
                out = out + self.edges[k + j](nodes[j])
            nodes.append(out)
            k += node
        return nodes[-1]


class ResidualReduction(nn.Module):
    """Stride-2 residual block between stages: two 3x3 ReLU-conv-BN plus a pooled 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """Stem, 3 stages of 5 cells (16, 32, 64 channels) with residual reductions, BN-ReLU, pool, Linear."""

    def __init__(self, ops: tuple[str, ...], n_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, STEM_C, 3, padding=1, bias=False), nn.BatchNorm2d(STEM_C))
        layers: list[nn.Module] = []
        c_prev = STEM_C
        for stage, c in enumerate(STAGE_C):
            if stage > 0:
                layers.append(ResidualReduction(c_prev, c))
            layers.extend(Cell(ops, c) for _ in range(CELLS_PER_STAGE))
            c_prev = c
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(self.pool(x).flatten(1))
