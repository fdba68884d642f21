"""Latency look-up tables: equal to OFA's own LatencyEstimator, every key present, clear errors."""

import random
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from benchmarks.ofa_note10 import ofa_tutorial_module
from nas.errors import UserError
from nas.space import get_search_space
from NasSearchSpace.ofa_mbv3_latency import LatencyTable

ROOT = Path(__file__).resolve().parents[1]
OFA_DIR = ROOT / "data" / "ofa"
RESOLUTIONS = (160, 176, 192, 208, 224)


@pytest.fixture(scope="module")
def table():
    return LatencyTable(OFA_DIR)


@pytest.fixture(scope="module")
def space():
    return get_search_space("mobilenetv3", lr=160, ur=224, rstep=16, width_mult=1.2)


@pytest.fixture(scope="module")
def ofa_estimators():
    """OFA's ``LatencyEstimator`` per resolution, its ``yaml.load`` pointed at ``safe_load``
    (PyYAML 6 rejects ``yaml.load`` without a Loader)."""
    module = ofa_tutorial_module("latency_table")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module, "yaml", SimpleNamespace(load=yaml.safe_load))
        return {
            r: module.LatencyEstimator(url=str(OFA_DIR / f"note10_{r}_lookup_table.yaml"))
            for r in RESOLUTIONS
        }


def ofa_spec(arch):
    return {"ks": list(arch["ks"]), "e": list(arch["e"]), "d": list(arch["d"]), "r": [arch["r"]]}


def test_reads_all_resolutions(table):
    assert table.device == "note10"
    assert table.resolutions == RESOLUTIONS
    assert all(len(t) == 96 for t in table.tables.values())


def test_equals_ofa_latency_estimator_on_random_archs(table, space, ofa_estimators):
    module = ofa_tutorial_module("latency_table")
    ofa_table = module.LatencyTable.__new__(module.LatencyTable)  # its __init__ downloads the tables
    ofa_table.latency_tables = ofa_estimators
    archs = space.sample(1000, np.random.default_rng(0)) + [space.smallest(), space.largest()]
    for arch in archs:
        ours = table.latency(arch)
        assert ours == ofa_estimators[arch["r"]].predict_network_latency_given_spec(ofa_spec(arch))
        assert ours == ofa_table.predict_efficiency(ofa_spec(arch))


def test_equals_ofa_estimator_on_built_networks(table, space, ofa_estimators):
    """OFA's other path reads channels, SE, activation and shortcut from a real w1.2 subnet."""
    torch.manual_seed(0)
    supernet = space.make_supernet(1000)
    for arch in space.sample(2, np.random.default_rng(1)) + [space.largest()]:
        net = space.build(arch, supernet=supernet)
        assert table.latency(arch) == ofa_estimators[arch["r"]].predict_network_latency(net, arch["r"])


def test_every_generated_key_exists_and_every_entry_is_used(table):
    for r in RESOLUTIONS:
        used = set(table.keys({"ks": [3] * 20, "e": [3] * 20, "d": [4] * 5, "r": r}))
        for stage in range(5):
            for i in range(4):
                for k in (3, 5, 7):
                    for e in (3, 4, 6):
                        key = table.block_key(r, stage, i, k, e)
                        assert key in table.tables[r], key
                        used.add(key)
        assert used == set(table.tables[r])


def test_keys_and_entries(table, space):
    arch = space.sample(1, np.random.default_rng(2))[0]
    keys = table.keys(arch)
    assert len(keys) == 2 + sum(arch["d"]) + 4
    assert (
        keys[0]
        == f"Conv-input:{arch['r']}x{arch['r']}x3-output:{(arch['r'] + 1) // 2}x{(arch['r'] + 1) // 2}x24"
    )
    assert keys[-1] == "Logits-input:1x1x1536-output:1000"
    total = 0.0
    for key, ms in table.entries(arch):
        assert ms == table.tables[arch["r"]][key]
        total += ms
    assert total == table.latency(arch)
    # stage 1 (SE, ReLU): the first block strides and has no shortcut, the others keep the shape
    first = table.block_key(224, 1, 0, 5, 4)
    assert (
        first
        == "expanded_conv-input:56x56x32-output:28x28x48-expand:128-kernel:5-stride:2-idskip:0-se:1-hs:0"
    )
    assert table.block_key(224, 3, 1, 7, 6).endswith(
        "input:14x14x136-output:14x14x136-expand:816-kernel:7-stride:1-idskip:1-se:1-hs:1"
    )


def test_min_latency_is_the_smallest_subnet(table, space):
    floor = table.min_latency()
    assert floor == pytest.approx(table.latency(space.smallest()), abs=1e-12)
    assert all(table.latency(a) >= floor for a in space.sample(300, np.random.default_rng(3)))


def test_fast(table, space):
    archs = space.sample(2000, np.random.default_rng(4))
    table.latency_many(archs)  # fill the per-block cache
    import time

    start = time.perf_counter()
    table.latency_many(archs)
    assert (time.perf_counter() - start) / len(archs) < 1e-3  # about 10 us; generous on a busy machine


# ---- errors -------------------------------------------------------------------------------


def test_missing_directory_names_the_files(tmp_path):
    with pytest.raises(UserError, match=r"does not exist.*<device>_<r>_lookup_table\.yaml"):
        LatencyTable(tmp_path / "nope")
    with pytest.raises(UserError, match=r"no latency tables.*<device>_<r>_lookup_table\.yaml"):
        LatencyTable(tmp_path)


def test_missing_resolution_names_the_file(tmp_path, table, space):
    with pytest.raises(UserError, match=r"lacks note10_240_lookup_table\.yaml"):
        LatencyTable(OFA_DIR, resolutions=[224, 240])
    shutil.copy(OFA_DIR / "note10_224_lookup_table.yaml", tmp_path)
    only224 = LatencyTable(tmp_path)
    arch = {**space.smallest(), "r": 160}
    with pytest.raises(
        UserError, match=r"no latency table for resolution 160: expected note10_160_lookup_table\.yaml"
    ):
        only224.latency(arch)


def test_missing_key_is_named(table, space):
    arch = space.smallest()
    arch["ks"][0] = 9
    with pytest.raises(
        UserError, match=r"has no entry 'expanded_conv-input:80x80x24-output:40x40x32-expand:72-kernel:9"
    ):
        table.latency(arch)
    with pytest.raises(UserError, match="width w=1.0 does not match"):
        table.latency({**space.smallest(), "w": 1.0})
    with pytest.raises(UserError, match="needs 20 ks"):
        table.latency({**space.smallest(), "ks": [3]})


def test_several_devices_must_be_chosen(tmp_path):
    for r in (160, 224):
        shutil.copy(OFA_DIR / f"note10_{r}_lookup_table.yaml", tmp_path)
    shutil.copy(OFA_DIR / "note10_224_lookup_table.yaml", tmp_path / "other_224_lookup_table.yaml")
    with pytest.raises(UserError, match="several devices"):
        LatencyTable(tmp_path)
    assert LatencyTable(tmp_path, device="note10").resolutions == (160, 224)
    assert LatencyTable(tmp_path, device="other").resolutions == (224,)


def test_unreadable_table(tmp_path):
    (tmp_path / "dev_224_lookup_table.yaml").write_text("key: [unclosed\n")
    with pytest.raises(UserError, match="cannot be read"):
        LatencyTable(tmp_path)
    (tmp_path / "dev_224_lookup_table.yaml").write_text("key: {count: 1}\n")
    with pytest.raises(UserError, match="without a numeric 'mean'"):
        LatencyTable(tmp_path)


def test_global_random_state_untouched(table, space):
    state = random.getstate()
    table.latency(space.smallest())
    assert random.getstate() == state
