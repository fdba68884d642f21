"""Plug-in packages: loaded by name, in every process that builds a run.

A plug-in is a Python package or module whose import registers components (search spaces,
evaluators, trainers, measures, cost providers, objectives, strategies, surrogates, datasets,
presets, ``train.py`` modes) in the engine's registries. The engine never imports one by name:
the command-line tools load :data:`DEFAULT_PLUGINS` plus those of ``--plugins``, and the run
description records the list so that worker processes, Ray actors, ``--resume`` and
``post_search.py`` load the same ones.

A plug-in is named by its module name (``EarlyExits``, ``mypkg.nas_parts``) or by a path to a
``.py`` file or a package folder (``path/to/my_plugin.py``, ``path/to/my_plugin``), which is
imported under its file or folder name with its parent folder put on ``sys.path``; a path is
recorded absolute, so every process finds it.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable

from nas.errors import UserError

# The design card's plug-in folders, and the benchmark oracles. Those that hold no module yet
# are skipped (an empty folder with only an __init__.py is a plug-in with nothing to register).
DEFAULT_PLUGINS = (
    "NasSearchSpace",
    "acc_predictor",
    "EarlyExits",
    "LayerSkipping",
    "robustness",
    "hardware",
    "strategies",
    "proxies",
    "weightsharing",
    "benchmarks",
)


def is_path(name: str) -> bool:
    return name.endswith(".py") or os.sep in name or (os.altsep is not None and os.altsep in name)


def normalise(name: str) -> str:
    """A plug-in name as recorded: module names unchanged, paths made absolute."""
    name = str(name).strip()
    if not name:
        raise UserError("--plugins: an empty plug-in name; give module names or paths")
    return os.path.abspath(name) if is_path(name) else name


def load_plugin(name: str) -> str:
    """Import one plug-in (a no-op when it is already imported); returns its recorded name."""
    name = normalise(name)
    if not is_path(name):
        module = name
    else:
        if not os.path.exists(name):
            raise UserError(
                f"--plugins {name!r} does not exist; give a module name, a .py file or a package folder"
            )
        folder, base = os.path.split(name.rstrip(os.sep))
        module = base[:-3] if base.endswith(".py") else base
        if folder not in sys.path:
            sys.path.insert(0, folder)
    if module in sys.modules:
        return name
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module or module.startswith(f"{e.name}."):
            raise UserError(
                f"plug-in {name!r} cannot be imported (no module {e.name!r}); check --plugins and that "
                "the project (or the plug-in's folder) is on the Python path"
            ) from None
        raise
    return name


def load_plugins(names: Iterable[str] = DEFAULT_PLUGINS) -> list[str]:
    """Import every plug-in of ``names`` in order; returns their recorded names (no duplicates)."""
    return list(dict.fromkeys(load_plugin(n) for n in names))


def plugin_list(extra: Iterable[str] = ()) -> list[str]:
    """The default plug-ins followed by ``extra`` (recorded names, no duplicates)."""
    return list(dict.fromkeys([*DEFAULT_PLUGINS, *(normalise(n) for n in extra)]))
