"""msunas.py end to end on the NAS-Bench-201 oracle, and its bad-input errors."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.nb201 import hv_ratio
from nas.search.archive import read_stats

ROOT = Path(__file__).resolve().parents[1]


def msunas(*args):
    """``msunas.py`` as a program: a process of its own."""
    return subprocess.run(
        [sys.executable, "msunas.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def msunas_here(capsys, *args):
    """``msunas.py`` in this process (the script is ``run_cli(main)`` and nothing else): faster."""
    from types import SimpleNamespace

    from nas.cli import run_cli
    from nas.search.cli import main

    code = run_cli(main, list(args), plugins_flag=True)
    out = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)


def test_nb201_benchmark_run_and_resume(tmp_path, capsys):
    save = tmp_path / "nb"
    p = msunas("--benchmark", "nb201", "--iterations", "2", "--predictor", "carts", "--save", str(save))
    assert p.returncode == 0, p.stderr
    assert "iter 2: archive 70" in p.stdout
    stats = read_stats(save / "iter_2.stats")
    a = stats["archive_obj"]
    assert stats["objectives"] == ["top1", "flops"] and len(a) == 70
    pts = np.array([[100 - r.metrics["top1"], r.metrics["flops"]] for r in a.ok()])
    assert hv_ratio(pts, "cifar10") > 0.9  # random search with 70 evaluations: about 0.84
    # --resume DIR alone continues the run with its own settings (benchmark, predictor, save, ...)
    p = msunas_here(capsys, "--resume", str(save), "--iterations", "3")
    assert p.returncode == 0, p.stderr
    assert "resumed from" in p.stdout and len(read_stats(save / "iter_3.stats")["archive_obj"]) == 80
    assert read_stats(save / "iter_3.stats")["run"]["strategy"]["predictor"] == "carts"


def test_sec_obj_none_makes_a_preset_single_objective(tmp_path, capsys):
    save = tmp_path / "single"
    p = msunas_here(
        capsys, "--benchmark", "nb201", "--sec_obj", "none", "--iterations", "1", "--save", str(save)
    )
    assert p.returncode == 0, p.stderr
    stats = read_stats(save / "iter_1.stats")
    assert stats["objectives"] == ["top1"] and stats["run"]["objectives"] == [{"name": "top1"}]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--supernet_path", "/nonexistent/sn.pth"], "does not exist"),
        (["--benchmark", "nb201", "--n_doe", "5", "--predictor", "rbf"], "too small"),
        (["--benchmark", "cifar"], "unknown --benchmark 'cifar'"),
        (["--lr", "256", "--ur", "192"], "larger than --ur"),
        (
            ["--benchmark", "nb201", "--lr", "256"],
            "--lr is an option of search space cbnmobilenetv3, eemobilenetv3, hadasmobilenetv3, "
            "mobilenetv3 or skippingmobilenetv3; this run uses search space nb201",
        ),
        (["--benchmark", "nb201", "--n_iter", "50"], "exceeds the 40 candidates"),
        (["--benchmark", "nb201", "--sec_obj", "speed"], "unknown objective 'speed'"),
        (["--sec_obj", "foo"], "unknown objective 'foo'"),
        (["--measures", "accuracy", "exits"], "the exits measure needs an early-exit search space"),
        (["--search_space", "eemobilenetv3", "--trainer", "nachos"], "confidence unit"),
        (["--search_space", "cbnmobilenetv3", "--sec_obj", "nachos"], "needs a budget: pass --mmax"),
        (["--resume", "/nonexistent/run"], "no iter_k.stats file there"),
        (["--benchmark", "nb201", "--pmax", "3"], "--pmax is an option of objective tiny_ml"),
        (
            ["--benchmark", "nb201", "--strategy", "re", "--predictor", "gp"],
            "--predictor is an option of strategy bo, msunas or pnas",
        ),
        (["--benchmark", "nb201", "--iterations", "x"], "invalid int value"),
        (["--benchmark", "nb201", "--dataset", "mnist"], "mnist"),
        (["--benchmark", "nb201", "--resume", "/nonexistent/run"], "no iter_k.stats file there"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, args, message, capsys):
    """In this process (msunas.py runs the same run_cli(main)); nothing is written."""
    from nas.cli import run_cli
    from nas.search.cli import main

    assert run_cli(main, [*args, "--save", str(tmp_path / "r")], plugins_flag=True) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "r").exists()


def test_config_file_sets_defaults_and_flags_win(tmp_path, capsys):
    import yaml

    cfg = tmp_path / "search.yaml"
    cfg.write_text(yaml.safe_dump({"benchmark": "nb201", "iterations": 3, "predictor": "carts", "n_doe": 20}))
    p = msunas_here(capsys, "--config", str(cfg), "--iterations", "1", "--save", str(tmp_path / "run"))
    assert p.returncode == 0, p.stderr
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    loop, objectives = saved["loop"], [o["name"] for o in saved["objectives"]]
    assert (saved["preset"], loop["iterations"], loop["n_doe"], objectives) == (
        "nb201",
        1,
        20,
        ["top1", "flops"],
    )
    assert len(read_stats(tmp_path / "run" / "iter_1.stats")["archive_obj"]) == 30


def test_resume_from_a_foreign_stats_file_exits_2_and_keeps_it(tmp_path, capsys):
    run = tmp_path / "old"
    run.mkdir()
    foreign = run / "iter_3.stats"
    text = '{"archive": [[{"ks": []}, 10.0, 2.0]]}'  # an nsganetv2-style file
    foreign.write_text(text)
    p = msunas_here(capsys, "--resume", str(run))
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "not a stats file of this toolkit" in lines[0]
    assert foreign.read_text() == text and sorted(run.iterdir()) == [foreign]
