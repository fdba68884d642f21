"""The run description: layers (presets, resumed runs, YAML, flags), its YAML form, every
component's options in --help, older runs' flat configurations, and what the engine may name."""

import ast
import json
from pathlib import Path

import pytest
import yaml

from nas.cli import run_cli
from nas.errors import UserError
from nas.plugins import plugin_list
from nas.search.archive import read_stats
from nas.search.cli import main, make_parser, resolve
from nas.search.description import PRESETS, ROLES, RunSpec, registry

ROOT = Path(__file__).resolve().parents[1]


def test_flags_config_preset_layers_and_round_trip(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump({"benchmark": "nb201", "strategy": {"name": "msunas", "pop_size": 30}, "n_iter": 3})
    )
    spec = resolve(["--config", str(cfg), "--predictor", "gp", "--dataset", "cifar100", "--save", "x"])
    assert spec.preset == "nb201" and spec.space.name == "nb201" and spec.costs[0].name == "nb201_costs"
    o = spec.strategy.options
    assert (o.predictor, o.pop_size, spec.loop.n_iter, spec.loop.n_doe) == ("gp", 30, 3, 50)
    assert spec.evaluator.options.dataset == "cifar100" and spec.trainer is None
    again = RunSpec.from_dict(json.loads(json.dumps(spec.to_dict())))  # JSON/YAML round trip
    assert again.to_dict() == spec.to_dict()
    nested = tmp_path / "nested.yaml"
    nested.write_text(yaml.safe_dump(spec.to_dict()))
    assert resolve(["--config", str(nested)]).to_dict() == spec.to_dict()


def test_objective_options_and_selectors():
    spec = resolve(["--sec_obj", "tiny_ml", "--pmax", "3", "--strategy", "re", "--population", "12"])
    assert [p.name for p in spec.objectives] == ["top1", "tiny_ml"] and spec.objectives[1].options.pmax == 3.0
    assert spec.strategy.name == "re" and spec.strategy.options.population == 12
    spec = resolve(["--objectives", "top1", "macs", "params", "--sec_obj", "activations"])
    assert spec.objective_names() == ["top1", "activations", "params"]
    assert resolve(["--sec_obj", "none"]).objective_names() == ["top1"]


@pytest.mark.parametrize(
    "role", ["space", "evaluator", "strategy", "objectives", "costs", "trainer", "measures"]
)
def test_help_renders_the_options_of_every_registered_component(role, capsys):
    """``msunas.py --<selector> NAME --help`` lists that component's options with their values."""
    flag = {"space": "--search_space", "objectives": "--sec_obj"}.get(role, f"--{role}")
    for name in registry(role).names():
        spec = RunSpec.default(plugin_list())
        try:
            spec.apply_flat({flag[2:]: name})
        except UserError:
            continue  # e.g. a cost provider that needs another space: --help of a valid run shows it
        text = make_parser(spec).format_help()
        part = spec.strategy if role == "strategy" else getattr(spec, role)
        part = next(p for p in part if p.name == name) if isinstance(part, list) else part
        for field in vars(part.options):
            assert f"--{field}" in text, (role, name, field)
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "--predictor" in capsys.readouterr().out


def test_runs_of_the_older_flat_configuration_resume(tmp_path, capsys):
    """An iter_k.stats of schema msunas-stats/1 (a flat "config", no "run", no strategy state)."""
    save = tmp_path / "old"
    args = [
        "--benchmark",
        "nb201",
        "--predictor",
        "carts",
        "--iterations",
        "1",
        "--n_doe",
        "20",
        "--save",
        str(save),
    ]
    assert run_cli(main, args, plugins_flag=True) == 0
    stats = json.loads((save / "iter_1.stats").read_text())
    run = stats.pop("run")
    stats.pop("strategy")
    stats["schema"] = "msunas-stats/1"
    stats["config"] = {
        "save": str(save), "resume": None, "benchmark": "nb201", "iterations": 1, "n_doe": 20, "n_iter": 10,
        "pop_size": 40, "n_gen": 20, "selection": "spread", "predictor": "carts", "first_obj": "top1",
        "sec_obj": "flops", "top1min": 0.0, "hv_patience": 0, "seed": 0, "search_space": "nb201", "lr": 192,
        "ur": 256, "rstep": 4, "width_mult": 1.0, "dataset": "cifar10", "data": None, "n_classes": None,
        "vld_size": 5000, "supernet_path": None, "pretrained": True, "n_epochs": 0, "bn_batches": 10,
        "trainer": "single_exit", "device": "auto", "n_jobs": None, "n_gpus": 0, "gpu": 1, "n_workers": 2,
        "ray_address": None, "pmax": 2.0, "mmax": 1e10, "amax": 5.0, "wp": 1.0, "wm": 0.025, "wa": 1.0,
        "penalty": 1e10,
    }  # fmt: skip
    (save / "iter_1.stats").write_text(json.dumps(stats))
    assert run_cli(main, ["--resume", str(save), "--iterations", "2"], plugins_flag=True) == 0
    new = read_stats(save / "iter_2.stats")
    assert new["run"]["strategy"] == run["strategy"] and new["run"]["space"] == run["space"]
    assert len(new["archive"]) == 20 + 2 * 10
    capsys.readouterr()


def test_the_engine_names_no_concrete_component():
    """No string in the engine's code (docstrings aside) is the name of a space, surrogate, preset
    or other component that a plug-in registers: the engine reaches them by name from descriptions.
    The default plug-ins' package names are not components, even when a component shares one (the
    ``robustness`` measure of the ``robustness`` plug-in)."""
    from nas.space import SEARCH_SPACES
    from nas.surrogate import SURROGATES

    names = set(SEARCH_SPACES.names()) | set(SURROGATES.names()) | (set(PRESETS.names()) - {"default"})
    for role in ROLES:
        reg = registry(role)
        names |= {n for n in reg.names() if not getattr(reg.get(n), "__module__", "nas.").startswith("nas.")}
    found = []
    for path in sorted((ROOT / "nas").rglob("*.py")):
        tree = ast.parse(path.read_text())
        exempt = {  # docstrings
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        exempt |= {  # the package names listed in DEFAULT_PLUGINS
            id(c)
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            and any(getattr(t, "id", None) == "DEFAULT_PLUGINS" for t in node.targets)
            for c in ast.walk(node.value)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in exempt:
                if node.value in names:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert {"mobilenetv3", "nb201", "as", "ofa_note10"} <= names and not found, found


def test_objectives_add_the_parts_they_require(monkeypatch):
    """Objective.requires: the description adds the cost provider or measure an objective names with
    its options, or sets those options on the one it already has; resolving twice changes nothing."""
    from dataclasses import dataclass

    from nas.config import option
    from nas.search.objectives import OBJECTIVES, Objective

    class NeedsTable(Objective):
        name, metrics = "needs_table", ("latency",)

        @dataclass
        class Options:
            table_at: str | None = option(None, "where the table is")

        @classmethod
        def requires(cls, options):
            return (
                []
                if options.table_at is None
                else [("costs", {"name": "lut_latency", "lut_dir": options.table_at})]
            )

    monkeypatch.setitem(OBJECTIVES._items, "needs_table", NeedsTable)
    assert [p.name for p in RunSpec.from_flat({"sec_obj": "needs_table"}).costs] == ["analytic"]
    spec = resolve(["--sec_obj", "needs_table", "--table_at", "A", "--costs", "analytic", "lut_latency"])
    assert [(p.name, getattr(p.options, "lut_dir", None)) for p in spec.costs] == [
        ("analytic", None),
        ("lut_latency", "A"),
    ]
    again = RunSpec.from_dict(spec.to_dict())
    assert again.to_dict() == spec.to_dict()
