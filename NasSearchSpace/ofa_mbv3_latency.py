"""Latency of OFA MobileNetV3 subnets from per-layer look-up tables (OFA's format).

A table is a YAML file per input resolution, ``<device>_<r>_lookup_table.yaml``, mapping a layer
key to measured statistics ``{"count", "mean", "std"}`` (milliseconds on the device). A
network's latency is the sum of the ``mean`` of each of its layers' entries, in network order:

- ``Conv-input:RxRx3-output:HxHx24``: the first 3x3 stride-2 conv (``H = ceil(R / 2)``);
- the fixed first block, ``expanded_conv-input:HxHx24-output:HxHx24-expand:24-kernel:3-stride:1-
  idskip:1-se:0-hs:0``;
- each active block of the 5 stages, ``expanded_conv-input:HxWxC-output:HxWxC-expand:M-kernel:K-
  stride:S-idskip:0/1-se:0/1-hs:0/1`` where ``M = round(C_in * e)`` (the tables' convention, no
  rounding to a multiple of 8; the w1.2 widths make both equal), the stride and ``idskip:0`` only
  on a stage's first block (every other block has an identity shortcut), SE in stages 1, 3 and 4,
  h-swish in stages 2, 3 and 4 (ReLU before);
- ``Conv_1`` (final 1x1 expand), ``AvgPool2D``, ``Conv_2`` (feature mix on the 1x1 map) and
  ``Logits`` (1000 classes).

Channel widths are those of OFA's ``w1.2`` space (24 | 32, 48, 96, 136, 192 | 1152, 1536), the
space OFA's published Note10 tables were measured for. The order and the ``+=`` summation are
those of OFA's ``LatencyEstimator.predict_network_latency_given_spec``, so the results are equal
(``==``) to it. The tables are read with ``yaml.safe_load`` (OFA's loader calls ``yaml.load``
without a ``Loader``, which PyYAML 6 rejects).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nas.config import option
from nas.cost_providers import COST_PROVIDERS, CostProvider
from nas.errors import UserError
from NasSearchSpace.ofa_mbv3_layout import (
    D_OPTIONS,
    E_OPTIONS,
    KS_OPTIONS,
    MAX_DEPTH,
    N_BLOCKS,
    N_STAGES,
    STAGE_HSWISH,
    STAGE_SE,
    STAGE_STRIDES,
    stage_widths,
)

N_CLASSES = 1000  # the tables' Logits entries are for ImageNet's 1000 classes
FILE_RE = re.compile(r"^(?P<device>.+)_(?P<r>\d+)_lookup_table\.yaml$")


def _shape(*dims: int) -> str:
    return "x".join(str(d) for d in dims)


def _ceil_half(size: int, stride: int) -> int:
    return -(-size // stride)


class LayerKeys:
    """The table keys of OFA MobileNetV3 subnets of one width (no table needed).

    ``n_classes`` sets the ``Logits`` key's output (1000, ImageNet, in OFA's published tables).
    """

    def __init__(self, width_mult: float = 1.2, n_classes: int = N_CLASSES) -> None:
        self.width_mult = float(width_mult)
        self.n_classes = int(n_classes)
        w = list(stage_widths(self.width_mult))
        self._stem, self._first = w[0], w[1]
        self._stages = tuple(w[2:7])
        self._final, self._last = w[7], w[8]

    def keys(self, arch: dict[str, Any]) -> list[str]:
        """The table keys of ``arch``'s layers, in network order."""
        ks, es, ds, r = self._check(arch)
        fsize = _ceil_half(r, 2)
        out = [f"Conv-input:{_shape(r, r, 3)}-output:{_shape(fsize, fsize, self._stem)}"]
        out.append(self._block_key(fsize, fsize, self._stem, self._first, self._first, 3, 1, 1, False, False))
        for s in range(N_STAGES):
            for i in range(ds[s]):
                j = s * MAX_DEPTH + i
                out.append(self.block_key(r, s, i, ks[j], es[j]))
        fsize = self._stage_sizes(r)[-1]
        c = self._stages[-1]
        out.append(f"Conv_1-input:{_shape(fsize, fsize, c)}-output:{_shape(fsize, fsize, self._final)}")
        out.append(f"AvgPool2D-input:{_shape(fsize, fsize, self._final)}-output:{_shape(1, 1, self._final)}")
        out.append(f"Conv_2-input:{_shape(1, 1, self._final)}-output:{_shape(1, 1, self._last)}")
        out.append(f"Logits-input:{_shape(1, 1, self._last)}-output:{self.n_classes}")
        return out

    def block_key(self, r: int, stage: int, i: int, k: int, e: float) -> str:
        """Key of block ``i`` (0-based) of ``stage`` with kernel ``k`` and expand ratio ``e`` at ``r``.

        A block's key depends on nothing else: its input width is the previous stage's output
        width for ``i == 0`` and its own stage's otherwise, and its map size is set by ``r``.
        """
        sizes = self._stage_sizes(r)
        c_in = (self._first if stage == 0 else self._stages[stage - 1]) if i == 0 else self._stages[stage]
        stride = STAGE_STRIDES[stage] if i == 0 else 1
        h_in = sizes[stage] if i == 0 else sizes[stage + 1]
        return self._block_key(
            h_in,
            sizes[stage + 1],
            c_in,
            self._stages[stage],
            round(c_in * e),  # the tables' expanded width: no rounding to a multiple of 8
            k,
            stride,
            int(i > 0),  # a stage's first block changes the shape: no identity shortcut
            STAGE_SE[stage],
            STAGE_HSWISH[stage],
        )

    @staticmethod
    def _stage_sizes(r: int) -> list[int]:
        """Map size after the stem, then after each of the 5 stages."""
        sizes = [_ceil_half(r, 2)]
        for stride in STAGE_STRIDES:
            sizes.append(_ceil_half(sizes[-1], stride))
        return sizes

    @staticmethod
    def _block_key(
        h_in: int,
        h_out: int,
        c_in: int,
        c_out: int,
        mid: int,
        k: int,
        stride: int,
        idskip: int,
        se: bool,
        hs: bool,
    ) -> str:
        return (
            f"expanded_conv-input:{_shape(h_in, h_in, c_in)}-output:{_shape(h_out, h_out, c_out)}"
            f"-expand:{mid}-kernel:{k}-stride:{stride}-idskip:{idskip}-se:{int(se)}-hs:{int(hs)}"
        )

    def _check(self, arch: Any) -> tuple[list[int], list[float], list[int], int]:
        if not isinstance(arch, dict) or any(key not in arch for key in ("ks", "e", "d", "r")):
            raise UserError("an OFA MobileNetV3 arch must be a dict with ks (20), e (20), d (5) and r")
        ks, es, ds, r = arch["ks"], arch["e"], arch["d"], arch["r"]
        if len(ks) != N_BLOCKS or len(es) != N_BLOCKS or len(ds) != N_STAGES:
            raise UserError(f"arch needs {N_BLOCKS} ks, {N_BLOCKS} e and {N_STAGES} d values")
        if any(not 1 <= d <= MAX_DEPTH for d in ds):
            raise UserError(f"arch depths {ds} must lie in 1..{MAX_DEPTH}")
        if "w" in arch and float(arch["w"]) != self.width_mult:
            raise UserError(
                f"arch width w={arch['w']} does not match the table keys' width {self.width_mult}"
            )
        return ks, es, ds, r

    def all_keys(
        self,
        resolutions: Sequence[int],
        ks_options: Sequence[int] = KS_OPTIONS,
        e_options: Sequence[float] = E_OPTIONS,
    ) -> dict[int, list[str]]:
        """Every key a subnet of the space can use at each of ``resolutions``: the 6 fixed layers
        and, per stage, its first and its other blocks with every kernel and expand ratio (96
        keys per resolution for the d234_e346_k357 space; resolutions share the keys whose
        shapes coincide)."""
        out = {}
        for r in resolutions:
            fixed = self.keys({"ks": [3] * N_BLOCKS, "e": [3] * N_BLOCKS, "d": [1] * N_STAGES, "r": r})
            blocks = [
                self.block_key(r, s, i, k, e)
                for s in range(N_STAGES)
                for i in (0, 1)
                for k in ks_options
                for e in e_options
            ]
            out[int(r)] = [*fixed[:2], *blocks, *fixed[-4:]]
        return out


class LatencyTable(LayerKeys):
    """OFA-format latency look-up tables of one device, one per resolution.

    ``directory`` holds ``<device>_<r>_lookup_table.yaml`` files. ``device`` picks the device
    when the directory holds tables of several (default: the only one there); ``resolutions``
    restricts loading to those tables (each must exist). ``width_mult`` is the width of the
    space the tables were measured for (1.2 for OFA's published tables). The class count is the
    tables' own (their ``Logits`` key; 1000 in OFA's).
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        device: str | None = None,
        resolutions: Sequence[int] | None = None,
        width_mult: float = 1.2,
    ) -> None:
        directory = Path(directory)
        pattern = f"{device or '<device>'}_<r>_lookup_table.yaml"
        if not directory.is_dir():
            raise UserError(
                f"latency table directory {str(directory)!r} does not exist; it must hold one file "
                f"{pattern} per resolution r (OFA's format, e.g. note10_224_lookup_table.yaml)"
            )
        found: dict[str, dict[int, Path]] = {}
        for path in directory.iterdir():
            m = FILE_RE.match(path.name)
            if m and path.is_file():
                found.setdefault(m["device"], {})[int(m["r"])] = path
        if device is None:
            if len(found) > 1:
                raise UserError(
                    f"{str(directory)!r} holds latency tables of several devices "
                    f"({', '.join(sorted(found))}); choose one"
                )
            device = next(iter(found), None)
        files = found.get(device, {}) if device is not None else {}
        if not files:
            raise UserError(
                f"no latency tables in {str(directory)!r}: expected files {pattern} "
                "(one per resolution r, e.g. note10_224_lookup_table.yaml)"
            )
        wanted = sorted(files) if resolutions is None else [int(r) for r in resolutions]
        missing = [r for r in wanted if r not in files]
        if missing:
            names = ", ".join(f"{device}_{r}_lookup_table.yaml" for r in missing)
            raise UserError(f"latency table directory {str(directory)!r} lacks {names}")
        self.directory = directory
        self.device = device
        self.tables: dict[int, dict[str, float]] = {r: self._read(files[r]) for r in wanted}
        logits = {k.rsplit(":", 1)[1] for t in self.tables.values() for k in t if k.startswith("Logits-")}
        super().__init__(width_mult, int(logits.pop()) if len(logits) == 1 else N_CLASSES)
        self._fixed: dict[int, tuple[float, ...]] = {}  # r -> the 6 fixed layers' means
        self._blocks: dict[int, dict[tuple, float]] = {}  # r -> (stage, i, k, e) -> mean

    @staticmethod
    def _read(path: Path) -> dict[str, float]:
        try:
            with open(path) as f:
                raw = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as e:
            raise UserError(f"latency table {str(path)!r} cannot be read ({type(e).__name__}: {e})") from None
        if not isinstance(raw, dict):
            raise UserError(f"latency table {str(path)!r} is not a mapping of layer keys")
        try:
            return {str(k): float(v["mean"]) for k, v in raw.items()}
        except (TypeError, KeyError, ValueError):
            raise UserError(f"latency table {str(path)!r} has an entry without a numeric 'mean'") from None

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(sorted(self.tables))

    def _check(self, arch: Any) -> tuple[list[int], list[float], list[int], int]:
        ks, es, ds, r = super()._check(arch)
        if r not in self.tables:
            raise UserError(
                f"no latency table for resolution {r}: expected {self.device}_{r}_lookup_table.yaml in "
                f"{str(self.directory)!r} (tables held: {list(self.resolutions)})"
            )
        return ks, es, ds, r

    # ---- latency ------------------------------------------------------------------------------

    def entries(self, arch: dict[str, Any]) -> list[tuple[str, float]]:
        """``(key, mean ms)`` of each layer of ``arch``, in network order."""
        r = self._check(arch)[3]
        return [(key, self._lookup(r, key)) for key in self.keys(arch)]

    def latency(self, arch: dict[str, Any]) -> float:
        """Predicted latency of ``arch`` in ms: the sum of its layers' means, in network order.

        Equal to ``sum`` over :meth:`entries` in order; entries are cached per block so a call
        costs a few microseconds.
        """
        ks, es, ds, r = self._check(arch)
        if r not in self._fixed:
            keys = self.keys({"ks": [3] * N_BLOCKS, "e": [3] * N_BLOCKS, "d": [1] * N_STAGES, "r": r})
            self._fixed[r] = tuple(self._lookup(r, k) for k in keys[:2] + keys[-4:])
        fixed, cache = self._fixed[r], self._blocks.setdefault(r, {})
        total = 0.0
        total += fixed[0]  # first conv
        total += fixed[1]  # fixed first block
        for s in range(N_STAGES):
            for i in range(ds[s]):
                j = s * MAX_DEPTH + i
                ms = cache.get((s, i, ks[j], es[j]))
                if ms is None:
                    ms = cache[s, i, ks[j], es[j]] = self._lookup(r, self.block_key(r, s, i, ks[j], es[j]))
                total += ms
        for ms in fixed[2:]:  # Conv_1, AvgPool2D, Conv_2, Logits, one by one as OFA adds them
            total += ms
        return total

    def latency_many(self, archs: Sequence[dict[str, Any]]) -> list[float]:
        return [self.latency(a) for a in archs]

    def min_latency(
        self,
        ks_options: Sequence[int] = KS_OPTIONS,
        e_options: Sequence[float] = E_OPTIONS,
        d_options: Sequence[int] = D_OPTIONS,
    ) -> float:
        """The smallest latency of any arch with these options.

        Exact: a block's entry depends only on its own (stage, position, kernel, expand), so the
        minimum is the fixed layers plus, per stage, the best depth of per-block minima.
        """
        best = float("inf")
        for r in self.resolutions:
            arch = {
                "ks": [ks_options[0]] * N_BLOCKS,
                "e": [e_options[0]] * N_BLOCKS,
                "d": [1] * N_STAGES,
                "r": r,
            }
            blocks = self.entries(arch)[2 : 2 + N_STAGES]  # d = 1: one block per stage
            fixed = sum(ms for _, ms in self.entries(arch)) - sum(ms for _, ms in blocks)
            total = fixed
            for s in range(N_STAGES):
                per_block = [
                    min(self._lookup(r, self.block_key(r, s, i, k, e)) for k in ks_options for e in e_options)
                    for i in range(max(d_options))
                ]
                total += min(sum(per_block[:d]) for d in d_options)
            best = min(best, total)
        return best

    def _lookup(self, r: int, key: str) -> float:
        if key not in self.tables[r]:
            raise UserError(
                f"latency table {self.device}_{r}_lookup_table.yaml has no entry {key!r}; "
                "the arch is outside the space the table was measured for"
            )
        return self.tables[r][key]


@COST_PROVIDERS.register("lut_latency")
class LUTLatency(CostProvider):
    """``latency`` (ms) of OFA MobileNetV3 subnets summed from a device's OFA-format look-up tables,
    one per resolution of the space (every resolution of the search must have its table)."""

    @dataclass
    class Options:
        lut_dir: str | None = option(
            None, "folder of OFA-format latency tables <device>_<r>_lookup_table.yaml (required)"
        )
        lut_device: str | None = option(None, "device of the tables (default: the only one in --lut_dir)")

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        if self.options.lut_dir is None:
            raise UserError("the lut_latency cost provider needs --lut_dir, the folder of the latency tables")
        width = getattr(self.space, "width_mult", None)
        resolutions = getattr(self.space, "resolutions", None)
        if width is None or resolutions is None:
            raise UserError(
                f"the lut_latency cost provider prices OFA MobileNetV3 subnets, not {self.space.name!r}"
            )
        self.table = LatencyTable(
            self.options.lut_dir, device=self.options.lut_device, resolutions=resolutions, width_mult=width
        )

    def provides(self) -> tuple[str, ...]:
        return ("latency",)

    def metrics(self, arch: Any) -> dict[str, float]:
        return {"latency": self.table.latency(self.space.validate(arch))}
