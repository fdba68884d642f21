"""Typed configuration: one dataclass of defaults per command, overridable from YAML and flags.

Every field carries its help text (and unit) in ``metadata["help"]``; :func:`parse_config`
turns the dataclass into an argparse parser, so ``--help`` documents every flag with its
default. ``--config FILE.yaml`` is read first and its values become the defaults, so flags on
the command line win (the timm pattern).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from typing import Any, TypeVar

import yaml

from nas.errors import UserError
from nas.io import atomic_write_bytes

C = TypeVar("C")


def option(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with a help string (and optional ``choices``, ``flag`` aliases)."""
    return dataclasses.field(default=default, metadata={"help": help, **kwargs})


def _base_type(tp: Any) -> Any:
    """``int | None`` -> ``int``."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = _base_type(hints[f.name])
        meta = dict(f.metadata)
        help_ = meta.pop("help", "").replace("%", "%%") + " (default: %(default)s)"
        names = [f"--{f.name}", *meta.pop("aliases", [])]
        if tp is bool:
            parser.add_argument(*names, action=argparse.BooleanOptionalAction, default=f.default, help=help_)
        elif typing.get_origin(tp) is list:
            (item,) = typing.get_args(tp)
            parser.add_argument(*names, type=item, nargs="+", default=f.default, help=help_, **meta)
        else:
            parser.add_argument(*names, type=tp, default=f.default, help=help_, **meta)


def parse_config(
    cls: type[C],
    argv: list[str] | None,
    parser: argparse.ArgumentParser,
    defaults: dict[str, Any] | None = None,
) -> C:
    """Parse ``argv`` into an instance of ``cls``.

    Precedence, lowest first: the dataclass defaults, ``defaults`` (a command's own, e.g. the
    quickstart's), the ``--config`` YAML file, the flags.
    """
    parser.add_argument("--config", default=None, help="YAML file whose values become the defaults")
    add_arguments(parser, cls)
    parser.set_defaults(**(defaults or {}))
    first, _ = parser.parse_known_args(argv)
    if first.config:
        parser.set_defaults(**load_yaml_config(first.config, cls))
    args = vars(parser.parse_args(argv))
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in args.items() if k in names})


def parse_overrides(items: list[str], cls: type | None = None) -> dict[str, Any]:
    """``["pop_size=100", "selection=spread"]`` -> ``{"pop_size": 100, "selection": "spread"}``.

    Keys must be fields of ``cls`` when given (else the caller checks them, e.g. a run description
    applying flat options); values are read as YAML scalars (``100`` an int, ``0.5`` a float, text
    stays text). For the benchmarks' ``--set``.
    """
    names = {f.name for f in dataclasses.fields(cls)} if cls is not None else None
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or (names is not None and key not in names):
            what = f"an option of {cls.__name__}" if cls is not None else "an option name"
            raise UserError(f"--set {item!r}: expected KEY=VALUE with KEY {what}")
        out[key] = yaml.safe_load(value)
    return out


def load_yaml_file(path: str, flag: str = "--config") -> dict[str, Any]:
    """A YAML file holding a mapping, or a one-line error naming ``flag``."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except (FileNotFoundError, IsADirectoryError):
        raise UserError(f"{flag} {path!r} does not exist") from None
    except yaml.YAMLError as e:
        raise UserError(f"{flag} {path!r} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"{flag} {path!r} must hold a mapping of option names to values")
    return data


def load_yaml_config(path: str, cls: type) -> dict[str, Any]:
    data = load_yaml_file(path)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(f"--config {path!r} has unknown options: {', '.join(unknown)}")
    return data


def save_config(cfg: Any, path: str | os.PathLike) -> None:
    """Write the resolved configuration (``config.yaml`` in a run directory)."""
    save_yaml(dataclasses.asdict(cfg), path)


def save_yaml(data: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``data`` as YAML, atomically (keys in their order)."""
    atomic_write_bytes(path, yaml.safe_dump(data, sort_keys=False).encode())
