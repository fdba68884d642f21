"""The DARTS cell space: genotype encoding, validation, repair, features, the evaluation network and
its costs, and the differentiable DARTS / PC-DARTS supernet (mixed and single-path forwards,
derivation, ranking)."""

import copy
import math
import re

import numpy as np
import pytest
import torch

import weightsharing.darts_space  # noqa: F401  (registers the space and the supernet)
from nas.costs import measure_costs
from nas.errors import UserError
from nas.space import get_search_space, list_search_spaces
from weightsharing.darts_space import (
    CELL_OPS,
    DARTS_V1,
    DARTS_V2,
    EDGES,
    PC_DARTS,
    PRIMITIVES,
    DartsSupernet,
    edge_row,
)
from weightsharing.supernet import SUPERNETS

PUBLISHED = {"DARTS_V1": DARTS_V1, "DARTS_V2": DARTS_V2, "PC_DARTS": PC_DARTS}
KEYS = ("normal", "reduce")
EDGE_MODULE = re.compile(r"cells\.\d+\.edges\.\d+(\.candidates\.\d+)?")  # a MixedOp or a candidate


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks: one thread is as fast and does not stall when other jobs share the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def space():
    return get_search_space("darts")


@pytest.fixture(scope="module")
def tiny():
    return get_search_space("darts", init_channels=4, layers=3, image_size=16)


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return DartsSupernet(10, channels=4, cells=3)


def table(fill=0.01, **cells):
    """{"normal", "reduce"} 14 x 8 tables of ``fill`` with the given {(row, op name): value} set."""
    out = {}
    for key in KEYS:
        t = np.full((len(EDGES), len(PRIMITIVES)), fill)
        for (row, op), v in cells.get(key, {}).items():
            t[row, PRIMITIVES.index(op)] = v
        out[key] = t
    return out


# ---- the space ----------------------------------------------------------------------------------


def test_registered_with_exact_bounds(space):
    assert "darts" in list_search_spaces() and SUPERNETS.get("darts") is DartsSupernet
    assert PRIMITIVES == (
        "none",
        "max_pool_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "sep_conv_3x3",
        "sep_conv_5x5",
        "dil_conv_3x3",
        "dil_conv_5x5",
    )
    assert space.n_var == 32 and space.xl.tolist() == [0] * 32
    per_cell = [v for node in range(4) for v in (node + 1, 6, node + 1, 6)]
    assert space.xu.tolist() == per_cell * 2
    assert space.has("costs") and not space.has("supernet")


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_genotypes_round_trip(space, name):
    g = PUBLISHED[name]
    assert space.validate(g) == g  # valid, in the papers' edge order
    x = space.encode(g)
    assert np.array_equal(space.repair(x), x)
    assert space.decode(x) == g
    assert space.decode(space.encode(space.canonical(g))) == space.canonical(g)


def test_example_genes(space):
    x = space.encode(DARTS_V2)
    # normal node 0: (sep_conv_3x3 <- 0), (sep_conv_3x3 <- 1); reduce node 3: (skip <- 2), (max_pool <- 1)
    assert x[:4].tolist() == [0, 3, 1, 3]
    assert x[-4:].tolist() == [2, CELL_OPS.index("skip_connect"), 1, CELL_OPS.index("max_pool_3x3")]


def test_random_round_trip_and_sampling_reaches_every_value(space):
    rng = np.random.default_rng(0)
    archs = space.sample(300, rng)
    xs = np.stack([space.encode(a) for a in archs])
    for a, x in zip(archs, xs, strict=True):
        assert space.validate(a) == a and space.decode(x) == a
    assert xs.min(axis=0).tolist() == space.xl.tolist() and xs.max(axis=0).tolist() == space.xu.tolist()
    for _ in range(100):  # genes in bounds -> repair -> decode -> the same genes
        x = space.repair(rng.integers(space.xl, space.xu + 1))
        assert np.array_equal(space.encode(space.decode(x)), x)
    child = space.mutate(DARTS_V2, rng)
    assert space.arch_id(child) != space.arch_id(DARTS_V2)
    assert all(space.validate(n) == n for n in space.neighbours(DARTS_V2))


def test_canonical_sorts_each_node_so_swapped_edges_share_an_id(space):
    swapped = copy.deepcopy(DARTS_V1)
    swapped["normal"][0], swapped["normal"][1] = swapped["normal"][1], swapped["normal"][0]
    swapped["reduce"][6], swapped["reduce"][7] = swapped["reduce"][7], swapped["reduce"][6]
    assert swapped != DARTS_V1 and not np.array_equal(space.encode(swapped), space.encode(DARTS_V1))
    assert space.canonical(swapped) == space.canonical(DARTS_V1)
    assert space.arch_id(swapped) == space.arch_id(DARTS_V1)
    canon = space.canonical(DARTS_V1)
    assert canon["normal"][:2] == [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]]
    assert space.canonical(canon) == canon
    ids = {space.arch_id(g) for g in PUBLISHED.values()}
    assert len(ids) == 3
    # tuples and ranges (DARTS's own Genotype form) are the same architecture
    as_tuples = {k: [tuple(p) for p in v] if k in KEYS else range(2, 6) for k, v in DARTS_V2.items()}
    assert space.validate(as_tuples) == DARTS_V2 and space.arch_id(as_tuples) == space.arch_id(DARTS_V2)


def _with(cell, index, pair):
    g = copy.deepcopy(DARTS_V2)
    g[cell][index] = pair
    return g


@pytest.mark.parametrize(
    "bad,match",
    [
        ("|sep_conv_3x3~0|", "genotype dict .* not a str"),
        ({k: v for k, v in DARTS_V2.items() if k != "reduce"}, "lacks reduce"),
        ({**DARTS_V2, "extra": 1}, "unknown key.* extra"),
        ({**DARTS_V2, "normal": DARTS_V2["normal"][:7]}, "'normal' must list 8 .* got 7 item"),
        (_with("normal", 2, ["sep_conv_3x3"]), r"normal\[2\] \(node 1\) = .* must be a pair"),
        (_with("reduce", 0, ["conv_7x7", 0]), r"reduce\[0\] \(node 0\): unknown operation 'conv_7x7'"),
        (_with("normal", 5, ["none", 2]), r"normal\[5\] \(node 2\) uses 'none'"),
        (_with("normal", 1, ["sep_conv_3x3", 2]), r"input 2 is out of range; node 0 takes inputs 0..1"),
        (_with("reduce", 7, ["skip_connect", 5]), r"reduce\[7\] \(node 3\): input 5 is out of range"),
        (_with("normal", 3, ["sep_conv_3x3", "1"]), "input '1' must be an integer"),
        (_with("normal", 3, ["sep_conv_3x3", True]), "input True must be an integer"),
        (_with("normal", 1, ["skip_connect", 0]), "both edges of normal node 0 take input 0"),
        ({**DARTS_V2, "reduce_concat": [2, 3, 4]}, r"reduce_concat must be \[2, 3, 4, 5\]"),
    ],
)
def test_validate_names_what_is_wrong_in_one_line(space, bad, match):
    with pytest.raises(UserError, match=match) as err:
        space.validate(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError):
        space.encode(bad)


def test_decode_checks_bounds_and_distinct_inputs(space):
    x = space.encode(DARTS_V2)
    x[2] = x[0]  # normal node 0: both edges from input 0
    with pytest.raises(UserError, match="both edges of normal node 0 take input 0"):
        space.decode(x)
    y = x.copy()
    y[1] = 7
    with pytest.raises(UserError, match=r"gene 1 = 7 is outside its bounds \[0, 6\]"):
        space.decode(y)


def test_repair_makes_inputs_distinct_deterministically(space):
    x = space.encode(DARTS_V2)
    assert space.repair(x) is x
    bad = x.copy()
    bad[[0, 2]] = 1  # normal node 0: inputs 1, 1 -> 1, 0
    bad[[16 + 12, 16 + 14]] = 4  # reduce node 3: inputs 4, 4 -> 4, 0
    bad[[4, 6]] = 1  # normal node 1: inputs 1, 1 -> 1, 2
    fixed = space.repair(bad)
    assert fixed is not bad and bad[2] == 1  # the input is not modified
    assert (
        fixed[[0, 2]].tolist() == [1, 0]
        and fixed[[28, 30]].tolist() == [4, 0]
        and fixed[[4, 6]].tolist() == [1, 2]
    )
    assert np.array_equal(np.delete(fixed, [2, 6, 30]), np.delete(bad, [2, 6, 30]))
    assert np.array_equal(space.repair(bad), fixed)
    space.decode(fixed)
    for x in space.xl, space.xu:  # the base class's smallest/largest path goes through repair too
        space.decode(space.repair(x))


def test_features_and_names(space):
    f = space.features(DARTS_V2)
    names = space.feature_names()
    assert f.shape == (196,) == (len(names),) and len(set(names)) == 196 and f.sum() == 16
    on = {names[j] for j in np.flatnonzero(f)}
    assert "normal_n3_in2.dil_conv_3x3" in on and "reduce_n0_in1.max_pool_3x3" in on
    assert np.array_equal(f, space.features(space.canonical(DARTS_V2)))
    groups = space.growth_groups()
    assert [len(g) for g in groups] == [8] * 4
    assert sorted(np.concatenate(groups).tolist()) == list(range(32))
    assert groups[1].tolist() == [4, 5, 6, 7, 20, 21, 22, 23]  # node 1 of the normal and reduce cells


# ---- the evaluation network and its costs -------------------------------------------------------


def test_build_runs_at_tiny_size(tiny):
    net = tiny.build(DARTS_V2, n_classes=7)
    assert [c.reduction for c in net.cells] == [False, True, True]
    assert net.stem[0].out_channels == 12 and net.classifier.in_features == 4 * 16
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 16, 16)).shape == (2, 7)
        assert net(torch.randn(1, 3, 15, 15)).shape == (1, 7)  # odd maps reduce too
    with pytest.raises(UserError, match="from scratch"):
        tiny.build(DARTS_V2, supernet=object())
    with pytest.raises(UserError, match="n_classes"):
        tiny.build(DARTS_V2, n_classes=0)


def test_costs_equal_measure_costs_and_are_cached(tiny):
    archs = [
        DARTS_V1,
        DARTS_V2,
        PC_DARTS,
        tiny.smallest(),
        tiny.largest(),
        *tiny.sample(3, np.random.default_rng(1)),
    ]
    state = torch.random.get_rng_state()
    costs = [tiny.costs(a, 10) for a in archs]
    assert torch.equal(torch.random.get_rng_state(), state)  # building for costs draws nothing
    for a, c in zip(archs, costs, strict=True):
        assert c == measure_costs(tiny.build(a, n_classes=10), 16, "cpu")
    assert tiny.costs(DARTS_V2, 10, 32) == measure_costs(tiny.build(DARTS_V2), 32, "cpu")
    swapped = copy.deepcopy(DARTS_V2)
    swapped["normal"][:2] = swapped["normal"][1::-1]
    assert tiny.costs(swapped) == costs[1]
    for c in costs[5:]:
        for metric in ("params", "macs", "activations"):
            assert costs[3][metric] <= c[metric] <= costs[4][metric]


def test_published_params_at_channels_36_layers_20(space):
    # DARTS reports 3.3 M (V2) and PC-DARTS 3.6 M parameters on CIFAR-10, without the auxiliary head
    v2 = space.costs(DARTS_V2)
    assert v2["params"] == pytest.approx(3.349342, abs=1e-6) and abs(v2["params"] - 3.3) < 0.1
    assert v2["macs"] == pytest.approx(528.35904, abs=1e-6)
    assert space.costs(PC_DARTS)["params"] == pytest.approx(3.634678, abs=1e-6)


# ---- the supernet -------------------------------------------------------------------------------


def test_supernet_contract(supernet):
    assert supernet.space_name == "darts" and supernet.op_names == PRIMITIVES
    assert supernet.config == {"channels": 4, "cells": 3, "partial_channels": 1, "affine": False}
    assert supernet.arch_shapes() == {"normal": (14, 8), "reduce": (14, 8)}
    assert supernet.node_edges("normal") == [[0, 1], [2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12, 13]]
    assert [c.reduction for c in supernet.cells] == [False, True, True]
    reduce = supernet.cells[1]
    for k, (_, inp) in enumerate(EDGES):  # stride 2 exactly on the edges from the cell's inputs
        assert reduce.edges[k].candidates[PRIMITIVES.index("max_pool_3x3")][0].stride == (2 if inp < 2 else 1)
    with pytest.raises(UserError, match="partial_channels 3"):
        DartsSupernet(10, channels=4, partial_channels=3)


def test_mixed_forward_reaches_every_weight(supernet):
    gen = torch.Generator().manual_seed(0)
    alphas = {k: (1e-3 * torch.randn(14, 8, generator=gen)).requires_grad_() for k in KEYS}
    betas = {k: (1e-3 * torch.randn(14, generator=gen)).requires_grad_() for k in KEYS}
    x = torch.randn(2, 3, 8, 8, generator=gen)
    weights = {k: torch.softmax(a, -1) for k, a in alphas.items()}
    out = supernet(x, weights=weights, edge_weights=supernet.normalised_edges(betas))
    assert out.shape == (2, 10)
    out.square().sum().backward()
    for k in KEYS:
        assert (alphas[k].grad[:, 1:] != 0).all() and (betas[k].grad != 0).all()
    supernet.zero_grad()


def _called(net, run):
    """The MixedOps and candidates (by name) that ``run()`` calls."""
    called, handles = set(), []
    for name, m in net.named_modules():
        if EDGE_MODULE.fullmatch(name):
            handles.append(m.register_forward_hook(lambda mod, i, o, name=name: called.add(name)))
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return called


def test_path_forward_runs_only_the_chosen_operations(supernet):
    path = supernet.path_of(DARTS_V2)
    assert path["normal"][:2] == [PRIMITIVES.index("sep_conv_3x3")] * 2
    assert path["normal"][edge_row(3, 2)] == PRIMITIVES.index("dil_conv_3x3")
    assert sum(p > 0 for p in path["reduce"]) == 8
    x = torch.randn(2, 3, 8, 8)
    called = _called(supernet, lambda: supernet(x, path=path))
    expected = set()
    for i, cell in enumerate(supernet.cells):
        for k, op in enumerate(path[cell.key]):
            if op:
                expected |= {f"cells.{i}.edges.{k}", f"cells.{i}.edges.{k}.candidates.{op}"}
    assert called == expected and len(expected) == 3 * 16
    mixed = _called(supernet, lambda: supernet(x, weights=table(0.125)))
    assert len(mixed) == 3 * 14 * 8  # every edge and every candidate but `none`
    with torch.no_grad():
        assert supernet(x, path=path).shape == (2, 10)


def test_partial_channels_keep_shapes():
    torch.manual_seed(0)
    net = DartsSupernet(5, channels=4, cells=3, partial_channels=2, affine=True)
    x = torch.randn(2, 3, 8, 8)
    edge = net.cells[1].edges[0]  # a stride-2 edge of a reduction cell: 8 channels, 4 through the ops
    assert edge.partial == 2 and isinstance(edge.bypass, torch.nn.MaxPool2d)
    assert edge.candidates[PRIMITIVES.index("sep_conv_3x3")][1].in_channels == 4
    assert net(x, weights=table(0.125)).shape == (2, 5)
    path = net.random_path(torch.Generator().manual_seed(3))
    assert net(x, path=path).shape == (2, 5)
    assert net(torch.randn(1, 3, 7, 7), weights=table(0.125)).shape == (1, 5)  # odd maps


def test_random_path_is_a_valid_cell(supernet, space):
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(50):
        path = supernet.random_path(gen)
        arch = {}
        for key in KEYS:
            p = path[key]
            assert len(p) == 14 and all(0 <= v < 8 for v in p)
            pairs = []
            for rows in supernet.node_edges(key):
                chosen = [r for r in rows if p[r]]
                assert len(chosen) == 2  # two distinct inputs, each with a non-none op
                pairs += [[PRIMITIVES[p[r]], EDGES[r][1]] for r in chosen]
            arch[key], arch[f"{key}_concat"] = pairs, [2, 3, 4, 5]
        assert supernet.path_of(space.validate(arch)) == path
        seen.add(space.arch_id(arch))
    assert len(seen) == 50


def test_derive_keeps_the_two_strongest_edges(supernet, space):
    normal = {
        (0, "none"): 0.9,  # node 0: only two edges, `none` never counts
        (0, "sep_conv_3x3"): 0.5,
        (1, "skip_connect"): 0.3,
        (2, "none"): 0.99,  # node 1: input 0 is strongest only through `none`
        (2, "max_pool_3x3"): 0.05,
        (3, "dil_conv_5x5"): 0.4,
        (4, "avg_pool_3x3"): 0.2,
        (5, "sep_conv_5x5"): 0.3,  # node 2: inputs 0 and 3
        (8, "dil_conv_3x3"): 0.6,
        (7, "sep_conv_3x3"): 0.25,
        (13, "skip_connect"): 0.7,  # node 3: inputs 4 and 1
        (10, "max_pool_3x3"): 0.5,
        (9, "sep_conv_3x3"): 0.45,
    }
    weights = table(normal=normal)
    arch = supernet.derive(weights)
    assert space.validate(arch) == arch == space.canonical(arch)
    assert arch["normal"] == [
        ["sep_conv_3x3", 0],
        ["skip_connect", 1],
        ["dil_conv_5x5", 1],
        ["avg_pool_3x3", 2],
        ["sep_conv_5x5", 0],
        ["dil_conv_3x3", 3],
        ["max_pool_3x3", 1],
        ["skip_connect", 4],
    ]
    # uniform reduce table: ties keep the lowest inputs and the first non-none operation
    assert arch["reduce"] == [["max_pool_3x3", i] for _ in range(4) for i in (0, 1)]
    edges = {k: np.ones(14) for k in KEYS}
    edges["normal"][9] = 2.0  # PC-DARTS: the edge weight scales the score (0.45 * 2 > 0.5)
    assert supernet.derive(weights, edges)["normal"][6:] == [["sep_conv_3x3", 0], ["skip_connect", 4]]
    torch_weights = {k: torch.tensor(v) for k, v in weights.items()}
    assert supernet.derive(torch_weights) == arch
    with pytest.raises(ValueError, match="shape"):
        supernet.derive({k: np.ones((6, 5)) for k in KEYS})


def test_ranked_gives_distinct_valid_archs_derived_first(supernet, space):
    rng = np.random.default_rng(0)
    weights = {}
    for key in KEYS:
        logits = rng.normal(size=(14, 8))
        weights[key] = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    ranked = supernet.ranked(weights, 40)
    assert len(ranked) == 40 and ranked[0] == supernet.derive(weights)
    assert len({space.arch_id(a) for a in ranked}) == 40
    assert all(space.validate(a) == a for a in ranked)

    def logp(arch):
        return sum(
            math.log(weights[key][edge_row(j // 2, inp), PRIMITIVES.index(op)])
            for key in KEYS
            for j, (op, inp) in enumerate(arch[key])
        )

    scores = [logp(a) for a in ranked]
    assert all(a >= b - 1e-12 for a, b in zip(scores, scores[1:], strict=False))
    assert supernet.ranked(weights, 1) == [ranked[0]] and supernet.ranked(weights, 0) == []
