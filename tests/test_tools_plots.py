"""tools/plot_search.py and tools/visualize_final_architectures.py on real small runs: their files,
their numbers, unique default output folders, and one-line errors for bad inputs."""

import json
from pathlib import Path

import pytest

from nas.cli import run_cli
from nas.post_search import PostSearchConfig, post_search
from tests.toy_search import toy_config, toy_search
from tools import plot_search, visualize_final_architectures

# the module's fixtures run searches: one worker computes them once for every test here
pytestmark = pytest.mark.xdist_group("tools_plots")

ROOT = Path(__file__).resolve().parents[1]
ITERATIONS, N_DOE, N_ITER = 2, 16, 4


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """results/seed{0,1,2}: toy searches; seed0 and seed1 with final/ (3 networks each), one of
    seed0's fine-tuned (a "trained" top-1); other/params: a top1-vs-params run (no final/)."""
    root = tmp_path_factory.mktemp("results")
    for seed in range(3):
        save = root / f"seed{seed}"
        toy_search(toy_config(save, iterations=ITERATIONS, seed=seed, n_doe=N_DOE, n_iter=N_ITER)).run()
        if seed < 2:
            post_search(PostSearchConfig(expr=str(save), n=3, weights=False), log=lambda *_: None)
    stats = root / "seed0" / "final" / "net-trade-off_0" / "net.stats"
    data = json.loads(stats.read_text())
    data["trained"] = {"top1": 12.5, "split": "test"}  # as train.py subnet merges it
    stats.write_text(json.dumps(data))
    toy_search(toy_config(root / "other" / "params", iterations=0, sec_obj="params")).run()
    return root


def run_tool(name: str, *args):
    """``tools/<name>.py`` in this process: exit status and output as the script gives them."""
    from tests.cli_here import run_main

    return run_main(f"tools.{name}", *args)


def files_of(out: Path, *stems: str) -> dict:
    for stem in stems:
        for ext in ("png", "pdf"):
            assert (out / f"{stem}.{ext}").stat().st_size > 1000, f"{stem}.{ext}"
    return json.loads((out / "numbers.json").read_text())


def test_plot_search_one_run(results, tmp_path):
    r = run_tool("plot_search", "--expr", results / "seed0", "--output_dir", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    n = files_of(tmp_path / "out", "hv", "surrogate", "archive")
    assert n["objectives"] == ["top1", "macs"] and n["iterations"] == ITERATIONS
    assert len(n["hv"]) == ITERATIONS + 1 and n["hv"] == sorted(n["hv"])  # the archive only grows
    assert [row["iteration"] for row in n["surrogate"]["top1"]] == list(range(1, ITERATIONS + 1))
    assert all(-1 <= row["tau"] <= 1 and row["rmse"] > 0 for row in n["surrogate"]["top1"])
    assert len(n["archive"]) == N_DOE + ITERATIONS * N_ITER
    assert n["evaluated_per_iteration"] == [N_DOE] + [N_ITER] * ITERATIONS
    front = [(p["objectives"]["macs"], p["objectives"]["top1"]) for p in n["front"]]
    assert front == sorted(front) and all(a[1] > b[1] for a, b in zip(front, front[1:], strict=False))


def test_plot_search_compare_three_runs(results, tmp_path):
    runs = [results / f"seed{s}" for s in range(3)]
    r = run_tool("plot_search", "--compare", *runs, "--output_dir", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "Friedman" in r.stdout
    n = files_of(tmp_path / "out", "hv", "final_hv")
    assert n["indicator"] == "normalised hypervolume" and n["higher_is_better"]
    assert [run["name"] for run in n["runs"]] == ["seed0", "seed1", "seed2"]
    for run in n["runs"]:
        assert len(run["indicator"]) == ITERATIONS + 1 and 0 < run["final"] <= 1
        assert run["indicator"] == sorted(run["indicator"]) and len(run["hv_stored"]) == ITERATIONS + 1
    st = n["statistics"]
    assert st["n_blocks"] == ITERATIONS + 1 and st["friedman"]["applicable"]
    assert 0 <= st["friedman"]["p_value"] <= 1
    pairs = st["pairwise"]["pairs"]
    assert [(p["a"], p["b"]) for p in pairs] == [("seed0", "seed1"), ("seed0", "seed2"), ("seed1", "seed2")]
    assert all(p["p_holm"] >= p["p_value"] for p in pairs if p["applicable"])


def test_compare_two_runs_and_labelled_groups(results, tmp_path, capsys):
    runs = [str(results / f"seed{s}") for s in range(3)]
    assert plot_search.main(["--compare", *runs[:2], "--output_dir", str(tmp_path / "two")]) == 0
    st = json.loads((tmp_path / "two" / "numbers.json").read_text())["statistics"]
    assert st["test"].startswith("Wilcoxon") and st["n_pairs"] == ITERATIONS + 1
    assert "p_value" in st or st["reason"]

    out = tmp_path / "labels"
    assert plot_search.main(["--compare", *runs, "--labels", "a", "a", "b", "--output_dir", str(out)]) == 0
    n = json.loads((out / "numbers.json").read_text())
    st = n["statistics"]
    assert st["test"].startswith("Mann-Whitney") and {k: v["n"] for k, v in st["groups"].items()} == {
        "a": 2,
        "b": 1,
    }
    assert st["groups"]["a"]["values"] == [n["runs"][0]["final"], n["runs"][1]["final"]]
    assert "Mann-Whitney" in capsys.readouterr().out


def test_visualize_final_architectures(results, tmp_path):
    r = run_tool("visualize_final_architectures", "--results_dir", results, "--output_dir", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    n = files_of(tmp_path / "out", "final_architectures")
    assert n["second_obj"] == "macs" and n["dataset"] == "all"
    assert [e["name"] for e in n["experiments"]] == ["seed0/final", "seed1/final"]
    assert [e["n"] for e in n["experiments"]] == [3, 3] and len(n["points"]) == 6
    trained = [p for p in n["points"] if p["top1_source"] == "trained"]
    assert (
        len(trained) == 1 and trained[0]["top1"] == 12.5 and trained[0]["folder"].endswith("net-trade-off_0")
    )
    assert n["experiments"][0]["n_trained"] == 1
    for e in n["experiments"]:
        assert e["front"] and set(e["front"]) <= {p["folder"] for p in n["points"]}
    assert all(p["macs"] == p["metrics"]["macs"] for p in n["points"])
    # another x axis, and the dataset filter by name
    out = tmp_path / "params"
    argv = ["--results_dir", str(results), "--dataset", "cifar10_embedded", "--second_obj", "params"]
    assert visualize_final_architectures.main([*argv, "--output_dir", str(out)]) == 0
    n = json.loads((out / "numbers.json").read_text())
    assert all(p["params"] == p["metrics"]["params"] for p in n["points"]) and len(n["points"]) == 6


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Post-searched toy runs on two datasets with different second objectives: cifar10_embedded
    with macs and with params, cifar100 with params and single-objective (x axis: macs), and a
    single-objective cifar100 run whose net.stats lack macs and params (skipped)."""
    root = tmp_path_factory.mktemp("mixed")
    runs = {
        "macs": ("cifar10_embedded", "macs"),
        "params": ("cifar10_embedded", "params"),
        "params100": ("cifar100", "params"),
        "single": ("cifar100", None),
        "no_cost": ("cifar100", None),
    }
    for name, (dataset, sec_obj) in runs.items():
        toy_search(toy_config(root / name, iterations=0, sec_obj=sec_obj, dataset=dataset)).run()
        post_search(PostSearchConfig(expr=str(root / name), n=2, weights=False), log=lambda *_: None)
    for stats in (root / "no_cost" / "final").glob("net-*/net.stats"):
        data = json.loads(stats.read_text())
        data["metrics"] = {k: v for k, v in data["metrics"].items() if k not in ("macs", "params")}
        stats.write_text(json.dumps(data))
    return root


def test_visualize_final_architectures_one_panel_per_dataset_and_objective(
    mixed, tmp_path, monkeypatch, capsys
):
    import nas.analysis

    figures = []

    def save_figure(fig, stem):
        figures.append(fig)
        return real_save_figure(fig, stem)

    real_save_figure = nas.analysis.save_figure
    monkeypatch.setattr(nas.analysis, "save_figure", save_figure)
    out = tmp_path / "all"
    argv = ["--results_dir", str(mixed), "--dataset", "all"]
    assert visualize_final_architectures.main([*argv, "--output_dir", str(out)]) == 0
    assert "note: skipping no_cost/final: a single-objective run" in capsys.readouterr().out
    n = files_of(out, "final_architectures")
    assert n["groups"] == [
        {"dataset": "cifar100", "objective": "macs", "experiments": ["single/final"]},
        {"dataset": "cifar100", "objective": "params", "experiments": ["params100/final"]},
        {"dataset": "cifar10_embedded", "objective": "macs", "experiments": ["macs/final"]},
        {"dataset": "cifar10_embedded", "objective": "params", "experiments": ["params/final"]},
    ]
    assert n["second_obj"] is None and len(n["points"]) == 8
    assert [e["name"] for e in n["experiments"]] == [g["experiments"][0] for g in n["groups"]]
    for e, g in zip(n["experiments"], n["groups"], strict=True):
        points = [p for p in n["points"] if p["experiment"] == e["name"]]
        assert len(points) == e["n"] == 2 and e["front"]
        assert all(p[g["objective"]] == p["metrics"][g["objective"]] for p in points)
    (fig,) = figures  # a 2 x 3 grid with the 2 unused cells removed
    assert [ax.get_title() for ax in fig.axes] == [
        f"{g['dataset']}: top-1 vs {g['objective']}" for g in n["groups"]
    ]

    # the dataset filter keeps its panels; --second_obj forces one x axis for every experiment
    out = tmp_path / "cifar10"
    assert (
        visualize_final_architectures.main(
            [*argv[:2], "--dataset", "cifar10_embedded", "--output_dir", str(out)]
        )
        == 0
    )
    n = json.loads((out / "numbers.json").read_text())
    assert [(g["dataset"], g["objective"]) for g in n["groups"]] == [
        ("cifar10_embedded", "macs"),
        ("cifar10_embedded", "params"),
    ]
    assert len(figures[-1].axes) == 2
    out = tmp_path / "forced"
    argv = ["--results_dir", str(mixed), "--dataset", "cifar10_embedded", "--second_obj", "params"]
    assert visualize_final_architectures.main([*argv, "--output_dir", str(out)]) == 0
    n = json.loads((out / "numbers.json").read_text())
    assert n["second_obj"] == "params" and n["groups"] == [
        {"dataset": "cifar10_embedded", "objective": "params", "experiments": ["macs/final", "params/final"]}
    ]
    assert len(figures[-1].axes) == 1
    # a forced x axis a network lacks stays a one-line error
    argv = ["--results_dir", str(mixed), "--second_obj", "params", "--output_dir", str(tmp_path / "o")]
    assert run_cli(visualize_final_architectures.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --second_obj params: ") and err.count("\n") == 1 and "no 'params'" in err


def test_default_output_folders_are_new_every_time(results, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert plot_search.main(["--expr", str(results / "seed1")]) == 0
        assert visualize_final_architectures.main(["--results_dir", str(results)]) == 0
    ps = tmp_path / "results" / "analysis" / "plot_search"
    assert sorted(p.name for p in ps.iterdir()) == ["seed1", "seed1-2"]
    vf = tmp_path / "results" / "analysis" / "visualize_final_architectures"
    assert len(list(vf.iterdir())) == 2
    for folder in [*ps.iterdir(), *vf.iterdir()]:
        assert (folder / "numbers.json").is_file()


@pytest.mark.parametrize(
    ("tool", "args", "match"),
    [
        (plot_search, ["--expr", "{tmp}/nowhere"], "does not exist"),
        (plot_search, ["--expr", "{tmp}"], "no iter_k.stats"),
        (plot_search, [], "either --expr"),
        (plot_search, ["--compare", "{results}/seed0", "{results}/other/params"], "different objectives"),
        (plot_search, ["--compare", "{results}/seed0", "{results}/seed1", "--labels", "a"], "2 runs"),
        (visualize_final_architectures, ["--results_dir", "{tmp}"], "no experiments under"),
        (visualize_final_architectures, ["--results_dir", "{tmp}/nowhere"], "is not a folder"),
        (
            visualize_final_architectures,
            ["--results_dir", "{results}", "--dataset", "imagenet"],
            "cifar10_embedded",
        ),
        (
            visualize_final_architectures,
            ["--results_dir", "{results}", "--second_obj", "latency"],
            "no 'latency'",
        ),
    ],
)
def test_bad_inputs_are_one_line_errors(tool, args, match, results, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, results=results) for a in args] + ["--output_dir", str(tmp_path / "o")]
    assert run_cli(tool.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and match in err, err


@pytest.mark.parametrize(
    "args",
    [
        ["{results}/seed0", "{results}/other/params"],  # different objectives
        ["{results}/seed0", "{results}/seed1", "--labels", "a", "a"],  # one setting only
    ],
)
def test_refused_comparisons_leave_no_output_folder(args, results, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # default output folders: ./results/analysis/plot_search/...
    assert run_cli(plot_search.main, ["--compare", *[a.format(results=results) for a in args]]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert not (tmp_path / "results").exists()


def test_bad_input_exit_status_from_the_command_line(results):
    r = run_tool("plot_search", "--compare", results / "seed0")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == "error: --compare needs at least 2 runs, got 1; for one run use --expr\n"
