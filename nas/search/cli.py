"""``msunas.py``: parse a run description from presets, a resumed run, YAML and flags; run it.

Parsing happens in two passes: the first reads what decides the components (``--config``,
``--benchmark``, ``--resume``, ``--plugins`` and the selector flags), loads the plug-ins and
resolves the description; the second parses every flag of the chosen components (their typed
options, help texts and current values in ``--help``). Everything is checked with the cheap parts
(:func:`nas.search.factory.build_run`) before a dataset, a supernet or a worker is touched.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import types
import typing
from collections.abc import Callable
from typing import Any

from nas.config import load_yaml_file
from nas.errors import UserError
from nas.plugins import load_plugins, plugin_list
from nas.search.archive import read_stats
from nas.search.description import (
    LIST_ROLES,
    NONE_WORDS,
    PRESETS,
    ROLE_TITLES,
    SELECTORS,
    RunSpec,
    registry,
)
from nas.search.factory import build_run
from nas.search.loop import Search, stats_description, stats_path_of


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one-line :class:`UserError` s (exit status 2); an
    unknown flag is explained with the components that have that option (``spec``)."""

    spec: RunSpec | None = None

    def error(self, message: str) -> typing.NoReturn:
        prefix = "unrecognized arguments: "
        if self.spec is not None and message.startswith(prefix):
            flag = next((a for a in message[len(prefix) :].split() if a.startswith("--")), None)
            if flag is not None:
                raise UserError(self.spec.unknown_option(flag[2:].split("=")[0]))
        raise UserError(f"{self.prog}: {message}")


def _first_pass(argv: list[str]) -> argparse.Namespace:
    pre = _Parser(add_help=False)
    for flag in ("--config", "--benchmark", "--resume", "--search_space", "--evaluator", "--trainer"):
        pre.add_argument(flag)
    pre.add_argument("--strategy")
    pre.add_argument("--first_obj")
    pre.add_argument("--sec_obj")
    for flag in ("--plugins", "--measures", "--costs", "--objectives"):
        pre.add_argument(flag, nargs="*")
    known, _ = pre.parse_known_args(argv)
    return known


def resolve(argv: list[str]) -> RunSpec:
    """The run description ``argv`` asks for (plug-ins loaded; nothing expensive built)."""
    pre = _first_pass(argv)
    config = load_yaml_file(pre.config, "--config") if pre.config else {}
    resumed, stats_path = None, None
    if pre.resume or config.get("resume"):
        stats_path = stats_path_of(pre.resume or config["resume"])
        resumed = read_stats(stats_path)
    old_run = resumed.get("run") if resumed else None
    extra = [*(old_run or {}).get("plugins", []), *config.get("plugins", []), *(pre.plugins or [])]
    plugins = load_plugins(plugin_list(extra))
    spec = RunSpec.default(plugins)
    preset = pre.benchmark or config.get("benchmark") or config.get("preset")
    if resumed is not None:
        old = stats_description(resumed, plugins)
        preset = preset or old.preset
    if preset:
        spec.use_preset(preset)
    if resumed is not None:
        spec.apply(old.to_dict() if old_run is None else old_run)
        spec.preset = preset or old.preset
        spec.loop.save = os.path.dirname(os.path.abspath(stats_path))
        spec.loop.resume = stats_path
    spec.plugins = plugins
    spec.apply({k: v for k, v in config.items() if k not in ("plugins", "benchmark", "preset")})
    selectors = {}
    for key in (*SELECTORS, "first_obj", "sec_obj"):
        value = getattr(pre, key, None)
        if value is not None:
            selectors[key] = value
    spec.apply_flat(selectors)
    args = make_parser(spec).parse_args(argv)
    given = {k: v for k, v in vars(args).items() if k not in ("config", "benchmark", "plugins", *selectors)}
    spec.apply_flat(given)
    return spec


# ---- the parser -------------------------------------------------------------------------------


def _optional(tp: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return None if text.strip().lower() in NONE_WORDS else tp(text)

    parse.__name__ = getattr(tp, "__name__", "value")
    return parse


def _add_options(group, options: Any, seen: set[str]) -> None:
    """One flag per option of ``options`` (a dataclass instance) not added yet; help shows its value."""
    hints = typing.get_type_hints(type(options))
    for f in dataclasses.fields(options):
        if f.name in seen:
            continue
        seen.add(f.name)
        tp, optional = hints[f.name], False
        if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp, optional = args[0], True
        meta = dict(f.metadata)
        value = getattr(options, f.name)
        shown = "none" if value is None else value
        if isinstance(value, (list, tuple)):  # as the flag takes it: --sigma 0.05 0.1
            shown = " ".join(map(str, value)) or "none"
        help_ = meta.pop("help", "").replace("%", "%%") + f" (default: {shown})".replace("%", "%%")
        names = [f"--{f.name}", *meta.pop("aliases", [])]
        if tp is bool:
            group.add_argument(*names, action=argparse.BooleanOptionalAction, help=help_)
        elif typing.get_origin(tp) in (list, tuple):
            item = typing.get_args(tp)[0]
            group.add_argument(*names, type=item, nargs="+", help=help_, **meta)
        else:
            group.add_argument(*names, type=_optional(tp) if optional else tp, help=help_, **meta)


def _choices(role: str) -> str:
    names = registry(role).names()
    return ", ".join(names) if names else "none registered"


def make_parser(spec: RunSpec, prog: str = "msunas.py") -> argparse.ArgumentParser:
    """Every flag of the run ``spec`` describes (defaults suppressed: only given flags come back)."""
    p = _Parser(
        prog=prog,
        description="Multi-objective NAS over a search space: the components below are registered by "
        "plug-ins; `--search_space NAME --help` (or --strategy, --evaluator, ...) shows another's options.",
        argument_default=argparse.SUPPRESS,
    )
    p.spec = spec
    g = p.add_argument_group("run")
    g.add_argument(
        "--config", help="YAML file (a run description, or flat option names) whose values become defaults"
    )
    g.add_argument("--benchmark", help=f"named preset of the run description: {', '.join(PRESETS.names())}")
    g.add_argument(
        "--plugins", nargs="+", help="more plug-ins to load (module names or paths), after the default ones"
    )
    seen = {"config", "benchmark", "plugins"}
    g = p.add_argument_group("components (each a registered name)")
    for flag, role in SELECTORS.items():
        part = getattr(spec, role)
        now = (
            (", ".join(x.name for x in part) or "none")
            if role in LIST_ROLES
            else (part.name if part else "none")
        )
        kw = {"nargs": "*"} if role in LIST_ROLES else {}
        g.add_argument(f"--{flag}", help=f"{ROLE_TITLES[role]}: {_choices(role)} (now: {now})", **kw)
    names = spec.objective_names()
    first = names[0] if names else "none"
    g.add_argument("--first_obj", help=f"first objective: a registered one or any metric (now: {first})")
    g.add_argument(
        "--sec_obj",
        help="second objective: params, macs, activations, tiny_ml, latency, flops or any metric; "
        f"none: single-objective (now: {names[1] if len(names) > 1 else 'none'})",
    )
    seen |= {*SELECTORS, "first_obj", "sec_obj"}
    _add_options(p.add_argument_group("search loop"), spec.loop, seen)
    _add_options(p.add_argument_group("execution"), spec.executor, seen)
    for role, part in spec.parts():
        if dataclasses.fields(part.options):
            _add_options(p.add_argument_group(f"{ROLE_TITLES[role]} {part.name}"), part.options, seen)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = resolve(argv)
    run = build_run(spec)  # checks the whole description before workers start or data loads
    search = Search(run)
    search.run()
    print(f"done: {search.iteration} iterations, {len(search.archive)} architectures; see {spec.loop.save}/")
    return 0
