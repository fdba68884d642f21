"""Energy per inference: measured where the machine exposes a counter, modelled from a profile otherwise.

Every energy figure carries its **provenance**: ``measured:zeus-<parts>`` (Zeus's ``ZeusMonitor``
windows; parts ``gpu``, ``cpu``, ``dram``, ``soc``), ``measured:rapl`` (Linux powercap RAPL
counters), ``measured:nvml`` (NVIDIA's cumulative energy counter, Volta and later),
``measured:rapl+nvml`` (both, a CPU + GPU box without Zeus) or ``modelled:<profile>``
(:mod:`hardware.profiles`).

Sources, in the order ``source="auto"`` tries them:

- ``zeus`` (optional dependency ``zeus``, imported only when asked for; tested with 0.16.0):
  ``ZeusMonitor.begin_window`` / ``end_window``, which covers NVIDIA GPUs (NVML), Intel/AMD CPUs
  and DRAM (RAPL) and Jetson boards (INA3221 rails) behind one interface;
- ``rapl``: ``<root>/intel-rapl:N/energy_uj`` (packages) and their ``dram`` subzones, microjoules,
  wrapping at ``max_energy_range_uj`` (handled; the counters are polled after every call so that
  a window never spans more than one wrap). Since Linux 5.10 ``energy_uj`` is root-only (a
  mitigation of CVE-2020-8694): an unreadable counter is a one-line error naming the file;
- ``nvml`` (``nvidia-ml-py``, imported lazily): ``nvmlDeviceGetTotalEnergyConsumption``, mJ.

Without Zeus, ``auto`` uses RAPL and NVML together when both are there. A measurement
(:func:`measure_energy`) first records the **idle baseline**: the counters over ``idle_seconds``
of sleep give the idle power; then ``fn`` runs ``calls`` times (more if the window is shorter than
``min_seconds``: counters update every ~1 ms (RAPL) to 20-100 ms (NVML)), and the energy per call
is ``(E_window - P_idle * t_window) / calls``: what the inference adds to an idle machine. On a
machine without any counter (this VM: no powercap, no NVML) asking for measured energy is a
one-line error that says what is missing and to use a device profile.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from nas.errors import UserError
from nas.registry import Registry

POWERCAP = Path("/sys/class/powercap")
ENERGY_SOURCES: Registry = Registry("energy source")
AUTO_ORDER = ("zeus", "rapl", "nvml")
ZEUS_PIN = "zeus==0.16.0"
FIX = "use a device profile for modelled energy instead (local-vm, jetson-agx-xavier)"


@dataclass
class EnergyReading:
    """Energy per call of a measured (or modelled) function, with its provenance."""

    mj_per_call: float  # idle baseline removed
    provenance: str
    calls: int = 1
    seconds: float = 0.0  # length of the measured window
    gross_mj: float = 0.0  # energy counted in the window, baseline included
    idle_w: float = 0.0  # baseline power
    parts_mj: dict[str, float] = field(default_factory=dict)  # gross energy per counter

    def row(self) -> dict[str, Any]:
        return asdict(self)


class EnergyCounter(ABC):
    """An open energy source: ``begin()``, ``poll()`` as often as convenient, ``end()`` -> mJ per part."""

    name: ClassVar[str] = ""

    @property
    @abstractmethod
    def provenance(self) -> str: ...

    @abstractmethod
    def begin(self) -> None: ...

    def poll(self) -> None:  # noqa: B027 (optional hook: counters without wraps need none)
        """Read the counters now (cumulative counters: to catch every wrap)."""

    @abstractmethod
    def end(self) -> dict[str, float]:
        """Energy (mJ) per part since :meth:`begin`."""


class EnergySource(ABC):
    """A kind of energy counter: whether this machine has it, and opening it."""

    name: ClassVar[str] = ""

    @abstractmethod
    def unavailable(self, root: Path) -> str | None:
        """None when usable here, else why not (one phrase)."""

    @abstractmethod
    def open(self, root: Path) -> EnergyCounter: ...


# ---- RAPL through powercap ----------------------------------------------------------------------

ZONE = re.compile(r"^intel-rapl:\d+$")
SUBZONE = re.compile(r"^intel-rapl:\d+:\d+$")


def _read_int(path: Path) -> int:
    """An integer sysfs file; an unreadable one is a one-line :class:`UserError`."""
    try:
        return int(path.read_text().strip())
    except PermissionError:
        raise UserError(
            f"cannot read {path}: permission denied (energy_uj is root-only since Linux 5.10, "
            f"CVE-2020-8694); run as root or make it readable (chmod o+r), or {FIX}"
        ) from None
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path}: {str(e).splitlines()[0] or type(e).__name__}; {FIX}") from None


def rapl_zones(root: Path = POWERCAP) -> list[Path]:
    """Package zones ``intel-rapl:N`` and their ``dram`` subzones (DRAM is not part of the package)."""
    root = Path(root)
    if not root.is_dir():
        return []
    zones = []
    for p in sorted(root.iterdir()):
        if ZONE.match(p.name):
            zones.append(p)
        elif SUBZONE.match(p.name) and _zone_name(p) == "dram":
            zones.append(p)
    return [z for z in zones if (z / "energy_uj").exists()]


def _zone_name(zone: Path) -> str:
    try:
        return (zone / "name").read_text().strip()
    except OSError:
        return zone.name


class RaplCounter(EnergyCounter):
    name = "rapl"

    def __init__(self, zones: list[Path]) -> None:
        self.zones = zones
        self.ranges = [_read_int(z / "max_energy_range_uj") for z in zones]
        self.names = [f"{z.name}({_zone_name(z)})" for z in zones]
        self.last: list[int] = []
        self.total_uj: list[int] = []

    @property
    def provenance(self) -> str:
        return "measured:rapl"

    def _read(self) -> list[int]:
        return [_read_int(z / "energy_uj") for z in self.zones]

    def begin(self) -> None:
        self.last = self._read()
        self.total_uj = [0] * len(self.zones)

    def poll(self) -> None:
        now = self._read()
        for i, (a, b) in enumerate(zip(self.last, now, strict=True)):
            d = b - a
            if d < 0:  # the counter wrapped at max_energy_range_uj
                d += self.ranges[i]
            self.total_uj[i] += d
        self.last = now

    def end(self) -> dict[str, float]:
        self.poll()
        return {n: t / 1000.0 for n, t in zip(self.names, self.total_uj, strict=True)}


@ENERGY_SOURCES.register("rapl")
class RaplSource(EnergySource):
    def unavailable(self, root: Path) -> str | None:
        root = Path(root)
        if not root.is_dir():
            return f"{root} is absent (no RAPL powercap driver, e.g. in a VM)"
        zones = rapl_zones(root)
        if not zones:
            return f"no intel-rapl zone under {root}"
        try:
            _read_int(zones[0] / "energy_uj")
        except UserError:
            return f"{zones[0] / 'energy_uj'} is not readable (root-only since Linux 5.10)"
        return None

    def open(self, root: Path) -> EnergyCounter:
        why = self.unavailable(root)
        if why:
            raise UserError(f"RAPL energy is not available: {why}; {FIX}")
        return RaplCounter(rapl_zones(root))


# ---- NVML ---------------------------------------------------------------------------------------


def _pynvml() -> Any:
    import pynvml  # nvidia-ml-py

    return pynvml


class NvmlCounter(EnergyCounter):
    name = "nvml"

    def __init__(self, nvml: Any, handles: list[Any]) -> None:
        self.nvml, self.handles = nvml, handles
        self.start: list[int] = []

    @property
    def provenance(self) -> str:
        return "measured:nvml"

    def _read(self) -> list[int]:
        return [int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(h)) for h in self.handles]  # mJ

    def begin(self) -> None:
        self.start = self._read()

    def end(self) -> dict[str, float]:
        now = self._read()
        return {f"gpu{i}": float(b - a) for i, (a, b) in enumerate(zip(self.start, now, strict=True))}


@ENERGY_SOURCES.register("nvml")
class NvmlSource(EnergySource):
    def _handles(self) -> tuple[Any, list[Any]] | str:
        try:
            nvml = _pynvml()
        except ImportError:
            return "nvidia-ml-py is not installed"
        try:
            nvml.nvmlInit()
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
            if not handles:
                return "NVML sees no NVIDIA GPU"
            for h in handles:
                nvml.nvmlDeviceGetTotalEnergyConsumption(h)  # pre-Volta GPUs: NotSupported
        except Exception as e:  # NVMLError and its subclasses (no driver, not supported)
            return f"NVML: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        return nvml, handles

    def unavailable(self, root: Path) -> str | None:
        got = self._handles()
        return got if isinstance(got, str) else None

    def open(self, root: Path) -> EnergyCounter:
        got = self._handles()
        if isinstance(got, str):
            raise UserError(f"NVML energy is not available: {got}; {FIX}")
        return NvmlCounter(*got)


# ---- Zeus ---------------------------------------------------------------------------------------


def _zeus_monitor_class() -> Any:
    from zeus.monitor import ZeusMonitor

    return ZeusMonitor


class ZeusCounter(EnergyCounter):
    name = "zeus"
    _windows = 0

    def __init__(self, monitor: Any) -> None:
        self.monitor = monitor
        self.key = ""
        self.parts: list[str] = []

    @property
    def provenance(self) -> str:
        return "measured:zeus" + ("-" + "+".join(self.parts) if self.parts else "")

    def begin(self) -> None:
        ZeusCounter._windows += 1
        self.key = f"hardware.energy.{ZeusCounter._windows}"
        self.monitor.begin_window(self.key)

    def end(self) -> dict[str, float]:
        m = self.monitor.end_window(self.key)
        out: dict[str, float] = {}
        for part in ("gpu", "cpu", "dram"):
            for i, joules in (getattr(m, f"{part}_energy", None) or {}).items():
                out[f"{part}{i}"] = 1000.0 * float(joules)
        soc = getattr(m, "soc_energy", None)
        total = getattr(soc, "total_energy_mj", None) if soc is not None else None
        if total is not None:  # Jetson: the board's total rail, mJ
            out = {k: v for k, v in out.items() if not k.startswith("gpu")}
            out["soc"] = float(total)
        self.parts = sorted({re.sub(r"\d+$", "", k) for k in out})
        return out


@ENERGY_SOURCES.register("zeus")
class ZeusSource(EnergySource):
    def _monitor(self) -> Any:
        try:
            cls = _zeus_monitor_class()
        except ImportError:
            return f"zeus is not installed (optional: pip install {ZEUS_PIN})"
        try:
            monitor = cls()
        except Exception as e:
            return f"zeus: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        if not (monitor.gpu_indices or monitor.cpu_indices or getattr(monitor, "soc_is_present", False)):
            return "zeus found no GPU, RAPL or SoC energy counter"
        return monitor

    def unavailable(self, root: Path) -> str | None:
        got = self._monitor()
        return got if isinstance(got, str) else None

    def open(self, root: Path) -> EnergyCounter:
        got = self._monitor()
        if isinstance(got, str):
            raise UserError(f"Zeus energy is not available: {got}; {FIX}")
        return ZeusCounter(got)


# ---- several counters at once, choosing, measuring ----------------------------------------------


class CombinedCounter(EnergyCounter):
    """RAPL and NVML together (a CPU + GPU machine without Zeus)."""

    def __init__(self, counters: list[EnergyCounter]) -> None:
        self.counters = counters

    @property
    def provenance(self) -> str:
        return "measured:" + "+".join(c.provenance.split(":", 1)[1] for c in self.counters)

    def begin(self) -> None:
        for c in self.counters:
            c.begin()

    def poll(self) -> None:
        for c in self.counters:
            c.poll()

    def end(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for c in self.counters:
            out.update({f"{c.name}.{k}": v for k, v in c.end().items()})
        return out


def available_energy_sources(root: Path | str = POWERCAP) -> dict[str, str | None]:
    """``{source: None if usable here, else why not}`` for zeus, rapl and nvml."""
    return {name: ENERGY_SOURCES.get(name)().unavailable(Path(root)) for name in AUTO_ORDER}


def open_counter(source: str = "auto", root: Path | str = POWERCAP) -> EnergyCounter:
    """The counter of ``source`` (``auto``: Zeus if usable, else RAPL and/or NVML)."""
    root = Path(root)
    if source != "auto":
        if source not in ENERGY_SOURCES:
            raise UserError(f"unknown energy source {source!r}; choose one of: auto, {', '.join(AUTO_ORDER)}")
        return ENERGY_SOURCES.get(source)().open(root)
    why = available_energy_sources(root)
    if why["zeus"] is None:
        return ENERGY_SOURCES.get("zeus")().open(root)
    usable = [ENERGY_SOURCES.get(n)().open(root) for n in ("rapl", "nvml") if why[n] is None]
    if not usable:
        missing = "; ".join(f"{n}: {w}" for n, w in why.items())
        raise UserError(f"no energy counter on this machine ({missing}); {FIX}")
    return usable[0] if len(usable) == 1 else CombinedCounter(usable)


def measure_energy(
    fn: Callable[[], Any],
    calls: int = 100,
    *,
    source: str | EnergyCounter = "auto",
    root: Path | str = POWERCAP,
    idle_seconds: float = 2.0,
    min_seconds: float = 2.0,
    warmup: int = 3,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
) -> EnergyReading:
    """Energy per call of ``fn`` with the idle baseline removed (see the module docstring): ``calls``
    calls, continued until the window lasts ``min_seconds``; ``idle_seconds`` of sleep first give
    the baseline (0: no baseline removed, ``idle_w`` = 0). ``fn`` must synchronise its device (e.g.
    ``torch.cuda.synchronize()``) before returning."""
    if calls < 1 or idle_seconds < 0 or min_seconds < 0 or warmup < 0:
        raise UserError("measure_energy needs calls >= 1 and idle_seconds, min_seconds, warmup >= 0")
    counter = open_counter(source, root) if isinstance(source, str) else source
    for _ in range(warmup):
        fn()
    idle_w = 0.0
    if idle_seconds > 0:
        counter.begin()
        t0 = clock()
        sleep(idle_seconds)
        idle_mj = sum(counter.end().values())
        idle_w = max(0.0, idle_mj / max(clock() - t0, 1e-9) / 1000.0)  # mJ/s = mW
    counter.begin()
    t0 = clock()
    n = 0
    while n < calls or clock() - t0 < min_seconds:
        fn()
        n += 1
        counter.poll()
    seconds = clock() - t0
    parts = counter.end()
    gross = sum(parts.values())
    net = gross - idle_w * 1000.0 * seconds
    return EnergyReading(net / n, counter.provenance, n, seconds, gross, idle_w, parts)


def require_energy_source(source: str = "auto", root: Path | str = POWERCAP) -> str:
    """The provenance ``source`` would give here, or the one-line error saying what is missing."""
    return open_counter(source, root).provenance


def energy_per_call(
    fn: Callable[[], Any],
    seconds: float = 2.0,
    *,
    source: str | EnergyCounter = "auto",
    calls: int = 10,
    **kwargs: Any,
) -> EnergyReading:
    """:func:`measure_energy` with a window of at least ``seconds`` (and as long an idle baseline);
    CUDA is synchronised after every call when PyTorch has initialised it."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():

        def call() -> Any:
            out = fn()
            torch.cuda.synchronize()
            return out
    else:
        call = fn
    kwargs.setdefault("idle_seconds", seconds)
    return measure_energy(call, calls, source=source, min_seconds=seconds, **kwargs)


def measure_inference_energy(model: Any, x: Any, calls: int = 100, **kwargs: Any) -> EnergyReading:
    """:func:`measure_energy` of ``model(x)`` in eval mode without gradients (CUDA synchronised)."""
    import torch

    model.eval()
    cuda = getattr(x, "is_cuda", False)

    def once() -> None:
        with torch.no_grad():
            model(x)
        if cuda:
            torch.cuda.synchronize()

    return measure_energy(once, calls, **kwargs)


def modelled_energy(profile: Any, macs_M: float, bytes_MB: float, setting: Any = None) -> EnergyReading:
    """The energy a device profile gives one inference (at ``setting``, default the top levels)."""
    s = profile.max_setting() if setting is None else setting
    mj = float(profile.energy_mj(macs_M, bytes_MB, s))
    ms = float(profile.latency_ms(macs_M, bytes_MB, s))
    return EnergyReading(mj, profile.provenance, 1, ms / 1000.0, mj, 0.0, {"modelled": mj})
