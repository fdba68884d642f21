"""Out-of-distribution error on corrupted test sets (CIFAR-10-C, CIFAR-100-C) and the mCE.

    >>> result = ood_errors(model, "cifar10", data_dir, data.test, device, resolution=32)
    >>> summary = corruption_summary(result, reference=ref_result, reference_name="resnet18")

:func:`ood_errors` scores a network (as it is: in evaluation mode, BatchNorm untouched) on the
clean test images and on every corruption and severity of the dataset's corrupted set
(:func:`robustness.ood_data.open_ood_set`: the published release when present, else a seeded set
generated from the test split and cached). The corrupted images go through exactly the pipeline of
the clean test split: :func:`nas.scoring.batches_of` at the network's input ``resolution`` (bilinear
resizing from 32 pixels as for clean images), normalised with the clean dataset's mean and std
(the FlatNAS reference normalised them with ImageNet's statistics while training with CIFAR's).
Errors are ``100 - top-1`` in percent. It returns a JSON-ready dict:

- ``clean_error``, ``errors`` ``{corruption: {"1": error, ..., "5": error}}`` (severities asked
  for), ``corruption_error`` (per corruption, the mean over its severities), ``mean_error`` (mean
  over every corruption and severity: what the FlatNAS reference called mCE, unnormalised);
- ``set``: which images (release or generated, seed, count, hash), so that two results are
  compared only on the same images (:func:`check_comparable`); ``n_images``, ``resolution``.

:func:`corruption_summary` adds the figures relative to a reference network, as Hendrycks &
Dietterich (ICLR 2019) define them with AlexNet as reference: per corruption ``c``,
``CE_c = 100 * sum_s E(s, c) / sum_s E_ref(s, c)`` and ``relative CE_c = 100 * sum_s (E(s, c) -
E_clean) / sum_s (E_ref(s, c) - E_ref_clean)``, the sums over the severities evaluated; ``mce``
and ``relative_mce`` are their means over the corruptions (100 = as robust as the reference). A CE
is ``None`` where the reference's sum is zero, a relative CE where the reference's corrupted error
does not exceed its clean error (tiny test sets); the means are then ``None`` and the corruptions
are listed under ``undefined``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from nas.errors import UserError
from nas.scoring import accuracy, batches_of
from robustness.corruptions import check_corruptions, check_severities
from robustness.ood_data import OODSet, open_ood_set

SCHEMA = "ood_errors/1"


def _error(model: nn.Module, split: Any, resolution: int, device: torch.device, batch_size: int) -> float:
    top1 = accuracy(model, batches_of(split, resolution, device, batch_size, 0, 0), topk=(1,))["top1"]
    return 100.0 - top1


def ood_errors(
    model: nn.Module,
    dataset: str,
    data_dir: str | os.PathLike | None,
    clean_test: Any,
    device: torch.device,
    resolution: int,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] | None = None,
    n_images: int | None = None,
    seed: int = 0,
    *,
    source: str = "auto",
    ood_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 200,
    progress: bool = True,
) -> dict[str, Any]:
    """Clean and corrupted test error (%) of ``model`` on ``dataset``'s corrupted set.

    ``clean_test``: the clean test split (``load_dataset(dataset, data_dir).test``); ``data_dir``
    is where the release is looked for (``<data_dir>/CIFAR-10-C/``) unless ``ood_dir`` names it;
    ``source``: "auto" (the release if found, else generated), "release" or "generate";
    ``corruptions``/``severities``: default all 15 / 1-5; ``n_images``: the first N images of each
    severity (default all); ``seed``: of a generated set; ``cache_dir``: where generated sets are
    kept (default ``data/cache/ood``). The clean error is measured on the first ``n_images`` clean
    test images (all when the split has fewer).
    """
    corruptions = check_corruptions(corruptions)
    severities = check_severities(severities)
    ood = open_ood_set(
        dataset, clean_test, corruptions, n_images, seed, source, data_dir, ood_dir, cache_dir, progress
    )
    return evaluate_set(model, ood, clean_test, device, resolution, severities, batch_size, progress)


def evaluate_set(
    model: nn.Module,
    ood: OODSet,
    clean_test: Any,
    device: torch.device,
    resolution: int,
    severities: Sequence[int] | None = None,
    batch_size: int = 200,
    progress: bool = True,
) -> dict[str, Any]:
    """:func:`ood_errors` on an opened set (to score several networks on the same images)."""
    from tqdm import tqdm

    severities = check_severities(severities)
    model = model.to(device)
    clean = clean_test.subset(np.arange(min(ood.n_images, len(clean_test))))
    clean_error = _error(model, clean, resolution, device, batch_size)
    errors: dict[str, dict[str, float]] = {}
    bar = tqdm(
        ood.corruptions,
        desc=f"{ood.spec.title} error",
        disable=None if progress else True,
        dynamic_ncols=True,
    )
    for c in bar:
        bar.set_postfix_str(c)
        errors[c] = {
            str(s): _error(
                model, ood.split(c, s, clean_test.mean, clean_test.std), resolution, device, batch_size
            )
            for s in severities
        }
    per_corruption = {c: float(np.mean(list(e.values()))) for c, e in errors.items()}
    return {
        "schema": SCHEMA,
        "dataset": ood.spec.name,
        "set": ood.describe(),
        "resolution": int(resolution),
        "n_images": ood.n_images,
        "clean_images": len(clean),
        "corruptions": list(ood.corruptions),
        "severities": list(severities),
        "clean_error": clean_error,
        "errors": errors,
        "corruption_error": per_corruption,
        "mean_error": float(np.mean([e for c in errors.values() for e in c.values()])),
    }


def check_comparable(result: dict[str, Any], reference: dict[str, Any], name: str = "the reference") -> None:
    """Refuse (one-line :class:`UserError`) a reference measured on other images or missing a
    corruption or severity of ``result``."""
    keys = ("ood_dataset", "kind", "n_images", "seed", "fingerprint", "generator")
    ours, theirs = result.get("set", {}), reference.get("set") or {}
    diff = [k for k in keys if ours.get(k) != theirs.get(k)]
    if diff:
        pairs = ", ".join(f"{k} {theirs.get(k)!r} vs {ours.get(k)!r}" for k in diff)
        raise UserError(
            f"{name} was measured on other corrupted images ({pairs}); evaluate both networks with the "
            "same --ood_source, --n_images and --seed"
        )
    for c, per_severity in result["errors"].items():
        missing = [s for s in per_severity if s not in reference.get("errors", {}).get(c, {})]
        if missing:
            raise UserError(
                f"{name} has no error for {c} at severity {missing[0]}; evaluate it on the same "
                "--corruptions and --severities"
            )


def corruption_summary(
    errors: dict[str, Any], reference: dict[str, Any] | None = None, reference_name: str | None = None
) -> dict[str, Any]:
    """The headline figures of an :func:`ood_errors` result, relative to ``reference`` (another
    result on the same images) when given: CE and mCE, relative CE and relative mCE (see the module
    docstring)."""
    out: dict[str, Any] = {
        "clean_error": errors["clean_error"],
        "mean_error": errors["mean_error"],
        "corruption_error": dict(errors["corruption_error"]),
        "reference": None,
    }
    if reference is None:
        return out
    name = reference_name or "reference"
    check_comparable(errors, reference, f"reference {name!r}")
    ce: dict[str, float | None] = {}
    rce: dict[str, float | None] = {}
    for c, per_severity in errors["errors"].items():
        sev = list(per_severity)
        ours = np.array([per_severity[s] for s in sev])
        theirs = np.array([reference["errors"][c][s] for s in sev])
        ce[c] = float(100.0 * ours.sum() / theirs.sum()) if theirs.sum() > 0 else None
        gap = (theirs - reference["clean_error"]).sum()
        rce[c] = float(100.0 * (ours - errors["clean_error"]).sum() / gap) if gap > 0 else None

    def mean(values: dict[str, float | None]) -> float | None:
        return None if any(v is None for v in values.values()) else float(np.mean(list(values.values())))

    out.update(
        {
            "reference": {
                "name": name,
                "clean_error": reference["clean_error"],
                "mean_error": float(
                    np.mean(
                        [reference["errors"][c][s] for c in errors["errors"] for s in errors["errors"][c]]
                    )
                ),
            },
            "ce": ce,
            "mce": mean(ce),
            "relative_ce": rce,
            "relative_mce": mean(rce),
            "undefined": sorted({c for c in ce if ce[c] is None or rce[c] is None}),
        }
    )
    return out
