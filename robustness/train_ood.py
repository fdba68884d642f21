"""``train.py ... --ood_eval``: the corrupted-test-set error of a network right after its training.

Registered as an after-training evaluation (:mod:`nas.training.after`), so every ``train.py`` mode
that trains a chosen network (``subnet``, ``ee``, ``layer_skipping``) takes these flags. With
``--ood_eval`` the trained network is scored by :func:`robustness.ood.ood_errors` on the corrupted
set of its dataset (CIFAR-10-C for ``cifar10`` and ``cifar10_embedded``, CIFAR-100-C for
``cifar100``: the release when found, else generated from the test split and cached) at the
network's resolution, normalised as the clean test split, and the result goes into ``net.stats``
under ``"ood"``: ``clean_error``, ``errors`` per corruption and severity, ``corruption_error``,
``mean_error`` and which images (``set``). ``tools/evaluate_ood.py`` reads the same numbers for a
network trained earlier and adds the mCE against a reference network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nas.config import option
from nas.device import resolve_device
from nas.errors import UserError
from nas.training.after import AFTER_TRAINING, AfterTraining
from robustness.corruptions import check_corruptions, check_severities
from robustness.ood import ood_errors
from robustness.ood_data import SOURCES


@dataclass
class OODOptions:
    ood_eval: bool = option(
        False,
        "after training, the error on the dataset's corrupted test set (CIFAR-10-C/-100-C) into net.stats",
    )
    ood_dir: str | None = option(None, "folder of the corrupted-set release (default: <--data>/CIFAR-10-C)")
    ood_source: str = option(
        "auto", "corrupted images: the release when found, else generated (auto), release or generate",
        choices=list(SOURCES),
    )  # fmt: skip
    ood_images: int | None = option(
        None, "the first N test images per corruption and severity (default: all)"
    )
    ood_corruptions: list[str] | None = option(
        None, "corruptions to evaluate (default: the 15 of the benchmark)"
    )
    ood_severities: list[int] | None = option(None, "severities to evaluate, 1-5 (default: all five)")
    ood_seed: int = option(0, "seed of a generated corrupted set")
    ood_cache: str | None = option(None, "where generated corrupted sets are kept (default: data/cache/ood)")


def run_ood(model: Any, job: Any, cfg: Any) -> dict[str, Any]:
    return ood_errors(
        model, cfg.dataset, cfg.data, job.data.test, resolve_device(cfg.device), job.resolution,
        corruptions=cfg.ood_corruptions, severities=cfg.ood_severities, n_images=cfg.ood_images,
        seed=cfg.ood_seed, source=cfg.ood_source, ood_dir=cfg.ood_dir, cache_dir=cfg.ood_cache,
    )  # fmt: skip


def check_ood_options(cfg: Any) -> None:
    """Bad corruption names, severities or counts: a one-line error before any training."""
    check_corruptions(cfg.ood_corruptions)
    check_severities(cfg.ood_severities)
    if cfg.ood_images is not None and cfg.ood_images < 1:
        raise UserError(f"--ood_images {cfg.ood_images} must be >= 1 (or left out for all)")


AFTER_TRAINING.register("ood")(AfterTraining(OODOptions, "ood_eval", run_ood, check_ood_options))
