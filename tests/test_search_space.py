"""The OFA MobileNetV3 search space: encoding, ids, subnet files, supernet weights."""

import json

import numpy as np
import pytest
import torch

from nas.errors import UserError
from nas.io import save_checkpoint
from nas.space import get_search_space, list_search_spaces
from NasSearchSpace.ofa_mbv3 import fetch_pretrained
from NasSearchSpace.ofa_mbv3_layout import N_BLOCKS, is_active


@pytest.fixture(scope="module")
def space():
    return get_search_space("mobilenetv3", lr=32, ur=64, rstep=8)


def test_registry_lists_and_rejects():
    assert "mobilenetv3" in list_search_spaces()
    with pytest.raises(UserError, match="unknown search space 'nope'.*mobilenetv3"):
        get_search_space("nope")


def test_bounds_are_exact_per_gene(space):
    assert space.n_var == 46
    assert space.xl.tolist() == [0] * 46
    assert space.xu.tolist() == [2] * 45 + [4]  # resolutions 32, 40, 48, 56, 64
    assert space.resolutions == (32, 40, 48, 56, 64)
    wide = get_search_space("mobilenetv3", lr=192, ur=256, rstep=4)
    assert wide.xu[-1] == 16 and wide.decode(wide.xu)["r"] == 256


@pytest.mark.parametrize("seed", range(5))
def test_encode_decode_round_trip(space, seed):
    rng = np.random.default_rng(seed)
    for arch in space.sample(50, rng):
        x = space.encode(arch)
        assert np.all((x >= space.xl) & (x <= space.xu))
        assert space.decode(x) == arch
        assert np.array_equal(space.encode(space.decode(x)), x)


def test_sampling_reaches_every_option(space):
    x = np.stack([space.encode(a) for a in space.sample(400, np.random.default_rng(1))])
    assert x.min(axis=0).tolist() == space.xl.tolist()
    assert x.max(axis=0).tolist() == space.xu.tolist()


def test_decode_rejects_out_of_bounds(space):
    x = space.xu.copy()
    x[-1] += 1
    with pytest.raises(UserError, match="gene 45 = 5 is outside its bounds"):
        space.decode(x)
    with pytest.raises(UserError, match="expected 46 genes"):
        space.decode(x[:-1])
    with pytest.raises(UserError, match="integers"):
        space.decode(space.xl + 0.5)


def test_reference_points(space):
    assert space.smallest() == {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 32, "w": 1.0}
    assert space.largest() == {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 64, "w": 1.0}
    assert space.middle() == {"ks": [5] * 20, "e": [4] * 20, "d": [3] * 5, "r": 48, "w": 1.0}


def test_arch_id_is_stable_and_ignores_inactive_blocks(space):
    a = space.smallest()
    assert space.arch_id(a) == space.arch_id(json.loads(json.dumps(a)))
    b = dict(a)  # depth 2 everywhere: blocks 2 and 3 of each stage are inactive
    b["ks"] = [3 if is_active(a["d"], j) else 7 for j in range(N_BLOCKS)]
    assert b != a and space.arch_id(b) == space.arch_id(a)
    c = dict(a, ks=[5] + [3] * 19)  # block 0 is active: a different network
    assert space.arch_id(c) != space.arch_id(a)
    ids = {space.arch_id(x) for x in space.sample(200, np.random.default_rng(0))}
    assert len(ids) == 200


def test_arch_id_golden(space):
    """Ids name files and archive entries: they must never change between versions."""
    assert space.arch_id(space.smallest()) == "d134b10dae9e"
    assert space.arch_id(space.largest()) == "6fec1a64afdc"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda a: a.pop("ks"), "lacks ks"),
        (lambda a: a.update(ks=[3] * 19), "list of 20"),
        (lambda a: a.update(e=[3] * 19 + [5]), r"e\[19\] = 5 is not one of \[3, 4, 6\]"),
        (lambda a: a.update(d=[2, 3, 4, 5, 2]), r"d\[3\] = 5"),
        (lambda a: a.update(r=16), "r = 16 must be an integer >= 32"),
        (lambda a: a.update(r="224"), "must be an integer"),
        (lambda a: a.update(w=1.2), "does not match"),
        (lambda a: a.update(ks=[True] * 20), r"ks\[0\] = True"),
    ],
)
def test_validate_rejects_malformed(space, mutate, message):
    a = space.smallest()
    mutate(a)
    with pytest.raises(UserError, match=message):
        space.validate(a)


def test_encode_rejects_resolution_outside_search(space):
    with pytest.raises(UserError, match="resolution 36 is not one of"):
        space.encode(dict(space.smallest(), r=36))


def test_bad_space_arguments():
    with pytest.raises(UserError, match="larger than --ur"):
        get_search_space("mobilenetv3", lr=256, ur=192)
    with pytest.raises(UserError, match="below 32"):
        get_search_space("mobilenetv3", lr=16, ur=32)
    with pytest.raises(UserError, match="width multiplier"):
        get_search_space("mobilenetv3", width_mult=0.5)


def test_subnet_file_round_trip_and_errors(space, tmp_path):
    arch = space.sample(1, np.random.default_rng(3))[0]
    path = tmp_path / "net.subnet"
    space.write_subnet(path, arch)
    assert space.read_subnet(path) == arch
    # the CNAS format without "w" is accepted
    path.write_text(json.dumps({k: arch[k] for k in ("ks", "e", "d", "r")}))
    assert space.read_subnet(path) == arch
    path.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        space.read_subnet(path)
    with pytest.raises(UserError, match="does not exist"):
        space.read_subnet(tmp_path / "missing.subnet")


def _outputs(net, r=32):
    torch.manual_seed(0)
    x = torch.randn(2, 3, r, r)
    net.eval()
    with torch.no_grad():
        return net(x)


def test_build_inherits_supernet_weights(space):
    torch.manual_seed(0)
    supernet = space.make_supernet(10)
    arch = space.sample(1, np.random.default_rng(4))[0]
    space.activate(supernet, arch)
    expected = _outputs(supernet, arch["r"])
    net = space.build(arch, supernet)
    assert torch.allclose(_outputs(net, arch["r"]), expected, atol=1e-5)
    assert net.classifier.linear.out_features == 10


@pytest.mark.parametrize("wrapped", [True, False])
def test_load_weights_round_trip(space, tmp_path, wrapped):
    torch.manual_seed(1)
    src = space.make_supernet(10)
    state = src.state_dict()
    save_checkpoint(tmp_path / "w.pth", {"state_dict": state} if wrapped else state)
    dst = space.make_supernet(10)
    assert space.load_weights(dst, tmp_path / "w.pth") == []
    for k, v in dst.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_load_weights_ofa_key_names(space, tmp_path):
    """OFA's published checkpoints name block convs `mobile_inverted_conv`."""
    torch.manual_seed(2)
    state = space.make_supernet(10).state_dict()
    renamed = {
        k.replace(".conv.", ".mobile_inverted_conv.", 1) if k.startswith("blocks.") else k: v
        for k, v in state.items()
    }
    assert renamed.keys() != state.keys()
    save_checkpoint(tmp_path / "ofa.pth", {"state_dict": renamed})
    dst = space.make_supernet(10)
    space.load_weights(dst, tmp_path / "ofa.pth")
    for k, v in dst.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_load_weights_reinitialises_head_for_other_class_count(space, tmp_path):
    torch.manual_seed(3)
    imagenet = space.make_supernet(1000).state_dict()
    save_checkpoint(tmp_path / "in.pth", {"state_dict": imagenet})
    torch.manual_seed(4)
    dst = space.make_supernet(10)
    head_before = dst.classifier.linear.weight.clone()
    skipped = space.load_weights(dst, tmp_path / "in.pth")
    assert sorted(skipped) == ["classifier.linear.bias", "classifier.linear.weight"]
    assert torch.equal(dst.classifier.linear.weight, head_before)  # not the first rows of ImageNet's
    assert torch.equal(dst.first_conv.conv.weight, imagenet["first_conv.conv.weight"])


def test_load_weights_errors(space, tmp_path):
    dst = space.make_supernet(10)
    with pytest.raises(UserError, match="does not exist"):
        space.load_weights(dst, tmp_path / "missing.pth")
    (tmp_path / "garbage.pth").write_bytes(b"this is not a checkpoint")
    with pytest.raises(UserError, match="cannot be read as a PyTorch checkpoint"):
        space.load_weights(dst, tmp_path / "garbage.pth")
    save_checkpoint(tmp_path / "foreign.pth", {"state_dict": {"fc.weight": torch.zeros(3, 3)}})
    with pytest.raises(UserError, match="not an OFA MobileNetV3"):
        space.load_weights(dst, tmp_path / "foreign.pth")
    wide = get_search_space("mobilenetv3", width_mult=1.2).make_supernet(10).state_dict()
    save_checkpoint(tmp_path / "w12.pth", wide)
    with pytest.raises(UserError, match="does not fit this space"):
        space.load_weights(dst, tmp_path / "w12.pth")


def test_pretrained_download_fails_offline_with_instructions(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(UserError, match=r"download https://.*ofa_mbv3_d234_e346_k357_w1.0 by hand"):
        fetch_pretrained(1.0, tmp_path)
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


def test_features_hide_inactive_blocks(space):
    a = space.smallest()  # depth 2: blocks 2, 3 of every stage are off
    b = dict(a, ks=[7] * 20)
    fa, fb = space.features(a), space.features(b)
    assert fa.shape == (46,)
    for j in range(N_BLOCKS):
        if is_active(a["d"], j):
            assert fa[j] == 1 and fb[j] == 3 and fa[20 + j] == 1
        else:
            assert fa[j] == fb[j] == 0 and fa[20 + j] == 0


def test_gene_groups_name_the_genes(space):
    assert [(g.key, g.size) for g in space.gene_groups] == [("ks", 20), ("e", 20), ("d", 5), ("r", 1)]
    assert space.group_slice("d") == slice(40, 45) and space.group_slice("r") == slice(45, 46)
    with pytest.raises(KeyError):
        space.group_slice("t")


def test_a_subclass_appends_genes_without_reslicing():
    """A task space adds a gene group and an arch key; encoding, decoding, sampling, mutation and
    ids work with no further code (the way the early-exit and layer-skipping spaces extend it)."""
    from nas.space import GeneGroup
    from NasSearchSpace.ofa_mbv3 import OFAMobileNetV3Space

    class WithExits(OFAMobileNetV3Space):
        name = "test_with_exits"

        def extra_gene_groups(self):
            return [GeneGroup("t", (0.1, 0.2, 1.0), 4)]

        def validate_extra(self, arch, out):
            t = arch.get("t")
            if not isinstance(t, list) or len(t) != 4 or any(v not in (0.1, 0.2, 1.0) for v in t):
                raise UserError(f"t must be 4 values of 0.1, 0.2, 1.0, got {t!r}")
            out["t"] = list(t)

    sp = WithExits(lr=32, ur=64, rstep=8)
    assert sp.n_var == 50 and sp.xu[46:].tolist() == [2] * 4 and sp.group_slice("t") == slice(46, 50)
    rng = np.random.default_rng(0)
    for arch in sp.sample(20, rng):
        assert sp.decode(sp.encode(arch)) == arch and len(arch["t"]) == 4
        child = sp.mutate(arch, rng)
        assert sp.arch_id(child) != sp.arch_id(arch)
        assert int(np.sum(sp.encode(child) != sp.encode(arch))) == 1
    assert sp.feature_names()[-4:] == ["t.0", "t.1", "t.2", "t.3"] and len(sp.features(arch)) == 50


def test_mutate_and_neighbours_change_the_network(space):
    rng = np.random.default_rng(3)
    arch = space.sample(1, rng)[0]
    ids = {space.arch_id(n) for n in space.neighbours(arch)}
    assert space.arch_id(arch) not in ids
    # one-gene changes of inactive blocks are not new networks: fewer neighbours than gene changes
    assert len(ids) == len(space.neighbours(arch)) < int((space.xu - space.xl).sum())
    for _ in range(30):
        assert space.arch_id(space.mutate(arch, rng)) in ids


def test_capabilities_are_declared_and_checked(space):
    nb = get_search_space("nb201")
    assert space.has("supernet") and space.has("block_costs") and space.resolution(space.smallest()) == 32
    assert not nb.has("supernet") and nb.has("costs") and nb.resolution(nb.smallest()) is None
    with pytest.raises(
        UserError, match="search space .nb201. has no weight-sharing supernet, which inheriting weights needs"
    ):
        nb.require("supernet", "inheriting weights")

    from nas.space import SearchSpace

    with pytest.raises(TypeError, match="declares capability 'supernet'"):

        class Broken(SearchSpace):  # noqa: F841 (the error is raised by the class statement)
            capabilities = frozenset({"supernet"})
