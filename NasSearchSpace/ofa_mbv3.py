"""The Once-for-All MobileNetV3 space (``ofa_mbv3_d234_e346_k357_w1.0`` and its w1.2 twin).

Architecture (what ``net.subnet`` holds, the CNAS/nsganetv2 format)::

    {"ks": [20 ints in {3,5,7}], "e": [20 ints in {3,4,6}], "d": [5 ints in {2,3,4}],
     "r": resolution, "w": width multiplier}

CNAS's compact form, in which ``ks`` and ``e`` list only the ``sum(d)`` active blocks, is read
too (:func:`expand_compact`); files are always written in the full form.

Block ``j`` (0..19) is block ``j % 4`` of stage ``j // 4`` and is active when
``j % 4 < d[j // 4]``; the kernel and expand values of inactive blocks have no effect, so
:meth:`canonical` resets them and :meth:`arch_id` ignores them.

Genes (one integer per gene, an index into that gene's option list, bounds exact per gene)::

    x[0:20]  kernel size of block j      0..len(ks_options)-1
    x[20:40] expand ratio of block j     0..len(e_options)-1
    x[40:45] depth of stage s            0..len(d_options)-1
    x[45]    input resolution            0..len(resolutions)-1   (lr, lr+rstep, ..., <= ur)

These are the space's gene groups ``ks``, ``e``, ``d``, ``r`` (:class:`nas.space.GeneGroup`);
task spaces (early exits, layer skipping) subclass it and append groups of their own.

Networks are built with the ``ofa`` package's ``OFAMobileNetV3`` (weight-sharing supernet)
and its ``get_active_subnet``; nothing of it is copied here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.config import option
from nas.errors import UserError
from nas.io import load_checkpoint
from nas.space import SEARCH_SPACES, Arch, GeneGroup, SearchSpace
from NasSearchSpace.ofa_mbv3_layout import (
    D_OPTIONS,
    E_OPTIONS,
    KS_OPTIONS,
    MAX_DEPTH,
    N_BLOCKS,
    N_STAGES,
    is_active,
)

# Where downloaded OFA supernets are kept (git-ignored).
DEFAULT_SUPERNET_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ofa", "supernets")
# Where the OFA authors publish their ImageNet supernets (used by --pretrained without a file).
PRETRAINED_URL = "https://raw.githubusercontent.com/han-cai/files/master/ofa/ofa_nets/{name}"


def supernet_name(width_mult: float) -> str:
    return f"ofa_mbv3_d234_e346_k357_w{width_mult}"


@SEARCH_SPACES.register("mobilenetv3")
class OFAMobileNetV3Space(SearchSpace):
    """OFA MobileNetV3 subnets; ``lr``/``ur``/``rstep`` set the resolution genes.

    Gene groups (in gene order): ``ks`` (20), ``e`` (20), ``d`` (5), ``r`` (1). A subclass appends
    its own after them with :meth:`extra_gene_groups` (every base gene keeps its position), checks
    the keys it adds to the architecture dict with :meth:`validate_extra` and resets genes without
    effect with :meth:`canonical_extra`; encoding, decoding, sampling and mutation then need no
    further code.
    """

    name = "mobilenetv3"
    capabilities = frozenset({"supernet", "costs", "block_costs", "resolution"})

    @dataclass
    class Options:
        lr: int = option(192, "lowest input resolution, pixels")
        ur: int = option(256, "highest input resolution, pixels")
        rstep: int = option(4, "resolution step, pixels")
        width_mult: float = option(1.0, "OFA width multiplier (1.0 or 1.2)")

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        o = self.options
        lr, ur, rstep = o.lr, o.ur, o.rstep
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lr, ur, rstep)):
            raise UserError("--lr, --ur and --rstep must be integers")
        if lr < 32:
            raise UserError(f"--lr {lr} is below 32 pixels; the network downsamples 32x, use --lr >= 32")
        if lr > ur:
            raise UserError(f"--lr {lr} is larger than --ur {ur}; swap them")
        if rstep < 1:
            raise UserError(f"--rstep {rstep} must be >= 1")
        if o.width_mult not in (1.0, 1.2):
            raise UserError(f"width multiplier {o.width_mult} is not an OFA space; use 1.0 or 1.2")
        self.width_mult = float(o.width_mult)
        self.ks_options, self.e_options, self.d_options = KS_OPTIONS, E_OPTIONS, D_OPTIONS
        self.resolutions = tuple(range(lr, ur + 1, rstep))
        self.set_gene_groups(
            [
                GeneGroup("ks", KS_OPTIONS, N_BLOCKS),
                GeneGroup("e", E_OPTIONS, N_BLOCKS),
                GeneGroup("d", D_OPTIONS, N_STAGES),
                GeneGroup("r", self.resolutions, 1, scalar=True),
                *self.extra_gene_groups(),
            ]
        )

    @classmethod
    def for_arch(cls, arch: Any, **options: Any) -> OFAMobileNetV3Space:
        """The space of ``arch``'s width whose resolutions reach ``arch``'s (for tools that read a
        ``net.subnet`` without a run: cost counting, export, fine-tuning)."""
        w = arch.get("w", 1.0) if isinstance(arch, dict) else 1.0
        r = arch.get("r") if isinstance(arch, dict) else None
        ur = r if isinstance(r, int) and not isinstance(r, bool) and r >= 32 else 32
        return cls(**{"lr": 32, "ur": ur, "rstep": 1, "width_mult": w, **options})

    # ---- what a subclass adds -------------------------------------------------------------

    def extra_gene_groups(self) -> list[GeneGroup]:
        """Gene groups a subclass appends after the base genes (exit thresholds, gates, ...)."""
        return []

    def validate_extra(self, arch: dict[str, Any], out: dict[str, Any]) -> None:
        """Check and copy into ``out`` the keys a subclass adds to the architecture dict."""

    def canonical_extra(self, arch: dict[str, Any]) -> dict[str, Any]:
        """:meth:`canonical` of the keys a subclass adds (default: unchanged)."""
        return arch

    # ---- encoding -------------------------------------------------------------------------

    def encode(self, arch: Arch) -> np.ndarray:
        arch = self.validate(arch)
        if arch["r"] not in self.resolutions:
            raise UserError(
                f"resolution {arch['r']} is not one of this search's {list(self.resolutions)}; "
                "change --lr/--ur/--rstep"
            )
        return super().encode(arch)

    def finish_decode(self, arch: dict[str, Any]) -> Arch:
        return {**arch, "w": self.width_mult}

    def validate(self, arch: Any) -> Arch:
        if not isinstance(arch, dict):
            raise UserError(f"a subnet must be a JSON object with ks, e, d, r; got {type(arch).__name__}")
        missing = [k for k in ("ks", "e", "d", "r") if k not in arch]
        if missing:
            raise UserError(f"subnet lacks {', '.join(missing)}; it needs ks (20), e (20), d (5) and r")
        arch = expand_compact(arch, self.ks_options[0], self.e_options[0])
        for key, n, options in (
            ("ks", N_BLOCKS, self.ks_options),
            ("e", N_BLOCKS, self.e_options),
            ("d", N_STAGES, self.d_options),
        ):
            v = arch[key]
            if not isinstance(v, list) or len(v) != n:
                compact = " (or one per active block, CNAS's compact form)" if key != "d" else ""
                raise UserError(f"subnet {key!r} must be a list of {n} integers{compact}, got {v!r}")
            for i, item in enumerate(v):
                if item not in options or isinstance(item, bool):
                    raise UserError(f"subnet {key}[{i}] = {item!r} is not one of {list(options)}")
        r = arch["r"]
        if isinstance(r, bool) or not isinstance(r, int) or r < 32:
            raise UserError(f"subnet resolution r = {r!r} must be an integer >= 32")
        w = arch.get("w", self.width_mult)
        if w != self.width_mult:
            raise UserError(f"subnet width w = {w!r} does not match this space's width {self.width_mult}")
        out = {
            "ks": list(arch["ks"]),
            "e": list(arch["e"]),
            "d": list(arch["d"]),
            "r": r,
            "w": self.width_mult,
        }
        self.validate_extra(arch, out)
        return out

    def canonical(self, arch: Arch) -> Arch:
        arch = self.validate(arch)
        ks, e = list(arch["ks"]), list(arch["e"])
        for j in range(N_BLOCKS):
            if not is_active(arch["d"], j):
                ks[j], e[j] = self.ks_options[0], self.e_options[0]
        return self.canonical_extra({**arch, "ks": ks, "e": e})

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

    def growth_groups(self) -> list[np.ndarray]:
        """The resolution first, then stage by stage (its depth and its blocks' kernel sizes and
        expand ratios), as a network is built from input to output; a subclass's groups follow."""
        r = self.group_slice("r").start
        stages = [
            np.r_[
                self.group_slice("d").start + s,
                np.arange(s * MAX_DEPTH, (s + 1) * MAX_DEPTH),
                N_BLOCKS + np.arange(s * MAX_DEPTH, (s + 1) * MAX_DEPTH),
            ]
            for s in range(N_STAGES)
        ]
        extra = [np.arange(self.n_var)[self.group_slice(g.key)] for g in self.extra_gene_groups()]
        return [np.array([r]), *stages, *extra]

    def feature_names(self) -> list[str]:
        """``ks.s<s>.b<b>`` and ``e.s<s>.b<b>`` for block ``b`` (0..3) of stage ``s`` (0..4), then
        ``d.s<s>`` and ``r``, in the order of :meth:`features`; a subclass's groups follow."""
        blocks = [f"s{j // MAX_DEPTH}.b{j % MAX_DEPTH}" for j in range(N_BLOCKS)]
        base = [f"ks.{b}" for b in blocks] + [f"e.{b}" for b in blocks] + [f"d.s{s}" for s in range(N_STAGES)]
        extra = [
            g.key if g.size == 1 else f"{g.key}.{i}" for g in self.extra_gene_groups() for i in range(g.size)
        ]
        return [*base, "r", *extra]

    def resolution(self, arch: Arch) -> int:
        return int(arch["r"])

    # ---- reference points -----------------------------------------------------------------

    def middle(self) -> Arch:
        """The middle option of every gene (kernel 5, expand 4, depth 3, middle resolution)."""
        return self.decode(self.repair((self.xl + self.xu) // 2))

    # ---- networks -------------------------------------------------------------------------

    def make_supernet(self, n_classes: int, dropout_rate: float = 0.1):
        """A randomly initialised weight-sharing supernet (``ofa``'s ``OFAMobileNetV3``) for ``n_classes``."""
        from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3  # imports torchvision

        return OFAMobileNetV3(
            n_classes=n_classes,
            dropout_rate=dropout_rate,
            width_mult=self.width_mult,
            ks_list=list(self.ks_options),
            expand_ratio_list=list(self.e_options),
            depth_list=list(self.d_options),
        )

    def activate(self, supernet: Any, arch: Arch) -> None:
        """Make ``supernet``'s forward pass run the subnet ``arch`` (weights shared, nothing copied)."""
        supernet.set_active_subnet(ks=arch["ks"], e=arch["e"], d=arch["d"])

    def load_weights(self, supernet: Any, path: str | os.PathLike | None) -> list[str]:
        """Load ``path`` (an OFA-format checkpoint) into ``supernet``; ``None``: OFA's ImageNet weights.

        Returns the names of classifier tensors skipped because the class count differs.
        """
        if path is None:
            path = fetch_pretrained(self.width_mult, DEFAULT_SUPERNET_DIR)
        return load_supernet_weights(supernet, path)

    def build(self, arch: Arch, supernet: Any = None, n_classes: int = 1000) -> Any:
        """A stand-alone MobileNetV3 with the weights ``supernet`` holds for ``arch``."""
        arch = self.validate(arch)
        if supernet is None:
            supernet = self.make_supernet(n_classes)
        self.activate(supernet, arch)
        return supernet.get_active_subnet(preserve_weight=True)

    # ---- analytic costs -------------------------------------------------------------------

    def costs(self, arch: Arch, n_classes: int, resolution: int | None = None) -> dict[str, float]:
        """Params, MACs and activations (millions, batch 1) of ``arch`` with ``n_classes`` outputs.

        Analytic (no network built); equal to :func:`nas.costs.measure_costs` on :meth:`build`.
        The resolution is the architecture's own ``r``.
        """
        from NasSearchSpace.ofa_mbv3_costs import analytic_costs

        return analytic_costs(self._base(arch), n_classes, self.width_mult)

    def block_costs(self, arch: Arch, n_classes: int) -> list[dict[str, float]]:
        """Costs of each of the 20 blocks (millions; zero for blocks the depth switches off)."""
        from NasSearchSpace.ofa_mbv3_costs import analytic_block_counts, millions

        return [millions(c) for c in analytic_block_counts(self._base(arch), n_classes, self.width_mult)]

    def stage_costs(self, arch: Arch, n_classes: int) -> list[dict[str, float]]:
        """Costs of the network up to the end of each of the 5 stages (millions; no head), i.e.
        what runs before an exit placed after the last active block of that stage."""
        from NasSearchSpace.ofa_mbv3_costs import analytic_stage_counts, millions

        return [millions(c) for c in analytic_stage_counts(self._base(arch), n_classes, self.width_mult)]

    def _base(self, arch: Arch) -> dict[str, Any]:
        a = self.validate(arch)
        return {k: a[k] for k in ("ks", "e", "d", "r", "w")}


def expand_compact(arch: dict[str, Any], ks_fill: int, e_fill: int) -> dict[str, Any]:
    """``arch`` with ``ks`` and ``e`` of 20 values each. CNAS writes a compact form in which they
    list only the active blocks (``sum(d)`` values, stage after stage); this puts each value at its
    block and fills the blocks the depth switches off with ``ks_fill``/``e_fill`` (no effect)."""
    d = arch.get("d")
    if not (isinstance(d, list) and len(d) == N_STAGES and all(isinstance(v, int) for v in d)):
        return arch  # validate() reports it
    n_active = sum(min(max(v, 0), MAX_DEPTH) for v in d)
    out = dict(arch)
    for key, fill in (("ks", ks_fill), ("e", e_fill)):
        v = arch.get(key)
        if isinstance(v, list) and len(v) != N_BLOCKS and len(v) == n_active:
            full, it = [fill] * N_BLOCKS, iter(v)
            for s, depth in enumerate(d):
                for i in range(min(depth, MAX_DEPTH)):
                    full[s * MAX_DEPTH + i] = next(it)
            out[key] = full
    return out


# ---- supernet weights ---------------------------------------------------------------------


def load_supernet_weights(supernet: Any, path: str | os.PathLike) -> list[str]:
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
            f"pass it with --supernet_path, or put it at {dest}, or train a supernet with "
            "`python train.py supernet --save DIR` and pass DIR/supernet.pth with --supernet_path"
        ) from None
    return dest
