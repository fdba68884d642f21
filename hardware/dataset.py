"""Build a latency dataset on the device at hand: sampled whole subnets, built and timed.

``n`` unique architectures are drawn from the space with a seed and timed in that (random) order
under a :class:`~hardware.measure.TimingProtocol`: the median of ``repeats`` timed calls after
``warmup`` untimed ones, and the inter-quartile range. A fixed set of ``n_ref`` reference
networks (another seed) is timed before the first network and again after every ``ref_every``
networks: their medians, relative to the first round, show whether the machine's speed drifted
during the measurement (``references.csv``, and the largest drift in ``protocol.json``); they are
also the HELP-style hardware description of the device (``hardware.predictors``).

Files (the CSV is appended to and flushed row by row, so an interrupted build resumes when run
again with the same flags; other flags on an existing folder are refused, never mixed in):

- ``latency.csv``: ``arch,latency_ms,iqr_ms`` (``arch``: the compact JSON of the subnet);
- ``references.csv``: ``round,after,ref,arch,latency_ms,iqr_ms``;
- ``protocol.json``: the protocol, the space, ``n``, seeds, the wall time and the drift summary.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hardware.latency_data import arch_json
from hardware.measure import TimingProtocol, time_module
from nas.errors import UserError

DATASET_SCHEMA = "latency-dataset/1"
CSV_FIELDS = ("arch", "latency_ms", "iqr_ms")
REF_FIELDS = ("round", "after", "ref", "arch", "latency_ms", "iqr_ms")


def unique_sample(space: Any, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` different architectures of ``space`` drawn with ``seed`` (in drawing order)."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, Any]] = {}
    for _ in range(100):
        for a in space.sample(max(n - len(out), 1), rng):
            out.setdefault(arch_json(space.canonical(a)), a)
            if len(out) == n:
                return list(out.values())
    raise UserError(f"the space has fewer than {n} different architectures; lower --n")


class NetworkTimer:
    """Builds subnets of ``space`` (random weights, one shared supernet) and times them."""

    def __init__(self, space: Any, protocol: TimingProtocol, n_classes: int = 1000) -> None:
        self.space, self.protocol, self.n_classes = space, protocol, n_classes
        self.device = protocol.apply()
        self.supernet = space.make_supernet(n_classes)

    def build(self, arch: dict[str, Any]) -> torch.nn.Module:
        self.space.activate(self.supernet, self.space.validate(arch))
        return self.supernet.get_active_subnet(preserve_weight=False)

    def time(self, arch: dict[str, Any]) -> tuple[float, float]:
        """``(median ms, inter-quartile range ms)`` of ``arch``."""
        r = self.space.resolution(arch)
        ms = time_module(self.build(arch), (self.protocol.batch_size, 3, r, r), self.protocol, self.device)
        q1, med, q3 = np.percentile(ms, [25, 50, 75])
        return float(med), float(q3 - q1)


def _append(path: Path, fields: Sequence[str], row: dict[str, Any]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if new:
            w.writeheader()
        w.writerow(row)


def _done(path: Path) -> set[str]:
    if not path.exists():
        return set()
    with open(path, newline="") as f:
        return {row["arch"] for row in csv.DictReader(f) if row.get("iqr_ms")}


def build_dataset(
    space: Any,
    n: int,
    out_dir: str | os.PathLike,
    protocol: TimingProtocol,
    n_ref: int = 20,
    ref_every: int = 200,
    n_classes: int = 1000,
    progress: bool = True,
) -> dict[str, Any]:
    """Time ``n`` sampled subnets (and the references); returns the record of ``protocol.json``."""
    if n < 1 or n_ref < 0 or ref_every < 1:
        raise UserError("--n and --ref_every must be positive, --n_ref 0 or more")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    proto_path, data_path, ref_path = out / "protocol.json", out / "latency.csv", out / "references.csv"
    record: dict[str, Any] = {
        "schema": DATASET_SCHEMA,
        "protocol": protocol.to_dict(),
        "space": {"name": space.name, "width_mult": space.width_mult, "resolutions": list(space.resolutions)},
        "n": n,
        "n_ref": n_ref,
        "ref_every": ref_every,
        "n_classes": n_classes,
    }
    protocol.refuse_other(proto_path, record, ("space", "n", "n_ref", "ref_every", "n_classes"), "a dataset")
    if not proto_path.exists():
        proto_path.write_text(json.dumps(record, indent=1) + "\n")
    archs = unique_sample(space, n, protocol.seed)
    refs = unique_sample(space, n_ref, protocol.seed + 10_000) if n_ref else []
    done = _done(data_path)
    todo = [a for a in archs if arch_json(a) not in done]
    timer = NetworkTimer(space, protocol, n_classes) if todo else None  # a finished dataset builds nothing
    rounds = 0
    if ref_path.exists():
        with open(ref_path, newline="") as f:
            rounds = 1 + max((int(r["round"]) for r in csv.DictReader(f)), default=-1)
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=n, initial=n - len(todo), desc="networks", unit="net")
    t0 = time.perf_counter()

    def reference_round(after: int) -> None:
        nonlocal rounds
        for j, a in enumerate(refs):
            med, iqr = timer.time(a)
            row = {"round": rounds, "after": after, "ref": j, "arch": arch_json(a)}
            _append(ref_path, REF_FIELDS, {**row, "latency_ms": f"{med:.6g}", "iqr_ms": f"{iqr:.6g}"})
        rounds += 1

    measured = n - len(todo)
    for a in todo:
        if refs and (measured % ref_every == 0):
            reference_round(measured)
        med, iqr = timer.time(a)
        _append(
            data_path, CSV_FIELDS, {"arch": arch_json(a), "latency_ms": f"{med:.6g}", "iqr_ms": f"{iqr:.6g}"}
        )
        measured += 1
        if bar is not None:
            bar.update()
    if refs and todo:
        reference_round(measured)
    if bar is not None:
        bar.close()
    record["seconds_this_run"] = round(time.perf_counter() - t0, 1)
    record["drift"] = reference_drift(ref_path) if refs else None
    proto_path.write_text(json.dumps(record, indent=1) + "\n")
    return record


def reference_drift(ref_path: str | os.PathLike) -> dict[str, float] | None:
    """How the reference networks' medians moved against their first round: the median and the
    largest over rounds of the median relative change (percent), and the rounds compared."""
    if not Path(ref_path).exists():
        return None
    with open(ref_path, newline="") as f:
        rows = list(csv.DictReader(f))
    by_round: dict[int, dict[int, float]] = {}
    for r in rows:
        by_round.setdefault(int(r["round"]), {})[int(r["ref"])] = float(r["latency_ms"])
    first = by_round[min(by_round)]
    changes = []
    for k in sorted(by_round)[1:]:
        rel = [100.0 * (v / first[j] - 1.0) for j, v in by_round[k].items() if j in first]
        changes.append(float(np.median(rel)))
    if not changes:
        return {"rounds": len(by_round), "median_pct": 0.0, "max_abs_pct": 0.0}
    return {
        "rounds": len(by_round),
        "median_pct": float(np.median(changes)),
        "max_abs_pct": float(np.max(np.abs(changes))),
        "per_round_pct": [round(c, 3) for c in changes],
    }
