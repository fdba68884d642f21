"""The NAS-Bench-201 cell space: exact encoding over all 15,625 cells, network, analytic costs."""

import itertools
import json

import numpy as np
import pytest
import torch

from nas.costs import count_costs, measure_costs
from nas.errors import UserError
from nas.space import get_search_space, list_search_spaces
from NasSearchSpace.nb201 import N_CELLS, OPS, cell_ops, cell_string

EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def space():
    return get_search_space("nb201")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks: one thread is as fast and does not stall when other jobs share the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_registered_with_exact_bounds(space):
    assert "nb201" in list_search_spaces()
    assert space.n_var == 6
    assert space.xl.tolist() == [0] * 6 and space.xu.tolist() == [4] * 6
    assert OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def test_example_encoding(space):
    x = space.encode(EXAMPLE)
    assert x.tolist() == [3, 3, 4, 1, 3, 1]  # edges 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2
    assert space.decode(x) == EXAMPLE
    assert space.validate(EXAMPLE) == EXAMPLE
    assert cell_ops(EXAMPLE) == (
        "nor_conv_3x3",
        "nor_conv_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "nor_conv_3x3",
        "skip_connect",
    )


def test_round_trip_over_all_cells(space):
    seen = set()
    for genes in itertools.product(range(5), repeat=6):
        x = np.array(genes)
        arch = space.decode(x)
        assert np.array_equal(space.encode(arch), x)
        seen.add(arch)
    assert len(seen) == N_CELLS == 15625
    assert seen == set(space.all_archs())
    for arch in seen:
        assert space.decode(space.encode(arch)) == arch


def test_arch_id_stable_and_distinct(space):
    ids = {space.arch_id(a) for a in space.all_archs()}
    assert len(ids) == N_CELLS
    assert space.arch_id(EXAMPLE) == space.arch_id(str(EXAMPLE))
    import hashlib

    assert space.arch_id(EXAMPLE) == hashlib.sha1(json.dumps(EXAMPLE).encode()).hexdigest()[:12]


def test_subnet_file_round_trip(space, tmp_path):
    space.write_subnet(tmp_path / "net.subnet", EXAMPLE)
    assert space.read_subnet(tmp_path / "net.subnet") == EXAMPLE


def test_features_are_one_hot(space):
    f = space.features(EXAMPLE)
    assert f.shape == (30,) and f.sum() == 6
    assert np.flatnonzero(f).tolist() == [3, 5 + 3, 10 + 4, 15 + 1, 20 + 3, 25 + 1]


def test_sampling_reaches_every_option(space):
    x = np.stack([space.encode(a) for a in space.sample(300, np.random.default_rng(0))])
    assert x.min(axis=0).tolist() == [0] * 6 and x.max(axis=0).tolist() == [4] * 6


@pytest.mark.parametrize(
    "bad,match",
    [
        (42, "not a int"),
        ({"ks": [3]}, "not a dict"),
        ("", "3 node groups"),
        ("|none~0|+|none~0|none~1|", "3 node groups"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|", "node 3 needs 3 edge"),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "must start and end with '|'"),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown operation 'conv'"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "must read 'none~0'"),
        ("|none~0|+|none~0|none~1|+|none~0|none~2|none~1|", "must read 'none~1'"),
        ("|none|+|none~0|none~1|+|none~0|none~1|none~2|", "must read 'none~0'"),
        (EXAMPLE + " ", "must start and end with '|'"),
        (EXAMPLE.replace("|+|", "||+||", 1), "node 1 needs 1 edge"),
    ],
)
def test_malformed_cell_strings(space, bad, match):
    with pytest.raises(UserError, match=match):
        space.validate(bad)
    with pytest.raises(UserError):
        space.encode(bad)


def test_decode_rejects_bad_genes(space):
    with pytest.raises(UserError, match=r"gene 2 = 5 is outside its bounds \[0, 4\]"):
        space.decode(np.array([0, 0, 5, 0, 0, 0]))
    with pytest.raises(UserError, match="gene 0 = -1"):
        space.decode(np.array([-1, 0, 0, 0, 0, 0]))
    with pytest.raises(UserError, match="expected 6 genes"):
        space.decode(np.zeros(5, dtype=int))
    with pytest.raises(UserError, match="integers"):
        space.decode(np.full(6, 0.5))


# ---- network and costs --------------------------------------------------------------------


def test_build_runs(space):
    net = space.build(EXAMPLE, n_classes=10).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
        assert space.build(space.smallest(), n_classes=120)(torch.randn(2, 3, 16, 16)).shape == (2, 120)
    with pytest.raises(UserError, match="no weight-sharing supernet"):
        space.build(EXAMPLE, supernet=net)
    with pytest.raises(UserError, match="n_classes"):
        space.build(EXAMPLE, n_classes=0)


def test_none_edges_give_zeros_and_skip_is_identity(space):
    """A cell of only 'none' edges outputs zeros; one of only 'skip_connect' edges 4x its input."""
    cell = space.build(space.smallest()).cells[0]
    x = torch.randn(1, 16, 8, 8)
    assert torch.equal(cell(x), torch.zeros_like(x))
    skip = space.build(cell_string(["skip_connect"] * 6)).cells[0]
    assert torch.allclose(skip(x), 4 * x)  # n1 = x, n2 = x + n1 = 2x, n3 = x + n1 + n2 = 4x


def test_published_cost_ranges(space):
    """NAS-Bench-201's FLOPs (= MACs) and params ranges: CIFAR-10 7.78-220.12 M, 0.073-1.532 M;
    ImageNet16-120 1.95-55.04 M, 0.081-1.539 M."""
    lo, hi = space.smallest(), space.largest()
    assert space.flops(lo) == 7.78304 and space.flops(hi) == 220.11968
    assert space.costs(lo)["params"] == 0.073306 and space.costs(hi)["params"] == 1.531546
    assert space.flops(lo, 120, 16) == 1.95328 and space.flops(hi, 120, 16) == 55.03744
    assert space.costs(lo, 120, 16)["params"] == 0.080456 and space.costs(hi, 120, 16)["params"] == 1.538696
    flops = [space.flops(a) for a in space.all_archs()]
    assert min(flops) == 7.78304 and max(flops) == 220.11968


def cost_cases(space):
    rng = np.random.default_rng(1)
    archs = [space.smallest(), space.largest(), space.decode(space.xu), EXAMPLE]
    archs += [cell_string([op] * 6) for op in OPS[1:3]]
    archs += space.sample(40, rng)
    settings = [(10, 32), (120, 16), (100, 32), (7, 8)]
    return [(a, *settings[i % len(settings)]) for i, a in enumerate(archs)] + [
        (EXAMPLE, *s) for s in settings
    ]


def test_analytic_costs_equal_hooks(space):
    for arch, n_classes, r in cost_cases(space):
        net = space.build(arch, n_classes=n_classes)
        assert space.cost_counts(arch, n_classes, r) == count_costs(net, r, CPU), (arch, n_classes, r)
        assert space.costs(arch, n_classes, r) == measure_costs(net, r, CPU)
        assert space.flops(arch, n_classes, r) == space.costs(arch, n_classes, r)["macs"]


@pytest.mark.slow
def test_analytic_costs_equal_hooks_all_cells(space):
    """All 15,625 cells at 32x32, 10 classes (about 5 minutes; run with -m slow)."""
    for arch in space.all_archs():
        assert space.cost_counts(arch, 10, 32) == count_costs(space.build(arch, n_classes=10), 32, CPU), arch


def test_costs_reject_bad_resolution(space):
    with pytest.raises(UserError, match="multiple of 4"):
        space.costs(EXAMPLE, 10, 30)
    with pytest.raises(UserError, match="n_classes"):
        space.costs(EXAMPLE, 0, 32)
