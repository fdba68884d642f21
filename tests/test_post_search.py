"""post_search.py: preference rules on hand-made fronts, the files of each choice, edge cases."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.errors import UserError
from nas.io import load_checkpoint, save_checkpoint
from nas.pipeline import SubnetEvaluator
from nas.plugins import plugin_list
from nas.post_search import PostSearchConfig, Run, choose, load_run, post_search, tradeoff
from nas.result import Result
from nas.search.description import RunSpec
from nas.search.factory import build_run
from nas.search.loop import Search
from nas.search.objectives import get_objective
from nas.space import get_search_space
from tests.toy_search import toy_config, toy_search

ROOT = Path(__file__).resolve().parents[1]


def hand_run(points) -> Run:
    """A run whose archive has these (top-1 %, MACs) points."""
    results = [Result(f"id{i}", {}, {"top1": t, "macs": m}) for i, (t, m) in enumerate(points)]
    objectives = [get_objective("top1"), get_objective("macs")]
    F = np.array([[o(r.metrics) for o in objectives] for r in results])
    return Run("x.stats", RunSpec.default(), results, objectives, F, 0)


# front: 0..4 (4 = most accurate); 5 and 6 are dominated
POINTS = [(60, 1), (70, 2), (88, 5), (89, 20), (90, 80), (59, 3), (85, 30)]


def test_tradeoff_ranks_the_knee_first():
    run = hand_run(POINTS)
    assert choose(run, "trade-off", 1) == [4]  # n=1: the most accurate always wins
    chosen = choose(run, "trade-off", 3)
    assert chosen[0] == 2 and 4 in chosen and set(chosen) <= {0, 1, 2, 3, 4}
    mu = tradeoff(np.array([[0.0, 1.0], [0.1, 0.1], [1.0, 0.0]]))
    assert mu.argmax() == 1  # the corner of an L-shaped front


def test_prefer_an_objective_takes_its_lowest_values_on_the_front():
    run = hand_run(POINTS)
    assert choose(run, "macs", 3) == [0, 1, 4]  # 0, 1, then the most accurate replaces 2
    assert choose(run, "macs", 5) == [0, 1, 2, 3, 4]


def test_prefer_a_point_uses_the_achievement_function():
    run = hand_run(POINTS)
    assert choose(run, "top1#88+macs#5", 1) == [4]  # most accurate forced in
    assert choose(run, "top1#88+macs#5", 2) == [2, 4]
    assert choose(run, "top1#70+macs#2", 2)[0] == 1
    assert choose(run, "macs#1", 2)[0] == 0  # top-1 left out: its best value


def test_more_than_the_front_fills_from_the_next_ranks():
    notes = []
    chosen = choose(hand_run(POINTS), "macs", 6, log=notes.append)
    assert chosen[:5] == [0, 1, 2, 3, 4] and chosen[5] in (5, 6)
    assert any("front has 5" in n for n in notes)
    assert sorted(choose(hand_run(POINTS), "macs", 50, log=notes.append)) == list(range(7))
    assert any("7 successful" in n for n in notes)


def test_the_most_accurate_forced_in_is_non_dominated_among_ties():
    # 3 and 4 are equally accurate; 3 (earlier in the archive) costs more, so 4 dominates it
    points = [(60, 1), (80, 4), (85, 10), (90, 30), (90, 20)]
    run = hand_run(points)
    for prefer in ("trade-off", "macs", "top1#85+macs#10"):
        for n in (1, 2, 3):
            chosen = choose(run, prefer, n)
            assert 4 in chosen and 3 not in chosen, (prefer, n, chosen)


@pytest.mark.parametrize(
    ("prefer", "match"),
    [("latency", "objective of this run"), ("top1#x", "not a number"), ("flops#3", "OBJECTIVE#VALUE")],
)
def test_bad_preferences(prefer, match):
    with pytest.raises(UserError, match=match):
        choose(hand_run(POINTS), prefer, 2)


def test_single_objective_run_takes_the_best():
    results = [Result(f"id{i}", {}, {"top1": t}) for i, t in enumerate([50, 70, 60])]
    obj = get_objective("top1")
    run = Run("x", RunSpec.default(), results, [obj], np.array([[obj(r.metrics)] for r in results]), 0)
    notes = []
    assert choose(run, "trade-off", 2, log=notes.append) == [1, 2] and "one objective" in notes[0]
    assert choose(run, "top1#65", 2) == [1, 2]  # a point on the one objective: its best
    for prefer, match in (("macs#3", "OBJECTIVE#VALUE"), ("top1#x", "not a number"), ("macs", "single")):
        with pytest.raises(UserError, match=match):
            choose(run, prefer, 2)


# ---- on real run directories ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    save = tmp_path_factory.mktemp("toy") / "run"
    archive = toy_search(toy_config(save, iterations=1), fail_prefixes=("0", "1", "2")).run()
    assert archive.failed()
    return save


def test_toy_run_writes_each_choice(toy_run, tmp_path):
    out = tmp_path / "final"
    cfg = PostSearchConfig(expr=str(toy_run), save=str(out), n=3, save_stats_csv=True, weights=False)
    notes = []
    folders = post_search(cfg, log=notes.append)
    assert any("failed evaluations" in n for n in notes)
    run = load_run(str(toy_run))
    best = max(run.results, key=lambda r: r.metrics["top1"])
    ids = [json.loads((Path(f) / "net.stats").read_text())["id"] for f in folders]
    assert best.arch_id in ids and len(set(ids)) == 3
    for f in folders:
        stats = json.loads((Path(f) / "net.stats").read_text())
        assert json.loads((Path(f) / "net.subnet").read_text()) == stats["arch"]
        assert set(stats["objectives"]) == {"top1", "macs"} and "failure" not in stats
    rows = (out / "choices-trade-off.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].startswith("folder,id,f1_top1,f2_macs")
    assert (out / "choices-trade-off.png").stat().st_size > 0 and (out / "choices-trade-off.pdf").is_file()


def test_rerun_keeps_later_keys_and_refuses_to_mix_networks(toy_run, tmp_path):
    out = tmp_path / "final"
    cfg = PostSearchConfig(expr=str(toy_run), save=str(out), n=2, weights=False, prefer="macs")
    first = post_search(cfg, log=lambda *_: None)
    stats_file = Path(first[0]) / "net.stats"
    stats = json.loads(stats_file.read_text())
    stats_file.write_text(json.dumps({**stats, "trained": {"top1": 99.0}}))
    post_search(cfg, log=lambda *_: None)  # same choices: the trained result survives
    assert json.loads(stats_file.read_text())["trained"] == {"top1": 99.0}
    other = json.loads((Path(first[1]) / "net.stats").read_text())
    stats_file.write_text(json.dumps({**stats, "id": "someone-else"}))
    with pytest.raises(UserError, match="holds another network"):
        post_search(cfg, log=lambda *_: None)
    assert json.loads((Path(first[1]) / "net.stats").read_text()) == other  # nothing touched


def test_stats_of_a_resumed_run(tmp_path):
    save = tmp_path / "run"
    toy_search(toy_config(save, iterations=1)).run()
    toy_search(toy_config(save, iterations=2, resume=str(save))).run()
    cfg = PostSearchConfig(expr=str(save / "iter_2.stats"), save=str(tmp_path / "f"), n=2, weights=False)
    assert len(post_search(cfg, log=lambda *_: None)) == 2
    assert len(load_run(str(save)).results) == 16 + 2 * 4


def test_weights_reproduce_the_archive_score(tmp_path):
    space = get_search_space("mobilenetv3", lr=32, ur=32)
    torch.manual_seed(0)
    supernet = tmp_path / "supernet.pth"
    save_checkpoint(supernet, {"state_dict": space.make_supernet(10).state_dict()})
    run_dir = str(tmp_path / "run")
    spec = RunSpec.from_flat(
        dict(
            save=run_dir,
            lr=32,
            ur=32,
            vld_size=200,
            bn_batches=1,
            supernet_path=str(supernet),
            device="cpu",
            n_doe=6,
            iterations=0,
            predictor="rbf",
            sec_obj="macs",
        ),
        plugins=plugin_list(),
    )
    Search(build_run(spec), log=lambda *_: None).run()
    folders = post_search(
        PostSearchConfig(expr=run_dir, save=str(tmp_path / "final"), n=2, device="cpu"), log=lambda *_: None
    )
    for f in folders:
        stats = json.loads((Path(f) / "net.stats").read_text())
        assert stats["weights"]["top1_remeasured"] == stats["metrics"]["top1"]
        net = space.build(stats["arch"], space.make_supernet(10))
        net.load_state_dict(load_checkpoint(Path(f) / "ckpt.pth")["state_dict"])
    tuned = Path(folders[0]) / "ckpt.pth"  # as if train.py subnet had fine-tuned it since
    save_checkpoint(tuned, {"state_dict": {}, "tuned": True})
    post_search(PostSearchConfig(expr=run_dir, save=str(tmp_path / "final"), n=2, device="cpu"), log=print)
    assert load_checkpoint(tuned)["tuned"]  # a re-run keeps the network's weights


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "needs --expr"),
        (["--expr", "README.md"], "not valid JSON"),
        (["--expr", "RUN", "-n", "0"], "at least one"),
    ],
)
def test_cli_bad_inputs(toy_run, args, message, capsys):
    """``post_search.py``'s main in this process (the script is run_cli(main) and nothing else)."""
    import post_search as script
    from nas.cli import run_cli

    args = [str(toy_run) if a == "RUN" else a for a in args]
    assert run_cli(script.main, [*args, "--no-weights"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"expr": "nowhere"}, "no iter_k.stats"),
        ({"n_exits": 2}, "early-exit"),
        ({"prefer": "params"}, "objective"),
    ],
)
def test_bad_inputs(toy_run, tmp_path, kw, message):
    cfg = PostSearchConfig(**{"expr": str(toy_run), "save": str(tmp_path / "f"), "weights": False, **kw})
    with pytest.raises(UserError, match=message):
        post_search(cfg, log=lambda *_: None)
    assert not (tmp_path / "f").exists()


def test_fine_tuned_candidates_keep_their_weights(tmp_path):
    space = get_search_space("mobilenetv3", lr=32, ur=32)
    torch.manual_seed(0)
    supernet = tmp_path / "supernet.pth"
    save_checkpoint(supernet, {"state_dict": space.make_supernet(10).state_dict()})
    common = dict(vld_size=200, bn_batches=1, supernet_path=str(supernet), device="cpu", n_epochs=1)
    run_dir = str(tmp_path / "run")
    spec = RunSpec.from_flat(
        dict(save=run_dir, lr=32, ur=32, n_doe=2, iterations=0, sec_obj="macs", **common),
        plugins=plugin_list(),
    )
    run = build_run(spec)
    assert isinstance(run.evaluator, SubnetEvaluator)
    run.evaluator.ensure_setup()
    data = run.evaluator.ctx.data
    data.train = data.train.subset(np.arange(0, len(data.train), 100))  # 98 images: seconds
    archive = Search(run, log=lambda *_: None).run()
    for r in archive:
        ckpt = load_checkpoint(tmp_path / "run" / "iter_0" / f"net_{r.arch_id}" / "ckpt.pth")
        assert ckpt["arch"] == r.arch and r.weights is None  # saved, not held in memory
        net = space.build(r.arch, space.make_supernet(10))
        net.load_state_dict(ckpt["state_dict"])
    (folder,) = post_search(
        PostSearchConfig(expr=run_dir, save=str(tmp_path / "final"), n=1), log=lambda *_: None
    )
    stats = json.loads((Path(folder) / "net.stats").read_text())
    assert stats["weights"]["source"].endswith(f"net_{stats['id']}/ckpt.pth")
    assert (Path(folder) / "ckpt.pth").read_bytes() == Path(stats["weights"]["source"]).read_bytes()
