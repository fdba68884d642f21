"""Typed defaults, YAML configs and flags."""

import argparse
from dataclasses import dataclass

import pytest
import yaml

from nas.config import option, parse_config, save_config
from nas.errors import UserError


@dataclass
class Toy:
    name: str = option("a", "a name")
    steps: int = option(3, "how many")
    rate: float = option(0.5, "a rate")
    flag: bool | None = option(None, "tri-state switch")
    dims: list[int] = option((1, 2), "a list")
    where: str | None = option(None, "optional path")


def parse(argv):
    return parse_config(Toy, argv, argparse.ArgumentParser())


def test_defaults_and_flags():
    assert parse([]) == Toy()
    cfg = parse(["--steps", "7", "--flag", "--dims", "4", "5", "6", "--where", "x"])
    assert (cfg.steps, cfg.flag, cfg.dims, cfg.where) == (7, True, [4, 5, 6], "x")
    assert parse(["--no-flag"]).flag is False


def test_yaml_then_flags_win(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"steps": 9, "rate": 0.1}))
    cfg = parse(["--config", str(path), "--rate", "0.2"])
    assert (cfg.steps, cfg.rate) == (9, 0.2)


def test_command_defaults_sit_between_dataclass_and_yaml(tmp_path):
    def parse_with(argv):
        return parse_config(Toy, argv, argparse.ArgumentParser(), defaults={"steps": 4, "rate": 0.3})

    assert (parse_with([]).steps, parse_with([]).rate) == (4, 0.3)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"steps": 9}))
    cfg = parse_with(["--config", str(path), "--rate", "0.2"])
    assert (cfg.steps, cfg.rate) == (9, 0.2)


def test_bad_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("stepz: 9\n")
    with pytest.raises(UserError, match="unknown options: stepz"):
        parse(["--config", str(path)])
    path.write_text("- a list\n")
    with pytest.raises(UserError, match="mapping"):
        parse(["--config", str(path)])
    with pytest.raises(UserError, match="does not exist"):
        parse(["--config", str(tmp_path / "none.yaml")])


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        parse(["--help"])
    out = capsys.readouterr().out
    assert "how many (default: 3)" in out and "--no-flag" in out


def test_save_config_round_trips(tmp_path):
    cfg = parse(["--steps", "5"])
    save_config(cfg, tmp_path / "config.yaml")
    again = parse(["--config", str(tmp_path / "config.yaml")])
    assert again.steps == 5 and again.dims == [1, 2]


@pytest.mark.parametrize(
    ("module", "cls"),
    [
        ("nas.post_search", "PostSearchConfig"),
        ("nas.training.supernet", "SupernetConfig"),
        ("nas.train_cli", "EvalConfig"),
    ],
)
def test_every_command_help_renders(module, cls, capsys):
    """argparse %-formats help strings: a stray % in one help text broke ``msunas.py --help``."""
    import importlib

    config_cls = getattr(importlib.import_module(module), cls)
    with pytest.raises(SystemExit) as e:
        parse_config(config_cls, ["--help"], argparse.ArgumentParser())
    assert e.value.code == 0 and "(default:" in capsys.readouterr().out
