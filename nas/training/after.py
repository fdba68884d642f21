"""Evaluations that plug-ins add after the training of a chosen network.

``train.py subnet`` and the task modes built on it (their configs derive from
:class:`~nas.training.subnet.SubnetTrainConfig`) end by scoring the trained network on the test
split. A plug-in that measures more of a trained network (the flatness plug-in's corruption
errors, ``--ood_eval``) registers an :class:`AfterTraining` in :data:`AFTER_TRAINING`: the fields
of its ``options`` dataclass become flags of every such mode (:func:`with_after_training`), its
boolean option ``flag`` switches it on, ``check(cfg)`` (optional) refuses bad options before any
training, and ``run(model, job, cfg)`` returns the metrics written into ``net.stats`` under its
registered name. Its options do not bind a ``--resume`` (they change
what is measured after training, not the training).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nas.registry import Registry


@dataclass(frozen=True)
class AfterTraining:
    options: type  # a dataclass of options (each with a default and help)
    flag: str  # its boolean option that enables the evaluation
    run: Callable[[Any, Any, Any], dict[str, Any]]  # (trained model, SubnetJob, config) -> metrics
    check: Callable[[Any], None] | None = None  # (config) -> None or a UserError, before training


AFTER_TRAINING: Registry[AfterTraining] = Registry("after-training evaluation")


def after_training_fields() -> set[str]:
    """The option names every registered after-training evaluation adds."""
    return {f.name for n in AFTER_TRAINING.names() for f in dataclasses.fields(AFTER_TRAINING.get(n).options)}


def with_after_training(config: type) -> type:
    """``config`` with the options of every registered after-training evaluation added."""
    extras = [AFTER_TRAINING.get(n).options for n in AFTER_TRAINING.names()]
    own = {f.name for f in dataclasses.fields(config)}
    for extra in extras:
        clash = own & {f.name for f in dataclasses.fields(extra)}
        if clash:
            raise RuntimeError(f"{extra.__name__} redefines options of {config.__name__}: {sorted(clash)}")
    if not extras:
        return config
    return dataclasses.make_dataclass(config.__name__, [], bases=(config, *extras))


def enabled(cfg: Any) -> list[str]:
    """The names of the evaluations ``cfg`` switches on, in name order."""
    return [n for n in AFTER_TRAINING.names() if getattr(cfg, AFTER_TRAINING.get(n).flag, False)]


def check_after_training(cfg: Any) -> None:
    """Each switched-on evaluation's ``check``: bad options fail before any training."""
    for name in enabled(cfg):
        check = AFTER_TRAINING.get(name).check
        if check is not None:
            check(cfg)


def run_after_training(model: Any, job: Any, cfg: Any) -> dict[str, dict[str, Any]]:
    """``{name: metrics}`` of the evaluations ``cfg`` switches on, in name order."""
    return {name: AFTER_TRAINING.get(name).run(model, job, cfg) for name in enabled(cfg)}
