"""tools/analyze_surrogate_importance.py on a real toy run: importances, files, folders, bad inputs."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nas.cli import run_cli
from nas.space import SearchSpace, get_search_space
from tests.toy_search import toy_config, toy_search
from tools import analyze_surrogate_importance as tool

ROOT = Path(__file__).resolve().parents[1]

FAST = ["--n_repeats", "3", "--k", "4"]  # enough for the checks below, a fraction of the default cost


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A toy search (OFA space, 32-64 px) after one iteration: 20 archs with known effects."""
    save = tmp_path_factory.mktemp("importance") / "toy"
    toy_search(toy_config(save, iterations=1)).run()
    return save


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """Only the initial archive: 6 archs, too few to cross-validate a surrogate."""
    save = tmp_path_factory.mktemp("importance") / "tiny"
    toy_search(toy_config(save, n_doe=6, iterations=0)).run()
    return save


def read(path):
    """Strict JSON: NaN or Infinity would fail here."""

    def refuse(name):
        raise ValueError(f"{path} holds {name}")

    return json.loads(Path(path).read_text(), parse_constant=refuse)


# ---- feature names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "space",
    [get_search_space("mobilenetv3", lr=32, ur=64, rstep=8), get_search_space("nb201")],
    ids=["mobilenetv3", "nb201"],
)
def test_feature_names_match_features(space):
    arch = space.sample(1, np.random.default_rng(0))[0]
    names = space.feature_names()
    assert len(names) == len(space.features(arch)) and len(set(names)) == len(names)


def test_names_group_into_families_and_stages():
    ofa = tool.feature_groups(get_search_space("mobilenetv3", lr=32, ur=64, rstep=8).feature_names())
    assert list(ofa["family"]) == ["ks", "e", "d", "r"]
    assert [len(c) for c in ofa["family"].values()] == [20, 20, 5, 1]
    assert list(ofa["stage"]) == ["s0", "s1", "s2", "s3", "s4", "global"]
    assert [len(c) for c in ofa["stage"].values()] == [9] * 5 + [1]  # 4 ks + 4 e + depth; r is global
    nb = tool.feature_groups(get_search_space("nb201").feature_names())
    assert list(nb["family"]) == [f"edge{i}" for i in range(6)] and list(nb["stage"]) == ["global"]
    from nas.plugins import load_plugins

    load_plugins()  # the gated space: its gate genes form two families, spread over the stages
    gated = tool.feature_groups(get_search_space("skippingmobilenetv3", lr=32, ur=32).feature_names())
    assert list(gated["family"]) == ["ks", "e", "d", "r", "gate_hidden", "sparsity"]
    assert len(gated["family"]["gate_hidden"]) == len(gated["family"]["sparsity"]) == 20
    assert [len(c) for c in gated["stage"].values()] == [17] * 5 + [1]
    # later task genes fit the same convention; the base class default names columns x<i>
    assert tool.parse_name("exit.s3") == ("exit", "s3") and tool.parse_name("gate.s12.b1") == ("gate", "s12")
    assert tool.parse_name("x7") == ("x7", "global")
    assert SearchSpace.feature_names(get_search_space("nb201")) == [f"x{i}" for i in range(6)]


def test_permutation_importance_finds_the_feature_the_target_uses():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 4, size=(60, 4)).astype(float)
    y = 3 * X[:, 0] + X[:, 1] + 0.1 * rng.normal(size=60)
    groups = tool.feature_groups(["a.s0", "b.s0", "c.s1", "d"])
    base, imp = tool.permutation_importance("ridge", X, y, groups, 5, 5, np.random.default_rng(1))
    tau = {r["name"]: r["tau_drop"] for r in imp["feature"]}
    assert base["tau"] > 0.8
    assert tau["a.s0"] > tau["b.s0"] > 0.05 > max(abs(tau["c.s1"]), abs(tau["d"]))
    stage = {r["name"]: r["tau_drop"] for r in imp["stage"]}
    assert stage["s0"] >= tau["a.s0"] - 0.02 and abs(stage["s1"]) < 0.05
    assert all(len(r["tau_drop_repeats"]) == 5 for r in imp["family"])


# ---- the tool on a real run ----------------------------------------------------------------------


def test_carts_importances_files_and_ordering(run_dir, tmp_path, capsys):
    out = tmp_path / "out"
    args = [
        "--expr",
        str(run_dir),
        "--predictor",
        "carts",
        "--top_k",
        "5",
        "--plot",
        "--output_dir",
        str(out),
    ]
    assert tool.main(args) == 0
    stdout = capsys.readouterr().out
    assert "family" in stdout and "top 5 features" in stdout and "impurity" in stdout
    for stem in ("families", "stages", "top_features"):
        for ext in ("png", "pdf"):
            assert (out / f"{stem}.{ext}").stat().st_size > 1000
    res = read(out / "importance.json")
    assert res["schema"] == tool.SCHEMA and res["n_rows"] == 20 and res["model"] == "carts"
    assert res["search_space"] == "mobilenetv3" and len(res["feature_names"]) == 46
    assert len(res["top_k"]) == 5 and len(res["features"]) == 46
    fam = {r["name"]: r for r in res["families"]}
    assert set(fam) == {"ks", "e", "d", "r"}
    # the toy's top-1 grows with log(MACs) (about quadratic in r) and r / 16; kernels matter least
    assert res["families"][0]["name"] == "r"
    assert fam["r"]["tau_drop"] > fam["ks"]["tau_drop"] + 0.05
    assert fam["r"]["rmse_increase"] > fam["ks"]["rmse_increase"]
    assert res["top_k"][0] == "r"
    # impurity importances: per feature as the model reports them, summing to 1 per grouping
    assert res["impurity"]
    for key in ("families", "stages", "features"):
        total = sum(r["impurity"] for r in res[key])
        assert total == pytest.approx(1.0, abs=1e-6)
        assert all(r["impurity_std"] >= r["impurity_sem"] >= 0 for r in res[key])


def test_adaptive_switching_reports_its_choice_and_default_folders_never_overwrite(
    run_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert tool.main(["--expr", str(run_dir), "--predictor", "as", *FAST]) == 0
    assert tool.main(["--expr", str(run_dir / "iter_1.stats"), "--predictor", "ridge", *FAST]) == 0
    base = tmp_path / "results" / "analysis" / "surrogate_importance"
    assert sorted(p.name for p in base.iterdir()) == ["toy", "toy-2"]
    first, second = read(base / "toy" / "importance.json"), read(base / "toy-2" / "importance.json")
    assert first["predictor"] == "as" and first["model"] == first["adaptive_switching"]["chosen"]
    assert second["predictor"] == "ridge" and second["adaptive_switching"] is None
    assert not list((base / "toy").glob("*.png"))  # figures only with --plot
    assert "(as chose" in capsys.readouterr().out
    for res in (first, second):
        assert res["families"][0]["name"] == "r"


# ---- bad inputs ------------------------------------------------------------------------------------


def bad_inputs(run_dir, small_run, tmp_path):
    return {
        "missing run": (["--expr", str(tmp_path / "nope")], "no iter_k.stats"),
        "unknown predictor": (["--expr", str(run_dir), "--predictor", "xgboost"], "unknown surrogate"),
        "too few rows": (["--expr", str(small_run), "--predictor", "carts"], "needs at least"),
        "space mismatch": (["--expr", str(run_dir), "--search_space", "nb201"], "does not match"),
        "unknown space": (["--expr", str(run_dir), "--search_space", "resnet"], "unknown --search_space"),
        "bad top_k": (["--expr", str(run_dir), "--top_k", "0"], "--top_k"),
        "bad k": (["--expr", str(run_dir), "--k", "1"], "--k"),
    }


def test_bad_inputs_are_one_line_errors(run_dir, small_run, tmp_path, capsys):
    for what, (args, message) in bad_inputs(run_dir, small_run, tmp_path).items():
        assert run_cli(tool.main, [*args, "--output_dir", str(tmp_path / "o")]) == 2, what
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, (what, err)
    assert not (tmp_path / "o").exists()  # nothing is written before the inputs are checked


def test_the_script_exits_2_with_one_line(run_dir, small_run, tmp_path):
    # one process (it pays the torch import); the other bad inputs take the same run_cli path above
    args, message = bad_inputs(run_dir, small_run, tmp_path)["too few rows"]
    p = subprocess.run(
        [sys.executable, "tools/analyze_surrogate_importance.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2 and p.stdout == "", p.stderr
    assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1 and message in p.stderr
