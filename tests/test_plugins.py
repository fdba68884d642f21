"""Plug-in loading: by module name or by path, once per process, with one-line errors."""

import subprocess
import sys
from pathlib import Path

import pytest

from nas.errors import UserError
from nas.plugins import DEFAULT_PLUGINS, load_plugins, normalise, plugin_list

ROOT = Path(__file__).resolve().parents[1]


def test_a_plugin_file_and_a_plugin_folder_register_their_parts(tmp_path):
    from nas.space import SEARCH_SPACES

    (tmp_path / "file_plugin.py").write_text(
        "from nas.space import SEARCH_SPACES\n"
        "from NasSearchSpace.nb201 import NB201Space\n"
        "SEARCH_SPACES.register('from_a_file')(type('FromFile', (NB201Space,), {'name': 'from_a_file'}))\n"
    )
    pkg = tmp_path / "folder_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from folder_plugin import parts  # noqa\n")
    (pkg / "parts.py").write_text(
        "from nas.space import SEARCH_SPACES\n"
        "from NasSearchSpace.nb201 import NB201Space\n"
        "cls = type('FromFolder', (NB201Space,), {'name': 'from_a_folder'})\n"
        "SEARCH_SPACES.register('from_a_folder')(cls)\n"
    )
    names = load_plugins([str(tmp_path / "file_plugin.py"), str(pkg), str(pkg)])
    assert names == [str(tmp_path / "file_plugin.py"), str(pkg)]  # recorded absolute, once
    assert "from_a_file" in SEARCH_SPACES and "from_a_folder" in SEARCH_SPACES
    load_plugins([str(pkg)])  # a second load is a no-op, not a duplicate registration


def test_bad_plugins_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="cannot be imported"):
        load_plugins(["no_such_plugin_module"])
    with pytest.raises(UserError, match="does not exist"):
        load_plugins([str(tmp_path / "missing.py")])
    with pytest.raises(UserError, match="empty plug-in name"):
        normalise(" ")


def test_default_plugins_come_first_and_paths_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = plugin_list(["x/y.py", "EarlyExits"])
    assert names[: len(DEFAULT_PLUGINS)] == list(DEFAULT_PLUGINS)
    assert names[-1] == str(tmp_path / "x" / "y.py") and names.count("EarlyExits") == 1


def test_the_engine_imports_no_plugin():
    """Importing every engine module leaves the plug-in packages unimported: dependencies point
    inward (plug-ins import the engine's contracts, never the reverse)."""
    code = (
        "import pkgutil, importlib, sys, nas\n"
        "for m in pkgutil.walk_packages(nas.__path__, 'nas.'):\n"
        "    importlib.import_module(m.name)\n"
        "plugins = {'NasSearchSpace', 'acc_predictor', 'EarlyExits', 'LayerSkipping', 'robustness'}\n"
        "bad = sorted({n.split('.')[0] for n in sys.modules} & (plugins | {'benchmarks', 'tools'}))\n"
        "print(bad)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"
