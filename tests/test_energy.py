"""Energy: device profiles (the power and latency model) and measured energy (RAPL, NVML, Zeus readers
on fake counters; this VM has none)."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

from hardware import energy
from hardware.energy import (
    EnergyReading,
    available_energy_sources,
    energy_per_call,
    measure_energy,
    modelled_energy,
    open_counter,
    require_energy_source,
)
from hardware.profiles import collinear_with_latency, get_profile, profile_from_dict
from nas.errors import UserError

# ---- profiles -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xavier():
    return get_profile("jetson-agx-xavier")


def test_builtin_profiles_and_unknown_name(xavier):
    assert [d.name for d in xavier.domains] == ["cpu", "gpu", "emc"]
    assert [d.levels for d in xavier.domains] == [29, 14, 9]
    cpu, gpu, emc = (d.mhz for d in xavier.domains)
    assert cpu[0] == pytest.approx(115.2) and cpu[-1] == pytest.approx(2265.6)
    assert np.allclose(np.diff(cpu), 76.8)
    assert gpu.tolist()[:3] == [114.75, 216.75, 318.75] and gpu[-1] == 1377.0
    assert emc.tolist() == [204, 408, 665.6, 800, 1065.6, 1331.2, 1600, 1866, 2133]
    s = xavier.settings()
    assert s.shape == (3654, 3) and len({tuple(r) for r in s}) == 3654
    assert xavier.setting_index(xavier.max_setting()) == 3653
    assert [xavier.setting_index(r) for r in s[[0, 5, 1000]]] == [0, 5, 1000]
    assert xavier.provenance == "modelled:jetson-agx-xavier"
    assert all(v.source for v in xavier.values.values()) and "static_w" in xavier.assumptions()
    with pytest.raises(
        UserError, match="unknown device profile 'nope'; choose one of: jetson-agx-xavier, local-vm"
    ):
        get_profile("nope")
    with pytest.raises(UserError, match="does not exist"):
        get_profile("/no/such/profile.yaml")


def test_modelled_power_in_the_nvpmodel_classes(xavier):
    """The assumed parameters put the top setting at 30 W and the 10 W mode's clocks near 10 W."""

    def at(c, g, e):
        idx = [int(np.argmin(abs(d.mhz - f))) for d, f in zip(xavier.domains, (c, g, e), strict=True)]
        return float(xavier.power_w(np.array(idx)))

    assert at(2265.6, 1377, 2133) == pytest.approx(30.0)
    assert 9.0 < at(1190.4, 522.75, 1065.6) < 13.0
    assert at(1190.4, 522.75, 1065.6) < at(1190.4, 675.75, 1331.2) < 16.0


def test_latency_and_power_are_monotone_in_every_frequency(xavier):
    s = xavier.settings()
    lat = xavier.latency_ms(np.array([5.0, 0.5, 50.0]), np.array([1.0, 8.0, 0.1]), s)  # [3 paths, S]
    power = xavier.power_w(s)
    assert lat.shape == (3, len(s))
    index = {tuple(r): i for i, r in enumerate(s.tolist())}
    for j, d in enumerate(xavier.domains):
        lo = s[s[:, j] < d.levels - 1]
        hi = lo.copy()
        hi[:, j] += 1
        a = np.array([index[tuple(r)] for r in lo.tolist()])
        b = np.array([index[tuple(r)] for r in hi.tolist()])
        assert np.all(lat[:, b] <= lat[:, a] + 1e-12), d.name
        assert np.all(power[b] >= power[a] - 1e-12), d.name
    # a single setting drops the settings axis; energy = power x latency
    top = xavier.max_setting()
    assert xavier.latency_ms(5.0, 1.0, top).shape == ()
    assert float(xavier.energy_mj(5.0, 1.0, top)) == pytest.approx(
        30.0 * float(xavier.latency_ms(5.0, 1.0, top))
    )


def _one_domain(static_w: float, v_min: float = 0.6) -> dict:
    src = {"source": "test"}
    return {
        "name": "toy", "dvfs": True, "dtype_bytes": {"value": 4, **src},
        "static_w": {"value": static_w, **src},
        "compute": {"domain": "gpu", "gmacs": {"value": 100.0, **src}},
        "memory": {"domain": None, "gbps": {"value": 10.0, **src}},
        "host": {"domain": None, "ms": {"value": 0.0, **src}},
        "domains": {"gpu": {"mhz": {"value": list(np.linspace(100, 1500, 15)), **src},
                            "p_max_w": {"value": 10.0, **src}, "v_min": {"value": v_min, **src},
                            "v_max": {"value": 1.0, **src}}},
    }  # fmt: skip


def test_interior_energy_minimum_only_with_static_power(xavier):
    # Xavier: a compute-bound path at the top CPU and EMC levels, over the GPU levels
    s = np.array([[28, g, 8] for g in range(14)])
    e = xavier.energy_mj(200.0, 0.5, s)
    k = int(np.argmin(e))
    assert 0 < k < 13, e
    # one domain, static power > 0: interior minimum; no static power (and no memory/host time):
    # E = p * V(f)^2 * t_comp * f_max / V_max^2 is non-decreasing in f, lowest at the lowest level
    with_static = profile_from_dict(_one_domain(3.0))
    e = with_static.energy_mj(100.0, 0.0)
    assert 0 < int(np.argmin(e)) < 14
    without = profile_from_dict(_one_domain(0.0))
    e = without.energy_mj(100.0, 0.0)
    assert int(np.argmin(e)) == 0 and np.all(np.diff(e) >= -1e-12)
    flat = profile_from_dict(_one_domain(0.0, v_min=1.0))  # no voltage scaling: E constant in f
    assert np.allclose(flat.energy_mj(100.0, 0.0), flat.energy_mj(100.0, 0.0)[0])


def test_local_vm_energy_is_collinear_with_latency(xavier):
    vm = get_profile("local-vm")
    assert not vm.dvfs and collinear_with_latency(vm) and not collinear_with_latency(xavier)
    assert vm.settings().shape == (1, 1)
    macs, mb = np.array([1.0, 10.0, 100.0]), np.array([0.5, 2.0, 30.0])
    ratio = vm.energy_mj(macs, mb)[:, 0] / vm.latency_ms(macs, mb)[:, 0]
    assert np.allclose(ratio, vm.static_w)
    assert vm.describe()["collinear_with_latency"] is True


def test_bad_profile_inputs(tmp_path, xavier):
    with pytest.raises(UserError, match="has 3 level indices"):
        xavier.latency_ms(1.0, 1.0, np.array([1, 2]))
    with pytest.raises(UserError, match="out of range"):
        xavier.power_w(np.array([0, 14, 0]))
    with pytest.raises(UserError, match="same shape"):
        xavier.latency_ms(np.ones(3), np.ones(2))
    raw = _one_domain(1.0)
    del raw["static_w"]["source"]
    with pytest.raises(UserError, match="static_w needs 'value' and a 'source' note"):
        profile_from_dict(raw)
    raw = _one_domain(1.0)
    raw["compute"]["domain"] = "npu"
    with pytest.raises(UserError, match="compute.domain 'npu' is not one of its domains"):
        profile_from_dict(raw)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(UserError, match="cannot read device profile") as e:
        get_profile(str(bad))
    assert "\n" not in str(e.value)


# ---- measured energy on fake counters ----------------------------------------------------------


@pytest.fixture
def no_optional(monkeypatch):
    """Neither Zeus nor nvidia-ml-py importable, whatever the machine has."""

    def missing():
        raise ImportError("not installed")

    monkeypatch.setattr(energy, "_zeus_monitor_class", missing)
    monkeypatch.setattr(energy, "_pynvml", missing)


def make_powercap(root: Path, start: int = 1_000_000, max_range: int = 262_143_328_850) -> dict[str, Path]:
    zones = {"intel-rapl:0": "package-0", "intel-rapl:0:0": "core", "intel-rapl:0:1": "dram"}
    files = {}
    for zone, name in zones.items():
        z = root / zone
        z.mkdir(parents=True)
        (z / "name").write_text(name + "\n")
        (z / "energy_uj").write_text(f"{start}\n")
        (z / "max_energy_range_uj").write_text(f"{max_range}\n")
        files[name] = z / "energy_uj"
    return files


def bump(path: Path, uj: int, max_range: int | None = None) -> None:
    v = int(path.read_text()) + uj
    if max_range is not None:
        v %= max_range
    path.write_text(f"{v}\n")


class FakeTime:
    def __init__(self, on_sleep=None) -> None:
        self.t, self.on_sleep = 0.0, on_sleep

    def clock(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s
        if self.on_sleep:
            self.on_sleep(s)


def test_rapl_energy_per_call_with_idle_baseline(tmp_path, no_optional):
    files = make_powercap(tmp_path)
    fake = FakeTime(
        on_sleep=lambda s: (bump(files["package-0"], int(2e6 * s)), bump(files["dram"], int(1e6 * s)))
    )

    def call():  # 0.01 s and 0.5 J (package) + 0.1 J (dram) per call; core is part of the package
        fake.t += 0.01
        bump(files["package-0"], 500_000)
        bump(files["dram"], 100_000)
        bump(files["core"], 400_000)

    assert available_energy_sources(tmp_path)["rapl"] is None
    r = measure_energy(call, 20, root=tmp_path, idle_seconds=1.0, min_seconds=0.0, warmup=0,
                       clock=fake.clock, sleep=fake.sleep)  # fmt: skip
    assert r.provenance == "measured:rapl" and r.calls == 20
    assert r.idle_w == pytest.approx(3.0)  # 2 W package + 1 W dram
    assert r.gross_mj == pytest.approx(20 * 600.0)
    assert r.seconds == pytest.approx(0.2)
    assert r.mj_per_call == pytest.approx(600.0 - 3.0 * 10.0)  # minus 3 W x 10 ms
    assert set(r.parts_mj) == {"intel-rapl:0(package-0)", "intel-rapl:0:1(dram)"}
    # min_seconds extends the window
    r = measure_energy(call, 1, root=tmp_path, idle_seconds=0.0, min_seconds=0.1, warmup=0,
                       clock=fake.clock, sleep=fake.sleep)  # fmt: skip
    assert r.calls == 10 and r.idle_w == 0.0 and r.mj_per_call == pytest.approx(600.0)


def test_rapl_counter_wraparound(tmp_path, no_optional):
    max_range = 10_000_000
    files = make_powercap(tmp_path, start=max_range - 300_000, max_range=max_range)
    fake = FakeTime()

    def call():
        fake.t += 0.01
        bump(files["package-0"], 200_000, max_range)  # wraps on the second call
        bump(files["dram"], 0, max_range)

    r = measure_energy(call, 4, root=tmp_path, idle_seconds=0.0, min_seconds=0.0, warmup=0,
                       clock=fake.clock, sleep=fake.sleep)  # fmt: skip
    assert r.mj_per_call == pytest.approx(200.0)


def test_unreadable_counter_is_a_one_line_error(tmp_path, monkeypatch, no_optional):
    files = make_powercap(tmp_path)
    counter = open_counter("rapl", tmp_path)
    real = Path.read_text

    def deny(self, *a, **k):
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", deny)
    with pytest.raises(UserError) as e:
        counter.begin()
    msg = str(e.value)
    assert "\n" not in msg and str(files["package-0"]) in msg and "permission denied" in msg
    assert "device profile" in msg
    why = available_energy_sources(tmp_path)["rapl"]
    assert "not readable" in why
    with pytest.raises(UserError, match="no energy counter on this machine .*rapl: .*not readable"):
        measure_energy(lambda: None, 1, root=tmp_path)


def test_no_counter_asks_for_a_profile(tmp_path, no_optional):
    why = available_energy_sources(tmp_path / "absent")
    assert why["zeus"].startswith("zeus is not installed") and "is absent" in why["rapl"]
    assert why["nvml"] == "nvidia-ml-py is not installed"
    with pytest.raises(UserError) as e:
        require_energy_source("auto", tmp_path / "absent")
    msg = str(e.value)
    assert "\n" not in msg and "no energy counter on this machine" in msg
    assert "use a device profile" in msg and "local-vm" in msg
    with pytest.raises(UserError, match="RAPL energy is not available"):
        open_counter("rapl", tmp_path / "absent")
    with pytest.raises(UserError, match="unknown energy source 'perf'"):
        open_counter("perf", tmp_path)


def fake_nvml(energy_mj: list[int]):
    mod = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetTotalEnergyConsumption=lambda h: energy_mj[0],
    )
    return mod


def test_nvml_and_rapl_together(tmp_path, monkeypatch):
    files = make_powercap(tmp_path)
    counter = [5_000]
    monkeypatch.setattr(energy, "_pynvml", lambda: fake_nvml(counter))
    monkeypatch.setattr(energy, "_zeus_monitor_class", lambda: (_ for _ in ()).throw(ImportError()))
    fake = FakeTime()

    def call():
        fake.t += 0.01
        counter[0] += 70  # mJ
        bump(files["package-0"], 30_000)

    r = measure_energy(call, 5, root=tmp_path, idle_seconds=0.0, min_seconds=0.0, warmup=0,
                       clock=fake.clock, sleep=fake.sleep)  # fmt: skip
    assert r.provenance == "measured:rapl+nvml" and r.mj_per_call == pytest.approx(100.0)
    r = measure_energy(call, 5, source="nvml", root=tmp_path, idle_seconds=0.0, min_seconds=0.0, warmup=0,
                       clock=fake.clock, sleep=fake.sleep)  # fmt: skip
    assert r.provenance == "measured:nvml" and r.mj_per_call == pytest.approx(70.0)


def test_zeus_window_is_preferred(tmp_path, monkeypatch):
    class Monitor:
        gpu_indices, cpu_indices = [0], [0]

        def __init__(self):
            self.open = {}

        def begin_window(self, key):
            self.open[key] = True

        def end_window(self, key):
            del self.open[key]
            return types.SimpleNamespace(time=0.1, gpu_energy={0: 1.5}, cpu_energy={0: 0.5}, dram_energy=None)

    monkeypatch.setattr(energy, "_zeus_monitor_class", lambda: Monitor)
    assert available_energy_sources(tmp_path)["zeus"] is None
    assert require_energy_source("auto", tmp_path) == "measured:zeus"  # parts known after a window
    r = energy_per_call(lambda: None, 0.0, root=tmp_path, calls=4, warmup=0)
    assert r.provenance == "measured:zeus-cpu+gpu" and r.mj_per_call == pytest.approx(2000.0 / 4)
    assert isinstance(r, EnergyReading) and r.row()["parts_mj"] == {"gpu0": 1500.0, "cpu0": 500.0}


def test_modelled_energy_and_this_machine():
    vm = get_profile("local-vm")
    r = modelled_energy(vm, 10.0, 5.0)
    assert r.provenance == "modelled:local-vm"
    assert r.mj_per_call == pytest.approx(vm.static_w * float(vm.latency_ms(10.0, 5.0, vm.max_setting())))
    if all(available_energy_sources().values()):  # this VM: no counter at all
        with pytest.raises(UserError, match="use a device profile"):
            measure_energy(lambda: None, 1, idle_seconds=0, min_seconds=0)
