"""Scoring networks with the proxies: :func:`score_network` and the cached :class:`ProxyScorer`."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from nas.errors import UserError
from nas.space import SearchSpace, get_search_space
from proxies.scores import PROXIES, ProxyBatch


def check_names(names: Sequence[str]) -> list[str]:
    """``names`` as a list of registered proxies (no duplicates), or a one-line error."""
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not names:
        raise UserError(f"no proxy named; choose from: {', '.join(PROXIES.names())}")
    for n in names:
        PROXIES.get(n)  # unknown: a one-line error listing the choices
    if len(set(names)) != len(names):
        raise UserError(f"a proxy is named twice in {names}")
    return names


def score_network(
    net: nn.Module, batch: ProxyBatch, names: Sequence[str], seed: int = 0
) -> tuple[dict[str, float], dict[str, float]]:
    """``({name: score}, {name: seconds})`` of the proxies ``names`` on ``net``.

    Each proxy runs on its own deep copy of ``net`` (which stays untouched), after
    ``torch.manual_seed(seed)`` inside :func:`torch.random.fork_rng` (the caller's random state is
    kept), so the scores do not depend on which other proxies run or in what order. The seconds
    are each proxy's own (the copy is not counted).
    """
    names = check_names(names)
    scores, seconds = {}, {}
    for name in names:
        fn = PROXIES.get(name)
        work = copy.deepcopy(net)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            t0 = time.perf_counter()
            scores[name] = float(fn(work, batch))
            seconds[name] = time.perf_counter() - t0
        del work
    return scores, seconds


def fixed_batch(
    split: Any, n: int, resolution: int, n_classes: int, seed: int = 0, device: str | torch.device = "cpu"
) -> ProxyBatch:
    """``n`` images drawn at random (seeded) from ``split``, un-augmented, normalised and resized to
    ``resolution`` as the evaluation loaders do; labels taken modulo ``n_classes`` only if the
    split has more classes than the network (never the case for CIFAR-10 images)."""
    from nas.scoring import batches_of

    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise UserError(f"proxy batch size {n!r} must be an integer >= 2")
    if n > len(split):
        raise UserError(f"proxy batch size {n} is larger than the split ({len(split)} images)")
    pick = np.sort(np.random.default_rng(seed).choice(len(split), n, replace=False))
    x, y = next(iter(batches_of(split.subset(pick), resolution, torch.device(device), n, seed, 0)))
    return ProxyBatch(x.contiguous(), y % n_classes, n_classes)


class ProxyScorer:
    """Proxy scores of a space's architectures, each network freshly initialised and scored on one
    fixed batch of real training images, cached by :meth:`SearchSpace.arch_id`.

    ``space``: a search space (or its registered name); ``names``: proxies of :data:`PROXIES`;
    ``dataset``/``data``: the registered dataset and its folder (or loaded ``DataSplits``) whose
    training split gives the ``batch_size`` images (drawn with ``seed``; the validation carve is
    not made, so they may be images a search validates on: the proxies see them untrained);
    ``resolution``: the input side (default: the architecture's own, else the images');
    ``n_classes``: the networks' class count (default: the dataset's; another count scores e.g. a
    100-class network on CIFAR-10 images). Networks are built with ``space.build(arch,
    n_classes=...)`` after ``torch.manual_seed(seed)``; spaces with a supernet build every subnet
    from one seeded supernet (the same weights as building each anew, much faster).

    The dataset loads at the first :meth:`score`, so making a scorer costs nothing.
    """

    def __init__(
        self,
        space: SearchSpace | str,
        names: Sequence[str],
        *,
        dataset: str = "cifar10_embedded",
        data: Any = None,
        batch_size: int = 64,
        resolution: int | None = None,
        n_classes: int | None = None,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        self.space = get_search_space(space) if isinstance(space, str) else space
        self.names = check_names(names)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
            raise UserError(f"proxy batch_size {batch_size!r} must be an integer >= 2")
        for flag, v in (("resolution", resolution), ("n_classes", n_classes)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise UserError(f"proxy {flag} {v!r} must be a positive integer")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise UserError(f"proxy seed {seed!r} must be a non-negative integer")
        self.dataset, self.data_dir = dataset, data
        self.batch_size, self.resolution, self.seed = batch_size, resolution, seed
        self.device = torch.device(device)
        self._n_classes = n_classes
        self._data: Any = data if hasattr(data, "train") else None
        self._batches: dict[int, ProxyBatch] = {}
        self._supernets: dict[int, nn.Module] = {}
        self._cache: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
        self.n_built = 0  # networks built so far (a cached score builds none)

    # ---- data ------------------------------------------------------------------------------

    @property
    def data(self) -> Any:
        if self._data is None:
            from nas.data import load_dataset

            self._data = load_dataset(self.dataset, self.data_dir, vld_size=0, seed=self.seed)
        return self._data

    @property
    def n_classes(self) -> int:
        if self._n_classes is None:
            self._n_classes = int(self.data.n_classes)
        return self._n_classes

    def input_resolution(self, arch: Any) -> int:
        if self.resolution is not None:
            return self.resolution
        r = self.space.resolution(arch)
        return int(r) if r is not None else int(self.data.image_size)

    def batch(self, resolution: int) -> ProxyBatch:
        """The fixed batch at ``resolution`` (the same images at every resolution)."""
        if resolution not in self._batches:
            self._batches[resolution] = fixed_batch(
                self.data.train, self.batch_size, resolution, self.n_classes, self.seed, self.device
            )
        return self._batches[resolution]

    # ---- networks --------------------------------------------------------------------------

    def build(self, arch: Any) -> nn.Module:
        """The freshly initialised (seeded) network of ``arch``."""
        self.n_built += 1
        with torch.random.fork_rng(devices=[]):
            if self.space.has("supernet"):
                if self.n_classes not in self._supernets:
                    torch.manual_seed(self.seed)
                    self._supernets[self.n_classes] = self.space.make_supernet(self.n_classes)
                net = self.space.build(arch, supernet=self._supernets[self.n_classes])
            else:
                torch.manual_seed(self.seed)
                net = self.space.build(arch, n_classes=self.n_classes)
        return net.to(self.device)

    def _entry(self, arch: Any) -> tuple[dict[str, float], dict[str, float]]:
        arch = self.space.validate(arch)
        key = self.space.arch_id(arch)
        if key not in self._cache:
            batch = self.batch(self.input_resolution(arch))
            self._cache[key] = score_network(self.build(arch), batch, self.names, self.seed)
        return self._cache[key]

    # ---- the API ---------------------------------------------------------------------------

    def score(self, arch: Any) -> dict[str, float]:
        """``{proxy: score}`` of ``arch`` (higher = better for every proxy)."""
        return dict(self._entry(arch)[0])

    def seconds(self, arch: Any) -> dict[str, float]:
        """``{proxy: seconds}`` that scoring ``arch`` took (on one build; 0 work when cached)."""
        return dict(self._entry(arch)[1])

    def scores(self, archs: Sequence[Any]) -> np.ndarray:
        """``(len(archs), len(names))`` float array of the scores, columns in the order of ``names``."""
        out = np.empty((len(archs), len(self.names)))
        for i, arch in enumerate(archs):
            s = self._entry(arch)[0]
            out[i] = [s[n] for n in self.names]
        return out

    def __len__(self) -> int:
        return len(self._cache)
