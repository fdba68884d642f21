"""Export a subnet to a deployable ONNX or TorchScript file, checked against PyTorch.

    python tools/export.py --subnet run/net.subnet --ckpt run/ckpt.pth                   # run/net.onnx
    python tools/export.py --subnet run/net.subnet --ckpt run/ckpt.pth --format torchscript  # run/net.pt
    python tools/export.py --subnet net.subnet --n_classes 1000 --output lat/net.onnx     # random weights

Early-exit networks (a model with ``deployable``) are exported as networks that stop at their
first confident exit, with the thresholds and policy of their ``net.stats`` (``--stats``):
TorchScript keeps the exit rule in the file (outputs: logits and the exit index); ONNX has no
such control flow that onnxruntime users run efficiently, so it gets one file per stage
(``net.stage<k>.onnx``: input -> features, head output) and ``net.onnx.json`` spells out the rule
between them. ``--all_exits`` exports every exit's logits in one graph instead.

The subnet is built from its ``net.subnet``, the checkpoint (its state dict, or a dict holding
one under ``state_dict``) is loaded strictly, and the network is exported in eval mode: ONNX with
``torch.onnx.export`` (the torch.export-based ``dynamo`` exporter, opset >= 18, by default; the
deprecated TorchScript-based ``legacy`` one for older opsets) with a dynamic batch axis, or
TorchScript with ``torch.jit.trace`` (``torch.jit`` is deprecated by PyTorch but its files still
load in ``torch.jit.load`` and libtorch). The saved file is then loaded again (onnxruntime on the
CPU for ONNX, ``torch.jit.load`` for TorchScript) and run on seeded random inputs, two at
``--batch_size`` and one at ``--batch_size`` + 2, and its outputs are compared with PyTorch's.
Exit status 0: the check passed; 1: it failed; 2: bad input. ``<output>.json`` records the
format, opset, input shape, the check, params / MACs / activations (millions) and the file's
size and SHA-256. The network takes normalised images (the dataset's mean and std), as in training.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import sys
import tempfile
import warnings
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from nas.cli import positive_int, run_cli  # noqa: E402
from nas.costs import measure_costs  # noqa: E402
from nas.device import resolve_device  # noqa: E402
from nas.errors import UserError  # noqa: E402
from nas.io import load_checkpoint, read_json, sha256_file, write_json  # noqa: E402

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
EXPORTERS = ("dynamo", "legacy")
DEFAULT_OPSET = 18  # the dynamo exporter's native minimum; onnxruntime >= 1.14 runs it
CHECK_SEED = 0
SCHEMA = "nas-export/1"


def require(module: str, package: str, why: str) -> Any:
    """Import ``module`` or fail with one line naming the pip package that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(
            f"{why} needs the {package} package, which is not installed; "
            f"pip install {package} (or pip install -r requirements.txt)"
        ) from None


def non_negative_float(text: str, flag: str, example: str = "1e-4") -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also rejects nan
        raise UserError(f"{flag} {text!r} must be a number >= 0, e.g. {flag} {example}")
    return value


# ---- weights --------------------------------------------------------------------------------


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint that is a state dict or holds one under ``state_dict``."""
    ckpt = load_checkpoint(path, "checkpoint")
    state = ckpt.get("state_dict", ckpt)
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise UserError(
            f"checkpoint {path!r} is not a state dict of tensors (nor a dict with one under 'state_dict')"
        )
    if all(k.startswith("module.") for k in state):  # saved from DataParallel / DDP
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def checkpoint_classes(state: dict[str, torch.Tensor], path: str) -> int:
    """The class count of a network's state dict: the rows of its last 2-d weight (the classifier)."""
    weights = [t for k, t in state.items() if k.endswith("weight") and t.dim() == 2]
    if not weights:
        raise UserError(
            f"checkpoint {path!r} has no 2-d weight (a classifier), so it is not a network's state dict "
            f"(its first key is {next(iter(state), None)!r})"
        )
    return int(weights[-1].shape[0])


def load_strict(model: nn.Module, state: dict[str, torch.Tensor], ckpt: str, subnet: str) -> None:
    """``load_state_dict(strict=True)`` with one line naming the first tensor that does not fit."""
    own = model.state_dict()
    problems = []
    for key, t in own.items():
        if key not in state:
            problems.append(f"the subnet's {key} is missing from the checkpoint")
        elif tuple(state[key].shape) != tuple(t.shape):
            problems.append(
                f"{key} has shape {tuple(state[key].shape)} in the checkpoint, "
                f"the subnet needs {tuple(t.shape)}"
            )
    problems += [f"{key} in the checkpoint is not in the subnet" for key in state if key not in own]
    if problems:
        more = f" ({len(problems) - 1} more tensors differ)" if len(problems) > 1 else ""
        raise UserError(
            f"checkpoint {ckpt!r} does not fit subnet {subnet!r}: {problems[0]}{more}; "
            "was it trained for another architecture?"
        )
    model.load_state_dict(state, strict=True)


# ---- export and reload ----------------------------------------------------------------------


def temp_path_for(output: str) -> str:
    """A fresh file next to ``output``; the export goes there and is renamed once complete."""
    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{os.path.basename(output)}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; exports are meant to be shared
    return tmp


def tensors_of(out: Any) -> list[torch.Tensor]:
    """A model's outputs as a list: several for multi-output models (one per exit), else one."""
    return list(out) if isinstance(out, (list, tuple)) else [out]


def output_names(n: int) -> list[str]:
    """``logits`` for a single output; ``logits_0`` .. ``logits_<n-1>`` (the last the network's own)."""
    return ["logits"] if n == 1 else [f"logits_{i}" for i in range(n)]


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: str,
    exporter: str,
    opset: int,
    n_outputs: int = 1,
    names: list[str] | None = None,
) -> int:
    """Write ``model`` as one self-contained ONNX file; returns the opset written."""
    onnx = require("onnx", "onnx", "--format onnx")
    names = names or output_names(n_outputs)
    kwargs: dict[str, Any] = {"input_names": ["input"], "output_names": names, "opset_version": opset}
    if exporter == "dynamo":
        require("onnxscript", "onnxscript", "the dynamo ONNX exporter")
        kwargs.update(
            dynamo=True,
            verbose=False,  # no progress lines
            external_data=False,  # weights inside the file (OFA subnets are far below protobuf's 2 GB)
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
    else:
        kwargs.update(dynamo=False, dynamic_axes={n: {0: "batch"} for n in ["input", *names]})
    try:
        with warnings.catch_warnings():
            # --exporter legacy is a deliberate choice; its DeprecationWarning would only repeat it
            warnings.filterwarnings("ignore", message="You are using the legacy", category=DeprecationWarning)
            torch.onnx.export(model, (example,), path, **kwargs)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        other = "legacy" if exporter == "dynamo" else "dynamo"
        raise UserError(
            f"ONNX export with the {exporter} exporter failed ({type(e).__name__}: {first[:300]}); "
            f"try --exporter {other}"
        ) from None
    model_proto = onnx.load(path)  # validated by onnx.checker with the other checks, after the rename
    written = next((o.version for o in model_proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if written != opset:
        raise UserError(
            f"asked for --opset {opset} but the {exporter} exporter wrote opset {written}; "
            "use --opset 18 or newer, or --exporter legacy for older opsets"
        )
    return written


def export_torchscript(model: nn.Module, example: torch.Tensor, path: str) -> None:
    with warnings.catch_warnings():
        # torch.jit is deprecated (FutureWarning on every call) but is what --format torchscript asks for
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
        with torch.no_grad():
            # strict=False: multi-exit networks return a list of logits, one per exit
            traced = torch.jit.trace(model, example, check_trace=False, strict=False)  # checked after reload
        traced.save(path)


def load_runner(fmt: str, path: str, device: torch.device):
    """A function ``x (CPU tensor) -> outputs (a list of NumPy arrays)`` running the saved file."""
    if fmt == "onnx":
        onnx = require("onnx", "onnx", "--format onnx")
        ort = require("onnxruntime", "onnxruntime", "checking an ONNX file")
        onnx.checker.check_model(path, full_check=True)  # structure and shape inference
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x.numpy()})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
        loaded = torch.jit.load(path, map_location=device)

    def run(x: torch.Tensor) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.cpu().numpy() for t in tensors_of(loaded(x.to(device)))]

    return run


def check_outputs(model, runner, batch_size: int, resolution: int, device, atol: float, rtol: float) -> dict:
    """Compare the saved file with PyTorch on seeded random inputs (the last one with another batch)."""
    gen = torch.Generator().manual_seed(CHECK_SEED)
    shapes = [(b, 3, resolution, resolution) for b in (batch_size, batch_size, batch_size + 2)]
    max_diff, passed = 0.0, True
    for shape in shapes:
        x = torch.randn(shape, generator=gen)
        with torch.no_grad():
            refs = [t.cpu().numpy() for t in tensors_of(model(x.to(device)))]
        outs = [np.asarray(o) for o in runner(x)]
        if len(outs) != len(refs):
            raise RuntimeError(f"{len(outs)} outputs for input {shape}, PyTorch gives {len(refs)}")
        for out, ref in zip(outs, refs, strict=True):
            if out.shape != ref.shape:
                raise RuntimeError(f"output shape {out.shape} for input {shape}, PyTorch gives {ref.shape}")
            diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
            max_diff = max(max_diff, float(np.max(diff)))  # nan propagates and fails below
            passed = passed and bool(np.all(diff <= atol + rtol * np.abs(ref)))
    return {
        "seed": CHECK_SEED,
        "input_shapes": [list(s) for s in shapes],
        "max_abs_diff": max_diff,
        "atol": atol,
        "rtol": rtol,
        "passed": bool(passed and np.isfinite(max_diff)),
    }


def check_stages(deploy, runner_of, paths, batch_size, resolution, device, atol, rtol) -> dict:
    """Each stage file against its PyTorch stage, on the stage inputs of seeded random images
    (batch ``batch_size`` and ``batch_size + 2``): both outputs (features and head output)."""
    gen = torch.Generator().manual_seed(CHECK_SEED)
    max_diff, passed, shapes = 0.0, True, []
    for b in (batch_size, batch_size + 2):
        x = torch.randn(b, 3, resolution, resolution, generator=gen).to(device)
        shapes.append([b, 3, resolution, resolution])
        for stage, inp, path in zip(deploy.stages, deploy.stage_inputs(x), paths, strict=True):
            with torch.no_grad():
                refs = [t.cpu().numpy() for t in stage(inp)]
            outs = runner_of(path)(inp.cpu())
            for out, ref in zip(outs, refs, strict=True):
                diff = np.abs(np.asarray(out, dtype=np.float64) - ref.astype(np.float64))
                max_diff = max(max_diff, float(np.max(diff)) if diff.size else 0.0)
                passed = passed and out.shape == ref.shape and bool(np.all(diff <= atol + rtol * np.abs(ref)))
    return {"seed": CHECK_SEED, "input_shapes": shapes, "max_abs_diff": max_diff, "atol": atol, "rtol": rtol,
            "passed": bool(passed and np.isfinite(max_diff))}  # fmt: skip


def version_of(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


# ---- command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subnet", required=True, help="the subnet's net.subnet JSON file")
    p.add_argument(
        "--ckpt",
        help="the subnet's weights: a state dict, or a dict with one under 'state_dict' "
        "(default: random weights, for latency measurements only)",
    )
    p.add_argument("--format", default="onnx", help="onnx (default) or torchscript")
    p.add_argument(
        "--stats",
        help="early-exit networks: the net.stats whose thresholds and exit policy the export applies "
        "(default: the net.stats next to --subnet, if any)",
    )
    p.add_argument(
        "--all_exits",
        action="store_true",
        help="early-exit networks: export every exit's logits for every sample (one graph, no control "
        "flow) instead of the network that stops at its first confident exit",
    )
    p.add_argument("--output", help="the file to write (default: net.onnx / net.pt next to --subnet)")
    p.add_argument(
        "--search_space", help="registered search space of the subnet (default: the default preset's)"
    )
    p.add_argument("--width_mult", help="OFA spaces: 1.0 or 1.2 (default: the subnet's w, else 1.0)")
    p.add_argument(
        "--space_options",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="options of the search space as the search had them, e.g. exit_head=nachos",
    )
    p.add_argument(
        "--resolution", help="input height and width (default: the subnet's r; 32 for spaces without one)"
    )
    p.add_argument("--n_classes", help="classes of a random-weight network, without --ckpt (default 1000)")
    p.add_argument(
        "--batch_size",
        default="1",
        help="batch of the example input (default 1); the batch axis stays dynamic",
    )
    p.add_argument("--opset", help=f"ONNX opset (default {DEFAULT_OPSET}; below 18 needs --exporter legacy)")
    p.add_argument(
        "--exporter", help="ONNX exporter: dynamo (default, torch.export-based) or legacy (TorchScript-based)"
    )
    p.add_argument("--atol", default="1e-4", help="absolute tolerance of the check (default 1e-4)")
    p.add_argument("--rtol", default="1e-3", help="relative tolerance of the check (default 1e-3)")
    p.add_argument(
        "--device",
        default="cpu",
        help="where PyTorch builds, exports and runs the reference: cpu (default; exported files do "
        "not depend on it), auto, cuda, cuda:N. onnxruntime runs on the CPU",
    )
    args = p.parse_args(argv)

    # ---- check every input before the slow work
    if args.format not in FORMATS:
        raise UserError(f"unknown --format {args.format!r}; use {' or '.join(FORMATS)}")
    onnx_format = args.format == "onnx"
    if not onnx_format and (args.opset is not None or args.exporter is not None):
        raise UserError("--opset and --exporter apply to --format onnx only; drop them for torchscript")
    exporter = args.exporter or "dynamo"
    if exporter not in EXPORTERS:
        raise UserError(f"unknown --exporter {args.exporter!r}; use {' or '.join(EXPORTERS)}")
    opset = positive_int(args.opset, "--opset") or DEFAULT_OPSET
    if onnx_format and exporter == "dynamo" and opset < 18:
        raise UserError(
            f"the dynamo exporter writes opset 18 or newer; add --exporter legacy for --opset {opset}"
        )
    batch_size = positive_int(args.batch_size, "--batch_size")
    atol, rtol = non_negative_float(args.atol, "--atol"), non_negative_float(args.rtol, "--rtol")
    device = resolve_device(args.device)
    if onnx_format:  # fail now, not after the export, when a package is missing
        require("onnx", "onnx", "--format onnx")
        require("onnxruntime", "onnxruntime", "checking an ONNX file")
        if exporter == "dynamo":
            require("onnxscript", "onnxscript", "the dynamo ONNX exporter")

    raw = read_json(args.subnet, "subnet file")
    if args.width_mult is not None and isinstance(raw, dict):
        raw = {**raw, "w": non_negative_float(args.width_mult, "--width_mult", "1.2")}
    from nas.search.description import default_space_name
    from nas.space import SEARCH_SPACES

    try:
        from nas.config import parse_overrides

        cls = SEARCH_SPACES.get(args.search_space or default_space_name())
        space = cls.for_arch(raw, **parse_overrides(args.space_options, cls.Options))
        arch = space.validate(raw)
    except UserError as e:
        raise UserError(f"subnet file {args.subnet!r}: {e}") from None
    resolution = positive_int(args.resolution, "--resolution") or space.resolution(arch) or 32
    if space.has("resolution") and resolution < 32:
        raise UserError(f"--resolution {resolution} is below 32 pixels; the network downsamples 32x")

    if args.ckpt is not None:
        state = read_state_dict(args.ckpt)
        n_classes = checkpoint_classes(state, args.ckpt)
        wanted = positive_int(args.n_classes, "--n_classes")
        if wanted is not None and wanted != n_classes:
            raise UserError(
                f"--n_classes {wanted} contradicts the {n_classes} classes of checkpoint {args.ckpt!r}; "
                "drop --n_classes"
            )
    else:
        state, n_classes = None, positive_int(args.n_classes, "--n_classes") or 1000
    output = args.output or os.path.join(
        os.path.dirname(os.path.abspath(args.subnet)), "net" + FORMATS[args.format]
    )
    if os.path.isdir(output):
        example_file = os.path.join(output, "net" + FORMATS[args.format])
        raise UserError(f"--output {output!r} is a directory; give a file name, e.g. {example_file}")

    # ---- build, load, export
    with torch.random.fork_rng(devices=[]):  # OFA initialises from the global generator: seed a copy
        torch.manual_seed(0)
        model = space.build(arch, n_classes=n_classes)
    if state is not None:
        load_strict(model, state, args.ckpt, args.subnet)
    else:
        print(f"warning: no --ckpt: random weights ({n_classes} classes); use the file for latency only")
    model = model.to(device).eval()
    deploy, early_exit = None, None
    if callable(getattr(model, "deployable", None)) and not args.all_exits:
        stats_path = args.stats or os.path.join(os.path.dirname(os.path.abspath(args.subnet)), "net.stats")
        if args.stats is not None and not os.path.isfile(args.stats):
            raise UserError(f"--stats {args.stats!r} does not exist; pass the network's net.stats")
        stats = read_json(stats_path, "net.stats") if os.path.isfile(stats_path) else None
        deploy = model.deployable(stats).to(device).eval()
        early_exit = {**deploy.describe(), "stats": os.path.abspath(stats_path) if stats else None}
        if stats is None:
            print("warning: no net.stats with thresholds: every early exit's threshold is 1.0 (pass --stats)")
    costs = measure_costs(model, resolution, device)
    input_shape = [batch_size, 3, resolution, resolution]
    print(
        f"subnet {args.subnet}: input {'x'.join(map(str, input_shape))}, {n_classes} classes, "
        f"{costs['params']:.3f} M params, {costs['macs']:.2f} M MACs"
    )
    example = torch.randn(input_shape, generator=torch.Generator().manual_seed(CHECK_SEED)).to(device)
    with torch.no_grad():
        n_outputs = len(tensors_of(model(example)))  # several for multi-exit networks
    if deploy is not None:
        return export_early_exit(
            args, deploy, early_exit, example, output, exporter, opset, device, atol, rtol
        )
    tmp = temp_path_for(output)
    try:
        if onnx_format:
            written_opset = export_onnx(model, example, tmp, exporter, opset, n_outputs)
        else:
            written_opset = None
            export_torchscript(model, example, tmp)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    size, digest = os.path.getsize(output), sha256_file(output)
    what = f"opset {written_opset}, {exporter} exporter" if onnx_format else "torch.jit.trace"
    print(f"exported {output} ({args.format}, {what}; {size / 1e6:.2f} MB, sha256 {digest[:16]}...)")

    # ---- reload and compare
    reloader = "onnxruntime" if onnx_format else "torch.jit.load"
    try:
        check = check_outputs(
            model, load_runner(args.format, output, device), batch_size, resolution, device, atol, rtol
        )
        error = None
    except Exception as e:  # a file that does not load or run is a failed check, not a crash
        error = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        check = {"seed": CHECK_SEED, "max_abs_diff": None, "atol": atol, "rtol": rtol, "passed": False}
        check["error"] = error
    if error:
        print(f"check: {reloader} on {output} failed ({error}): FAIL")
    else:
        print(
            f"check: {reloader} vs PyTorch on {len(check['input_shapes'])} seeded inputs "
            f"(batch {batch_size}, {batch_size}, {batch_size + 2}): max |diff| {check['max_abs_diff']:.2e} "
            f"(atol {atol:g}, rtol {rtol:g}): {'pass' if check['passed'] else 'FAIL'}"
        )

    info = {
        "schema": SCHEMA,
        "format": args.format,
        "file": os.path.basename(output),
        "file_size": size,
        "sha256": digest,
        "exporter": exporter if onnx_format else "torch.jit.trace",
        "opset": written_opset,
        "input_name": "input" if onnx_format else None,
        "output_name": "logits" if onnx_format and n_outputs == 1 else None,
        "output_names": output_names(n_outputs) if onnx_format else None,
        "n_outputs": n_outputs,
        "input_shape": input_shape,
        "dynamic_batch": True,  # ONNX: a symbolic axis; TorchScript: traced ops take any batch (checked)
        "n_classes": n_classes,
        "max_abs_diff": check["max_abs_diff"],
        "check": check,
        "params": costs["params"],
        "macs": costs["macs"],
        "activations": costs["activations"],
        "search_space": space.name,
        "arch": arch,
        "arch_id": space.arch_id(arch),
        "resolution": resolution,
        "subnet": os.path.abspath(args.subnet),
        "ckpt": os.path.abspath(args.ckpt) if args.ckpt else None,
        "random_weights": state is None,
        "device": str(device),
        "versions": {m: version_of(m) for m in ("torch", "onnx", "onnxruntime", "onnxscript")},
    }
    write_json(output + ".json", info)
    print(f"wrote {output}.json")
    return 0 if check["passed"] else 1


def export_early_exit(args, deploy, early_exit, example, output, exporter, opset, device, atol, rtol) -> int:
    """A network that stops at its first confident exit: TorchScript keeps the exit rule in one
    file (its stages traced, the rule scripted); ONNX gets one file per stage,
    ``<output stem>.stage<k>.onnx``, the rule between stages being the user's (``<output>.json``
    spells it out). Checked against PyTorch: the whole runtime (logits and exit index) for
    TorchScript, every stage's outputs for ONNX."""
    batch_size, resolution = example.shape[0], example.shape[-1]
    if args.format == "torchscript":
        tmp = temp_path_for(output)
        try:
            deploy.torchscript(example).save(tmp)
            os.replace(tmp, output)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        files = [output]
        runner = load_runner("torchscript", output, device)
        check = check_outputs(deploy, runner, batch_size, resolution, device, atol, rtol)
    else:
        stem = output[: -len(".onnx")] if output.endswith(".onnx") else output
        files = [f"{stem}.stage{k}.onnx" for k in range(len(deploy.stages))]
        for stage, inp, path in zip(deploy.stages, deploy.stage_inputs(example), files, strict=True):
            tmp = temp_path_for(path)
            try:
                export_onnx(stage, inp, tmp, exporter, opset, 2, names=["features", "out"])
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        check = check_stages(deploy, lambda f: load_runner("onnx", f, device), files, batch_size, resolution,
                             device, atol, rtol)  # fmt: skip
    verdict = "pass" if check["passed"] else "FAIL"
    print(f"exported {', '.join(files)}; check vs PyTorch: max |diff| {check['max_abs_diff']:.2e}: {verdict}")
    info = {
        "schema": SCHEMA,
        "format": args.format,
        "early_exit": early_exit,
        "files": [
            {"file": os.path.basename(f), "file_size": os.path.getsize(f), "sha256": sha256_file(f)}
            for f in files
        ],
        "outputs": ["logits", "exit_index"] if args.format == "torchscript" else ["features", "out"],
        "input_shape": list(example.shape),
        "dynamic_batch": True,
        "check": check,
        "search_space": args.search_space,
        "subnet": os.path.abspath(args.subnet),
        "ckpt": os.path.abspath(args.ckpt) if args.ckpt else None,
        "device": str(device),
        "versions": {m: version_of(m) for m in ("torch", "onnx", "onnxruntime", "onnxscript")},
    }
    write_json(output + ".json", info)
    print(f"wrote {output}.json")
    return 0 if check["passed"] else 1


if __name__ == "__main__":
    sys.exit(run_cli(main))
