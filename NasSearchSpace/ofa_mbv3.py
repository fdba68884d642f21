"""The Once-for-All MobileNetV3 space (``ofa_mbv3_d234_e346_k357_w1.0`` and its w1.2 twin).

Architecture (what ``net.subnet`` holds, the CNAS/nsganetv2 format)::

    {"ks": [20 ints in {3,5,7}], "e": [20 ints in {3,4,6}], "d": [5 ints in {2,3,4}],
     "r": resolution, "w": width multiplier}

Block ``j`` (0..19) is block ``j % 4`` of stage ``j // 4`` and is active when
``j % 4 < d[j // 4]``; the kernel and expand values of inactive blocks have no effect, so
:meth:`canonical` resets them and :meth:`arch_id` ignores them.

Genes (one integer per gene, an index into that gene's option list, bounds exact per gene)::

    x[0:20]  kernel size of block j      0..len(ks_options)-1
    x[20:40] expand ratio of block j     0..len(e_options)-1
    x[40:45] depth of stage s            0..len(d_options)-1
    x[45]    input resolution            0..len(resolutions)-1   (lr, lr+rstep, ..., <= ur)

Networks are built with the ``ofa`` package's ``OFAMobileNetV3`` (weight-sharing supernet)
and its ``get_active_subnet``; nothing of it is copied here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch.nn as nn
from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

from nas.errors import UserError
from nas.io import load_checkpoint
from NasSearchSpace import SEARCH_SPACES
from NasSearchSpace.base import Arch, SearchSpace

N_STAGES = 5
MAX_DEPTH = 4
N_BLOCKS = N_STAGES * MAX_DEPTH

# Where downloaded OFA supernets are kept (git-ignored).
DEFAULT_SUPERNET_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ofa", "supernets")
# Where the OFA authors publish their ImageNet supernets (used by --pretrained without a file).
PRETRAINED_URL = "https://raw.githubusercontent.com/han-cai/files/master/ofa/ofa_nets/{name}"


def supernet_name(width_mult: float) -> str:
    return f"ofa_mbv3_d234_e346_k357_w{width_mult}"


@SEARCH_SPACES.register("mobilenetv3")
class OFAMobileNetV3Space(SearchSpace):
    """OFA MobileNetV3 subnets; ``lr``/``ur``/``rstep`` set the resolution genes."""

    name = "mobilenetv3"

    def __init__(
        self,
        lr: int = 192,
        ur: int = 256,
        rstep: int = 4,
        width_mult: float = 1.0,
        ks_options: Sequence[int] = (3, 5, 7),
        e_options: Sequence[int] = (3, 4, 6),
        d_options: Sequence[int] = (2, 3, 4),
    ) -> None:
        if not (isinstance(lr, int) and isinstance(ur, int) and isinstance(rstep, int)):
            raise UserError("--lr, --ur and --rstep must be integers")
        if lr < 32:
            raise UserError(f"--lr {lr} is below 32 pixels; the network downsamples 32x, use --lr >= 32")
        if lr > ur:
            raise UserError(f"--lr {lr} is larger than --ur {ur}; swap them")
        if rstep < 1:
            raise UserError(f"--rstep {rstep} must be >= 1")
        if width_mult not in (1.0, 1.2):
            raise UserError(f"width multiplier {width_mult} is not an OFA space; use 1.0 or 1.2")
        self.width_mult = float(width_mult)
        self.ks_options = tuple(sorted(ks_options))
        self.e_options = tuple(sorted(e_options))
        self.d_options = tuple(sorted(d_options))
        self.resolutions = tuple(range(lr, ur + 1, rstep))
        self.xl = np.zeros(2 * N_BLOCKS + N_STAGES + 1, dtype=int)
        self.xu = np.array(
            [len(self.ks_options) - 1] * N_BLOCKS
            + [len(self.e_options) - 1] * N_BLOCKS
            + [len(self.d_options) - 1] * N_STAGES
            + [len(self.resolutions) - 1],
            dtype=int,
        )

    # ---- encoding -------------------------------------------------------------------------

    def encode(self, arch: Arch) -> np.ndarray:
        arch = self.validate(arch)
        if arch["r"] not in self.resolutions:
            raise UserError(
                f"resolution {arch['r']} is not one of this search's {list(self.resolutions)}; "
                "change --lr/--ur/--rstep"
            )
        return np.array(
            [self.ks_options.index(k) for k in arch["ks"]]
            + [self.e_options.index(e) for e in arch["e"]]
            + [self.d_options.index(d) for d in arch["d"]]
            + [self.resolutions.index(arch["r"])],
            dtype=int,
        )

    def decode(self, x: np.ndarray) -> Arch:
        x = self.check_genes(x)
        n = N_BLOCKS
        return {
            "ks": [self.ks_options[i] for i in x[:n]],
            "e": [self.e_options[i] for i in x[n : 2 * n]],
            "d": [self.d_options[i] for i in x[2 * n : 2 * n + N_STAGES]],
            "r": self.resolutions[x[-1]],
            "w": self.width_mult,
        }

    def validate(self, arch: Any) -> Arch:
        if not isinstance(arch, dict):
            raise UserError(f"a subnet must be a JSON object with ks, e, d, r; got {type(arch).__name__}")
        missing = [k for k in ("ks", "e", "d", "r") if k not in arch]
        if missing:
            raise UserError(f"subnet lacks {', '.join(missing)}; it needs ks (20), e (20), d (5) and r")
        for key, n, options in (
            ("ks", N_BLOCKS, self.ks_options),
            ("e", N_BLOCKS, self.e_options),
            ("d", N_STAGES, self.d_options),
        ):
            v = arch[key]
            if not isinstance(v, list) or len(v) != n:
                raise UserError(f"subnet {key!r} must be a list of {n} integers, got {v!r}")
            for i, item in enumerate(v):
                if item not in options or isinstance(item, bool):
                    raise UserError(f"subnet {key}[{i}] = {item!r} is not one of {list(options)}")
        r = arch["r"]
        if isinstance(r, bool) or not isinstance(r, int) or r < 32:
            raise UserError(f"subnet resolution r = {r!r} must be an integer >= 32")
        w = arch.get("w", self.width_mult)
        if w != self.width_mult:
            raise UserError(f"subnet width w = {w!r} does not match this space's width {self.width_mult}")
        return {
            "ks": list(arch["ks"]),
            "e": list(arch["e"]),
            "d": list(arch["d"]),
            "r": r,
            "w": self.width_mult,
        }

    def canonical(self, arch: Arch) -> Arch:
        arch = self.validate(arch)
        ks, e = list(arch["ks"]), list(arch["e"])
        for j in range(N_BLOCKS):
            if not is_active(arch["d"], j):
                ks[j], e[j] = self.ks_options[0], self.e_options[0]
        return {**arch, "ks": ks, "e": e}

    def features(self, arch: Arch) -> np.ndarray:
        """Surrogate features: the genes, with the kernel and expand genes of blocks the depth
        switches off set to 0 and active ones to 1..n (inactive genes are noise to a model)."""
        x = self.encode(arch).astype(float)
        for j in range(N_BLOCKS):
            if is_active(arch["d"], j):
                x[j] += 1
                x[N_BLOCKS + j] += 1
            else:
                x[j] = x[N_BLOCKS + j] = 0
        return x

    def feature_names(self) -> list[str]:
        """``ks.s<s>.b<b>`` and ``e.s<s>.b<b>`` for block ``b`` (0..3) of stage ``s`` (0..4), then
        ``d.s<s>`` and ``r``, in the order of :meth:`features`."""
        blocks = [f"s{j // MAX_DEPTH}.b{j % MAX_DEPTH}" for j in range(N_BLOCKS)]
        return (
            [f"ks.{b}" for b in blocks]
            + [f"e.{b}" for b in blocks]
            + [f"d.s{s}" for s in range(N_STAGES)]
            + ["r"]
        )

    # ---- reference points -----------------------------------------------------------------

    def smallest(self) -> Arch:
        return self.decode(self.xl)

    def largest(self) -> Arch:
        return self.decode(self.xu)

    def middle(self) -> Arch:
        """The middle option of every gene (kernel 5, expand 4, depth 3, middle resolution)."""
        return self.decode((self.xl + self.xu) // 2)

    # ---- networks -------------------------------------------------------------------------

    def make_supernet(self, n_classes: int, dropout_rate: float = 0.1) -> OFAMobileNetV3:
        """A randomly initialised weight-sharing supernet with a head for ``n_classes``."""
        return OFAMobileNetV3(
            n_classes=n_classes,
            dropout_rate=dropout_rate,
            width_mult=self.width_mult,
            ks_list=list(self.ks_options),
            expand_ratio_list=list(self.e_options),
            depth_list=list(self.d_options),
        )

    def activate(self, supernet: OFAMobileNetV3, arch: Arch) -> None:
        """Make ``supernet``'s forward pass run the subnet ``arch`` (weights shared, nothing copied)."""
        supernet.set_active_subnet(ks=arch["ks"], e=arch["e"], d=arch["d"])

    def load_weights(self, supernet: OFAMobileNetV3, path: str | os.PathLike | None) -> list[str]:
        """Load ``path`` (an OFA-format checkpoint) into ``supernet``; ``None``: OFA's ImageNet weights.

        Returns the names of classifier tensors skipped because the class count differs.
        """
        if path is None:
            path = fetch_pretrained(self.width_mult, DEFAULT_SUPERNET_DIR)
        return load_supernet_weights(supernet, path)

    def build(self, arch: Arch, supernet: nn.Module | None = None, n_classes: int = 1000) -> nn.Module:
        """A stand-alone MobileNetV3 with the weights ``supernet`` holds for ``arch``."""
        arch = self.validate(arch)
        if supernet is None:
            supernet = self.make_supernet(n_classes)
        self.activate(supernet, arch)
        return supernet.get_active_subnet(preserve_weight=True)

    def costs(self, arch: Arch, n_classes: int) -> dict[str, float]:
        """Params, MACs and activations (millions, batch 1) of ``arch`` with ``n_classes`` outputs.

        Analytic (no network built); equal to :func:`nas.costs.measure_costs` on :meth:`build`.
        """
        from NasSearchSpace.ofa_mbv3_costs import analytic_costs

        return analytic_costs(self.validate(arch), n_classes, self.width_mult)


def is_active(depths: Sequence[int], block: int) -> bool:
    """Whether block ``block`` (0..19) runs for stage depths ``depths``."""
    return block % MAX_DEPTH < depths[block // MAX_DEPTH]


# ---- supernet weights ---------------------------------------------------------------------


def load_supernet_weights(supernet: OFAMobileNetV3, path: str | os.PathLike) -> list[str]:
    """Load an OFA-format checkpoint (a state dict, maybe under ``"state_dict"``) into ``supernet``.

    Classifier weights whose shape differs (an ImageNet head on a CIFAR supernet) are skipped,
    so the head keeps its fresh initialisation. Returns the names of the skipped tensors.
    """
    ckpt = load_checkpoint(path, "supernet checkpoint")
    state = ckpt.get("state_dict", ckpt)
    if not isinstance(state, dict) or not state:
        raise UserError(f"supernet checkpoint {str(path)!r} holds no state dict")
    own = supernet.state_dict()
    skipped = []
    for key in list(state):
        alias = key.replace(".linear.linear.", ".linear.")
        target = key if key in own else alias if alias in own else None
        if target is not None and tuple(state[key].shape) != tuple(own[target].shape):
            if not target.startswith("classifier."):
                raise UserError(
                    f"supernet checkpoint {str(path)!r} does not fit this space: {key} has shape "
                    f"{tuple(state[key].shape)}, expected {tuple(own[target].shape)}; check --supernet_path"
                )
            skipped.append(key)
            del state[key]
    try:
        supernet.load_state_dict(state)
    except (AssertionError, ValueError, RuntimeError, KeyError) as e:
        raise UserError(
            f"supernet checkpoint {str(path)!r} is not an OFA MobileNetV3 w{supernet.width_mult} "
            f"state dict ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from None
    return skipped


def fetch_pretrained(width_mult: float, dest_dir: str | os.PathLike) -> str:
    """The OFA authors' ImageNet supernet file, downloaded into ``dest_dir`` once.

    Offline, fails with a message that says which file to put where.
    """
    import torch.hub

    name = supernet_name(width_mult)
    dest = os.path.join(dest_dir, name)
    if os.path.isfile(dest):
        return dest
    url = PRETRAINED_URL.format(name=name)
    try:
        os.makedirs(dest_dir, exist_ok=True)
        torch.hub.download_url_to_file(url, dest + ".part", progress=True)
        os.replace(dest + ".part", dest)
    except Exception as e:
        if os.path.exists(dest + ".part"):
            os.unlink(dest + ".part")
        raise UserError(
            f"cannot download the pretrained supernet ({type(e).__name__}); download {url} by hand and "
            f"pass it with --supernet_path, or put it at {dest}, or train one with `train.py supernet`"
        ) from None
    return dest
