"""Run a command-line script's ``main`` in this process, as the script would (``run_cli(main)``):
the same exit status and output, without a Python start-up and imports per call."""

import importlib
import io
from contextlib import redirect_stderr, redirect_stdout
from types import SimpleNamespace

from nas.cli import run_cli


def run_main(module: str, *args, plugins_flag: bool = False) -> SimpleNamespace:
    """``module`` (e.g. ``tools.export``, ``train``) run with ``args``: returncode, stdout, stderr."""
    main = importlib.import_module(module).main
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = run_cli(main, [str(a) for a in args], plugins_flag=plugins_flag)
        except SystemExit as e:  # argparse's own errors and --help
            code = e.code if isinstance(e.code, int) else 1
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
