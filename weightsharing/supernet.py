"""Weight-sharing cell supernets: the contract every method of this plug-in trains, and the
differentiable NAS-Bench-201 supernet.

A :class:`CellSupernet` is a network whose edges are :class:`~weightsharing.ops.MixedOp` s. Its
architecture is a set of named *edge tables* (``arch_shapes()``: ``{"cell": (6, 5)}`` for
NAS-Bench-201, ``{"normal": (14, 8), "reduce": (14, 8)}`` for the DARTS space), one row per edge and
one column per operation of ``op_names``. It runs in one of two ways:

- ``forward(x, weights=...)``: every edge mixes its candidates with ``weights[key][edge]``
  (DARTS, PC-DARTS), optionally scaled per edge by ``edge_weights[key][edge]`` (PC-DARTS's edge
  normalisation, see :meth:`CellSupernet.normalised_edges`);
- ``forward(x, path=...)``: every edge runs the one operation ``path[key][edge]`` (SPOS, ENAS,
  evaluation of a cell with inherited weights).

``derive(weights)`` turns edge tables into an architecture of the space (``space_name``),
``path_of(arch)`` an architecture into a path and ``random_path(gen)`` draws a uniform one.
:data:`SUPERNETS` maps a space name to its supernet class; the methods find the supernet of the
run's space there.
"""

from __future__ import annotations

import heapq
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn as nn

from nas.errors import UserError
from nas.registry import Registry
from NasSearchSpace.nb201 import EDGES, N_NODES, OPS, ResidualReduction, cell_ops, cell_string
from weightsharing.ops import MixedOp, Zero

SUPERNETS: Registry = Registry("weight-sharing supernet")

Tables = dict[str, torch.Tensor]
Path = dict[str, list[int]]


class CellSupernet(nn.Module):
    """The contract (see the module docstring); subclasses set ``space_name`` and ``op_names``."""

    space_name: ClassVar[str]
    op_names: ClassVar[tuple[str, ...]]
    # every edge takes any operation on its own, so any path is a cell of the space (fair_paths needs it)
    independent_edges: ClassVar[bool] = True

    def arch_shapes(self) -> dict[str, tuple[int, int]]:
        raise NotImplementedError

    def node_edges(self, key: str) -> list[list[int]]:
        """The edges (row indices of table ``key``) entering each intermediate node, node by node."""
        raise NotImplementedError

    def derive(
        self, weights: dict[str, np.ndarray], edge_weights: dict[str, np.ndarray] | None = None
    ) -> Any:
        raise NotImplementedError

    def path_of(self, arch: Any) -> Path:
        raise NotImplementedError

    def ranked(self, weights: dict[str, np.ndarray], limit: int) -> list[Any]:
        """Up to ``limit`` architectures by decreasing probability under ``weights`` (independent
        edges; a space whose derivation couples edges overrides this)."""
        return [self.derive(onehot) for onehot in ranked_choices(weights, limit)]

    def random_path(self, gen: torch.Generator) -> Path:
        """A uniform single path: every edge's operation drawn independently."""
        return {
            key: torch.randint(0, n_ops, (n_edges,), generator=gen).tolist()
            for key, (n_edges, n_ops) in self.arch_shapes().items()
        }

    def fair_paths(self, gen: torch.Generator) -> list[Path]:
        """FairNAS's strict fairness: as many single paths as an edge has operations, every edge's
        operations a random permutation across them, so each operation of each edge runs once."""
        shapes = self.arch_shapes()
        (n_ops,) = {n for _, n in shapes.values()}  # every table of a cell supernet has the same operations
        perms = {
            key: torch.stack([torch.randperm(n_ops, generator=gen) for _ in range(n)])
            for key, (n, _) in shapes.items()
        }
        return [{key: perm[:, k].tolist() for key, perm in perms.items()} for k in range(n_ops)]

    def normalised_edges(self, betas: Tables) -> Tables:
        """PC-DARTS's edge normalisation: per intermediate node, a softmax of ``betas`` over the edges
        entering it; returns one weight per edge."""
        out = {}
        for key, beta in betas.items():
            w = torch.empty_like(beta)
            for edges in self.node_edges(key):
                w[edges] = torch.softmax(beta[edges], dim=0)
            out[key] = w
        return out


def make_nb201_op(name: str, c: int, affine: bool) -> nn.Module:
    """A NAS-Bench-201 operation on ``c`` channels (BatchNorm ``affine`` or not, as DARTS searches)."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name in ("nor_conv_1x1", "nor_conv_3x3"):
        k = 1 if name == "nor_conv_1x1" else 3
        return nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, k, padding=k // 2, bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise UserError(f"unknown operation {name!r}; choose one of: {', '.join(OPS)}")


class NB201SearchCell(nn.Module):
    """A NAS-Bench-201 cell whose 6 edges are mixed operations (gene order of the ``nb201`` space)."""

    def __init__(self, c: int, partial: int, affine: bool) -> None:
        super().__init__()
        if c % partial:
            raise UserError(f"--partial_channels {partial} must divide the cell's {c} channels")
        self.edges = nn.ModuleList(
            MixedOp([make_nb201_op(op, c // partial, affine) for op in OPS], partial) for _ in EDGES
        )

    def forward(
        self,
        x: torch.Tensor,
        weights: torch.Tensor | None,
        edge_weights: torch.Tensor | None,
        path: list[int] | None,
    ) -> torch.Tensor:
        nodes, k = [x], 0
        for node in range(1, N_NODES):
            total = None
            for j in range(node):
                out = self.edges[k](
                    nodes[j],
                    None if weights is None else weights[k],
                    None if path is None else path[k],
                )
                if edge_weights is not None:
                    out = out * edge_weights[k]
                total = out if total is None else total + out
                k += 1
            nodes.append(total)
        return nodes[-1]


@SUPERNETS.register("nb201")
class NB201Supernet(CellSupernet):
    """NAS-Bench-201's network with one shared search cell (6 mixed edges x 5 operations).

    ``channels`` (16 in the benchmark), ``cells`` per stage (5) and ``partial_channels`` (1: DARTS;
    4: PC-DARTS) are options so it trains on a CPU; the layout is otherwise the benchmark's: stem,
    three stages of ``cells`` cells at ``channels`` x 1, 2, 4 with residual reductions, BN-ReLU,
    global pool, classifier. Every cell shares the one edge table ``"cell"``, and a derived cell is
    the ``nb201`` cell string of the best operation per edge (``none`` included, as NAS-Bench-201's
    DARTS derives).
    """

    space_name = "nb201"
    op_names = OPS

    def __init__(
        self,
        n_classes: int,
        channels: int = 16,
        cells: int = 5,
        partial_channels: int = 1,
        affine: bool = False,
    ) -> None:
        super().__init__()
        if channels < 1 or cells < 1:
            raise UserError(f"--channels {channels} and --cells {cells} must be >= 1")
        self.config = {
            "channels": channels,
            "cells": cells,
            "partial_channels": partial_channels,
            "affine": affine,
        }
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        layers: list[nn.Module] = []
        c_prev = channels
        for stage in range(3):
            c = channels * 2**stage
            if stage > 0:
                layers.append(ResidualReduction(c_prev, c))
            layers.extend(NB201SearchCell(c, partial_channels, affine) for _ in range(cells))
            c_prev = c
        self.layers = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(c_prev, n_classes)

    def arch_shapes(self) -> dict[str, tuple[int, int]]:
        return {"cell": (len(EDGES), len(OPS))}

    def node_edges(self, key: str) -> list[list[int]]:
        return [[k for k, (to, _) in enumerate(EDGES) if to == node] for node in range(1, N_NODES)]

    def forward(
        self,
        x: torch.Tensor,
        weights: Tables | None = None,
        edge_weights: Tables | None = None,
        path: Path | None = None,
    ) -> torch.Tensor:
        w = None if weights is None else weights["cell"]
        e = None if edge_weights is None else edge_weights["cell"]
        p = None if path is None else path["cell"]
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x, w, e, p) if isinstance(layer, NB201SearchCell) else layer(x)
        x = self.lastact(x)
        return self.classifier(x.mean((2, 3)))

    def derive(
        self, weights: dict[str, np.ndarray], edge_weights: dict[str, np.ndarray] | None = None
    ) -> str:
        """The cell string of the strongest operation per edge (every edge is kept in this space, so
        the edge weights do not change the choice)."""
        return cell_string([OPS[i] for i in np.asarray(weights["cell"]).argmax(1)])

    def path_of(self, arch: str) -> Path:
        return {"cell": [OPS.index(op) for op in cell_ops(arch)]}


def ranked_choices(tables: dict[str, np.ndarray], limit: int) -> list[dict[str, np.ndarray]]:
    """The ``limit`` most probable one-hot choices of independent rows (one operation per row of every
    table, probability the product of the rows'), best first, as one-hot tables."""
    rows = [(key, i) for key, t in tables.items() for i in range(len(t))]
    logp = [np.log(np.clip(tables[key][i], 1e-30, None)) for key, i in rows]
    order = [np.argsort(-lp, kind="stable") for lp in logp]
    start = (0,) * len(rows)

    def score(state: tuple[int, ...]) -> float:
        return -sum(lp[o[r]] for lp, o, r in zip(logp, order, state, strict=True))

    heap, seen, out = [(score(start), start)], {start}, []
    while heap and len(out) < limit:
        _, state = heapq.heappop(heap)
        onehot = {key: np.zeros_like(t, dtype=float) for key, t in tables.items()}
        for (key, i), o, r in zip(rows, order, state, strict=True):
            onehot[key][i, o[r]] = 1.0
        out.append(onehot)
        for j in range(len(rows)):
            if state[j] + 1 < len(order[j]):
                nxt = state[:j] + (state[j] + 1,) + state[j + 1 :]
                if nxt not in seen:
                    seen.add(nxt)
                    heapq.heappush(heap, (score(nxt), nxt))
    return out
