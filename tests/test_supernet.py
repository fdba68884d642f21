"""Supernet training (sandwich rule), BatchNorm recalibration, resume, and the train.py CLI."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nas.data import make_loader
from nas.scoring import accuracy, recalibrate_bn
from nas.training.supernet import SupernetConfig, SupernetTrainer

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(save, **kw):
    base = dict(
        dataset="cifar10_embedded",
        vld_size=200,
        lr=32,
        ur=32,
        epochs=2,
        steps_per_epoch=6,
        batch_size=32,
        n_random=1,
        bn_batches=1,
        eval_images=64,
        warmup_epochs=0.5,
        device="cpu",
        save=str(save),
    )
    base.update(kw)
    return SupernetConfig(**base)


def train_images_loss(trainer, arch):
    """Cross-entropy of ``arch`` on the (small) training split, BatchNorm recalibrated on it."""
    net = trainer.space.build(arch, trainer.supernet)
    loader = make_loader(trainer.data.train, 128, arch["r"], train=False, device=trainer.device)
    recalibrate_bn(net, loader, 2)
    return accuracy(net, loader)["loss"]


def test_training_lowers_the_loss_of_both_ends(tmp_path):
    epochs = 5
    trainer = SupernetTrainer(
        tiny_config(tmp_path / "run", epochs=epochs, steps_per_epoch=None, base_lr=0.1, kd_ratio=0.5,
                    n_random=0, batch_size=16)
    )  # fmt: skip
    # 128 training images, 8 steps an epoch: enough to see both ends of the space learn in seconds
    trainer.data.train = trainer.data.train.subset(np.arange(0, len(trainer.data.train), 76)[:128])
    ends = [trainer.space.largest(), trainer.space.smallest()]
    before = [train_images_loss(trainer, a) for a in ends]
    history = trainer.train(log=lambda *_: None)
    after = [train_images_loss(trainer, a) for a in ends]
    assert len(history) == epochs
    for b, a in zip(before, after, strict=True):
        assert a < b - 0.1, (before, after)
    for name in ("checkpoint.pth", "supernet.pth", "config.yaml", "log.csv"):
        assert (tmp_path / "run" / name).is_file()
    assert len((tmp_path / "run" / "log.csv").read_text().splitlines()) == epochs + 1


class KilledError(Exception):
    pass


def kill_after_first_epoch(msg):
    raise KilledError(msg)  # the log line comes right after the epoch's checkpoint is written


def test_resume_continues_to_the_same_weights(tmp_path):
    steps = 3  # per epoch; two epochs
    full = SupernetTrainer(tiny_config(tmp_path / "full", steps_per_epoch=steps))
    full.train(log=lambda *_: None)
    with pytest.raises(KilledError):
        SupernetTrainer(tiny_config(tmp_path / "split", steps_per_epoch=steps)).train(
            log=kill_after_first_epoch
        )
    second = SupernetTrainer(tiny_config(tmp_path / "split", steps_per_epoch=steps, resume=True))
    msgs = []
    second.train(log=msgs.append)
    assert msgs[0] == f"resumed from {tmp_path / 'split' / 'checkpoint.pth'} after epoch 1"
    assert second.epoch == 2
    for k, v in full.supernet.state_dict().items():
        assert torch.equal(v, second.supernet.state_dict()[k]), k
    assert [r["epoch"] for r in second.history] == [1, 2]
    assert full.history[-1]["top1_largest"] == second.history[-1]["top1_largest"]


def test_resume_refuses_other_settings(tmp_path):
    SupernetTrainer(tiny_config(tmp_path / "r", epochs=1, steps_per_epoch=1)).train(log=lambda *_: None)
    from nas.errors import UserError

    with pytest.raises(UserError, match="was trained with seed=0, not 1"):
        again = tiny_config(tmp_path / "r", epochs=1, steps_per_epoch=1, seed=1, resume=True)
        SupernetTrainer(again).train(log=lambda *_: None)


def test_recalibrate_bn_matches_exact_batch_statistics():
    bn = torch.nn.BatchNorm2d(3)
    xs = [torch.randn(4, 3, 5, 5) * (i + 1) + i for i in range(3)]
    recalibrate_bn(bn, [(x, None) for x in xs], n_batches=3)
    means = torch.stack([x.mean(dim=(0, 2, 3)) for x in xs]).mean(0)
    assert torch.allclose(bn.running_mean, means, atol=1e-5)
    assert bn.momentum == 0.1 and bn.training  # momentum and train mode restored


def test_accuracy_counts_topk():
    model = torch.nn.Identity()
    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [1.0, 2.0, 3.0]])
    y = torch.tensor([0, 2, 0])
    res = accuracy(model, [(logits, y)], topk=(1, 2))
    assert res["top1"] == pytest.approx(100 / 3) and res["top2"] == pytest.approx(200 / 3)
    assert res["loss"] == pytest.approx(F.cross_entropy(logits, y).item())


def run(*args):
    """``train.py`` as a program of its own (the first call of the end-to-end test)."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def train_here(*args):
    """``train.py`` in this process (the script is run_cli(main) and nothing else)."""
    from tests.cli_here import run_main

    return run_main("train", *args)


def test_train_cli_supernet_then_eval(tmp_path):
    save = tmp_path / "sn"
    p = run(
        "train.py",
        "supernet",
        "--lr",
        "32",
        "--ur",
        "32",
        "--epochs",
        "1",
        "--steps_per_epoch",
        "2",
        "--batch_size",
        "16",
        "--n_random",
        "0",
        "--eval_images",
        "64",
        "--bn_batches",
        "1",
        "--device",
        "cpu",
        "--save",
        str(save),
    )
    assert p.returncode == 0, p.stderr
    assert (save / "supernet.pth").is_file()
    subnet = tmp_path / "net.subnet"
    subnet.write_text(json.dumps({"ks": [5] * 20, "e": [4] * 20, "d": [3] * 5, "r": 32}))
    p = train_here(
        "eval",
        "--subnet",
        str(subnet),
        "--supernet_path",
        str(save / "supernet.pth"),
        "--device",
        "cpu",
        "--bn_batches",
        "1",
    )
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert 0 <= res["top1"] <= 100 and res["params"] > 0 and res["macs"] > 0 and res["activations"] > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["nope"], "unknown train.py mode 'nope'"),
        (["supernet", "--dataset", "mnist"], "unknown dataset 'mnist'"),
        (["supernet", "--lr", "64", "--ur", "32"], "larger than --ur"),
        (["supernet", "--n_classes", "100"], "does not match"),
        (["eval", "--subnet", "x.subnet"], "needs --subnet FILE and --supernet_path FILE"),
    ],
)
def test_train_cli_bad_input(args, message):
    p = train_here(*args)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], p.stderr


def test_eval_rejects_checkpoint_of_other_class_count(tmp_path):
    from nas.io import save_checkpoint
    from nas.space import get_search_space

    save_checkpoint(tmp_path / "c100.pth", get_search_space("mobilenetv3").make_supernet(100).state_dict())
    (tmp_path / "net.subnet").write_text(json.dumps({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 32}))
    p = train_here(
        "eval",
        "--subnet",
        str(tmp_path / "net.subnet"),
        "--supernet_path",
        str(tmp_path / "c100.pth"),
        "--device",
        "cpu",
    )
    assert p.returncode == 2 and "another class count" in p.stderr


def test_supernet_path_and_pretrained_switch(tmp_path, monkeypatch):
    from nas.errors import UserError
    from nas.io import save_checkpoint

    torch.manual_seed(5)
    source = SupernetTrainer(tiny_config(tmp_path / "a")).supernet.state_dict()
    save_checkpoint(tmp_path / "init.pth", {"state_dict": source})
    loaded = SupernetTrainer(tiny_config(tmp_path / "b", supernet_path=str(tmp_path / "init.pth"), seed=1))
    assert all(torch.equal(v, source[k]) for k, v in loaded.supernet.state_dict().items())
    ignored = SupernetTrainer(
        tiny_config(tmp_path / "c", supernet_path=str(tmp_path / "init.pth"), pretrained=False, seed=1)
    )
    assert not torch.equal(ignored.supernet.first_conv.conv.weight, source["first_conv.conv.weight"])

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    monkeypatch.setattr("NasSearchSpace.ofa_mbv3.DEFAULT_SUPERNET_DIR", str(tmp_path / "supernets"))
    with pytest.raises(UserError, match="cannot download the pretrained supernet"):
        SupernetTrainer(tiny_config(tmp_path / "d", pretrained=True))
