"""Helpers shared by the thin command-line entry points."""

from __future__ import annotations

import sys
from collections.abc import Callable

from nas.errors import UserError


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Load the default plug-ins, then run ``main``; a :class:`UserError` becomes one line on stderr
    and exit status 2."""
    from nas.plugins import load_plugins

    try:
        load_plugins()
        return int(main(argv) or 0)
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
