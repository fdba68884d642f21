"""The launchers in scripts/: valid bash, and the ones that need no dataset run as they are."""

import os
import shutil
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


@pytest.mark.parametrize("smi", [None, "exit 127", "echo 'NVIDIA-SMI has failed: no driver'; exit 9"])
def test_multi_gpu_script_without_n_gpus_counts_no_gpu(tmp_path, smi):
    # N_GPUS unset: the GPUs are counted with nvidia-smi, which may be absent or fail without a driver;
    # the script must still say so (it used to end silently with status 127 under set -o pipefail)
    env = {k: v for k, v in os.environ.items() if k != "N_GPUS"}
    env.update(PY=str(ROOT / ".venv" / "bin" / "python"), OUT=str(tmp_path / "out"))
    if smi is None:
        if shutil.which("nvidia-smi") is not None:
            pytest.skip("nvidia-smi is installed here")
    else:  # a stand-in first on PATH
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\n{smi}\n")
        (bin_dir / "nvidia-smi").chmod(0o755)
        env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    p = subprocess.run(
        ["bash", str(ROOT / "scripts" / "search_multi_gpu.sh")], env=env, capture_output=True, text=True
    )
    assert p.returncode == 2 and "no GPU found" in p.stderr, (p.returncode, p.stderr)
