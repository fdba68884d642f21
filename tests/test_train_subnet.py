"""``train.py subnet`` and the one training loop (nas/training/).

Training runs on one thread: the test machine has two cores that are often shared, and two
oneDNN threads on busy cores are many times slower than one.
"""

import csv
import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import nas.training.subnet as subnet_module
from nas.cli import run_cli
from nas.data import load_dataset, make_loader
from nas.errors import UserError
from nas.io import load_checkpoint, save_checkpoint
from nas.scoring import accuracy
from nas.space import get_search_space
from nas.train_cli import main
from nas.training.loop import TrainConfig, TrainLoop, as_channels_last
from nas.training.optim import SharpnessAware, frozen_bn_stats, warmup_cosine
from nas.training.subnet import SubnetTrainConfig, load_data, prepare_subnet, train_subnet

ROOT = Path(__file__).resolve().parents[1]
SPACE = get_search_space("mobilenetv3", lr=32, ur=32)
SMALLEST = SPACE.smallest()  # 32 px, kernel 3, expand 3, depth 2: the cheapest network


@functools.cache
def _cached_dataset(name, data_dir, vld_size, seed):
    return load_dataset(name, data_dir, vld_size=vld_size, seed=seed)


@pytest.fixture(autouse=True)
def one_thread_and_cached_data(monkeypatch):
    """One torch thread, and the embedded CIFAR-10 decoded once for the in-process runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(
        subnet_module,
        "load_dataset",
        lambda n, d=None, vld_size=0, seed=0: _cached_dataset(n, d, vld_size, seed),
    )
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def subnet_file(tmp_path):
    path = tmp_path / "net" / "net.subnet"
    SPACE.write_subnet(path, SMALLEST)
    return path


def config(subnet, save, **kw):
    base = dict(
        subnet=str(subnet),
        max_train_images=256,
        epochs=1,
        steps_per_epoch=2,
        batch_size=32,
        warmup_epochs=0.0,
        device="cpu",
        save=None if save is None else str(save),
    )
    base.update(kw)
    return SubnetTrainConfig(**base)


def quiet(*_):
    pass


def _test_batches(job):
    return make_loader(job.data.test, 500, job.resolution, train=False, device=torch.device("cpu"))


# ---- training improves the network --------------------------------------------------------


def test_training_from_scratch_improves_test_accuracy(subnet_file, tmp_path):
    cfg = config(
        subnet_file,
        tmp_path / "run",
        max_train_images=2000,
        epochs=3,
        steps_per_epoch=None,
        batch_size=64,
        warmup_epochs=0.3,
        vld_size=200,
    )
    job = prepare_subnet(cfg)
    before = accuracy(job.model.eval(), as_channels_last(_test_batches(job)))["top1"]
    lines = []
    trained = train_subnet(cfg, log=lines.append)
    assert "initial weights: scratch" in lines[0]
    assert before < 15 and trained["top1"] > before + 12, (before, trained)
    assert 0 <= trained["top1"] <= trained["top5"] <= 100
    run = tmp_path / "run"
    for name in ("checkpoint.pth", "ckpt.pth", "config.yaml", "log.csv", "net.stats", "net.subnet"):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert {"lr", "train_loss", "train_top1", "valid_top1", "time_s"} <= set(rows[0])
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    stats = json.loads((run / "net.stats").read_text())
    assert stats["trained"]["top1"] == trained["top1"] and stats["id"] == SPACE.arch_id(SMALLEST)
    # the final weights are a valid --init: the same network, the same weights
    again = prepare_subnet(config(subnet_file, tmp_path / "other", init=str(run / "ckpt.pth")))
    final = load_checkpoint(run / "ckpt.pth")
    assert final["arch"] == SMALLEST and final["n_classes"] == 10
    for k, v in again.model.state_dict().items():
        assert torch.equal(v, final["state_dict"][k]), k


# ---- kill -9 and --resume ------------------------------------------------------------------


def _train_py(subnet, save, *extra):
    args = ["--subnet", str(subnet), "--max_train_images", "384", "--batch_size", "64", "--epochs", "3"]
    args += ["--warmup_epochs", "0.5", "--device", "cpu", "--save", str(save), *extra]
    return [sys.executable, str(ROOT / "train.py"), "subnet", *args]


def test_resume_after_kill_9_equals_an_uninterrupted_run(subnet_file, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full_dir, killed_dir = tmp_path / "full", tmp_path / "killed"
    # both at once, one thread each: the uninterrupted run, and one killed during its second epoch
    full = subprocess.Popen(
        _train_py(subnet_file, full_dir), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    victim = subprocess.Popen(
        _train_py(subnet_file, killed_dir), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not (killed_dir / "checkpoint.pth").exists() and time.time() < deadline and victim.poll() is None:
        time.sleep(0.01)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    killed_at = load_checkpoint(killed_dir / "checkpoint.pth")["epoch"]
    assert 1 <= killed_at < 3
    assert not (killed_dir / "ckpt.pth").exists() and not (killed_dir / "net.stats").exists()
    out, err = full.communicate(timeout=300)
    assert full.returncode == 0, err
    p = subprocess.run(
        _train_py(subnet_file, killed_dir, "--resume"), env=env, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    assert f"resumed from {killed_dir / 'checkpoint.pth'} after epoch {killed_at}" in p.stdout
    a, b = load_checkpoint(full_dir / "ckpt.pth"), load_checkpoint(killed_dir / "ckpt.pth")
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    sa, sb = (json.loads((d / "net.stats").read_text())["trained"] for d in (full_dir, killed_dir))
    assert sa == sb
    rows = [list(csv.DictReader((d / "log.csv").open())) for d in (full_dir, killed_dir)]
    strip = [[{k: v for k, v in r.items() if k != "time_s"} for r in rs] for rs in rows]
    assert strip[0] == strip[1] and len(strip[0]) == 3


def test_resume_refuses_other_settings_and_overwriting(subnet_file, tmp_path):
    train_subnet(config(subnet_file, tmp_path / "r"), log=quiet)
    before = (tmp_path / "r" / "checkpoint.pth").read_bytes()
    with pytest.raises(UserError, match="was trained with seed=0, not 1; use the same settings"):
        train_subnet(config(subnet_file, tmp_path / "r", seed=1, resume=True), log=quiet)
    with pytest.raises(UserError, match="was trained with optimizer='sgd', not 'adam'"):
        train_subnet(config(subnet_file, tmp_path / "r", optimizer="adam", resume=True), log=quiet)
    with pytest.raises(UserError, match="checkpoint.pth exists: pass --resume"):
        train_subnet(config(subnet_file, tmp_path / "r"), log=quiet)
    assert (tmp_path / "r" / "checkpoint.pth").read_bytes() == before
    # resuming a finished run only re-tests it
    lines = []
    train_subnet(config(subnet_file, tmp_path / "r", resume=True), log=lines.append)
    assert any("after epoch 1" in line for line in lines) and not any(
        line.startswith("epoch") for line in lines
    )


# ---- optimisers, SAM, schedule -------------------------------------------------------------


def tiny_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.1),
        nn.Linear(8, 10),
    )


@pytest.mark.parametrize("optimizer", ["sgd", "sam", "asam", "adam", "adamw"])
def test_every_optimizer_trains(optimizer, tmp_path):
    data = load_data(SubnetTrainConfig(max_train_images=256), seed=0)
    net = tiny_net()
    start = {k: v.clone() for k, v in net.state_dict().items()}
    cfg = TrainConfig(
        optimizer=optimizer,
        epochs=2,
        batch_size=32,
        steps_per_epoch=4,
        grad_clip=5.0,
        device="cpu",
        save=str(tmp_path),
    )
    history = TrainLoop(net, data, 32, cfg, log=quiet).fit()
    assert len(history) == 2 and all(np.isfinite(r["train_loss"]) for r in history)
    assert not torch.equal(start["0.weight"], net.state_dict()["0.weight"])
    ckpt = load_checkpoint(tmp_path / "checkpoint.pth")
    assert ckpt["epoch"] == 2 and ckpt["scheduler"]["last_epoch"] == 8
    assert ckpt["settings"]["optimizer"] == optimizer


def test_sam_ascends_by_rho_then_restores_exactly():
    net = tiny_net()
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,))
    nn.functional.cross_entropy(net(x), y).backward()
    w0 = [p.detach().clone() for p in net.parameters()]
    sam = SharpnessAware(net.parameters(), rho=0.05)
    sam.ascend()
    shift = torch.sqrt(sum(((p - w) ** 2).sum() for p, w in zip(net.parameters(), w0, strict=True)))
    assert shift.item() == pytest.approx(0.05, rel=1e-4)  # a step of length rho along the gradient
    bn = net[1]
    mean = bn.running_mean.clone()
    with frozen_bn_stats(net):
        net(x)
    assert torch.equal(bn.running_mean, mean) and bn.momentum == 0.1
    sam.restore()
    assert all(torch.equal(p, w) for p, w in zip(net.parameters(), w0, strict=True))


@pytest.mark.parametrize("adaptive", [False, True])
def test_sam_and_asam_steps_match_a_hand_computed_update(adaptive):
    """One step on L(w) = 0.5 ||w - c||^2 (gradient w - c): ascent e = rho g / ||g|| (SAM) or
    rho T^2 g / ||T g|| with T = |w| + 0.01 (ASAM), then w - lr * (w + e - c)."""
    w0, c, rho, lr = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.7, -1.6, 0.5]), 0.5, 0.1
    g = w0 - c  # (0.3, -0.4, 0)
    t = w0.abs() + 0.01 if adaptive else torch.ones(3)
    e = rho * t * t * g / torch.linalg.vector_norm(t * g)
    if not adaptive:
        assert torch.allclose(e, torch.tensor([0.3, -0.4, 0.0]))  # rho * (0.6, -0.8, 0)
    w = nn.Parameter(w0.clone())
    opt = torch.optim.SGD([w], lr=lr)
    sam = SharpnessAware([w], rho, adaptive=adaptive)
    for second in (False, True):
        opt.zero_grad()
        (0.5 * ((w - c) ** 2).sum()).backward()
        if not second:
            sam.ascend()
            assert torch.allclose(w.detach(), w0 + e)
    sam.restore()
    opt.step()
    assert torch.allclose(w.detach(), w0 - lr * (w0 + e - c), atol=1e-6)


def test_sam_descends_with_the_perturbed_gradients(tmp_path):
    data = load_data(SubnetTrainConfig(max_train_images=128), seed=0)
    weights = {}
    for name in ("sgd", "sam"):
        cfg = TrainConfig(
            optimizer=name,
            epochs=1,
            steps_per_epoch=1,
            batch_size=32,
            device="cpu",
            save=str(tmp_path / name),
        )
        net = tiny_net()
        TrainLoop(net, data, 32, cfg, log=quiet).fit()
        weights[name] = net.state_dict()
    w_sgd, w_sam = weights["sgd"]["6.weight"], weights["sam"]["6.weight"]
    assert not torch.equal(w_sgd, w_sam) and torch.allclose(w_sgd, w_sam, atol=0.05)
    # one step: the first forward pass is the same in both; SAM's second one left BatchNorm alone
    assert torch.equal(weights["sgd"]["1.running_mean"], weights["sam"]["1.running_mean"])


def test_warmup_cosine_schedule():
    f = warmup_cosine(4, 20)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(12) == pytest.approx(0.5) and f(20) == pytest.approx(0.0) and f(30) == pytest.approx(0.0)
    assert warmup_cosine(0, 10)(0) == 1.0


# ---- initial weights and net.stats ---------------------------------------------------------


def test_supernet_weights_are_inherited_and_stats_merged(subnet_file, tmp_path):
    torch.manual_seed(3)
    supernet = SPACE.make_supernet(10)
    save_checkpoint(tmp_path / "supernet.pth", {"state_dict": supernet.state_dict()})
    cfg = config(subnet_file, None, supernet_path=str(tmp_path / "supernet.pth"))
    expected = SPACE.build(SMALLEST, supernet).state_dict()
    job = prepare_subnet(cfg)
    assert "inherited from" in job.init
    assert all(torch.equal(v, expected[k]) for k, v in job.model.state_dict().items())
    # a net.stats of the search next to the net.subnet: its keys stay, "trained" is added
    old = {"id": SPACE.arch_id(SMALLEST), "arch": SMALLEST, "metrics": {"top1": 12.5}, "note": "kept"}
    (subnet_file.parent / "net.stats").write_text(json.dumps(old))
    trained = train_subnet(cfg, log=quiet)  # --save defaults to the folder of --subnet
    stats = json.loads((subnet_file.parent / "net.stats").read_text())
    assert {k: stats[k] for k in old} == old and stats["trained"] == trained
    assert trained["init"].startswith("inherited from") and (subnet_file.parent / "ckpt.pth").is_file()


def test_ofa_imagenet_head_is_reinitialised(subnet_file, tmp_path):
    save_checkpoint(tmp_path / "in1k.pth", {"state_dict": SPACE.make_supernet(1000).state_dict()})
    job = prepare_subnet(config(subnet_file, tmp_path / "r", supernet_path=str(tmp_path / "in1k.pth")))
    assert "classifier re-initialised for 10 classes" in job.init
    assert job.model.classifier.linear.out_features == 10


# ---- bad inputs ----------------------------------------------------------------------------


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


def bad_cases(tmp_path, subnet):
    other = dict(SMALLEST, ks=[7] * 20)
    save_checkpoint(tmp_path / "other.pth", SPACE.build(other, SPACE.make_supernet(10)).state_dict())
    nb201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    return [
        ([], "needs --subnet FILE"),
        (["--subnet", str(tmp_path / "missing.subnet")], "does not exist; pass the net.subnet file"),
        (["--subnet", _write(tmp_path / "nb.subnet", nb201)], "is not a mobilenetv3 network"),
        (["--subnet", _write(tmp_path / "w.subnet", dict(SMALLEST, w=0.5))], "width multiplier 0.5"),
        (
            ["--subnet", _write(tmp_path / "r.subnet", dict(SMALLEST, r=16))],
            "r = 16 must be an integer >= 32",
        ),
        (["--subnet", subnet, "--init", str(tmp_path / "other.pth")], "does not fit this network"),
        (["--subnet", subnet, "--init", str(tmp_path / "nope.pth")], "--init"),
        (
            ["--subnet", subnet, "--init", "scratch", "--supernet_path", subnet],
            "either --init or --supernet_path",
        ),
        (["--subnet", subnet, "--optimizer", "lion"], "unknown optimizer 'lion'; choose one of: adam"),
        (["--subnet", subnet, "--epochs", "0"], "--epochs 0 must be an integer >= 1"),
        (["--subnet", subnet, "--label_smoothing", "1"], "--label_smoothing 1.0 must lie in [0, 1)"),
        (["--subnet", subnet, "--max_train_images", "0"], "--max_train_images 0 must be >= 1"),
    ]


def test_bad_inputs_give_one_line_and_status_2(subnet_file, tmp_path, capsys):
    for args, message in bad_cases(tmp_path, str(subnet_file)):
        status = run_cli(main, ["subnet", *args, "--device", "cpu", "--save", str(tmp_path / "run")])
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(err) == 1 and message in err[0], (args, err)
        assert not (tmp_path / "run" / "checkpoint.pth").exists()


def test_train_py_reports_bad_input_in_one_line(tmp_path):
    p = subprocess.run(
        [sys.executable, "train.py", "subnet", "--subnet", str(tmp_path / "x.subnet")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        f"error: --subnet {str(tmp_path / 'x.subnet')!r} does not exist; "
        "pass the net.subnet file of the network"
    ]


def test_on_epoch_start_sees_the_epoch_also_after_a_resume_of_an_older_checkpoint(subnet_file, tmp_path):
    """The loop's ``on_epoch_start`` hook (per-epoch settings of a task: soft or hard gates, a loss
    ramp) gets the number of epochs done, also when a run resumes; an option added after a
    checkpoint was written (here ``new_lr_mult``) is taken at its default when resuming it."""
    from nas.training.trainers import SingleExit

    class Recorder(SingleExit):
        seen: list[int] = []
        stop_at: int | None = 1

        def on_epoch_start(self, loop):
            if loop.epoch == self.stop_at:
                raise KeyboardInterrupt  # a kill after the first epoch's checkpoint
            self.seen.append(loop.epoch)

    cfg = config(subnet_file, tmp_path / "r", epochs=2)
    with pytest.raises(KeyboardInterrupt):
        train_subnet(cfg, log=quiet, task=Recorder())
    ckpt = load_checkpoint(tmp_path / "r" / "checkpoint.pth")
    del ckpt["settings"]["new_lr_mult"]  # as written before the option existed
    save_checkpoint(tmp_path / "r" / "checkpoint.pth", ckpt)
    Recorder.stop_at = None
    train_subnet(config(subnet_file, tmp_path / "r", epochs=2, resume=True), log=quiet, task=Recorder())
    assert Recorder.seen == [0, 1]


def test_after_training_evaluations_add_flags_write_net_stats_and_do_not_bind_resume(
    subnet_file, tmp_path, monkeypatch
):
    """A plug-in's after-training evaluation (:mod:`nas.training.after`): its options are flags of
    ``train.py subnet``, checked before training; its flag switches it on, its metrics land in
    net.stats under its name, and its options do not bind ``--resume``."""
    from dataclasses import dataclass

    from nas.config import option
    from nas.training.after import AFTER_TRAINING, AfterTraining

    @dataclass
    class ProbeOptions:
        probe_eval: bool = option(False, "run the probe after training")
        probe_scale: float = option(1.0, "probe: factor")

    def probe(model, job, cfg):
        assert not model.training and job.arch == SMALLEST
        return {"params_scaled": cfg.probe_scale * sum(p.numel() for p in model.parameters())}

    def check(cfg):
        if cfg.probe_scale <= 0:
            raise UserError(f"--probe_scale {cfg.probe_scale} must be > 0")

    probe_eval = AfterTraining(ProbeOptions, "probe_eval", probe, check)
    monkeypatch.setitem(AFTER_TRAINING._items, "probe", probe_eval)
    run = tmp_path / "run"
    args = ["subnet", "--subnet", str(subnet_file), "--max_train_images", "128", "--batch_size", "64"]
    args += ["--epochs", "1", "--steps_per_epoch", "1", "--device", "cpu", "--save", str(run)]
    with pytest.raises(UserError, match="--probe_scale -1.0 must be > 0"):  # before any training
        main([*args, "--probe_eval", "--probe_scale", "-1"])
    assert not (run / "checkpoint.pth").exists()
    assert main([*args, "--probe_eval", "--probe_scale", "2"]) == 0
    stats = json.loads((run / "net.stats").read_text())
    assert not {"probe_eval", "probe_scale"} & set(load_checkpoint(run / "checkpoint.pth")["settings"])
    state = load_checkpoint(run / "ckpt.pth")["state_dict"]
    n = sum(v.numel() for k, v in state.items() if "running" not in k and "batches" not in k)
    assert stats["probe"]["params_scaled"] == 2 * n and "trained" in stats
