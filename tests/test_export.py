"""tools/export.py: ONNX and TorchScript round trips of a subnet, and its bad-input errors."""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.errors import UserError
from nas.space import get_search_space

ROOT = Path(__file__).resolve().parents[1]
N_CLASSES = 10


def export(*args):
    """``tools/export.py`` in this process: exit status and output as the script gives them."""
    from tests.cli_here import run_main

    return run_main("tools.export", *args)


def trained_like(space, arch, seed):
    """A subnet whose BatchNorm statistics come from data, so its outputs depend on the input
    (a fresh OFA network gives nearly the same logits for every image, which would hide errors)."""
    torch.manual_seed(seed)
    net = space.build(arch, n_classes=N_CLASSES)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # running statistics = the average over the calibration batch
    net.train()
    with torch.no_grad():
        net(torch.randn(16, 3, arch["r"], arch["r"], generator=torch.Generator().manual_seed(seed)))
    return net.eval()


@pytest.fixture(scope="module")
def subnet(tmp_path_factory):
    """The smallest OFA MobileNetV3 subnet at 32 px: its net.subnet, checkpoint and network."""
    d = tmp_path_factory.mktemp("export")
    space = get_search_space("mobilenetv3", lr=32, ur=32)
    arch = space.smallest()
    space.write_subnet(d / "net.subnet", arch)
    net = trained_like(space, arch, seed=1)
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, d / "ckpt.pth")  # the train.py layout
    with torch.no_grad():
        a, b = net(torch.randn(2, 3, 32, 32)).numpy()
    assert np.abs(a - b).max() > 0.1  # the check below compares outputs that differ per input
    return {"dir": d, "space": space, "arch": arch, "net": net}


def run_export(subnet, fmt):
    d = subnet["dir"]
    p = export("--subnet", d / "net.subnet", "--ckpt", d / "ckpt.pth", "--format", fmt)
    assert p.returncode == 0, (p.stdout, p.stderr)
    out = d / ("net.onnx" if fmt == "onnx" else "net.pt")
    return p, out, json.loads(Path(f"{out}.json").read_text())


@pytest.fixture(scope="module")
def onnx_export(subnet):
    return run_export(subnet, "onnx")


@pytest.fixture(scope="module")
def torchscript_export(subnet):
    return run_export(subnet, "torchscript")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_round_trip_within_tolerance_and_json(request, subnet, fmt):
    p, out, info = request.getfixturevalue(f"{fmt}_export")
    assert "pass" in p.stdout.splitlines()[-2] and p.stderr == "", (p.stdout, p.stderr)
    costs = subnet["space"].costs(subnet["arch"], N_CLASSES)
    assert info["format"] == fmt and info["file"] == out.name
    assert info["input_shape"] == [1, 3, 32, 32] and info["n_classes"] == N_CLASSES
    assert info["check"]["passed"] and 0 <= info["max_abs_diff"] < 1e-4
    assert info["check"]["input_shapes"][-1] == [3, 3, 32, 32]
    assert (info["params"], info["macs"]) == (costs["params"], costs["macs"])
    assert info["file_size"] == out.stat().st_size > 1e6
    assert info["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert info["opset"] == (18 if fmt == "onnx" else None) and not info["random_weights"]
    assert info["arch"] == subnet["arch"] and info["arch_id"] == subnet["space"].arch_id(subnet["arch"])


def test_onnx_dynamic_batch(subnet, onnx_export):
    import onnxruntime as ort

    _, out, _ = onnx_export
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == session.get_outputs()[0].shape[0] == "batch"
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    got = session.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = subnet["net"](x).numpy()
    assert got.shape == (3, N_CLASSES)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-3)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_loads_and_runs_another_batch(subnet, torchscript_export):
    _, out, _ = torchscript_export
    loaded = torch.jit.load(str(out))
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        np.testing.assert_allclose(loaded(x).numpy(), subnet["net"](x).numpy(), atol=1e-4, rtol=1e-3)


def test_without_checkpoint_random_weights_and_warning(subnet, tmp_path, capsys):
    from tools.export import main  # in this process: a subprocess would spend seconds importing

    out = tmp_path / "lat" / "net.pt"
    state = torch.random.get_rng_state()
    argv = [
        "--subnet",
        subnet["dir"] / "net.subnet",
        "--format",
        "torchscript",
        "--n_classes",
        7,
        "--output",
        out,
    ]
    assert main(list(map(str, argv))) == 0
    assert torch.equal(torch.random.get_rng_state(), state)  # the seeded initialisation used a copy
    assert capsys.readouterr().out.startswith("warning: no --ckpt: random weights (7 classes)")
    info = json.loads(Path(f"{out}.json").read_text())
    assert info["random_weights"] and info["n_classes"] == 7 and info["check"]["passed"]
    assert info["input_shape"] == [1, 3, 32, 32] and info["ckpt"] is None


def test_failed_check_exits_1(subnet, tmp_path, monkeypatch, capsys):
    import tools.export as tool

    real = tool.load_runner

    def off_by_a_bit(*args):  # a file whose outputs drift from PyTorch's
        run = real(*args)
        return lambda x: [o + 1e-2 for o in run(x)]

    monkeypatch.setattr(tool, "load_runner", off_by_a_bit)
    out = tmp_path / "net.pt"
    d = subnet["dir"]
    argv = [
        "--subnet",
        d / "net.subnet",
        "--ckpt",
        d / "ckpt.pth",
        "--format",
        "torchscript",
        "--output",
        out,
    ]
    assert tool.main(list(map(str, argv))) == 1
    assert "max |diff| 1.00e-02 (atol 0.0001, rtol 0.001): FAIL" in capsys.readouterr().out
    info = json.loads(Path(f"{out}.json").read_text())
    assert not info["check"]["passed"] and info["max_abs_diff"] == pytest.approx(1e-2, rel=1e-3)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ckpt", "OTHER"], "does not fit subnet"),
        (["--subnet", "/nonexistent/net.subnet"], "subnet file '/nonexistent/net.subnet' does not exist"),
        (["--format", "tflite"], "unknown --format 'tflite'; use onnx or torchscript"),
    ],
)
def test_bad_input_exits_2_with_one_line(subnet, tmp_path, args, message):
    d = subnet["dir"]
    if "OTHER" in args:  # the weights of a deeper subnet: blocks the smallest one does not have
        other = {**subnet["arch"], "d": [3, 2, 2, 2, 2]}
        torch.save(subnet["space"].build(other, n_classes=N_CLASSES).state_dict(), tmp_path / "other.pth")
        args = ["--ckpt", tmp_path / "other.pth"]
    defaults = {"--subnet": d / "net.subnet", "--ckpt": d / "ckpt.pth", "--output": tmp_path / "x.onnx"}
    given = dict(zip(args[::2], args[1::2], strict=True))
    p = export(*[item for kv in {**defaults, **given}.items() for item in kv])
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], p.stderr
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--opset", "13"], "the dynamo exporter writes opset 18 or newer; add --exporter legacy"),
        (["--format", "torchscript", "--opset", "18"], "--opset and --exporter apply to --format onnx only"),
        (["--n_classes", "100"], "--n_classes 100 contradicts the 10 classes of checkpoint"),
        (["--batch_size", "0"], "--batch_size '0' must be a positive integer"),
    ],
)
def test_flag_errors(subnet, tmp_path, args, message):
    from tools.export import main  # in this process: each case fails before any export

    d = subnet["dir"]
    argv = ["--subnet", d / "net.subnet", "--ckpt", d / "ckpt.pth", "--output", tmp_path / "x.onnx", *args]
    with pytest.raises(UserError, match=message):
        main(list(map(str, argv)))
    assert not (tmp_path / "x.onnx").exists()


def test_missing_package_is_named():
    from tools.export import require

    sys.modules["_no_such_runtime"] = None  # makes the import fail like an absent package
    try:
        with pytest.raises(UserError, match="pip install onnxruntime"):
            require("_no_such_runtime", "onnxruntime", "checking an ONNX file")
    finally:
        del sys.modules["_no_such_runtime"]
