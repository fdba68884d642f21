"""A plug-in written only for the tests (tests/demo_plugin) runs through every part of the toolkit:
msunas.py --config with worker processes, a kill -9 and --resume, post_search.py, the tools, and a
Ray cluster of separate processes, with no edit under the engine."""

import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nas.cli import run_cli
from nas.search.archive import read_stats
from nas.search.cli import resolve
from nas.search.factory import build_run
from nas.search.loop import Search

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = str(ROOT / "tests" / "demo_plugin")

PIPELINE = {
    "plugins": [PLUGIN],
    "space": "demo_cnn",
    "evaluator": {
        "name": "subnet",
        "dataset": "cifar10_embedded",
        "vld_size": 200,
        "pretrained": False,
        "bn_batches": 1,
        "device": "cpu",
        "n_workers": 0,
    },
    "trainer": {"name": "demo_sgd", "n_epochs": 1, "steps_per_epoch": 2, "batch_size": 32},
    "measures": ["accuracy", "demo_heads"],
    "costs": ["demo_costs"],
    "objectives": ["top1", {"name": "demo_phi", "budget": 0.5}],
    "strategy": "demo_walk",
    "loop": {"n_doe": 6, "n_iter": 2, "iterations": 3},
}


def write_config(path: Path, description: dict) -> str:
    path.write_text(yaml.safe_dump(description))
    return str(path)


def in_process(argv: list[str]) -> list[dict]:
    search = Search(build_run(resolve(argv), log=lambda *_: None), log=lambda *_: None)
    return search.run().to_json()


def test_a_plugin_runs_through_msunas_workers_resume_post_search_and_tools(tmp_path, capsys):
    import torch

    config = write_config(tmp_path / "demo.yaml", PIPELINE)
    # training sums floats in an order that depends on the thread count: the reference uses what
    # each of the 2 worker processes gets (the cores shared between them)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    try:
        reference = in_process(["--config", config, "--save", str(tmp_path / "ref")])
    finally:
        torch.set_num_threads(threads)
    assert len(reference) == 6 + 3 * 2 and not any("failure" in r for r in reference)

    # msunas.py with two worker processes, killed (-9, the whole process group) in iteration 2
    run = tmp_path / "killed"
    cmd = [sys.executable, "msunas.py", "--config", config, "--n_jobs", "2", "--save", str(run)]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.time() + 240
    while (
        not list((run / "iter_2").glob("net_*/net.stats")) and time.time() < deadline and proc.poll() is None
    ):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (run / "iter_1.stats").is_file() and not (run / "iter_3.stats").exists(), proc.stderr.read()
    p = subprocess.run(
        [sys.executable, "msunas.py", "--resume", str(run)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    stats = read_stats(run / "iter_3.stats")
    assert stats["archive"] == reference  # the same archive as the uninterrupted in-process run
    assert stats["strategy"] == {"asks": 3} and stats["run"]["executor"]["n_jobs"] == 2
    assert stats["run"]["plugins"][-1] == PLUGIN and stats["objectives"] == ["top1", "demo_phi"]

    # structured metrics: kept as lists in net.stats, flattened in archive.csv
    first = stats["archive"][0]
    net_stats = json.loads((run / "iter_0" / f"net_{first['id']}" / "net.stats").read_text())
    assert len(net_stats["metrics"]["head_top1"]) == 3
    assert net_stats["metrics"]["head_top1"][-1] == net_stats["metrics"]["top1"]  # the last head is the net's
    with open(run / "archive.csv") as f:
        header = next(csv.reader(f))
    assert {"head_top1.0", "head_top1.2", "train_loss", "f2_demo_phi"} <= set(header)

    # post_search.py and the tools read the run with the plug-in's parts, weights included
    import post_search
    from tools import plot_search

    assert run_cli(post_search.main, ["--expr", str(run), "-n", "2", "--device", "cpu"]) == 0
    finals = sorted((run / "final").glob("net-trade-off_*"))
    assert len(finals) == 2 and all((f / "ckpt.pth").is_file() for f in finals)
    chosen = json.loads((finals[0] / "net.stats").read_text())
    # trained candidates keep the weights they were scored with: post-search copies them
    assert chosen["weights"]["source"].endswith(f"net_{chosen['id']}/ckpt.pth")
    assert set(chosen["objectives"]) == {"top1", "demo_phi"}
    out = tmp_path / "plots"
    assert run_cli(plot_search.main, ["--expr", str(run), "--output_dir", str(out)]) == 0
    assert (out / "hv.png").is_file() and (out / "archive.png").is_file()
    capsys.readouterr()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.xdist_group("ray")
def test_a_ray_cluster_of_separate_processes_runs_a_plugin_space(tmp_path):
    """``ray start --head`` on loopback plus a second ``ray start --address`` node (each its own
    process group, stopped at the end); the actors load the plug-in and the archive equals the
    in-process one."""
    ray_bin = shutil.which("ray", path=os.path.dirname(sys.executable)) or shutil.which("ray")
    assert ray_bin is not None
    description = {**PIPELINE, "evaluator": "demo_oracle", "trainer": None, "measures": []}
    config = write_config(tmp_path / "oracle.yaml", description)
    reference = in_process(["--config", config, "--save", str(tmp_path / "ref")])
    port = _free_port()
    # token authentication, as a real cluster should run it: every node and the driver share the token
    token = secrets.token_hex(32)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    nodes = []
    try:
        for extra in (
            ["--head", f"--port={port}", "--node-ip-address=127.0.0.1"],
            [f"--address=127.0.0.1:{port}"],
        ):
            cmd = [ray_bin, "start", "--block", "--num-cpus=1", "--disable-usage-stats", *extra]
            if "--head" in extra:
                cmd.append("--include-dashboard=false")
            nodes.append(
                subprocess.Popen(
                    cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
                )
            )
            if "--head" in extra:  # the second node joins once the head listens
                deadline = time.time() + 60
                while time.time() < deadline:
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=1).close()
                        break
                    except OSError:
                        time.sleep(0.2)
        p = subprocess.run(
            [sys.executable, "msunas.py", "--config", config, "--save", str(tmp_path / "ray")]
            + ["--ray_address", f"127.0.0.1:{port}", "--n_jobs", "2"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:  # each node's whole process group (raylet, GCS, workers); SIGTERM's graceful stop takes >30 s
        for node in nodes:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait(timeout=30)
    assert p.returncode == 0, p.stderr
    assert read_stats(tmp_path / "ray" / "iter_3.stats")["archive"] == reference


def test_every_command_takes_plugins(tmp_path, capsys):
    """``--plugins`` loads a plug-in for the tools too: cost counting and export of its networks."""
    from tools import export, net_info

    subnet = tmp_path / "net.subnet"
    subnet.write_text(json.dumps({"w": [8, 16, 24], "d": [1, 2, 1]}))
    args = ["--plugins", PLUGIN, "--search_space", "demo_cnn", "--subnet", str(subnet), "--n_classes", "10"]
    assert run_cli(net_info.main, [*args, "--method", "hooks", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["macs"] > 0
    for fmt, out in (("torchscript", tmp_path / "demo.pt"), ("onnx", tmp_path / "demo.onnx")):
        assert run_cli(export.main, [*args, "--format", fmt, "--output", str(out)]) == 0
        record = json.loads(out.with_name(out.name + ".json").read_text())
        # the network returns one output per stage head: every one is exported and checked
        assert record["search_space"] == "demo_cnn" and record["n_outputs"] == 3 and record["check"]["passed"]
    capsys.readouterr()
    import subprocess as sp

    p = sp.run([sys.executable, "tools/net_info.py", *args[2:]], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 2 and "unknown search space 'demo_cnn'" in p.stderr  # not without the plug-in
