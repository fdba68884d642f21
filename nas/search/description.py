"""The run description: every component of a search named with its options, in one persisted form.

A run is a search space, an evaluator (with a trainer and measures when it runs the pipeline),
cost providers, objectives, a search strategy, the loop's settings and the executor's, plus the
plug-ins that register them. :class:`RunSpec` holds them; ``config.yaml`` and every
``iter_k.stats`` store it (:meth:`RunSpec.to_dict`), and the factory (:mod:`nas.search.factory`)
builds the same run from it in ``msunas.py``, worker processes, Ray actors, ``--resume``,
``post_search.py`` and the tools. Its YAML form::

    schema: msunas-run/1
    plugins: [NasSearchSpace, acc_predictor, EarlyExits, LayerSkipping, robustness, benchmarks]
    preset: null                  # the --benchmark it started from
    space: {name: mobilenetv3, lr: 192, ur: 256, rstep: 4, width_mult: 1.0}
    evaluator: {name: subnet, dataset: cifar10_embedded, vld_size: 5000, ...}
    trainer: {name: single_exit, n_epochs: 0, optimizer: sgd, ...}     # null for oracles
    measures: [{name: accuracy}]
    costs: [{name: analytic}]
    objectives: [{name: top1}, {name: tiny_ml, pmax: 2.0, ...}]
    strategy: {name: msunas, predictor: as, pop_size: 40, n_gen: 20, selection: spread, top1min: 0.0}
    loop: {save: results/search, seed: 0, iterations: 30, n_doe: 100, n_iter: 8, hv_patience: 0, ...}
    executor: {n_jobs: null, n_gpus: 0, gpu: 1, ray_address: null}

Where a description comes from, lowest precedence first: the ``default`` preset, the preset of
``--benchmark`` (a named partial description, :data:`PRESETS`), the description of the run
``--resume`` continues, ``--config FILE.yaml`` (this nested form, or flat option names), the
command-line flags. Flags are flat, as CNAS users know them (``--lr``, ``--sec_obj``,
``--predictor``, ``--pmax``): a flag sets the option of that name on every selected component
that has one; selector flags (``--search_space``, ``--evaluator``, ``--trainer``, ``--measures``,
``--costs``, ``--objectives``/``--first_obj``/``--sec_obj``, ``--strategy``) choose components.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nas.components import NoOptions, make_options, option_names, options_dict
from nas.errors import UserError
from nas.registry import Registry
from nas.search.config import ExecutorOptions, LoopOptions

SCHEMA = "msunas-run/1"
ROLES = ("space", "evaluator", "trainer", "measures", "costs", "objectives", "strategy")
LIST_ROLES = ("measures", "costs", "objectives")
# selector flag -> role (the flags CNAS users know, plus one per role)
SELECTORS = {
    "search_space": "space",
    "evaluator": "evaluator",
    "trainer": "trainer",
    "measures": "measures",
    "costs": "costs",
    "objectives": "objectives",
    "strategy": "strategy",
}
ROLE_TITLES = {
    "space": "search space",
    "evaluator": "evaluator",
    "trainer": "trainer",
    "measures": "measure",
    "costs": "cost provider",
    "objectives": "objective",
    "strategy": "strategy",
}
NONE_WORDS = ("", "none", "null")


@dataclass(frozen=True)
class Preset:
    """A named partial run description (``--benchmark NAME``), in the nested YAML form."""

    description: dict[str, Any]
    help: str = ""


PRESETS: Registry[Preset] = Registry("preset")
DEFAULT_PRESET = "default"  # the run ``msunas.py`` makes without --benchmark (a plug-in registers it)


# role -> (module, name) of its registry, the module that also registers the engine's own parts
# of that role; imported when first needed (those modules import this one)
_REGISTRIES = {
    "space": ("nas.space", "SEARCH_SPACES"),
    "evaluator": ("nas.pipeline", "EVALUATORS"),
    "trainer": ("nas.training.trainers", "TRAINERS"),
    "measures": ("nas.measures", "MEASURES"),
    "costs": ("nas.cost_providers", "COST_PROVIDERS"),
    "objectives": ("nas.search.objectives", "OBJECTIVES"),
    "strategy": ("nas.search.strategies", "STRATEGIES"),
}


def default_space_name() -> str:
    """The search space of the ``default`` preset: what the commands use when none is named."""
    if DEFAULT_PRESET not in PRESETS:
        raise UserError("no plug-in registers a default preset; name the search space with --search_space")
    space = PRESETS.get(DEFAULT_PRESET).description.get("space")
    return space["name"] if isinstance(space, Mapping) else str(space)


def registry(role: str) -> Registry:
    """The registry a role's components are looked up in."""
    module, name = _REGISTRIES[role]
    return getattr(importlib.import_module(module), name)


def options_class(role: str, name: str) -> type:
    """The ``Options`` dataclass of component ``name`` in ``role`` (any metric is an objective)."""
    reg = registry(role)
    if role == "objectives" and name not in reg:
        return NoOptions
    return getattr(reg.get(name), "Options", NoOptions)


@dataclass
class Part:
    """One component of a run: its registered name and its options."""

    name: str
    options: Any

    @classmethod
    def make(cls, role: str, name: str, values: Any = None) -> Part:
        if not isinstance(name, str) or not name:
            raise UserError(f"a {ROLE_TITLES[role]} needs a name, got {name!r}")
        return cls(
            name, make_options(options_class(role, name), values, None, f"{ROLE_TITLES[role]} {name!r}")
        )

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **options_dict(self.options)}


def _part_value(role: str, value: Any, current: Part | None) -> Part | None:
    """A role's value in a description (a name, ``{"name", **options}`` or None) as a Part; options
    of the same component start from ``current``'s."""
    if value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS):
        return None
    if isinstance(value, str):
        name, values = value, {}
    elif isinstance(value, Mapping) and ("name" in value or current is not None):
        # a mapping without a name sets options of the component already chosen
        name = value.get("name", current.name if current is not None else None)
        values = {k: v for k, v in value.items() if k != "name"}
    else:
        raise UserError(f"{role}: expected a component name or a mapping with 'name', got {value!r}")
    base = dataclasses.asdict(current.options) if current is not None and current.name == name else {}
    return Part.make(role, name, {**base, **values})


@dataclass
class RunSpec:
    """A whole run: components with their options, loop and executor settings, plug-ins."""

    plugins: list[str] = field(default_factory=list)
    preset: str | None = None
    space: Part | None = None
    evaluator: Part | None = None
    trainer: Part | None = None
    measures: list[Part] = field(default_factory=list)
    costs: list[Part] = field(default_factory=list)
    objectives: list[Part] = field(default_factory=list)
    strategy: Part | None = None
    loop: LoopOptions = field(default_factory=LoopOptions)
    executor: ExecutorOptions = field(default_factory=ExecutorOptions)

    # ---- construction ---------------------------------------------------------------------

    @classmethod
    def default(cls, plugins: list[str] | None = None) -> RunSpec:
        """The ``default`` preset (registered by a plug-in), or an empty description."""
        spec = cls(plugins=list(plugins or []))
        if DEFAULT_PRESET in PRESETS:
            spec.apply(PRESETS.get(DEFAULT_PRESET).description)
        return spec

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunSpec:
        """A description written by :meth:`to_dict` (its plug-ins must be loaded)."""
        spec = cls(plugins=list(d.get("plugins", [])), preset=d.get("preset"))
        spec.apply({k: v for k, v in d.items() if k not in ("plugins", "preset", "schema")})
        return spec

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any], plugins: list[str] | None = None) -> RunSpec:
        """The default description with flat options applied (what the command line does)."""
        spec = cls.default(plugins)
        preset = flat.get("benchmark") or flat.get("preset")
        if preset:
            spec.use_preset(preset)
        spec.apply_flat({k: v for k, v in flat.items() if k not in ("benchmark", "preset")})
        return spec

    def use_preset(self, name: str) -> None:
        if name not in PRESETS:
            choices = ", ".join(n for n in PRESETS.names() if n != DEFAULT_PRESET) or "none registered"
            raise UserError(f"unknown --benchmark {name!r}; choose one of: {choices}")
        self.apply(PRESETS.get(name).description)
        self.preset = name

    # ---- layers ---------------------------------------------------------------------------

    def apply(self, d: Mapping[str, Any], strict: bool = True) -> None:
        """Apply a nested (or flat) partial description: roles, ``loop``, ``executor``, options."""
        flat = {}
        for key, value in d.items():
            if key in ROLES:
                self._set_role(key, value)
            elif key in ("loop", "executor"):
                if not isinstance(value, Mapping):
                    raise UserError(f"{key}: expected a mapping of options, got {value!r}")
                current = getattr(self, key)
                setattr(self, key, make_options(type(current), current, dict(value), key))
            elif key == "plugins":
                self.plugins = list(dict.fromkeys([*self.plugins, *value]))
            elif key in ("schema", "preset", "benchmark"):
                continue
            else:
                flat[key] = value
        if flat:
            self.apply_flat(flat, strict)
        self.add_required_parts()

    def _set_role(self, role: str, value: Any) -> None:
        if role in LIST_ROLES:
            items = [] if value is None else [value] if isinstance(value, (str, Mapping)) else list(value)
            current = {p.name: p for p in getattr(self, role)}
            parts = [_part_value(role, v, current.get(_name_of(v))) for v in items]
            setattr(self, role, [p for p in parts if p is not None])
        else:
            setattr(self, role, _part_value(role, value, getattr(self, role)))

    def apply_flat(self, flat: Mapping[str, Any], strict: bool = True) -> None:
        """Apply flat options: selectors first, then each option on every selected component that
        has it (and the loop's and executor's). Unknown names are errors when ``strict``."""
        rest = dict(flat)
        for key in ("plugins", "benchmark", "preset", "config"):
            rest.pop(key, None)
        for key, role in SELECTORS.items():
            if key in rest:
                value = rest.pop(key)
                if role in LIST_ROLES and isinstance(value, str):
                    value = [] if value.strip().lower() in NONE_WORDS else [value]
                self._set_role(role, value)
        if "first_obj" in rest or "sec_obj" in rest:
            names = [p.name for p in self.objectives]
            first = rest.pop("first_obj", names[0] if names else None)
            second = rest.pop("sec_obj", names[1] if len(names) > 1 else None)
            objectives = [first] + ([] if second is None or str(second).lower() in NONE_WORDS else [second])
            self._set_role("objectives", [o for o in objectives if o is not None] + names[2:])
        for key, value in rest.items():
            targets = [o for o in self._option_holders() if key in option_names(type(o))]
            if not targets:
                if strict:
                    raise UserError(self.unknown_option(key))
                continue
            for holder in targets:
                setattr(holder, key, value)
        self.add_required_parts()

    def add_required_parts(self) -> None:
        """Add the measures and cost providers the objectives require with their options
        (:meth:`nas.search.objectives.Objective.requires`), or set those options on the ones
        present."""
        objectives = registry("objectives")
        for obj in self.objectives:
            if obj.name not in objectives:
                continue
            for role, value in objectives.get(obj.name).requires(obj.options):
                if role not in LIST_ROLES:
                    raise ValueError(
                        f"objective {obj.name!r} requires a {role}; only measures and costs can be added"
                    )
                parts = getattr(self, role)
                at = next((i for i, p in enumerate(parts) if p.name == value["name"]), None)
                if at is None:
                    parts.append(_part_value(role, value, None))
                else:
                    parts[at] = _part_value(role, value, parts[at])

    def _option_holders(self) -> list[Any]:
        parts = [self.space, self.evaluator, self.trainer, *self.measures, *self.costs, *self.objectives]
        return [self.loop, self.executor, *(p.options for p in [*parts, self.strategy] if p is not None)]

    def unknown_option(self, key: str) -> str:
        """Why ``key`` is not an option of this run: the components that would have it, if any."""
        owners = []
        for role in ROLES:
            names = [n for n in registry(role).names() if key in option_names(options_class(role, n))]
            if names:
                which = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
                owners.append(f"{ROLE_TITLES[role]} {which}")
        used = ", ".join(f"{ROLE_TITLES[r]} {p.name}" for r, p in self.parts())
        if owners:
            return f"--{key} is an option of {', '.join(owners)}; this run uses {used}"
        return (
            f"unknown option --{key}; `msunas.py --help` lists the options of this run's components ({used})"
        )

    # ---- access ---------------------------------------------------------------------------

    def parts(self) -> list[tuple[str, Part]]:
        """``(role, part)`` of every selected component, in role order."""
        out = []
        for role in ROLES:
            value = getattr(self, role)
            for p in value if role in LIST_ROLES else [value]:
                if p is not None:
                    out.append((role, p))
        return out

    def objective_names(self) -> list[str]:
        return [p.name for p in self.objectives]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": SCHEMA, "plugins": list(self.plugins), "preset": self.preset}
        for role in ROLES:
            value = getattr(self, role)
            if role in LIST_ROLES:
                out[role] = [p.to_dict() for p in value]
            else:
                out[role] = None if value is None else value.to_dict()
        out["loop"] = options_dict(self.loop)
        out["executor"] = options_dict(self.executor)
        return out

    def copy(self) -> RunSpec:
        return RunSpec.from_dict(self.to_dict())


def _name_of(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return value.get("name")
    return None


def is_description(d: Mapping[str, Any]) -> bool:
    """Whether ``d`` is a nested run description (not the flat configuration of older runs)."""
    return d.get("schema") == SCHEMA or any(
        isinstance(d.get(r), Mapping) for r in ("loop", "space", "strategy")
    )


# The flat settings of runs made before run descriptions existed (iter_k.stats "config"), as
# flat options: a benchmark run's space and trainer came from its preset.
LEGACY_BENCHMARK_KEYS = ("search_space", "lr", "ur", "rstep", "width_mult", "trainer", "n_epochs", "resume")


def legacy_flat(config: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in config.items() if k != "resume"}
    if config.get("benchmark"):
        for k in LEGACY_BENCHMARK_KEYS:
            out.pop(k, None)
    return out
