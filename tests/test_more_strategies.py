"""The strategies plug-in (ls, bo, rl, pnas) on a tiny space, driven through ask/tell as the loop
drives them: deterministic under a seed, never an evaluated architecture twice, genes within
bounds, exact resume from the state they write, each one's own mechanics, bad options."""

import json

import numpy as np
import pytest

from nas.cost_providers import CostModel
from nas.errors import UserError
from nas.result import Result
from nas.search.archive import Archive
from nas.search.objectives import Scorer, get_objective
from nas.search.strategy import STRATEGIES, SearchContext
from nas.space import GeneGroup, SearchSpace

NEW = ["ls", "bo", "rl", "pnas"]
SIZES = (4, 3, 5, 2)  # 120 architectures


class TinySpace(SearchSpace):
    name = "tiny"

    def __init__(self, options=None, **kwargs):
        super().__init__(options, **kwargs)
        self.set_gene_groups([GeneGroup(f"g{j}", tuple(range(n)), scalar=True) for j, n in enumerate(SIZES)])

    def validate(self, arch):
        if not isinstance(arch, dict) or set(arch) != {f"g{j}" for j in range(len(SIZES))}:
            raise UserError(f"not a tiny architecture: {arch!r}")
        return arch

    def build(self, arch, supernet=None, n_classes=10):
        raise NotImplementedError


def truth(arch) -> dict:
    """top-1 with one optimum (g = 3, 0, 4, 1) and an interaction; size grows with every gene."""
    g = [arch[f"g{j}"] for j in range(len(SIZES))]
    top1 = 60 - 2 * abs(g[0] - 3) - 3 * g[1] - 1.5 * abs(g[2] - 4) - 2 * (1 - g[3]) - 0.5 * g[0] * g[1]
    return {"top1": float(top1), "size": float(sum(g) + 1)}


def make(name, n_obj=1, seed=0, **options):
    objectives = [get_objective("top1")] + ([get_objective("size")] if n_obj == 2 else [])
    ctx = SearchContext(
        TinySpace(), Scorer(objectives), CostModel([]), Archive(), n_doe=6, n_iter=4, seed=seed
    )
    strategy = STRATEGIES.get(name)(options or None, ctx=ctx)
    strategy.check()
    return strategy


def evaluate(strategy, archs, k):
    space, archive = strategy.ctx.space, strategy.ctx.archive
    results = []
    for a in archs:
        x = space.encode(a)
        assert np.all((x >= space.xl) & (x <= space.xu))
        aid = space.arch_id(a)
        assert aid not in archive, "an evaluated architecture proposed again"
        r = Result(aid, a, truth(a))
        archive.add(r, k)
        results.append(r)
    strategy.tell(results)
    return results


def run(strategy, iterations, seed=0, start=0):
    """Iterations ``start + 1 ..`` (after the initial archive when ``start`` is 0); the ids proposed."""
    ids = []
    if start == 0:
        ids += [r.arch_id for r in evaluate(strategy, strategy.initial(np.random.default_rng([seed, 0])), 0)]
    for k in range(start + 1, start + 1 + iterations):
        archs = strategy.ask(np.random.default_rng([seed, k]))
        assert 0 < len(archs) <= strategy.ctx.n_iter
        assert len({strategy.ctx.space.arch_id(a) for a in archs}) == len(archs)
        ids += [r.arch_id for r in evaluate(strategy, archs, k)]
    return ids


@pytest.mark.parametrize("n_obj", [1, 2])
@pytest.mark.parametrize("name", NEW)
def test_deterministic_new_in_bounds_and_resumes_exactly(name, n_obj):
    options = {"acquisition": "ts"} if name == "bo" and n_obj == 2 else {}
    a = make(name, n_obj, **options)
    ids = run(a, 4)
    assert ids == run(make(name, n_obj, **options), 4)  # the same seed, the same search
    assert ids != run(make(name, n_obj, seed=1, **options), 4, seed=1)
    # resume after iteration 2: a fresh strategy with the archive and the state it wrote
    b = make(name, n_obj, **options)
    first = run(b, 2)
    state = json.loads(json.dumps(b.state_dict()))  # what iter_2.stats holds
    c = make(name, n_obj, **options)
    for r in b.ctx.archive:
        c.ctx.archive.add(r, b.ctx.archive.iteration_of[r.arch_id])
    c.load_state_dict(state)
    assert first + run(c, 2, start=2) == ids


@pytest.mark.parametrize("name", NEW)
def test_each_strategy_finds_the_optimum_of_the_tiny_space(name):
    s = make(name, seed=3)
    run(s, 20, seed=3)  # 6 + 80 of 120 architectures
    best = max(s.ctx.archive.ok(), key=lambda r: r.metrics["top1"]).arch
    assert [best[f"g{j}"] for j in range(len(SIZES))] == [3, 0, 4, 1]


def test_local_search_moves_to_the_first_better_neighbour():
    s = make("ls")
    run(s, 1)
    centre = s.centre
    ok = s.ctx.archive.ok()
    assert s.ctx.space.arch_id(centre) == max(ok[:6], key=lambda r: r.metrics["top1"]).arch_id
    # every proposal of iteration 1 is a one-gene neighbour of the centre
    x = s.ctx.space.encode(centre)
    assert all(int(np.sum(s.ctx.space.encode(r.arch) != x)) == 1 for r in ok[6:])
    improved = [r for r in ok[6:] if r.metrics["top1"] > truth(centre)["top1"]]
    assert improved  # (seed 0: the best random start is not a local optimum)
    s.ask(np.random.default_rng([0, 2]))  # first improvement, in the walk's order
    assert s.ctx.space.arch_id(s.centre) == improved[0].arch_id


def test_pnas_expands_one_growth_group_of_its_beam():
    s = make("pnas", beam=2)
    run(s, 1)
    assert len(s.beam) == 2 and s.step == 1
    beam = [s.ctx.space.encode(a) for a in s.beam]
    archs = s.expansions(np.random.default_rng([0, 2]))  # step 1 changes gene group 1 only
    assert archs and all(s.ctx.is_new(a, set()) for a in archs)
    for a in archs:
        x = s.ctx.space.encode(a)
        assert any(np.array_equal(np.delete(x, 1), np.delete(b, 1)) for b in beam)


def test_rl_policy_learns_the_good_values():
    s = make("rl", rl_lr=0.2)
    run(s, 15)
    probs = np.exp(s.policy.logits.detach().numpy() + s.policy.mask.numpy())
    probs /= probs.sum(1, keepdims=True)
    assert probs[1, 0] > 1 / 3 and probs[3, 1] > 1 / 2  # g1 = 0 and g3 = 1 are the good values


def test_rl_lstm_controller_runs_and_resumes():
    a = make("rl", controller="lstm", rl_hidden=8)
    ids = run(a, 3)
    b = make("rl", controller="lstm", rl_hidden=8)
    run(b, 1)
    c = make("rl", controller="lstm", rl_hidden=8)
    for r in b.ctx.archive:
        c.ctx.archive.add(r, b.ctx.archive.iteration_of[r.arch_id])
    c.load_state_dict(json.loads(json.dumps(b.state_dict())))
    assert ids[: len(b.ctx.archive)] + run(c, 2, start=1) == ids


@pytest.mark.parametrize(
    "name, options, match",
    [
        ("bo", {"acquisition": "pi"}, "unknown --acquisition 'pi'"),
        ("bo", {"predictor": "rbf"}, "no predictive spread"),
        ("bo", {"bo_random": 1.5}, "--bo_random 1.5"),
        ("pnas", {"beam": 0}, "--beam 0"),
        ("rl", {"controller": "gru"}, "unknown --controller 'gru'"),
        ("ls", {"ls_max_neighbours": -1}, "--ls_max_neighbours -1"),
    ],
)
def test_bad_options_are_one_line_errors(name, options, match):
    with pytest.raises(UserError, match=match):
        make(name, **options)


def test_bo_ei_is_for_one_objective():
    with pytest.raises(UserError, match="--acquisition ei is for one objective"):
        make("bo", n_obj=2, acquisition="ei")
