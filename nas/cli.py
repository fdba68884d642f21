"""Helpers shared by the thin command-line entry points."""

from __future__ import annotations

import sys
from collections.abc import Callable

from nas.errors import UserError


def split_plugins(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(plug-ins named by --plugins A B / --plugins=A, the other arguments)``."""
    plugins, rest, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--plugins="):
            plugins.append(arg.split("=", 1)[1])
        elif arg == "--plugins":
            i += 1
            while i < len(argv) and not argv[i].startswith("-"):
                plugins.append(argv[i])
                i += 1
            continue
        else:
            rest.append(arg)
        i += 1
    return plugins, rest


def run_cli(
    main: Callable[[list[str] | None], int | None], argv: list[str] | None = None, plugins_flag: bool = False
) -> int:
    """Load the default plug-ins and those of ``--plugins``, then run ``main``; a
    :class:`UserError` becomes one line on stderr and exit status 2.

    ``--plugins`` is taken out of the arguments unless ``plugins_flag`` (a command that records its
    plug-ins, such as ``msunas.py``, parses it itself)."""
    from nas.plugins import load_plugins, plugin_list

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        extra, rest = split_plugins(argv)
        load_plugins(plugin_list(extra))
        return int(main(argv if plugins_flag else rest) or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def positive_int(text: str | None, flag: str) -> int | None:
    """A flag's text as an integer >= 1 (``None`` stays ``None``), or a one-line error."""
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UserError(f"{flag} {text!r} must be a positive integer, e.g. {flag} 10")
    return value
