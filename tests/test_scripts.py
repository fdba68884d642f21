"""The launchers in scripts/: valid bash, and the ones that need no dataset run as they are."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_is_valid_bash_and_commented(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    lines = script.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash" and lines[1].startswith("# ") and os.access(script, os.X_OK)
    assert "set -euo pipefail" in lines


def test_nb201_benchmark_script_runs(tmp_path):
    env = {
        **os.environ,
        "PY": str(ROOT / ".venv" / "bin" / "python"),
        "OUT": str(tmp_path / "nb201"),
        "EXTRA": "--iterations 1 --predictor carts",
    }
    p = subprocess.run(
        ["bash", str(ROOT / "scripts" / "benchmark_nb201.sh")], env=env, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    assert (
        "60 evaluations, HV ratio 0." in p.stdout
        and (tmp_path / "nb201" / "seed0" / "iter_1.stats").is_file()
    )


def test_multi_gpu_script_says_when_there_is_no_gpu(tmp_path):
    env = {**os.environ, "PY": str(ROOT / ".venv" / "bin" / "python"), "N_GPUS": "0", "OUT": str(tmp_path)}
    p = subprocess.run(
        ["bash", str(ROOT / "scripts" / "search_multi_gpu.sh")], env=env, capture_output=True, text=True
    )
    assert p.returncode == 2 and "no GPU found" in p.stderr
