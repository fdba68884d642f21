"""Drawings of cell architectures: NAS-Bench-201 cell strings and DARTS genotypes.

Two forms are read (what a ``net.subnet`` file of the ``nb201`` or ``darts`` space holds):

- a NAS-Bench-201 cell string, ``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|...|``: nodes
  0 (the cell's input) to 3 (its output), one edge ``j -> i`` per ``op~j`` of node ``i``'s group;
  ``none`` edges are left out;
- a DARTS genotype, ``{"normal": [[op, j], ...], "normal_concat": [2, 3, 4, 5], "reduce": [...],
  "reduce_concat": [...]}``: pairs ``2i`` and ``2i+1`` are the two inputs of intermediate node ``i``,
  input ``0`` is ``c_{k-2}``, ``1`` is ``c_{k-1}``, ``j >= 2`` is intermediate node ``j - 2``; the
  output ``c_{k}`` concatenates the nodes of ``*_concat`` (same indices; all intermediate nodes
  when absent). One graph per cell type present (``normal``, ``reduce``). DARTS's printed
  ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), ...)`` is read too.

:func:`parse_arch` turns either form (or its JSON text) into :class:`CellGraph` s, :func:`to_dot`
writes one as Graphviz DOT (left to right; inputs, intermediate nodes and the output in three
colours; edges labelled with their operation), and :func:`draw` writes ``.dot``, ``.png`` and
``.pdf`` files, rendered by Graphviz's ``dot`` program when there is one (``backend="dot"``, or
``"auto"`` with ``dot`` on ``PATH``), else by matplotlib with a layered left-to-right layout
computed here (``backend="matplotlib"``).
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import UserError

BACKENDS = ("auto", "dot", "matplotlib")
CELL_TYPES = ("normal", "reduce")
TITLES = {"cell": "NAS-Bench-201 cell", "normal": "normal cell", "reduce": "reduction cell"}
DARTS_EXAMPLE = (
    '{"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ...], "normal_concat": [2, 3, 4, 5], ...}'
)

# Node fill colours (Graphviz X11 names and their hex values for matplotlib), as DARTS draws cells.
NODE_FILL = {"input": "darkseagreen2", "intermediate": "lightblue", "output": "palegoldenrod"}
NODE_FILL_HEX = {"input": "#b4eeb4", "intermediate": "#add8e6", "output": "#eee8aa"}
# Edge colours by operation (dark enough for labels in the same colour); others are OTHER_OP.
OP_COLOURS = {
    "skip_connect": "#4d4d4d",
    "max_pool_3x3": "#c85a00",
    "avg_pool_3x3": "#a0760a",
    "sep_conv_3x3": "#1f5fa8",
    "sep_conv_5x5": "#0e7c86",
    "dil_conv_3x3": "#7b3294",
    "dil_conv_5x5": "#c2185b",
    "nor_conv_3x3": "#1f5fa8",
    "nor_conv_1x1": "#2e7d32",
}
OTHER_OP = "#222222"
_OP_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Node:
    id: str  # DOT identifier
    label: str  # text shown (``c_{k-2}``: a subscript in matplotlib's drawing)
    kind: str  # "input", "intermediate" or "output"


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    op: str  # "" for the unlabelled edges into a DARTS cell's output (concatenation)


@dataclass
class CellGraph:
    """One cell as a graph; ``name`` is ``cell`` (NAS-Bench-201), ``normal`` or ``reduce``."""

    name: str
    nodes: list[Node]
    edges: list[Edge] = field(default_factory=list)

    @property
    def title(self) -> str:
        return TITLES.get(self.name, f"{self.name} cell")

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)


# ---- parsing -------------------------------------------------------------------------------------


def parse_nb201(arch: str) -> CellGraph:
    """The graph of a NAS-Bench-201 cell string (``none`` edges left out)."""
    from NasSearchSpace.nb201 import EDGES, N_NODES, cell_ops

    ops = cell_ops(arch)  # a one-line UserError for a malformed string
    last = N_NODES - 1
    nodes = [
        Node(f"n{i}", f"{i} (in)" if i == 0 else f"{i} (out)" if i == last else str(i),
             "input" if i == 0 else "output" if i == last else "intermediate")
        for i in range(N_NODES)
    ]  # fmt: skip
    edges = [Edge(f"n{j}", f"n{i}", op) for (i, j), op in zip(EDGES, ops, strict=True) if op != "none"]
    return CellGraph("cell", nodes, edges)


def _darts_cell(genotype: dict[str, Any], key: str) -> CellGraph:
    pairs = genotype[key]
    if not isinstance(pairs, list | tuple) or not pairs or len(pairs) % 2:
        raise UserError(
            f"genotype {key!r} must be a non-empty list of [op, input] pairs, two per intermediate node, "
            f"like {DARTS_EXAMPLE}"
        )
    steps = len(pairs) // 2
    nodes = [Node("c_k_2", "c_{k-2}", "input"), Node("c_k_1", "c_{k-1}", "input")]
    nodes += [Node(f"n{i}", str(i), "intermediate") for i in range(steps)]
    nodes.append(Node("c_k", "c_{k}", "output"))
    ids = [n.id for n in nodes[:-1]]  # index j -> node id
    edges = []
    for p, pair in enumerate(pairs):
        node = p // 2
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            raise UserError(
                f"genotype {key!r} pair {p} is {pair!r}; each pair is [op, input], e.g. ['sep_conv_3x3', 0]"
            )
        op, j = pair
        if not isinstance(op, str) or not _OP_NAME.match(op):
            raise UserError(f"genotype {key!r} pair {p}: {op!r} is not an operation name like 'sep_conv_3x3'")
        if isinstance(j, bool) or not isinstance(j, int) or not 0 <= j < node + 2:
            raise UserError(
                f"genotype {key!r} pair {p}: input {j!r} of intermediate node {node} must be an integer "
                f"0..{node + 1} (0: c_{{k-2}}, 1: c_{{k-1}}, j >= 2: intermediate node j-2)"
            )
        if op != "none":
            edges.append(Edge(ids[j], f"n{node}", op))
    concat_key = f"{key}_concat"
    concat = genotype.get(concat_key, list(range(2, steps + 2)))
    if isinstance(concat, range):
        concat = list(concat)
    if (
        not isinstance(concat, list | tuple)
        or not concat
        or any(isinstance(j, bool) or not isinstance(j, int) or not 0 <= j < steps + 2 for j in concat)
        or len(set(concat)) != len(concat)
    ):
        raise UserError(
            f"genotype {concat_key!r} is {concat!r}; give distinct node indices 0..{steps + 1} "
            f"(2..{steps + 1}: the intermediate nodes), e.g. {list(range(2, steps + 2))}"
        )
    edges += [Edge(ids[j], "c_k", "") for j in concat]
    return CellGraph(key, nodes, edges)


def parse_darts(genotype: dict[str, Any]) -> list[CellGraph]:
    """The graphs of a DARTS genotype's cells (``normal`` then ``reduce``, those present)."""
    known = {*CELL_TYPES, *(f"{k}_concat" for k in CELL_TYPES)}
    unknown = sorted(str(k) for k in genotype if k not in known)
    if unknown:
        raise UserError(
            f"genotype has unknown key(s) {', '.join(map(repr, unknown))}; a DARTS genotype has "
            f"{', '.join(sorted(known))}"
        )
    present = [k for k in CELL_TYPES if k in genotype]
    if not present:
        raise UserError(f"genotype has no 'normal' or 'reduce' cell; give one like {DARTS_EXAMPLE}")
    for k in CELL_TYPES:
        if f"{k}_concat" in genotype and k not in genotype:
            raise UserError(f"genotype has {k + '_concat'!r} but no {k!r} cell")
    return [_darts_cell(genotype, k) for k in present]


def _genotype_text(text: str) -> dict[str, Any]:
    """DARTS's printed ``Genotype(normal=[...], normal_concat=range(2, 6), ...)`` as a dict."""
    try:
        call = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as e:
        raise UserError(f"genotype text is not a valid Genotype(...) expression ({e.msg})") from None
    if not isinstance(call, ast.Call) or call.args or not call.keywords:
        raise UserError(
            "genotype text must read Genotype(normal=[...], normal_concat=..., reduce=[...], ...)"
        )
    out: dict[str, Any] = {}
    for kw in call.keywords:
        v = kw.value
        try:
            if isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id in ("range", "list"):
                inner = [ast.literal_eval(a) for a in v.args]
                out[kw.arg] = list(range(*inner)) if v.func.id == "range" else list(*inner)
            else:
                out[kw.arg] = ast.literal_eval(v)
        except (ValueError, TypeError, SyntaxError):
            raise UserError(
                f"genotype text: the value of {kw.arg!r} is not a literal list or range"
            ) from None
    return out


def parse_arch(arch: Any) -> list[CellGraph]:
    """The graphs of an architecture: a NAS-Bench-201 cell string (one graph), a DARTS genotype dict
    (one per cell type), or either as JSON text (or DARTS's ``Genotype(...)`` text)."""
    if isinstance(arch, dict):
        return parse_darts(arch)
    if isinstance(arch, str):
        text = arch.strip()
        if text.startswith("|") or ("~" in text and not text.startswith(("{", '"'))):
            return [parse_nb201(text)]
        if text.startswith(("{", '"')):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as e:
                raise UserError(f"architecture text is not valid JSON ({e})") from None
            if isinstance(value, dict | str):
                return parse_arch(value)
            arch = value
        elif text.startswith("Genotype("):
            return parse_darts(_genotype_text(text))
        else:
            raise UserError(
                f"architecture {_short(text)!r} is neither a NAS-Bench-201 cell string "
                f"('|op~0|+|op~0|op~1|+...') nor a DARTS genotype ({DARTS_EXAMPLE})"
            )
    raise UserError(
        "an architecture is a NAS-Bench-201 cell string or a DARTS genotype dict, "
        f"not a {type(arch).__name__}"
    )


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


# ---- DOT -----------------------------------------------------------------------------------------


def _q(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: CellGraph) -> str:
    """Graphviz DOT text of one cell, left to right, in the style of DARTS's drawings."""
    lines = [
        f"digraph {_q(graph.name)} {{",
        f'  graph [rankdir=LR, label={_q(graph.title)}, labelloc=t, fontsize=20, fontname="times"];',
        "  node [style=filled, shape=rect, align=center, fontsize=20, height=0.5, width=0.5, penwidth=2, "
        'fontname="times"];',
        '  edge [fontsize=20, fontname="times"];',
    ]
    for n in graph.nodes:
        lines.append(f"  {_q(n.id)} [label={_q(n.label)}, fillcolor={NODE_FILL[n.kind]}];")
    for e in graph.edges:
        if e.op:
            colour = OP_COLOURS.get(e.op, OTHER_OP)
            lines.append(
                f'  {_q(e.src)} -> {_q(e.dst)} [label={_q(e.op)}, color="{colour}", fontcolor="{colour}"];'
            )
        else:
            lines.append(f"  {_q(e.src)} -> {_q(e.dst)} [color=gray];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---- files ---------------------------------------------------------------------------------------


def graph_stem(graph: CellGraph, stem: str, n_graphs: int) -> str:
    """File stem of a graph: ``stem`` alone, or ``stem_normal`` / ``stem_reduce`` for several."""
    return stem if n_graphs == 1 else f"{stem}_{graph.name}"


def resolve_backend(backend: str) -> str:
    """``dot`` or ``matplotlib``: ``auto`` is ``dot`` when Graphviz's ``dot`` is on ``PATH``; ``dot``
    without the program is a one-line error."""
    if backend not in BACKENDS:
        raise UserError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    found = shutil.which("dot")
    if backend == "dot" and found is None:
        raise UserError(
            "backend 'dot' needs Graphviz's dot program on PATH; install graphviz or use matplotlib"
        )
    if backend == "auto":
        return "dot" if found else "matplotlib"
    return backend


def draw(arch: Any, out_dir: str | os.PathLike, stem: str = "cell", backend: str = "auto") -> list[str]:
    """Write ``<stem>.dot``, ``.png`` and ``.pdf`` of every graph of ``arch`` (``<stem>_normal.*`` and
    ``<stem>_reduce.*`` for a DARTS genotype) into ``out_dir``; returns the paths written. ``arch`` is
    anything :func:`parse_arch` reads, or its list of graphs."""
    from nas.io import atomic_write_bytes

    graphs = (
        arch if isinstance(arch, list) and all(isinstance(g, CellGraph) for g in arch) else parse_arch(arch)
    )
    kind = resolve_backend(backend)
    dot = shutil.which("dot") if kind == "dot" else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[str] = []
    for g in graphs:
        base = out / graph_stem(g, stem, len(graphs))
        dot_path = base.with_name(base.name + ".dot")
        atomic_write_bytes(dot_path, to_dot(g).encode())
        paths.append(str(dot_path))
        if kind == "dot":
            paths += run_dot(dot, dot_path, base)
        else:
            paths += draw_matplotlib(g, str(base))
    return paths


def run_dot(dot: str, dot_path: Path, base: Path) -> list[str]:
    """Render ``dot_path`` to ``base.png`` and ``base.pdf`` with the ``dot`` program."""
    paths = []
    for fmt in ("png", "pdf"):
        target = base.with_name(f"{base.name}.{fmt}")
        cmd = [dot, f"-T{fmt}", str(dot_path), "-o", str(target)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise UserError(f"running {dot} -T{fmt} failed ({e}); use the matplotlib backend") from None
        if done.returncode != 0 or not target.is_file() or target.stat().st_size == 0:
            why = (done.stderr or "").strip().splitlines()
            detail = why[0] if why else f"exit status {done.returncode}, no {target.name}"
            raise UserError(f"{dot} -T{fmt} {dot_path} failed: {detail}; use the matplotlib backend")
        paths.append(str(target))
    return paths


# ---- matplotlib ----------------------------------------------------------------------------------

Point = tuple[float, float]
Box = tuple[float, float, float, float]  # x0, y0, x1, y1

# Geometry in inches (one data unit is one inch of the figure).
NODE_H = 0.46
LAYER_DY = 1.35  # between nodes of one layer
LABEL_PT = 9  # edge labels
NODE_PT = 11
BENDS = (0.0, 0.14, -0.14, 0.22, -0.22, 0.3, -0.3, 0.4, -0.4, 0.5, -0.5)
LABEL_TS = (0.5, 0.42, 0.58, 0.34, 0.66, 0.27, 0.73, 0.21, 0.79)


def _node_text(label: str) -> str:
    return f"${label}$" if "_{" in label else label


def _text_width(text: str, pt: float) -> float:
    """Rough width in inches of ``text`` at ``pt`` points (used to space the layers)."""
    return 0.6 * pt / 72 * len(text)


def layers(graph: CellGraph) -> dict[str, int]:
    """Layer of every node: inputs 0, others one more than their furthest predecessor (the output
    after every other node)."""
    preds: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    for e in graph.edges:
        preds[e.dst].append(e.src)
    layer: dict[str, int] = {}

    def visit(node_id: str, seen: tuple[str, ...] = ()) -> int:
        if node_id not in layer:
            if node_id in seen:
                raise UserError(f"cell {graph.name!r} has a cycle through node {node_id!r}")
            ps = [visit(p, (*seen, node_id)) for p in preds[node_id]]
            layer[node_id] = 0 if graph.node(node_id).kind == "input" else 1 + max(ps, default=0)
        return layer[node_id]

    for n in graph.nodes:
        visit(n.id)
    inner = [layer[n.id] for n in graph.nodes if n.kind != "output"]
    for n in graph.nodes:
        if n.kind == "output":
            layer[n.id] = max([*inner, layer[n.id] - 1]) + 1
    return layer


def layout(graph: CellGraph) -> dict[str, Point]:
    """Centre of every node in inches: layers left to right, each layer's nodes centred vertically,
    ordered by the mean height of their predecessors (one left-to-right sweep). A gap between two
    layers is wider the more labelled edges cross it."""
    layer = layers(graph)
    widest = max((_text_width(e.op, LABEL_PT) for e in graph.edges), default=0.5)
    n_layers = max(layer.values()) + 1
    x = [0.0]
    for k in range(n_layers - 1):
        crossing = sum(1 for e in graph.edges if e.op and layer[e.src] <= k < layer[e.dst])
        x.append(x[-1] + (max(2.0, widest + 1.5) + 0.22 * max(0, crossing - 3) if crossing else 1.8))
    preds: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    for e in graph.edges:
        preds[e.dst].append(e.src)
    order = {n.id: i for i, n in enumerate(graph.nodes)}
    pos: dict[str, Point] = {}
    for k in range(n_layers):
        members = [n.id for n in graph.nodes if layer[n.id] == k]

        def key(node_id: str) -> tuple[float, int]:
            ys = [pos[p][1] for p in preds[node_id] if p in pos]
            return (-sum(ys) / len(ys) if ys else 0.0, order[node_id])

        if k > 0:
            members.sort(key=key)
        for i, node_id in enumerate(members):
            pos[node_id] = (x[k], ((len(members) - 1) / 2 - i) * LAYER_DY)
    return pos


def _bezier(p0: Point, c: Point, p2: Point, t: float) -> Point:
    a, b, d = (1 - t) ** 2, 2 * t * (1 - t), t * t
    return (a * p0[0] + b * c[0] + d * p2[0], a * p0[1] + b * c[1] + d * p2[1])


def _inside(p: Point, box: Box, pad: float = 0.0) -> bool:
    x0, y0, x1, y1 = box
    return x0 - pad <= p[0] <= x1 + pad and y0 - pad <= p[1] <= y1 + pad


def _crossings(pts: np.ndarray, segments: tuple[np.ndarray, np.ndarray]) -> int:
    """How many times the polyline ``pts`` properly crosses the segments ``(starts, ends)``."""
    a, b = pts[:-1, None, :], pts[1:, None, :]
    c, d = segments[0][None], segments[1][None]

    def orient(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        return (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (
            r[..., 0] - p[..., 0]
        )

    return int(np.sum((orient(a, b, c) * orient(a, b, d) < 0) & (orient(c, d, a) * orient(c, d, b) < 0)))


def _in_box(pts: np.ndarray, box: Box, pad: float) -> np.ndarray:
    x0, y0, x1, y1 = box
    return (
        (pts[:, 0] >= x0 - pad) & (pts[:, 0] <= x1 + pad) & (pts[:, 1] >= y0 - pad) & (pts[:, 1] <= y1 + pad)
    )


@dataclass
class _Route:
    edge: Edge
    p0: Point
    c: Point
    p2: Point
    bend: float

    def point(self, t: float) -> Point:
        return _bezier(self.p0, self.c, self.p2, t)

    def polyline(self, n: int = 40) -> np.ndarray:
        """``n + 1`` points along the curve, shape ``(n + 1, 2)``."""
        t = np.linspace(0, 1, n + 1)[:, None]
        return (
            (1 - t) ** 2 * np.array(self.p0) + 2 * t * (1 - t) * np.array(self.c) + t * t * np.array(self.p2)
        )


def _clip(p0: Point, c: Point, p2: Point, src_box: Box, dst_box: Box) -> tuple[Point, Point, Point]:
    """The part of the curve outside both end boxes, as a quadratic curve (blossoming)."""
    ts = [i / 200 for i in range(201)]
    t0 = next((t for t in ts if not _inside(_bezier(p0, c, p2, t), src_box, 0.02)), 0.0)
    t1 = next((t for t in reversed(ts) if not _inside(_bezier(p0, c, p2, t), dst_box, 0.04)), 1.0)
    if t1 <= t0:  # overlapping boxes: keep the whole curve
        t0, t1 = 0.0, 1.0

    def blossom(u: float, v: float) -> Point:
        w0, w1, w2 = (1 - u) * (1 - v), (1 - u) * v + u * (1 - v), u * v
        return (w0 * p0[0] + w1 * c[0] + w2 * p2[0], w0 * p0[1] + w1 * c[1] + w2 * p2[1])

    return blossom(t0, t0), blossom(t0, t1), blossom(t1, t1)


def route(graph: CellGraph, pos: dict[str, Point], boxes: dict[str, Box]) -> list[_Route]:
    """A quadratic curve per edge: the least bent that misses every other node, with few crossings of
    the edges routed before it (shorter edges first); parallel edges get distinct bends."""
    layer = layers(graph)
    todo = sorted(graph.edges, key=lambda e: (abs(layer[e.dst] - layer[e.src]), graph.edges.index(e)))
    done: list[_Route] = []
    for e in todo:
        a, b = pos[e.src], pos[e.dst]
        length = math.dist(a, b)
        ux, uy = (b[0] - a[0]) / length, (b[1] - a[1]) / length
        # bends of the edges between the same two nodes, as seen in this edge's direction
        siblings = [
            r.bend if r.edge.src == e.src else -r.bend
            for r in done
            if {r.edge.src, r.edge.dst} == {e.src, e.dst}
        ]
        best, best_cost = None, math.inf
        lines = [o.polyline() for o in done]
        segments = (
            np.concatenate([q[:-1] for q in lines] or [np.zeros((0, 2))]),
            np.concatenate([q[1:] for q in lines] or [np.zeros((0, 2))]),
        )
        placed = np.concatenate(lines or [np.zeros((0, 2))])
        others = [box for nid, box in boxes.items() if nid not in (e.src, e.dst)]
        for bend in BENDS:
            if any(abs(bend - s) < 0.12 for s in siblings):
                continue
            mid = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
            c = (mid[0] - uy * bend * length, mid[1] + ux * bend * length)
            r = _Route(e, *_clip(a, c, b, boxes[e.src], boxes[e.dst]), bend)
            pts = r.polyline()
            if any(_in_box(pts, box, 0.18).any() for box in others):
                continue
            # points running close beside an edge routed before (away from the shared end nodes)
            away = ~(_in_box(pts, boxes[e.src], 0.5) | _in_box(pts, boxes[e.dst], 0.5))
            near = 0
            if len(placed):
                dist = np.sqrt(((pts[:, None, :] - placed[None, :, :]) ** 2).sum(-1)).min(1)
                near = int(np.sum(away & (dist < 0.3)))
            cost = _crossings(pts, segments) + 0.05 * near + abs(bend)
            if cost < best_cost:
                best, best_cost = r, cost
        if best is None:  # every bend touches a node: take the most bent
            bend = BENDS[-2]
            mid = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
            c = (mid[0] - uy * bend * length, mid[1] + ux * bend * length)
            best = _Route(e, *_clip(a, c, b, boxes[e.src], boxes[e.dst]), bend)
        done.append(best)
    return sorted(done, key=lambda r: graph.edges.index(r.edge))


def _overlap(a: Any, b: Any) -> float:
    """Overlap area of two matplotlib Bboxes."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def draw_matplotlib(graph: CellGraph, stem: str) -> list[str]:
    """``stem.png`` and ``stem.pdf`` of one cell drawn with matplotlib; returns the two paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path as MplPath

    from nas.analysis import save_figure

    pos = layout(graph)
    boxes = {}
    for n in graph.nodes:
        w = max(0.62, _text_width(n.label.replace("_{", "").replace("}", ""), NODE_PT) + 0.3)
        x, y = pos[n.id]
        boxes[n.id] = (x - w / 2, y - NODE_H / 2, x + w / 2, y + NODE_H / 2)
    routes = route(graph, pos, boxes)

    xs = [v for b in boxes.values() for v in (b[0], b[2])] + [p[0] for r in routes for p in r.polyline(8)]
    ys = [v for b in boxes.values() for v in (b[1], b[3])] + [p[1] for r in routes for p in r.polyline(8)]
    margin = 0.45
    x0, x1, y0, y1 = min(xs) - margin, max(xs) + margin, min(ys) - margin, max(ys) + margin + 0.3
    fig = plt.figure(figsize=(x1 - x0, y1 - y0))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.text((x0 + x1) / 2, y1 - 0.12, graph.title, ha="center", va="top", fontsize=12, fontweight="bold")

    node_patches = []
    for n in graph.nodes:
        bx0, by0, bx1, by1 = boxes[n.id]
        patch = FancyBboxPatch(
            (bx0, by0), bx1 - bx0, by1 - by0, boxstyle="round,pad=0,rounding_size=0.08",
            facecolor=NODE_FILL_HEX[n.kind], edgecolor="black", linewidth=1.6, zorder=3,
        )  # fmt: skip
        ax.add_patch(patch)
        node_patches.append(patch)
        ax.text(*pos[n.id], _node_text(n.label), ha="center", va="center", fontsize=NODE_PT, zorder=4)

    for r in routes:
        colour = OP_COLOURS.get(r.edge.op, OTHER_OP) if r.edge.op else "#9a9a9a"
        path = MplPath([r.p0, r.c, r.p2], [MplPath.MOVETO, MplPath.CURVE3, MplPath.CURVE3])
        ax.add_patch(
            FancyArrowPatch(
                path=path, arrowstyle="-|>", mutation_scale=13, color=colour, linewidth=1.4, zorder=2
            )
        )

    # Labels: at the point along the edge (tried from its middle outwards) where the label overlaps
    # the fewest nodes, labels placed before and other edges (a label on a crossing is ambiguous).
    renderer = fig.canvas.get_renderer()
    taken = [p.get_window_extent(renderer) for p in node_patches]
    lines = {id(r): ax.transData.transform(r.polyline(80)) for r in routes}
    labelled = sorted((r for r in routes if r.edge.op), key=lambda r: -abs(r.bend))
    for r in labelled:
        colour = OP_COLOURS.get(r.edge.op, OTHER_OP)
        text = ax.text(
            0, 0, r.edge.op, ha="center", va="center", fontsize=LABEL_PT, color=colour, zorder=5,
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.9},
        )  # fmt: skip
        others = np.concatenate([pts for key, pts in lines.items() if key != id(r)] or [np.zeros((0, 2))])
        best_t, best_cost = LABEL_TS[0], math.inf
        for i, t in enumerate(LABEL_TS):
            text.set_position(r.point(t))
            ext = text.get_window_extent(renderer).expanded(1.08, 1.3)
            on_edges = np.sum(
                (others[:, 0] >= ext.x0)
                & (others[:, 0] <= ext.x1)
                & (others[:, 1] >= ext.y0)
                & (others[:, 1] <= ext.y1)
            )
            cost = sum(_overlap(ext, o) for o in taken) + 60.0 * on_edges + 5.0 * i
            if cost < best_cost:
                best_t, best_cost = t, cost
        text.set_position(r.point(best_t))
        taken.append(text.get_window_extent(renderer))
    return save_figure(fig, stem, dpi=150)
