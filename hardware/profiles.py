"""Device profiles: DVFS levels and a documented latency and power model, for modelled energy.

Where a machine exposes no energy counter (:mod:`hardware.energy`) or the device is not at hand
(HADAS's Jetson), energy is modelled from a profile, a YAML file under ``hardware/profiles/``
(or any path) in which every number carries a ``source:`` note, ``assumed`` where it is one.
A profile has frequency domains (``cpu``, ``gpu``, ``emc``; any subset, in file order), each with
its levels (MHz), and three roles: the ``compute`` domain (where the network's MACs run), the
``memory`` domain (whose frequency sets the bandwidth) and the ``host`` domain (the CPU that
drives the inference); a role may have no domain (it then does not scale).

**Latency** of one inference path of ``macs`` (millions) moving ``mb`` megabytes, at a DVFS
setting ``s`` (one level index per domain), roofline style with the parts added (no overlap,
an upper bound of the roofline's ``max``)::

    t(s) = t_comp * f_comp,max / f_comp(s) + t_mem * f_mem,max / f_mem(s) + t_host * f_host,max / f_host(s)
    t_comp = macs / gmacs   (compute throughput at the top level, GMAC/s -> ms)
    t_mem  = mb / gbps      (bandwidth at the top memory level, GB/s -> ms)
    t_host = host ms        (per inference, at the host domain's top level)

**Power** while the network runs::

    P(s) = P_static + sum_d p_d * (f_d / f_d,max) * (V_d(f_d) / V_d,max)^2

``p_d`` is domain ``d``'s dynamic power at its top level under this load (so the usual
``C_eff * V^2 * f`` with ``C_eff`` folded in), ``V_d`` linear in ``f_d`` from ``v_min`` at the
lowest level to ``v_max`` at the top (``v_min == v_max``: power linear in frequency, as for a
memory interface). **Energy** per inference is ``E(s) = P(s) * t(s)`` (W * ms = mJ).

What follows from it (checked in ``tests/test_energy.py``): latency never increases and power
never decreases when a frequency goes up; with ``P_static > 0`` the energy over the compute
frequency has an interior minimum (slow clocks pay static power for longer, fast ones pay
``V^2``), while with no static (or other-domain) power and no memory or host time it is lowest at
the lowest level (``E = p * V(f)^2 * t_comp * f_max / V_max^2``: non-decreasing in ``f``). A
profile without DVFS (one level per domain, e.g. ``local-vm``) has a constant power, so energy is
``P * latency``: :func:`collinear_with_latency` says so, and a search should warn that its energy
objective adds nothing rather than report a trade-off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import UserError
from nas.registry import Registry

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
PROFILES: Registry = Registry("device profile")  # name -> YAML path
ROLES = ("compute", "memory", "host")


@dataclass(frozen=True)
class Value:
    """A number (or list) of a profile with where it comes from."""

    value: Any
    source: str

    @property
    def assumed(self) -> bool:
        return self.source.lower().startswith("assumed")


@dataclass(frozen=True)
class Domain:
    """A frequency domain: its levels (MHz, increasing) and power parameters."""

    name: str
    mhz: np.ndarray
    p_max_w: float
    v_min: float
    v_max: float

    @property
    def levels(self) -> int:
        return len(self.mhz)

    def voltage(self, f: np.ndarray) -> np.ndarray:
        lo, hi = float(self.mhz[0]), float(self.mhz[-1])
        if hi == lo:
            return np.full(np.shape(f), self.v_max, dtype=float)
        return self.v_min + (self.v_max - self.v_min) * (np.asarray(f, dtype=float) - lo) / (hi - lo)

    def dynamic_w(self, f: np.ndarray) -> np.ndarray:
        """Dynamic power at frequency ``f`` (MHz)."""
        f = np.asarray(f, dtype=float)
        return self.p_max_w * (f / self.mhz[-1]) * (self.voltage(f) / self.v_max) ** 2


@dataclass
class DeviceProfile:
    """A device's DVFS levels and its latency / power model (see the module docstring)."""

    name: str
    description: str
    dvfs: bool
    dtype_bytes: int
    static_w: float
    domains: list[Domain]
    gmacs: float  # compute throughput at the top compute level, GMAC/s
    gbps: float  # bandwidth at the top memory level, GB/s
    host_ms: float  # host time per inference at the top host level
    roles: dict[str, str | None]  # role -> domain name or None
    values: dict[str, Value] = field(default_factory=dict)  # every number with its source
    path: str = ""

    @property
    def provenance(self) -> str:
        return f"modelled:{self.name}"

    @property
    def domain_names(self) -> list[str]:
        return [d.name for d in self.domains]

    def assumptions(self) -> dict[str, str]:
        """The assumed numbers of the profile: ``{key: source}``."""
        return {k: v.source for k, v in self.values.items() if v.assumed}

    # ---- settings ---------------------------------------------------------------------------

    def settings(self) -> np.ndarray:
        """Every DVFS setting: int array [n_settings, n_domains] of level indices (the last domain
        varies fastest); one row of zeros when the profile has no domain."""
        sizes = [d.levels for d in self.domains]
        if not sizes:
            return np.zeros((1, 0), dtype=int)
        grids = np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij")
        return np.stack([g.ravel() for g in grids], axis=1).astype(int)

    def max_setting(self) -> np.ndarray:
        """The setting with every domain at its top level."""
        return np.array([d.levels - 1 for d in self.domains], dtype=int)

    def setting_index(self, setting: Any) -> int:
        """The row of :meth:`settings` holding ``setting``."""
        s = self._settings(setting)
        if len(s) != 1:
            raise UserError(f"one DVFS setting expected, got {len(s)}")
        index = 0
        for d, level in zip(self.domains, s[0], strict=True):
            index = index * d.levels + int(level)
        return index

    def _settings(self, settings: Any) -> np.ndarray:
        s = self.settings() if settings is None else np.asarray(settings)
        if s.ndim == 1:
            s = s[None, :]
        if s.ndim != 2 or s.shape[1] != len(self.domains):
            raise UserError(
                f"a DVFS setting of profile {self.name!r} has {len(self.domains)} level indices "
                f"({', '.join(self.domain_names) or 'none'}), got shape {tuple(np.shape(settings))}"
            )
        if not np.issubdtype(s.dtype, np.integer):
            raise UserError(f"DVFS settings are integer level indices, got {s.dtype}")
        top = np.array([d.levels for d in self.domains], dtype=int)
        if s.size and (s.min() < 0 or np.any(s >= top[None, :])):
            raise UserError(
                f"a DVFS level index is out of range for profile {self.name!r} "
                f"(levels per domain: {dict(zip(self.domain_names, top.tolist(), strict=True))})"
            )
        return s.astype(int)

    def frequencies(self, settings: Any = None) -> np.ndarray:
        """MHz per domain, [n_settings, n_domains]."""
        s = self._settings(settings)
        cols = [d.mhz[s[:, i]] for i, d in enumerate(self.domains)]
        return np.stack(cols, axis=1) if cols else np.zeros((len(s), 0))

    # ---- the model --------------------------------------------------------------------------

    def scale_factors(self, settings: Any = None) -> np.ndarray:
        """``f_max / f`` of the compute, memory and host domains, [n_settings, 3] (1 for a role
        without a domain): the factors the top-level times are multiplied by."""
        s = self._settings(settings)
        out = np.ones((len(s), len(ROLES)))
        for j, role in enumerate(ROLES):
            name = self.roles.get(role)
            if name is None:
                continue
            i = self.domain_names.index(name)
            d = self.domains[i]
            out[:, j] = d.mhz[-1] / d.mhz[s[:, i]]
        return out

    def base_terms_ms(self, macs_M: Any, bytes_MB: Any) -> np.ndarray:
        """``(t_comp, t_mem, t_host)`` in ms at the top levels, shape ``shape(macs) + (3,)``."""
        macs = np.asarray(macs_M, dtype=float)
        mb = np.asarray(bytes_MB, dtype=float)
        if macs.shape != mb.shape:
            raise UserError(f"MACs {macs.shape} and bytes {mb.shape} must have the same shape")
        if np.any(macs < 0) or np.any(mb < 0) or not np.all(np.isfinite(macs) & np.isfinite(mb)):
            raise UserError("MACs and bytes must be finite and >= 0")
        t_comp = macs / self.gmacs  # 1e6 MACs / (1e9 MAC/s) = 1 ms
        t_mem = mb / self.gbps  # MB / (GB/s) = ms
        t_host = np.full(macs.shape, self.host_ms)
        return np.stack([t_comp, t_mem, t_host], axis=-1)

    def power_w(self, settings: Any = None) -> np.ndarray:
        """Power while the network runs at each setting, [n_settings] (a 1-D setting: a scalar)."""
        f = self.frequencies(settings)
        p = np.full(len(f), self.static_w)
        for i, d in enumerate(self.domains):
            p = p + d.dynamic_w(f[:, i])
        return p[0] if _single(settings) else p

    def latency_ms(self, macs_M: Any, bytes_MB: Any, settings: Any = None) -> np.ndarray:
        """Latency (ms) of inferences of ``macs_M`` millions of MACs moving ``bytes_MB`` MB, at every
        setting of ``settings`` (default: all): shape ``shape(macs) + (n_settings,)``; a single
        1-D setting drops the last axis."""
        t = self.base_terms_ms(macs_M, bytes_MB) @ self.scale_factors(settings).T
        return t[..., 0] if _single(settings) else t

    def energy_mj(self, macs_M: Any, bytes_MB: Any, settings: Any = None) -> np.ndarray:
        """Energy (mJ) of the same inferences: :meth:`latency_ms` times :meth:`power_w`."""
        t = self.base_terms_ms(macs_M, bytes_MB) @ self.scale_factors(settings).T
        e = t * self.power_w(None if settings is None else self._settings(settings))
        return e[..., 0] if _single(settings) else e

    def describe(self) -> dict[str, Any]:
        """The profile as JSON-able data (for results files)."""
        return {
            "name": self.name, "provenance": self.provenance, "dvfs": self.dvfs,
            "collinear_with_latency": collinear_with_latency(self), "path": self.path,
            "domains": {d.name: len(d.mhz) for d in self.domains}, "n_settings": len(self.settings()),
            "roles": dict(self.roles), "assumed": sorted(self.assumptions()),
        }  # fmt: skip


def _single(settings: Any) -> bool:
    return settings is not None and np.ndim(settings) == 1


def collinear_with_latency(profile: DeviceProfile) -> bool:
    """Whether the profile's energy is a constant times its latency: no domain has two levels (or
    the profile declares no DVFS), so power cannot change and an energy objective repeats latency."""
    return not profile.dvfs or all(d.levels <= 1 for d in profile.domains)


# ---- loading ------------------------------------------------------------------------------------


def _register_builtin() -> None:
    for path in sorted(PROFILE_DIR.glob("*.yaml")):
        if path.stem not in PROFILES:
            PROFILES.register(path.stem)(str(path))


def profile_names() -> list[str]:
    _register_builtin()
    return PROFILES.names()


def get_profile(name_or_path: str | Path) -> DeviceProfile:
    """A built-in profile by name (``local-vm``, ``jetson-agx-xavier``) or a profile YAML file."""
    _register_builtin()
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or Path(text).is_file():
        path = Path(text)
        if not path.is_file():
            raise UserError(f"device profile file {text!r} does not exist")
        return load_profile(path)
    return load_profile(Path(PROFILES.get(text)))


def load_profile(path: Path) -> DeviceProfile:
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"cannot read device profile {str(path)!r}: {str(e).splitlines()[0]}") from None
    return profile_from_dict(raw, str(path))


def profile_from_dict(raw: Any, where: str = "<dict>") -> DeviceProfile:
    """A profile from its YAML form (see ``hardware/profiles/*.yaml``)."""
    if not isinstance(raw, dict):
        raise UserError(f"device profile {where}: expected a mapping at the top")
    values: dict[str, Value] = {}

    def num(node: Any, key: str, what: str, kind: type = float) -> Any:
        if not isinstance(node, dict) or key not in node:
            raise UserError(f"device profile {where}: {what} is missing")
        item = node[key]
        if not isinstance(item, dict) or "value" not in item or not str(item.get("source", "")).strip():
            raise UserError(f"device profile {where}: {what} needs 'value' and a 'source' note")
        v = item["value"]
        try:
            v = [float(x) for x in v] if kind is list else kind(v)
        except (TypeError, ValueError):
            raise UserError(f"device profile {where}: {what} = {v!r} is not a valid number") from None
        values[what] = Value(v, str(item["source"]).strip())
        return v

    name = str(raw.get("name") or Path(where).stem)
    domains: list[Domain] = []
    for dname, node in (raw.get("domains") or {}).items():
        mhz = np.asarray(num(node, "mhz", f"domains.{dname}.mhz", list), dtype=float)
        if len(mhz) == 0 or np.any(mhz <= 0) or np.any(np.diff(mhz) <= 0):
            raise UserError(f"device profile {where}: domains.{dname}.mhz must be positive and increasing")
        d = Domain(
            str(dname), mhz, num(node, "p_max_w", f"domains.{dname}.p_max_w"),
            num(node, "v_min", f"domains.{dname}.v_min"), num(node, "v_max", f"domains.{dname}.v_max"),
        )  # fmt: skip
        if d.p_max_w < 0 or not 0 < d.v_min <= d.v_max:
            raise UserError(
                f"device profile {where}: domain {dname} needs p_max_w >= 0 and 0 < v_min <= v_max"
            )
        domains.append(d)
    names = [d.name for d in domains]
    roles: dict[str, str | None] = {}
    keys = {"compute": "gmacs", "memory": "gbps", "host": "ms"}
    numbers: dict[str, float] = {}
    for role, key in keys.items():
        node = raw.get(role)
        if not isinstance(node, dict):
            raise UserError(f"device profile {where}: the {role} role is missing")
        dom = node.get("domain")
        if dom is not None and dom not in names:
            raise UserError(
                f"device profile {where}: {role}.domain {dom!r} is not one of its domains "
                f"({', '.join(names)})"
            )
        roles[role] = dom
        numbers[role] = num(node, key, f"{role}.{key}")
    if numbers["compute"] <= 0 or numbers["memory"] <= 0 or numbers["host"] < 0:
        raise UserError(f"device profile {where}: compute.gmacs and memory.gbps must be > 0, host.ms >= 0")
    static = num(raw, "static_w", "static_w")
    dtype_bytes = num(raw, "dtype_bytes", "dtype_bytes", int)
    if static < 0 or dtype_bytes <= 0 or not all(math.isfinite(x) for x in numbers.values()):
        raise UserError(f"device profile {where}: static_w must be >= 0 and dtype_bytes > 0")
    return DeviceProfile(
        name=name, description=str(raw.get("description", "")), dvfs=bool(raw.get("dvfs", True)),
        dtype_bytes=dtype_bytes, static_w=static, domains=domains, gmacs=numbers["compute"],
        gbps=numbers["memory"], host_ms=numbers["host"], roles=roles, values=values, path=where,
    )  # fmt: skip
