"""Latency predictors: true RMSE, per-resolution one-hots, unique splits, exact additive fits,
files that round-trip, head-only fine-tuning, the CLI and its one-line errors."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from hardware.latency_data import (
    arch_json,
    arch_key,
    canonical_arch,
    lut_labels,
    read_dataset,
    read_references,
    read_subnets,
    split_unique,
    write_dataset,
)
from hardware.metrics import latency_metrics
from hardware.predictors import (
    GeneralisedMLP,
    OneHotEncoding,
    export_trees,
    hardware_embedding,
    load_predictor,
    make_predictor,
    predict_trees,
    transfer_curve,
    with_options,
)
from nas.cli import run_cli
from nas.errors import UserError
from nas.space import get_search_space
from tools import latency_predictor

ROOT = Path(__file__).resolve().parents[1]
OFA_DIR = str(ROOT / "data" / "ofa")
TINY_MLP = dict(hidden=16, epochs=3, batch_size=0, finetune_epochs=3)


@pytest.fixture(scope="module")
def data160():
    """200 training and 60 test networks at r = 160 with their exact Note10 table sums."""
    a, y = lut_labels(OFA_DIR, 200, 0, resolutions=[160])
    te, ty = lut_labels(OFA_DIR, 60, 1, resolutions=[160], exclude={arch_key(x) for x in a})
    return a, y, te, ty


def test_metrics_are_a_true_rmse():
    t, p = [10.0, 20.0, 40.0, 50.0], [11.0, 18.0, 40.0, 54.0]  # errors 1, -2, 0, 4
    m = latency_metrics(t, p)
    assert m["rmse"] == pytest.approx(math.sqrt((1 + 4 + 0 + 16) / 4))  # 2.2913
    assert m["mae"] == pytest.approx(7 / 4)
    seed_rmse = np.mean(np.sqrt((np.array(p) - t) ** 2 + 1e-6))  # the seed's "RMSE"
    assert seed_rmse == pytest.approx(m["mae"], abs=1e-3) and m["rmse"] > m["mae"] + 0.5
    assert m["mape"] == pytest.approx((10 + 10 + 0 + 8) / 4)
    assert m["within5"] == 25.0 and m["within10"] == 100.0  # 10% counts as within
    assert m["spearman"] == pytest.approx(1.0) and m["kendall"] == pytest.approx(1.0)
    assert m["bias"] == pytest.approx(3 / 4) and m["max_abs"] == 4.0
    with pytest.raises(UserError, match="as many"):
        latency_metrics([1.0, 2.0], [1.0])
    with pytest.raises(UserError, match="positive"):
        latency_metrics([0.0, 2.0], [1.0, 2.0])


def test_resolution_one_hot_separates_every_resolution():
    space = get_search_space("mobilenetv3", lr=160, ur=224, rstep=4, width_mult=1.2)
    enc = OneHotEncoding(space.resolutions)
    assert enc.dim == 120 + 17
    a = canonical_arch(space.sample(1, np.random.default_rng(0))[0] | {"r": 160})
    b = a | {"r": 164}
    assert (160 - 112) // 16 == (164 - 112) // 16  # the seed's bins merge them
    xa, xb = enc.encode([a, b])
    assert not np.array_equal(xa, xb) and xa[120:].sum() == xb[120:].sum() == 1
    assert xa[:120].sum() == 2 * sum(a["d"])  # one kernel and one expand slot per active block
    with pytest.raises(UserError, match="resolution 170"):
        enc.encode([a | {"r": 170}])


def test_split_has_no_network_in_two_parts():
    space = get_search_space("mobilenetv3", lr=160, ur=224, rstep=16, width_mult=1.2)
    archs = space.sample(40, np.random.default_rng(0))
    twins = []
    for a in archs[:10]:  # the same networks again, with other genes in blocks the depth turns off
        b = {**a, "ks": list(a["ks"]), "d": list(a["d"])}
        b["d"][0] = 2
        a["d"][0] = 2
        b["ks"][3] = 7 if a["ks"][3] != 7 else 3
        twins.append(b)
    y = np.arange(1, 51, dtype=float)
    parts = split_unique(archs + twins, y, [0.6, 0.2, 0.2], seed=3)
    keys = [{arch_key(a) for a in p[0]} for p in parts]
    assert sum(len(k) for k in keys) == sum(len(p[0]) for p in parts) == 40
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    merged = {arch_key(a): v for p in parts for a, v in zip(*p, strict=True)}
    assert merged[arch_key(canonical_arch(archs[0]))] == (1 + 41) / 2  # repeated measurements averaged
    assert [len(p[0]) for p in split_unique(archs, y[:40], [10, 5], seed=0)] == [10, 5]


def test_additive_recovers_table_sums(data160):
    a, y, te, ty = data160
    model = make_predictor("additive").fit(a, y)
    assert latency_metrics(ty, model.predict(te))["rmse"] < 1e-5
    # a resolution never trained on: an error, or the MAC-based prior prices every layer
    other = lut_labels(OFA_DIR, 20, 2, resolutions=[176])
    with pytest.raises(UserError, match="trained at resolutions \\[160\\], not 176"):
        model.predict(other[0][:1])
    pred = with_options(model, unseen="prior_all").predict(other[0])
    assert latency_metrics(other[1], pred)["mape"] < 25
    strict = make_predictor("additive", unseen="error").fit(a[:30], y[:30])  # too few to see every key
    with pytest.raises(UserError, match="never saw layer"):
        strict.predict(te)


def test_files_round_trip_with_identical_predictions(tmp_path, data160):
    a, y, te, _ = data160
    models = [
        make_predictor("mlp", **TINY_MLP).fit(a, y),
        make_predictor("additive").fit(a[:50], y[:50]),
        make_predictor("gbdt", max_iter=30).fit(a[:100], y[:100]),
        make_predictor("calibrated_lut", lut_dir=OFA_DIR).fit(a[:5], 2 * y[:5]),
    ]
    for model in models:
        path = tmp_path / f"{model.name}.pt"
        model.save(path)
        back = load_predictor(path)
        assert type(back) is type(model) and back.width_mult == 1.2
        assert np.array_equal(back.predict(te), model.predict(te)), model.name
        assert back.train_keys == model.train_keys
    assert models[3].a == pytest.approx(2.0) and abs(models[3].b) < 1e-6
    assert models[0].state()["resolutions"] == [160]


def test_exported_trees_equal_scikit_learn():
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    y = x[:, 0] * 3 + np.sin(x[:, 1])
    model = HistGradientBoostingRegressor(max_iter=20, random_state=0).fit(x, y)
    x_new = rng.normal(size=(50, 4))
    assert np.allclose(predict_trees(export_trees(model), x_new), model.predict(x_new), atol=1e-9)


def test_head_finetuning_changes_only_the_head(data160):
    a, y, te, ty = data160
    source = make_predictor("mlp", **TINY_MLP).fit(a, y)
    before = {k: v.clone() for k, v in source.net.state_dict().items()}
    tuned = source.copy().finetune(te[:10], 2 * ty[:10], "head", seed=1)
    after = tuned.net.state_dict()
    last = f"{len(tuned.net) - 1}."
    for k, v in before.items():
        assert torch.equal(v, after[k]) != k.startswith(last), k
    assert tuned.scale == pytest.approx(float(np.mean(2 * ty[:10])))
    full = source.copy().finetune(te[:10], 2 * ty[:10], "full", seed=1)
    assert not torch.equal(full.net.state_dict()["0.weight"], before["0.weight"])
    with pytest.raises(UserError, match="cannot be fine-tuned"):
        make_predictor("additive").fit(a, y).finetune(a, y, "head")
    rows = transfer_curve(
        source, a, 2 * y, te, 2 * ty, ks=(5,), seeds=(0,), methods=("source", "head", "calibrated_lut")
    )
    assert [(r["method"], r["k"]) for r in rows] == [("source", 0), ("head", 5), ("calibrated_lut", 5)]
    assert rows[2]["rmse"] < 1e-6  # an exact linear map of the table sums


def test_generalised_predictor_uses_the_device_features(tmp_path, data160):
    a, y, te, _ = data160
    refs = tmp_path / "references.csv"
    quoted = ['"' + arch_json(x).replace('"', '""') + '"' for x in a[:3]]
    lines = [f"{k},0,{i},{quoted[i]},{v},0.1" for k, v in ((0, 2), (1, 4)) for i in range(3)]
    refs.write_text("round,after,ref,arch,latency_ms,iqr_ms\n" + "\n".join(lines) + "\n")
    ref_archs, ref_ms = read_references(refs)
    assert ref_archs == a[:3] and list(ref_ms) == [3.0, 3.0, 3.0]  # the median of the two rounds
    assert hardware_embedding(ref_ms) == pytest.approx([math.log(3.0)] * 3)
    model = GeneralisedMLP(**TINY_MLP).fit_devices({"a": (a, y), "b": (a, 3 * y)}, {"a": [0.0], "b": [1.0]})
    assert not np.array_equal(model.predict(te[:5], [0.0]), model.predict(te[:5], [1.0]))
    model.save(tmp_path / "g.pt")
    assert np.array_equal(load_predictor(tmp_path / "g.pt").predict(te[:5]), model.predict(te[:5]))


def cli(*argv):
    return run_cli(latency_predictor.main, list(argv))


def test_cli_train_predict_evaluate(tmp_path, capsys, data160):
    a, y, te, ty = data160
    csv = tmp_path / "latency.csv"
    write_dataset(csv, a, y * 1.1 + 0.5, np.full(len(a), 0.1))
    assert read_dataset(csv).archs == a
    model = tmp_path / "m.pt"
    assert cli("train", "--csv", str(csv), "--kind", "additive", "--out", str(model)) == 0
    assert "validation (30 held-out networks" in capsys.readouterr().out
    subnets = tmp_path / "s.jsonl"
    rows = [
        te[0],
        {"arch": te[1], "top1": 70.0},
        {"id": "x", "subnet": {k: v for k, v in te[2].items() if k != "w"}},
    ]
    subnets.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert len(read_subnets(subnets)) == 3
    assert cli("predict", "--model", str(model), "--subnets", str(subnets)) == 0
    printed = [float(v) for v in capsys.readouterr().out.split()]
    assert printed == pytest.approx(list(load_predictor(model).predict(te[:3])), abs=1e-4)
    assert printed == pytest.approx(list(ty[:3] * 1.1 + 0.5), rel=1e-4)
    lut = ("--lut", OFA_DIR, "--resolutions", "160")
    assert cli("evaluate", "--model", str(model), *lut, "--n_samples", "20", "--seed", "5", "--json") == 0
    assert json.loads(capsys.readouterr().out)["n"] == 20
    tiny = tmp_path / "tiny.pt"
    assert cli("train", *lut, "--n_samples", "30", "--kind", "mlp", "--set", "hidden=8", "epochs=2",
               "--out", str(tiny)) == 0  # fmt: skip
    tuned = tmp_path / "tuned.pt"
    assert cli("train", "--csv", str(csv), "--init", str(tiny), "--finetune", "head",
               "--set", "finetune_epochs=2", "--out", str(tuned), "--json") == 0  # fmt: skip
    out = capsys.readouterr().out.strip().splitlines()
    assert load_predictor(tuned).info["finetune"]["mode"] == "head" and "rmse" in json.loads(out[-1])


def test_bad_inputs_give_one_line_errors(tmp_path, capsys):
    def error(*argv):
        assert cli(*argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err
        return err

    assert "does not exist" in error("predict", "--model", str(tmp_path / "none.pt"), "--subnets", "x.jsonl")
    bad = tmp_path / "bad.csv"
    bad.write_text("net,ms\n{},1\n")
    assert "lacks the column(s) arch, latency_ms" in error("train", "--csv", str(bad), "--out", "m.pt")
    bad.write_text('arch,latency_ms\n"{not json",1\n')
    assert "line 2: arch is not valid JSON" in error("train", "--csv", str(bad), "--out", "m.pt")
    arch = json.dumps(
        {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 160, "w": 1.2}, separators=(",", ":")
    )
    bad.write_text("arch,latency_ms\n" + '"' + arch.replace('"', '""') + '",-1\n')
    assert "must be positive" in error("train", "--csv", str(bad), "--out", "m.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    assert "not a latency predictor file" in error("predict", "--model", str(foreign), "--subnets", "x")
    assert "needs --n_samples" in error("train", "--lut", OFA_DIR, "--out", "m.pt")
    assert "--set 'nope=1'" in error(
        "train", "--lut", OFA_DIR, "--n_samples", "5", "--set", "nope=1", "--out", "m.pt"
    )
