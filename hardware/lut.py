"""Build an OFA-format latency look-up table on the device at hand.

Every layer configuration the OFA MobileNetV3 space can produce at the given resolutions (the 6
fixed layers and, per stage, the first and the other blocks with every kernel and expand ratio:
96 keys per resolution, fewer unique ones because resolutions share the deep stages' shapes) is
timed once under a :class:`~hardware.measure.TimingProtocol`, in a seeded shuffled order. The
output folder holds ``<device>_<r>_lookup_table.yaml`` per resolution in OFA's format
(``{key: {count, mean, std}}`` in ms), readable by the ``lut_latency`` cost provider and
``--latency_model lut:DIR``; ``protocol.json`` (the protocol, the keys per resolution, the wall
time); and ``measurements.jsonl``, one line per key as it is measured, from which an interrupted
build resumes (with the same protocol; another protocol is refused rather than mixed in).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hardware.measure import TimingProtocol, key_input_shape, layers_by_key, time_module
from nas.errors import UserError

LUT_SCHEMA = "latency-lut/1"


def _read_jsonl(path: Path) -> dict[str, dict[str, float]]:
    out = {}
    if path.exists():
        with open(path) as f:
            for line in f:
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut by an interruption: measured again
                    out[row["key"]] = {k: row[k] for k in ("count", "mean", "std")}
    return out


def build_lut(
    space: Any,
    resolutions: Sequence[int],
    out_dir: str | os.PathLike,
    protocol: TimingProtocol,
    device_name: str = "local",
    n_classes: int = 1000,
    progress: bool = True,
) -> dict[str, Any]:
    """Measure every layer of ``space`` at ``resolutions``; write the tables to ``out_dir``.

    Returns the protocol record written to ``protocol.json``.
    """
    from NasSearchSpace.ofa_mbv3_latency import LayerKeys

    resolutions = sorted({int(r) for r in resolutions})
    if not resolutions or resolutions[0] < 32:
        raise UserError("--resolutions: give one or more input sides of at least 32 pixels")
    if "_" in device_name or not device_name:
        raise UserError(
            f"--device_name {device_name!r} must be non-empty without '_' (the file names split on it)"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    proto_path, jsonl = out / "protocol.json", out / "measurements.jsonl"
    record = {
        "schema": LUT_SCHEMA,
        "protocol": protocol.to_dict(),
        "space": {"name": space.name, "width_mult": space.width_mult},
        "device_name": device_name,
        "n_classes": n_classes,
        "resolutions": resolutions,
    }
    protocol.refuse_other(proto_path, record, ("space", "n_classes"), "a table")
    keys_per_r = LayerKeys(space.width_mult, n_classes).all_keys(resolutions)
    unique = list(dict.fromkeys(k for r in resolutions for k in keys_per_r[r]))
    record["keys"] = {"per_resolution": len(keys_per_r[resolutions[0]]), "unique": len(unique)}
    done = _read_jsonl(jsonl)
    device = protocol.apply()
    t0 = time.perf_counter()
    todo = [k for k in unique if k not in done]
    order = np.random.default_rng(protocol.seed).permutation(len(todo))
    modules = dict(layers_by_key(space, resolutions, n_classes)) if todo else {}
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(unique), initial=len(done), desc="layers", unit="key")
    with open(jsonl, "a") as f:
        for i in order:
            key = todo[i]
            ms = time_module(modules[key], key_input_shape(key, protocol.batch_size), protocol, device)
            row = {"key": key, "count": int(len(ms)), "mean": float(ms.mean()), "std": float(ms.std())}
            f.write(json.dumps(row) + "\n")
            f.flush()
            done[key] = {k: row[k] for k in ("count", "mean", "std")}
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    for r in resolutions:
        table = {k: done[k] for k in keys_per_r[r]}
        with open(out / f"{device_name}_{r}_lookup_table.yaml", "w") as f:
            yaml.safe_dump(table, f, sort_keys=False)
    record["seconds_this_run"] = round(time.perf_counter() - t0, 1)
    record["measured_ms_total"] = round(sum(v["count"] * v["mean"] for v in done.values()), 1)
    proto_path.write_text(json.dumps(record, indent=1) + "\n")
    return record
