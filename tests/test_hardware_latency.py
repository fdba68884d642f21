"""Latency measured on this machine: table keys, a tiny table built here and read back by the
``latency`` objective, the dataset builder, ``--latency_model``, and clear errors."""

import csv
import importlib
import json
from pathlib import Path

import pytest
import torch
import yaml

from hardware.dataset import build_dataset, reference_drift
from hardware.latency import MeasuredLatency, parse_latency_model
from hardware.lut import build_lut
from hardware.measure import TimingProtocol, key_input_shape
from nas.cli import run_cli
from nas.errors import UserError
from nas.measures import EvalContext
from nas.search.description import RunSpec
from nas.search.factory import build_run
from nas.space import get_search_space
from NasSearchSpace.ofa_mbv3_latency import LatencyTable, LayerKeys

ROOT = Path(__file__).resolve().parents[1]
OFA_DIR = ROOT / "data" / "ofa"
FAST = TimingProtocol(warmup=0, repeats=2)


def test_layer_keys_per_resolution_and_unique():
    keys = LayerKeys(1.2).all_keys([160, 176, 192, 208, 224])
    assert {r: len(v) for r, v in keys.items()} == dict.fromkeys((160, 176, 192, 208, 224), 96)
    assert len({k for v in keys.values() for k in v}) == 450
    assert len({k for v in LayerKeys(1.2).all_keys(range(160, 225, 4)).values() for k in v}) == 870
    note10 = LatencyTable(OFA_DIR)
    for r, v in keys.items():  # OFA's published tables hold exactly these keys
        assert set(v) == set(note10.tables[r])


def test_resolution_is_part_of_every_cached_latency():
    """The seed project's memo ignored the resolution; ours keys every cached entry by it."""
    arch = {"ks": [5] * 20, "e": [4] * 20, "d": [3] * 5, "r": 160}
    warm = LatencyTable(OFA_DIR)
    by_r = {r: warm.latency({**arch, "r": r}) for r in (160, 176, 224)}
    assert len(set(by_r.values())) == 3
    for r, ms in by_r.items():
        assert LatencyTable(OFA_DIR).latency({**arch, "r": r}) == ms


@pytest.fixture(scope="module")
def tiny_lut(tmp_path_factory):
    out = tmp_path_factory.mktemp("lut")
    space = get_search_space("mobilenetv3", lr=160, ur=160, width_mult=1.0)
    record = build_lut(space, [160], out, FAST, "here", n_classes=10, progress=False)
    return space, out, record


def test_tiny_lut_round_trips_through_the_latency_objective(tiny_lut):
    space, out, record = tiny_lut
    assert record["keys"] == {"per_resolution": 96, "unique": 96}
    table = yaml.safe_load((out / "here_160_lookup_table.yaml").read_text())
    assert len(table) == 96 and all(v["count"] == 2 and v["mean"] > 0 for v in table.values())
    assert json.loads((out / "protocol.json").read_text())["protocol"]["repeats"] == 2
    flat = {"lr": 160, "ur": 160, "sec_obj": "latency", "latency_model": f"lut:{out}", "costs": ["analytic"]}
    spec = RunSpec.from_flat(flat)
    assert [p.name for p in spec.costs] == ["analytic", "lut_latency"]
    assert spec.costs[1].options.lut_dir == str(out)
    run = build_run(spec)
    arch = space.sample(1, __import__("numpy").random.default_rng(0))[0]
    keys = LayerKeys(1.0, 10).keys(arch)
    assert run.costs.metrics(arch)["latency"] == pytest.approx(sum(table[k]["mean"] for k in keys))
    # a finished table is not measured again; another protocol is refused, not mixed in
    lines = (out / "measurements.jsonl").read_text()
    build_lut(space, [160], out, FAST, "here", n_classes=10, progress=False)
    assert (out / "measurements.jsonl").read_text() == lines
    with pytest.raises(UserError, match="other settings.*repeats"):
        build_lut(space, [160], out, TimingProtocol(warmup=0, repeats=3), "here", 10, False)


def test_key_input_shapes():
    assert key_input_shape("Conv-input:224x224x3-output:112x112x16") == (1, 3, 224, 224)
    assert key_input_shape("Logits-input:1x1x1280-output:10", 4) == (4, 1280)
    with pytest.raises(UserError, match="no input shape"):
        key_input_shape("nonsense")


def test_dataset_resumes_and_tracks_reference_drift(tmp_path):
    space = get_search_space("mobilenetv3", lr=160, ur=176, rstep=16, width_mult=1.0)
    record = build_dataset(space, 3, tmp_path, FAST, n_ref=1, ref_every=2, progress=False)
    rows = list(csv.DictReader(open(tmp_path / "latency.csv")))
    assert len(rows) == 3 and all(float(r["latency_ms"]) > 0 and float(r["iqr_ms"]) >= 0 for r in rows)
    assert {json.loads(r["arch"])["r"] for r in rows} <= {160, 176}
    assert len({r["arch"] for r in rows}) == 3
    refs = list(csv.DictReader(open(tmp_path / "references.csv")))
    assert [r["round"] for r in refs] == ["0", "1", "2"]  # before, after 2 networks, at the end
    assert record["drift"]["rounds"] == 3 and record["drift"] == reference_drift(tmp_path / "references.csv")
    build_dataset(space, 3, tmp_path, FAST, n_ref=1, ref_every=2, progress=False)  # done: nothing new
    assert len(list(csv.DictReader(open(tmp_path / "latency.csv")))) == 3
    with pytest.raises(UserError, match="other settings.*n"):
        build_dataset(space, 4, tmp_path, FAST, n_ref=1, ref_every=2, progress=False)


def test_latency_model_choices_and_errors():
    assert parse_latency_model("lut:data/ofa") == ("lut", "data/ofa")
    assert parse_latency_model("predictor:m.pt") == ("predictor", "m.pt")
    assert parse_latency_model("measured") == ("measured", None)
    for bad in ("lut", "lut:", "measured:x", "gpu"):
        with pytest.raises(UserError, match="--latency_model"):
            parse_latency_model(bad)
    spec = RunSpec.from_flat({"sec_obj": "latency", "latency_model": "measured"})
    assert "latency" in [p.name for p in spec.measures]
    spec = RunSpec.from_flat({"sec_obj": "latency", "latency_model": "lut:/nope"})
    with pytest.raises(UserError, match="does not exist"):
        build_run(spec)


def test_measured_latency_times_the_network_and_restores_it():
    space = get_search_space("mobilenetv3", lr=32, ur=32, width_mult=1.0)
    ctx = EvalContext(space, data=None, device=torch.device("cpu"), n_classes=10)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1))
    net.train()
    m = MeasuredLatency(latency_warmup=1, latency_repeats=5).measure(net, space.smallest(), ctx)
    assert m["latency"] > 0 and m["latency_iqr"] >= 0 and m["latency_threads"] == torch.get_num_threads()
    assert net.training


@pytest.mark.parametrize(
    "tool, args, message",
    [
        ("build_latency_lut", ["--space", "nb201", "--resolutions", "32"], "not an OFA"),
        ("build_latency_lut", ["--resolutions", "16"], "at least 32"),
        ("build_latency_dataset", ["--n", "2", "--repeats", "0"], "--repeats"),
    ],
)
def test_tools_bad_input_one_line(tmp_path, capsys, tool, args, message):
    main = importlib.import_module(f"tools.{tool}").main
    assert run_cli(main, [*args, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_predictor_latency_model_in_a_search_description(tmp_path):
    """--latency_model predictor:FILE: the cost provider prices subnets with the trained model."""
    from hardware.latency_data import lut_labels
    from hardware.predictors import make_predictor

    archs, y = lut_labels(OFA_DIR, 600, seed=0)
    make_predictor("additive").fit(archs, y).save(tmp_path / "m.pt")
    flat = {"lr": 160, "ur": 224, "rstep": 16, "width_mult": 1.2, "sec_obj": "latency"}
    spec = RunSpec.from_flat({**flat, "latency_model": f"predictor:{tmp_path / 'm.pt'}"})
    assert [p.name for p in spec.costs] == ["analytic", "latency_predictor"]
    run = build_run(spec, log=lambda *_: None)
    note10 = LatencyTable(OFA_DIR)
    for arch in run.space.sample(5, __import__("numpy").random.default_rng(1)):
        assert run.costs.metrics(arch)["latency"] == pytest.approx(note10.latency(arch), abs=0.05)
    spec = RunSpec.from_flat({**flat, "latency_model": f"predictor:{tmp_path / 'nope.pt'}"})
    with pytest.raises(UserError, match="nope.pt"):
        build_run(spec, log=lambda *_: None)
