"""Registered components and their typed options.

A component (a search space, an evaluator, a trainer, a measure, a cost provider, an objective, a
search strategy) is a class registered by name whose ``Options`` is a dataclass of typed defaults,
each field made with :func:`nas.config.option` so that its help text reaches ``--help``, YAML
files and the saved run description. A component is made from an ``Options`` instance, a mapping
of option names, or keyword arguments::

    space = get_search_space("mobilenetv3", lr=32, ur=64)        # keyword arguments
    space = OFAMobileNetV3Space(OFAMobileNetV3Space.Options(lr=32))  # an Options instance
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from nas.errors import UserError


@dataclass
class NoOptions:
    """A component without options."""


class Component:
    """Base of the registered parts of a run: ``self.options`` is an instance of ``Options``."""

    Options: ClassVar[type] = NoOptions
    name: ClassVar[str] = ""

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        self.options = make_options(
            type(self).Options, options, kwargs, type(self).name or type(self).__name__
        )


def option_names(options_cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(options_cls)]


def make_options(
    options_cls: type, options: Any = None, overrides: Mapping[str, Any] | None = None, what: str = ""
) -> Any:
    """An ``options_cls`` instance from an instance, a mapping or nothing, with ``overrides`` applied.

    Unknown names are one-line errors that list the component's options.
    """
    values: dict[str, Any] = {}
    if isinstance(options, options_cls):
        values = dataclasses.asdict(options)
    elif isinstance(options, Mapping):
        values = dict(options)
    elif options is not None:
        raise TypeError(
            f"options of {what or options_cls.__name__} must be {options_cls.__name__} or a mapping"
        )
    values.update(overrides or {})
    names = option_names(options_cls)
    unknown = sorted(set(values) - set(names))
    if unknown:
        choices = ", ".join(names) if names else "none"
        raise UserError(
            f"{what or options_cls.__name__} has no option {', '.join(unknown)} (its options: {choices})"
        )
    return options_cls(**values)


def options_dict(options: Any) -> dict[str, Any]:
    """The options as a plain dict (tuples become lists, so YAML and JSON round-trip)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(options).items()}
