"""tools/import_cnas_run.py: a real CNAS run (EDANAS on CIFAR-10, tests/data/cnas_runs) imported as a
run directory that post_search.py and tools/plot_search.py read; the source never changes; one-line
refusals that write nothing."""

import hashlib
import json
import os
from pathlib import Path

import pytest

from nas.errors import UserError
from nas.post_search import PostSearchConfig, post_search
from nas.search.archive import read_stats
from nas.space import get_search_space
from tests.cli_here import run_main
from tools.import_cnas_run import ImportConfig, import_cnas_run

CNAS = Path(__file__).resolve().parent / "data" / "cnas_runs"
SRC = CNAS / "edanas-r32-cifar10"
SRC_FILE = SRC / "iter_30.stats"
QUIET = dict(log=lambda *_: None)


def tree_hashes(root: Path) -> dict[str, str]:
    """Every file below ``root``: relative path -> sha256 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@pytest.fixture(scope="module")
def space():
    return get_search_space("eemobilenetv3", lr=32, ur=32)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """SRC imported by the command line (in this process); the hashes of SRC before and after."""
    before = tree_hashes(CNAS)
    dest = tmp_path_factory.mktemp("imported") / "edanas-r32-cifar10"
    r = run_main("tools.import_cnas_run", SRC, dest)
    assert r.returncode == 0, r.stderr
    return {"dest": dest, "stdout": r.stdout, "before": before, "after": tree_hashes(CNAS)}


def entries() -> list[list]:
    return json.loads(SRC_FILE.read_text())["archive"]


def test_the_run_directory(imported, space):
    dest = imported["dest"]
    assert imported["before"] == imported["after"]  # nothing under the source changed
    out = imported["stdout"]
    assert "imported 317 architectures" in out and "post_search.py --expr" in out
    raw = entries()
    ids = list(dict.fromkeys(space.arch_id(e[0]) for e in raw))
    assert len(ids) == 317
    assert sorted(os.listdir(dest / "iter_0")) == sorted(f"net_{i}" for i in ids)
    assert {p.name for p in dest.iterdir()} >= {
        "iter_0.stats",
        "config.yaml",
        "archive.csv",
        "log.txt",
        "plots",
    }
    for aid in ids:  # the full form (20 kernel and expand values), valid, under its own id
        folder = dest / "iter_0" / f"net_{aid}"
        arch = json.loads((folder / "net.subnet").read_text())
        assert len(arch["ks"]) == 20 and len(arch["e"]) == 20 and len(arch["t"]) == 4
        assert space.validate(arch) == arch and space.arch_id(arch) == aid
        assert json.loads((folder / "net.stats").read_text())["arch"] == arch

    stats = read_stats(dest / "iter_0.stats")
    assert stats["schema"] == "msunas-stats/2" and stats["iteration"] == 0
    assert [row["id"] for row in stats["archive"]] == ids and stats["candidates"] == ids
    assert all(row["iteration"] == 0 for row in stats["archive"])
    assert stats["objectives"] == ["top1", "avg_macs"] and len(stats["hv"]) == 1 and stats["hv"][0] > 0
    run = stats["run"]
    assert run["space"]["name"] == "eemobilenetv3" and run["space"]["lr"] == run["space"]["ur"] == 32
    assert [o["name"] for o in run["objectives"]] == ["top1", "avg_macs"] and run["evaluator"] is None
    assert stats["imported"]["from"] == str(SRC_FILE) and stats["imported"]["dataset"] == "cifar10"
    assert stats["imported"]["entries"] == 317 and stats["imported"]["failed"] == 1
    lines = (dest / "archive.csv").read_text().splitlines()
    assert len(lines) == 318 and "imported.from" in lines[0] and "f2_avg_macs" in lines[0]


def test_metrics_as_the_reference_measured_them(imported, space):
    dest, raw = imported["dest"], entries()
    penalised = [i for i, e in enumerate(raw) if e[1] >= 100]
    assert len(penalised) == 1 and len(raw[penalised[0]]) == 3  # CNAS's [config, 100, 1e15]
    for i in (0, 1, 57, 200, len(raw) - 1):
        config, err, avg_macs, ratios = raw[i]
        m = json.loads((dest / "iter_0" / f"net_{space.arch_id(config)}" / "net.stats").read_text())[
            "metrics"
        ]
        assert m["top1"] == 100 - err and m["avg_macs"] == avg_macs and m["exit_ratio"] == ratios
        assert m["n_exits"] == sum(t != 1 for t in config["t"]) == len(ratios) - 1
        assert m["imported"] == {"from": str(SRC_FILE), "note": "metrics as the reference measured them"}
    aid = space.arch_id(raw[penalised[0]][0])
    failed = read_stats(dest / "iter_0.stats")["archive_obj"].results[aid]
    assert (
        not failed.ok and failed.failure["type"] == "ReferencePenalty" and "100" in failed.failure["message"]
    )
    assert (dest / "failed" / aid / "failure.json").is_file()


def test_post_search_and_plot_search_read_it(imported, tmp_path):
    dest = imported["dest"]
    notes = []
    folders = post_search(
        PostSearchConfig(expr=str(dest), n=3, weights=False, save=str(tmp_path / "final")), log=notes.append
    )
    assert len(folders) == 3 and any("1 failed" in n for n in notes)
    chosen = [json.loads((Path(f) / "net.stats").read_text()) for f in folders]
    best = max(100 - e[1] for e in entries() if e[1] < 100)
    assert best in [c["metrics"]["top1"] for c in chosen]  # the most accurate is always chosen
    assert all(c["metrics"]["imported"]["from"] == str(SRC_FILE) for c in chosen)
    assert not any((Path(f) / "ckpt.pth").exists() for f in folders)

    # with weights (the default): an imported run has none, architectures only
    out = tmp_path / "with_weights"
    notes = []
    folders = post_search(PostSearchConfig(expr=str(dest), n=2, save=str(out)), log=notes.append)
    assert len(folders) == 2 and not any((Path(f) / "ckpt.pth").exists() for f in folders)
    assert any("writing architectures only" in n for n in notes)

    r = run_main("tools.plot_search", "--expr", dest, "--output_dir", tmp_path / "plots")
    assert r.returncode == 0, r.stderr
    n = json.loads((tmp_path / "plots" / "numbers.json").read_text())
    assert n["objectives"] == ["top1", "avg_macs"] and n["iterations"] == 0 and n["n_failed"] == 1
    assert len(n["archive"]) == 316 and n["evaluated_per_iteration"] == [316] and n["front"]
    assert all(p["metrics"]["imported"]["from"] == str(SRC_FILE) for p in n["front"])
    assert imported["before"] == tree_hashes(CNAS)

    # the surrogate's features include the exit genes, grouped as the family "exit"; on the
    # reference's own archive they are the most important family for top-1
    r = run_main("tools.analyze_surrogate_importance", "--expr", dest, "--predictor", "carts", "--k", "3",
                 "--n_repeats", "2", "--output_dir", tmp_path / "imp")  # fmt: skip
    assert r.returncode == 0, r.stderr
    families = json.loads((tmp_path / "imp" / "importance.json").read_text())["families"]
    assert max(families, key=lambda f: f["tau_drop"])["name"] == "exit"
    assert next(f for f in families if f["name"] == "exit")["n_columns"] == 4


def small_source(root: Path, name: str = "iter_2.stats", **changes) -> Path:
    """A CNAS stats file of a few real entries, plus a 3-item entry and a duplicate."""
    raw = [e for e in entries()[:8] if e[1] < 100]
    archive = [*raw, [raw[1][0], 40.0, 3.0, raw[1][3]], [entries()[9][0], 30.5, 2.75]]
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    path.write_text(json.dumps({"archive": archive, "candidates": archive[-2:], **changes}))
    return path


def test_duplicates_short_entries_the_latest_file_and_another_sec_obj(tmp_path, space):
    src = tmp_path / "cnas"
    small_source(src, "iter_10.stats")  # the latest by number (10 > 2), not by name
    (src / "iter_2.stats").write_text("not the file to read")
    before = tree_hashes(src)
    notes = []
    out = import_cnas_run(str(src), str(tmp_path / "dest"), ImportConfig(sec_obj="macs"), log=notes.append)
    assert out["from"] == str(src / "iter_10.stats") and tree_hashes(src) == before
    raw = json.loads((src / "iter_10.stats").read_text())["archive"]
    assert out["entries"] == len(raw) and out["architectures"] == len(raw) - 1
    assert out["duplicates"] == [{"entry": len(raw) - 2, "same_as": 1, "id": space.arch_id(raw[1][0])}]
    assert any(n.startswith("note: 1 archive entries repeat") for n in notes)
    stats = read_stats(tmp_path / "dest" / "iter_0.stats")
    kept = stats["archive_obj"].results[space.arch_id(raw[1][0])]
    assert kept.metrics["top1"] == 100 - raw[1][1] and kept.metrics["macs"] == raw[1][2]  # the first
    short = stats["archive_obj"].results[space.arch_id(raw[-1][0])]
    assert short.metrics["top1"] == 69.5 and "exit_ratio" not in short.metrics and "n_exits" in short.metrics
    assert stats["objectives"] == ["top1", "macs"]


def test_configs_without_exits_are_mobilenetv3(tmp_path):
    raw = [[{k: v for k, v in e[0].items() if k != "t"}, e[1], e[2]] for e in entries()[:6]]
    (tmp_path / "cnas").mkdir()
    (tmp_path / "cnas" / "iter_5.stats").write_text(json.dumps({"archive": raw, "candidates": []}))
    out = import_cnas_run(str(tmp_path / "cnas" / "iter_5.stats"), str(tmp_path / "dest"), **QUIET)
    assert out["space"].name == "mobilenetv3"
    rows = read_stats(tmp_path / "dest" / "iter_0.stats")["archive"]
    assert len(rows) == 6 and all("n_exits" not in r["metrics"] and len(r["arch"]["ks"]) == 20 for r in rows)


def test_refusals_write_nothing(tmp_path):
    src = tmp_path / "cnas"
    small_source(src)
    # DEST already holds a run
    dest = tmp_path / "run"
    dest.mkdir()
    (dest / "iter_3.stats").write_text("{}")
    before = listing(dest)
    with pytest.raises(UserError, match="already holds a run") as e:
        import_cnas_run(str(src), str(dest), **QUIET)
    assert "\n" not in str(e.value) and listing(dest) == before
    # SRC without stats files, or missing
    (tmp_path / "empty").mkdir()
    for bad in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(UserError, match="iter_<k>.stats"):
            import_cnas_run(str(bad), str(tmp_path / "new"), **QUIET)
    # not the CNAS format: the message says what was expected
    cases = {
        "dict.stats": {"results": []},
        "list.stats": [1, 2],
        "entry.stats": {"archive": [[{"ks": [3]}, "35.0", 2.0]], "candidates": []},
        "long.stats": {"archive": [[{}, 30.0, 2.0, [1.0], "x"]]},
    }
    for name, data in cases.items():
        (tmp_path / name).write_text(json.dumps(data))
        with pytest.raises(UserError, match="expected the CNAS format"):
            import_cnas_run(str(tmp_path / name), str(tmp_path / "new"), **QUIET)
    (tmp_path / "text.stats").write_text("not json")
    with pytest.raises(UserError, match="not valid JSON"):
        import_cnas_run(str(tmp_path / "text.stats"), str(tmp_path / "new"), **QUIET)
    # one of our own stats files, an invalid network, DEST inside SRC, a computed objective
    ours = our_stats_file(tmp_path)
    with pytest.raises(UserError, match="stats file of this toolkit"):
        import_cnas_run(str(ours), str(tmp_path / "new"), **QUIET)
    bad_t = small_source(tmp_path / "bad_t")
    data = json.loads(bad_t.read_text())
    data["archive"][2][0]["t"] = [0.3, 1, 1, 1]
    bad_t.write_text(json.dumps(data))
    with pytest.raises(
        UserError, match=r"archive\[2\] is not a network of eemobilenetv3: subnet t\[0\] = 0.3"
    ):
        import_cnas_run(str(bad_t), str(tmp_path / "new"), **QUIET)
    with pytest.raises(UserError, match="or lies inside it; SRC is never written to"):
        import_cnas_run(str(src), str(src / "imported"), **QUIET)
    with pytest.raises(UserError, match="--sec_obj 'tiny_ml'"):
        import_cnas_run(str(src), str(tmp_path / "new"), ImportConfig(sec_obj="tiny_ml"), **QUIET)
    assert not (tmp_path / "new").exists() and listing(src) == ["iter_2.stats"]


def our_stats_file(tmp_path: Path) -> Path:
    path = tmp_path / "ours" / "iter_0.stats"
    path.parent.mkdir()
    path.write_text(json.dumps({"schema": "msunas-stats/2", "iteration": 0, "archive": []}))
    return path


def test_cli_bad_input_exits_2(tmp_path, imported):
    (tmp_path / "bad.stats").write_text(json.dumps({"archive": "none"}))
    for args in (
        [tmp_path / "bad.stats", tmp_path / "d1"],
        [tmp_path / "nothing", tmp_path / "d2"],
        [SRC, imported["dest"]],  # DEST holds a run: the import above
        [SRC, tmp_path / "d3", "--search_space", "nb201x"],
    ):
        r = run_main("tools.import_cnas_run", *args)
        assert r.returncode == 2 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert not any((tmp_path / d).exists() for d in ("d1", "d2", "d3"))
    r = run_main("tools.import_cnas_run", SRC)  # argparse: DEST missing
    assert r.returncode == 2
