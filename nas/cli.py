"""Helpers shared by the thin command-line entry points."""

from __future__ import annotations

import sys
from collections.abc import Callable

from nas.errors import UserError


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run ``main``; a :class:`UserError` becomes one line on stderr and exit status 2."""
    try:
        return int(main(argv) or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
