"""Latency datasets of OFA MobileNetV3 subnets: measured CSVs, table-sum labels, splits.

A measured dataset is a CSV with the header ``arch,latency_ms,iqr_ms`` (``iqr_ms`` optional):
``arch`` is the compact JSON of the architecture dict (``{"ks":[...20],"e":[...20],"d":[...5],
"r":176,"w":1.0}``), ``latency_ms`` the median latency and ``iqr_ms`` its interquartile range. A
``protocol.json`` beside the CSV (how it was measured) is read when present.

Architectures are compared by their *canonical* form (the kernel and expand genes of blocks that
the depth switches off reset, as ``OFAMobileNetV3Space.canonical`` does): two dicts that describe
the same network are one architecture. Splits deduplicate by it first, so no network is in two
parts of a split.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import UserError
from nas.io import atomic_write_bytes

Arch = dict[str, Any]
COLUMNS = ("arch", "latency_ms", "iqr_ms")
BASE_KEYS = ("ks", "e", "d", "r", "w")


@lru_cache(maxsize=64)
def _space(width_mult: float, r: int) -> Any:
    from NasSearchSpace.ofa_mbv3 import OFAMobileNetV3Space

    return OFAMobileNetV3Space.for_arch({"r": r, "w": width_mult})


def canonical_arch(arch: Any, width_mult: float | None = None) -> Arch:
    """``arch`` validated as an OFA MobileNetV3 subnet, in canonical form (``w`` always set).

    ``width_mult`` fills a missing ``w`` (default: 1.0, as the rest of the toolkit reads subnets
    without one). CNAS's compact ``ks``/``e`` (active blocks only) are expanded.
    """
    if not isinstance(arch, dict):
        raise UserError(f"a subnet must be a JSON object with ks, e, d, r; got {type(arch).__name__}")
    if "w" not in arch and width_mult is not None:
        arch = {**arch, "w": width_mult}
    r = arch.get("r")
    w = arch.get("w", 1.0)
    if isinstance(r, bool) or not isinstance(r, int) or r < 32:
        raise UserError(f"subnet resolution r = {r!r} must be an integer >= 32")
    if isinstance(w, bool) or w not in (1.0, 1.2):
        raise UserError(f"subnet width w = {w!r} is not an OFA space; use 1.0 or 1.2")
    return _space(float(w), r).canonical(arch)


def arch_json(arch: Arch) -> str:
    """The compact JSON of ``arch`` (``ks, e, d, r, w`` first, any other keys after, sorted)."""
    keys = [k for k in BASE_KEYS if k in arch] + sorted(k for k in arch if k not in BASE_KEYS)
    return json.dumps({k: arch[k] for k in keys}, separators=(",", ":"))


def arch_key(arch: Arch) -> str:
    """A 12-hex-digit id of a canonical arch (same network, same id)."""
    return hashlib.sha1(arch_json(arch).encode()).hexdigest()[:12]


@dataclass
class LatencyDataset:
    """Architectures (canonical) with their latency (ms), and what came with them."""

    archs: list[Arch]
    latency_ms: np.ndarray
    iqr_ms: np.ndarray | None = None
    protocol: dict[str, Any] | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.archs)


def read_dataset(path: str | os.PathLike) -> LatencyDataset:
    """Read a measured dataset CSV (``arch,latency_ms[,iqr_ms]``) and its ``protocol.json``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"latency dataset {str(path)!r} does not exist; check the path")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"latency dataset {str(path)!r} cannot be read ({type(e).__name__})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in COLUMNS[:2] if c not in header]
    if missing:
        raise UserError(
            f"latency dataset {str(path)!r} lacks the column(s) {', '.join(missing)}; "
            f"its header must be {','.join(COLUMNS)} (iqr_ms optional)"
        )
    archs, lat, iqr = [], [], []
    for line, row in enumerate(reader, 2):
        where = f"latency dataset {str(path)!r} line {line}"
        try:
            arch = json.loads(row["arch"] or "")
        except json.JSONDecodeError:
            raise UserError(f"{where}: arch is not valid JSON; write it as compact JSON in quotes") from None
        try:
            arch = canonical_arch(arch)
        except UserError as e:
            raise UserError(f"{where}: {e}") from None
        ms = _number(row["latency_ms"], f"{where}: latency_ms")
        if ms <= 0:
            raise UserError(f"{where}: latency_ms {row['latency_ms']!r} must be positive")
        archs.append(arch)
        lat.append(ms)
        if "iqr_ms" in header:
            iqr.append(
                _number(row["iqr_ms"], f"{where}: iqr_ms") if row["iqr_ms"] not in ("", None) else math.nan
            )
    if not archs:
        raise UserError(f"latency dataset {str(path)!r} holds no rows")
    protocol = None
    if (path.parent / "protocol.json").is_file():
        from nas.io import read_json

        protocol = read_json(path.parent / "protocol.json", "protocol file")
    return LatencyDataset(
        archs, np.asarray(lat, float), np.asarray(iqr, float) if iqr else None, protocol, str(path)
    )


def _number(text: Any, what: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UserError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise UserError(f"{what} {text!r} is not finite")
    return value


def read_references(path: str | os.PathLike) -> tuple[list[Arch], np.ndarray]:
    """The reference networks of a dataset (``references.csv``: ``round,after,ref,arch,latency_ms,
    iqr_ms``, written by tools/build_latency_dataset.py) with the median of their rounds, in ``ref``
    order: the HELP-style description of the device (``hardware.predictors.hardware_embedding``)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"reference latencies {str(path)!r} do not exist; check the path")
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    if not rows or any(c not in rows[0] for c in ("ref", "arch", "latency_ms")):
        raise UserError(f"reference latencies {str(path)!r} need the columns ref, arch and latency_ms")
    by_ref: dict[int, tuple[Arch, list[float]]] = {}
    for line, row in enumerate(rows, 2):
        where = f"reference latencies {str(path)!r} line {line}"
        try:
            arch = canonical_arch(json.loads(row["arch"]))
        except json.JSONDecodeError:
            raise UserError(f"{where}: arch is not valid JSON") from None
        except UserError as e:
            raise UserError(f"{where}: {e}") from None
        ref = int(_number(row["ref"], f"{where}: ref"))
        by_ref.setdefault(ref, (arch, []))[1].append(_number(row["latency_ms"], f"{where}: latency_ms"))
    refs = sorted(by_ref)
    return [by_ref[r][0] for r in refs], np.array([float(np.median(by_ref[r][1])) for r in refs])


def write_dataset(
    path: str | os.PathLike,
    archs: Sequence[Arch],
    latency_ms: Sequence[float] | np.ndarray,
    iqr_ms: Sequence[float] | np.ndarray | None = None,
) -> None:
    """Write ``arch,latency_ms,iqr_ms`` rows (``iqr_ms`` empty when not given)."""
    if len(archs) != len(latency_ms) or (iqr_ms is not None and len(iqr_ms) != len(archs)):
        raise ValueError("archs, latency_ms and iqr_ms must have one entry per network")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for i, arch in enumerate(archs):
        iqr = "" if iqr_ms is None else repr(float(iqr_ms[i]))
        w.writerow([arch_json(arch), repr(float(latency_ms[i])), iqr])
    atomic_write_bytes(path, buf.getvalue().encode())


def read_subnets(path: str | os.PathLike) -> list[Any]:
    """Subnets from a file: JSON lines, each an arch dict or a row holding one under ``"arch"`` or
    ``"subnet"`` (``net.stats``, result rows); or one JSON document, an arch (``net.subnet``), such
    a row, or a list of them. Not validated here."""
    path = str(path)
    try:
        with open(path) as f:
            text = f.read()
    except (FileNotFoundError, IsADirectoryError):
        raise UserError(f"subnets file {path!r} does not exist; check the path") from None
    except UnicodeDecodeError:
        raise UserError(f"subnets file {path!r} is not text; give one JSON subnet per line") from None
    try:
        whole = json.loads(text)
        items = whole if isinstance(whole, list) else [whole]
    except json.JSONDecodeError:
        items = []
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise UserError(f"subnets file {path!r} line {i} is not valid JSON ({e.msg})") from None
    out = []
    for item in items:
        if isinstance(item, dict) and "ks" not in item:
            for key in ("arch", "subnet"):
                if isinstance(item.get(key), dict):
                    item = item[key]
                    break
        out.append(item)
    if not out:
        raise UserError(f"subnets file {path!r} holds no subnets")
    return out


# ---- labels from a look-up table ---------------------------------------------------------------


def sample_unique(
    n: int,
    seed: int,
    resolutions: Sequence[int],
    width_mult: float = 1.2,
    exclude: Iterable[str] = (),
) -> list[Arch]:
    """``n`` distinct random canonical archs (genes uniform, ``r`` uniform over ``resolutions``),
    none of whose :func:`arch_key` is in ``exclude``; seeded."""
    if n < 1:
        raise UserError(f"the number of samples must be >= 1, got {n}")
    resolutions = sorted({int(r) for r in resolutions})
    if not resolutions:
        raise UserError("no resolutions to sample from")
    rng = np.random.default_rng(seed)
    genes = _space(float(width_mult), resolutions[0])
    seen, out = set(exclude), []
    for _ in range(100):
        want = n - len(out)
        batch = genes.sample(2 * want + 16, rng)
        rs = rng.choice(resolutions, size=len(batch))
        for arch, r in zip(batch, rs, strict=True):
            arch = canonical_arch({**arch, "r": int(r)})
            key = arch_key(arch)
            if key not in seen:
                seen.add(key)
                out.append(arch)
                if len(out) == n:
                    return out
    raise UserError(f"could not draw {n} distinct architectures; the space is too small")


def lut_labels(
    lut_dir: str | os.PathLike,
    n: int,
    seed: int,
    resolutions: Sequence[int] | None = None,
    device: str | None = None,
    width_mult: float = 1.2,
    exclude: Iterable[str] = (),
) -> tuple[list[Arch], np.ndarray]:
    """``n`` unique random archs of the space the tables describe (their resolutions, or
    ``resolutions``) with their exact table sums in ms (``LatencyTable.latency``)."""
    from NasSearchSpace.ofa_mbv3_latency import LatencyTable

    table = LatencyTable(lut_dir, device=device, resolutions=resolutions, width_mult=width_mult)
    archs = sample_unique(n, seed, table.resolutions, width_mult, exclude)
    return archs, np.asarray(table.latency_many(archs), float)


# ---- splits --------------------------------------------------------------------------------------


def deduplicate(archs: Sequence[Any], y: Sequence[float] | np.ndarray) -> tuple[list[Arch], np.ndarray]:
    """Canonical archs, each once, in order of first appearance; repeated measurements of one
    network are averaged."""
    y = np.asarray(y, float)
    if len(archs) != len(y):
        raise UserError(f"{len(archs)} architectures but {len(y)} latencies")
    index: dict[str, int] = {}
    out: list[Arch] = []
    sums: list[float] = []
    counts: list[int] = []
    for arch, v in zip(archs, y, strict=True):
        c = canonical_arch(arch)
        key = arch_key(c)
        if key in index:
            sums[index[key]] += float(v)
            counts[index[key]] += 1
        else:
            index[key] = len(out)
            out.append(c)
            sums.append(float(v))
            counts.append(1)
    return out, np.asarray(sums) / np.asarray(counts)


def split_unique(
    archs: Sequence[Any],
    y: Sequence[float] | np.ndarray,
    parts: Sequence[float | int],
    seed: int,
) -> list[tuple[list[Arch], np.ndarray]]:
    """A seeded split of the unique architectures into ``len(parts)`` parts.

    ``parts`` are fractions of the unique count (floats summing to at most 1; the last part takes
    what rounding leaves when they sum to 1) or counts (ints summing to at most the unique count).
    Duplicates are merged first (:func:`deduplicate`), so no network is in two parts.
    """
    u_archs, u_y = deduplicate(archs, y)
    n = len(u_archs)
    if not parts:
        raise UserError("a split needs at least one part")
    if all(isinstance(p, int) and not isinstance(p, bool) for p in parts):
        sizes = [int(p) for p in parts]
        if any(s < 0 for s in sizes) or sum(sizes) > n:
            raise UserError(f"split sizes {sizes} exceed the {n} unique architectures")
    else:
        fr = [float(p) for p in parts]
        if any(f < 0 for f in fr) or sum(fr) > 1 + 1e-9:
            raise UserError(f"split fractions {fr} must be >= 0 and sum to at most 1")
        sizes = [int(round(f * n)) for f in fr]
        if abs(sum(fr) - 1) < 1e-9:
            sizes[-1] = n - sum(sizes[:-1])
        while sum(sizes) > n:  # rounding up overshot
            sizes[int(np.argmax(sizes))] -= 1
    order = np.random.default_rng(seed).permutation(n)
    out, start = [], 0
    for s in sizes:
        idx = order[start : start + s]
        out.append(([u_archs[i] for i in idx], u_y[idx]))
        start += s
    return out
