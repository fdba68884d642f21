"""Timing on the device at hand: the protocol, a timed call, and OFA MobileNetV3 layers by table key.

Every latency this plug-in measures follows one :class:`TimingProtocol`, saved with what it
produced (a table's ``protocol.json``, a dataset's): the device, the number of CPU threads
(``torch.set_num_threads``, fixed for the whole measurement), batch size, warm-up calls, timed
repeats and the memory format. A call is timed on its own (``time.perf_counter`` around it, CUDA
synchronised before and after), so a measurement is a sample of ``repeats`` durations of which a
table keeps the mean and standard deviation (OFA's format) and a dataset the median and the
inter-quartile range. Networks are timed in eval mode, BatchNorm not folded, in channels_last
(the engine's format, :mod:`nas.timing`), on a random input.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.device import resolve_device
from nas.errors import UserError

PROTOCOL_SCHEMA = "latency-protocol/1"


@dataclass
class TimingProtocol:
    """How a latency is measured (saved beside every table and dataset)."""

    device: str = "cpu"
    threads: int = 1
    batch_size: int = 1
    warmup: int = 10
    repeats: int = 50
    memory_format: str = "channels_last"
    seed: int = 0  # the order of measurement (shuffled) and the random inputs

    def __post_init__(self) -> None:
        for name in ("threads", "batch_size", "repeats"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"--{name} {getattr(self, name)!r} must be a positive integer")
        if self.warmup < 0:
            raise UserError(f"--warmup {self.warmup!r} must be 0 or more")
        if self.memory_format not in ("channels_last", "contiguous"):
            raise UserError(f"--memory_format {self.memory_format!r}: use channels_last or contiguous")

    def to_dict(self) -> dict[str, Any]:
        return {"schema": PROTOCOL_SCHEMA, **dataclasses.asdict(self), "torch": torch.__version__}

    def same_as(self, saved: dict[str, Any]) -> list[str]:
        """The settings in which ``saved`` (a protocol's dict) differs from this one."""
        mine = dataclasses.asdict(self)
        return [k for k in mine if k in saved and saved[k] != mine[k]]

    def refuse_other(self, proto_path: Path, record: dict[str, Any], keys: Sequence[str], what: str) -> None:
        """Refuse to add to a folder (its ``protocol.json``) measured with another protocol or other
        ``keys`` of ``record``: results are never mixed (one-line error)."""
        if not proto_path.exists():
            return
        old = json.loads(proto_path.read_text())
        diff = self.same_as(old.get("protocol", {})) + [k for k in keys if old.get(k) != record[k]]
        if diff:
            raise UserError(
                f"{str(proto_path.parent)!r} holds {what} made with other settings ({', '.join(diff)}); "
                "use another --out or the same flags to resume"
            )

    def apply(self) -> torch.device:
        """Fix the thread count; the device measured on."""
        torch.set_num_threads(int(self.threads))
        return resolve_device(self.device)

    def prepare(self, module: torch.nn.Module, x: torch.Tensor) -> tuple[torch.nn.Module, torch.Tensor]:
        module = module.eval()
        if self.memory_format == "channels_last" and x.dim() == 4:
            module = module.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        return module, x


def add_measurement_flags(parser: argparse.ArgumentParser, **defaults: Any) -> None:
    """The flags the measuring tools share: the space, its width, the class count, the output
    folder, the progress bar and every :class:`TimingProtocol` setting (``defaults`` override the
    protocol's)."""
    parser.add_argument(
        "--space", default="mobilenetv3", help="an OFA MobileNetV3 search space (default: mobilenetv3)"
    )
    parser.add_argument(
        "--width_mult", type=float, default=1.0, help="OFA width multiplier, 1.0 or 1.2 (default: 1.0)"
    )
    parser.add_argument(
        "--n_classes", type=int, default=1000, help="outputs of the classifier (default: 1000, OFA's)"
    )
    parser.add_argument(
        "--out", required=True, help="output folder (resumed when it holds a partial measurement)"
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    group = parser.add_argument_group("timing protocol")
    for f in dataclasses.fields(TimingProtocol):
        d = defaults.get(f.name, f.default)
        group.add_argument(f"--{f.name}", type=type(f.default), default=d, help=f"(default: {d})")


def protocol_from_args(args: argparse.Namespace) -> TimingProtocol:
    return TimingProtocol(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TimingProtocol)})


@torch.inference_mode()
def time_call(fn: Callable[[torch.Tensor], Any], x: torch.Tensor, warmup: int, repeats: int) -> np.ndarray:
    """Milliseconds of each of ``repeats`` calls ``fn(x)``, after ``warmup`` untimed ones."""
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    for _ in range(warmup):
        fn(x)
    out = np.empty(repeats)
    for i in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn(x)
        sync()
        out[i] = 1e3 * (time.perf_counter() - t0)
    return out


def random_input(shape: Sequence[int], seed: int, device: torch.device | str) -> torch.Tensor:
    """A seeded standard-normal input (what every timing feeds a network)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(device)


def time_module(
    module: torch.nn.Module, shape: Sequence[int], protocol: TimingProtocol, device: torch.device
) -> np.ndarray:
    """Durations (ms) of ``module`` on a random input of ``shape`` under ``protocol``."""
    x = random_input(shape, protocol.seed, device)
    module, x = protocol.prepare(module.to(device), x)
    return time_call(module, x, protocol.warmup, protocol.repeats)


# ---- OFA MobileNetV3 layers by table key ---------------------------------------------------------

_SHAPE = re.compile(r"input:(\d+)x(\d+)x(\d+)")


def key_input_shape(key: str, batch_size: int = 1) -> tuple[int, ...]:
    """The input tensor shape of a table key's layer (``Logits`` takes the flattened features)."""
    m = _SHAPE.search(key)
    if m is None:
        raise UserError(f"latency table key {key!r} names no input shape")
    h, w, c = (int(v) for v in m.groups())
    return (batch_size, c) if key.startswith("Logits-") else (batch_size, c, h, w)


def network_layers(net: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules of an OFA MobileNetV3 in the order of its table keys (one per key)."""
    return [
        net.first_conv,
        *net.blocks,
        net.final_expand_layer,
        net.global_avg_pool,
        net.feature_mix_layer,
        net.classifier,
    ]


def layers_by_key(space: Any, resolutions: Sequence[int], n_classes: int) -> Iterator[tuple[str, Any]]:
    """``(key, module)`` for every table key of ``space`` (an OFA MobileNetV3 space) at
    ``resolutions``, each module taken from a subnet built with that layer (random weights).

    One subnet per (resolution, kernel, expand) with every stage at full depth holds each stage's
    first and other block for that kernel and expand, and the fixed layers.
    """
    from NasSearchSpace.ofa_mbv3_latency import LayerKeys
    from NasSearchSpace.ofa_mbv3_layout import D_OPTIONS, E_OPTIONS, KS_OPTIONS, N_BLOCKS, N_STAGES

    keys = LayerKeys(space.width_mult, n_classes)
    supernet = space.make_supernet(n_classes)
    seen: set[str] = set()
    for r in resolutions:
        for k in KS_OPTIONS:
            for e in E_OPTIONS:
                arch = {"ks": [k] * N_BLOCKS, "e": [e] * N_BLOCKS, "d": [max(D_OPTIONS)] * N_STAGES, "r": r}
                arch["w"] = space.width_mult
                names = keys.keys(arch)
                todo = [i for i, name in enumerate(names) if name not in seen]
                if not todo:
                    continue
                space.activate(supernet, arch)
                net = supernet.get_active_subnet(preserve_weight=False)
                modules = network_layers(net)
                if len(modules) != len(names):
                    raise RuntimeError(f"{len(modules)} layers for {len(names)} table keys")
                for i in todo:
                    if names[i] not in seen:
                        seen.add(names[i])
                        yield names[i], modules[i]
