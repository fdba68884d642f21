"""Search strategies (ask/tell): msunas, random and regularised evolution on every space, each
resuming exactly after a crash; strategy state in iter_k.stats."""

import numpy as np
import pytest

from nas.plugins import plugin_list
from nas.search.archive import read_stats
from nas.search.description import RunSpec
from nas.search.factory import build_run
from nas.search.loop import Search
from nas.search.strategies.regularized_evolution import RegularizedEvolution
from tests.toy_search import toy_config, toy_search

STRATEGIES = ["msunas", "random", "re", "ls", "bo", "rl", "pnas"]


class CrashError(Exception):
    pass


def crash_after(n_lines: int):
    """A log that raises after ``n_lines`` lines: the run stops there, as after a kill."""
    seen = []

    def log(msg):
        seen.append(msg)
        if len(seen) == n_lines:
            raise CrashError(msg)

    return log


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_resumes_exactly_on_the_toy_space(tmp_path, strategy):
    kw = dict(strategy=strategy, population=8, sample_size=3) if strategy == "re" else dict(strategy=strategy)
    full = toy_search(toy_config(tmp_path / "full", **kw)).run()
    assert len(full) == 16 + 3 * 4 and not full.failed()
    with pytest.raises(CrashError):  # stops after iteration 1's summary line
        toy_search(toy_config(tmp_path / "part", **kw), log=crash_after(2)).run()
    assert (tmp_path / "part" / "iter_1.stats").is_file() and not (
        tmp_path / "part" / "iter_2.stats"
    ).exists()
    resumed = toy_search(toy_config(tmp_path / "part", resume=str(tmp_path / "part"), **kw)).run()
    assert [r.to_json() for r in resumed] == [r.to_json() for r in full]
    state = read_stats(tmp_path / "part" / "iter_3.stats")["strategy"]
    if strategy == "re":  # the population: the 8 most recent evaluations, oldest first
        assert state["population"] == [r.arch_id for r in full][-8:]
    elif strategy in ("msunas", "random", "bo"):  # they learn from the archive alone
        assert state == {}
    else:  # ls: the walk; rl: the controller; pnas: the beam
        assert (
            set(state)
            == {
                "ls": {"centre", "queue", "proposed", "explored"},
                "rl": {"baseline", "torch"},
                "pnas": {"step", "beam"},
            }[strategy]
        )


def test_strategies_differ_and_regularised_evolution_mutates_its_population(tmp_path):
    archives = {
        s: [r.arch_id for r in toy_search(toy_config(tmp_path / s, strategy=s)).run()] for s in STRATEGIES
    }
    assert all(a[:16] == archives["random"][:16] for a in archives.values())  # same initial archive
    assert len({tuple(a[16:]) for a in archives.values()}) == len(STRATEGIES)
    spec = toy_config(tmp_path / "re2", strategy="re", iterations=1)
    search = Search(build_run(spec))
    search.run()
    space, members = search.space, list(search.archive)
    parents = [space.encode(r.arch) for r in members[:16]]  # iteration 1's population: the initial archive
    for r in members[16:]:  # every child is one gene away from a member of it
        assert min(int(np.sum(space.encode(r.arch) != x)) for x in parents) == 1
    assert search.strategy.population == [r.arch_id for r in members]  # 20 < population 30: all stay


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_on_both_benchmarks(tmp_path, strategy):
    """The plug-in's strategies on nb201 only (their MobileNetV3 runs: on real data below)."""
    presets = (
        ("nb201", dict(n_doe=20, n_iter=5, iterations=2)),
        ("ofa_note10", dict(n_doe=20, n_iter=4, iterations=1)),
    )
    for preset, budget in presets if strategy in ("msunas", "random", "re") else presets[:1]:
        flat = {"benchmark": preset, "strategy": strategy, "save": str(tmp_path / preset), **budget}
        if preset == "ofa_note10":
            flat.update(pop_size=20, n_gen=5) if strategy == "msunas" else None
        spec = RunSpec.from_flat(flat, plugins=plugin_list())
        archive = Search(build_run(spec, log=lambda *_: None), log=lambda *_: None).run()
        assert (
            len(archive) == budget["n_doe"] + budget["iterations"] * budget["n_iter"] and not archive.failed()
        )
        crash_dir = tmp_path / f"{preset}-crash"
        spec_crash = RunSpec.from_flat({**flat, "save": str(crash_dir)}, plugins=plugin_list())
        with pytest.raises(CrashError):
            Search(build_run(spec_crash, log=lambda *_: None), log=crash_after(1)).run()
        resumed = RunSpec.from_flat(
            {**flat, "save": str(crash_dir), "resume": str(crash_dir)}, plugins=plugin_list()
        )
        again = Search(build_run(resumed, log=lambda *_: None), log=lambda *_: None).run()
        assert again.to_json() == archive.to_json()


@pytest.mark.parametrize("strategy", ["random", "re"])
def test_strategies_on_real_data(tmp_path, strategy):
    """Subnets of a (random) OFA supernet scored on the embedded CIFAR-10's validation images."""
    import torch

    from nas.io import save_checkpoint
    from nas.space import get_search_space

    torch.manual_seed(0)
    supernet = tmp_path / "sn.pth"
    save_checkpoint(supernet, {"state_dict": get_search_space("mobilenetv3").make_supernet(10).state_dict()})
    flat = dict(
        strategy=strategy, lr=32, ur=32, vld_size=200, bn_batches=1, supernet_path=str(supernet),
        device="cpu", n_doe=4, n_iter=2, iterations=2, sec_obj="macs", population=4, sample_size=2,
        save=str(tmp_path / "run"),
    )  # fmt: skip
    if strategy == "random":
        flat = {k: v for k, v in flat.items() if k not in ("population", "sample_size")}
    archive = Search(build_run(RunSpec.from_flat(flat, plugins=plugin_list())), log=lambda *_: None).run()
    assert len(archive) == 8 and not archive.failed()
    assert all(0 <= r.metrics["top1"] <= 100 and r.metrics["macs"] > 0 for r in archive)


def test_the_strategies_plugin_on_real_data(tmp_path):
    """ls, bo, rl and pnas choose subnets of a (random) OFA supernet scored on the embedded
    CIFAR-10 (top-1 vs MACs: two objectives), one iteration each."""
    import torch

    from nas.io import save_checkpoint
    from nas.space import get_search_space

    torch.manual_seed(0)
    supernet = tmp_path / "sn.pth"
    save_checkpoint(supernet, {"state_dict": get_search_space("mobilenetv3").make_supernet(10).state_dict()})
    evaluator = None  # one evaluator (dataset and supernet loaded once) for the four searches
    for strategy in ("ls", "bo", "rl", "pnas"):
        flat = dict(
            strategy=strategy, lr=32, ur=32, vld_size=50, bn_batches=1, supernet_path=str(supernet),
            device="cpu", n_doe=3, n_iter=1, iterations=1, sec_obj="macs", plot_every=-1,
            save=str(tmp_path / strategy),
        )  # fmt: skip
        if strategy in ("bo", "pnas"):
            flat["predictor"] = "carts"
        run = build_run(RunSpec.from_flat(flat, plugins=plugin_list()), evaluator=evaluator)
        evaluator = run.evaluator
        archive = Search(run, log=lambda *_: None).run()
        assert len(archive) == 4 and not archive.failed(), strategy
        assert len({r.arch_id for r in archive}) == 4


def test_regularised_evolution_checks_its_options(tmp_path):
    from nas.errors import UserError

    with pytest.raises(UserError, match="--population 1 must be >= 2"):
        build_run(toy_config(tmp_path / "x", strategy="re", population=1))
    assert RegularizedEvolution.Options().population == 30
