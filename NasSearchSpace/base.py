"""The SearchSpace contract: an exact integer encoding of architectures plus how to build them."""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch.nn as nn

from nas.errors import UserError
from nas.io import read_json, write_json

Arch = dict[str, Any]  # JSON-serialisable; what ``net.subnet`` holds


class SearchSpace(ABC):
    """A space of architectures with integer genes ``x`` in ``[xl, xu]`` (inclusive, per gene)."""

    name: str = ""
    xl: np.ndarray
    xu: np.ndarray

    @property
    def n_var(self) -> int:
        return len(self.xl)

    @abstractmethod
    def encode(self, arch: Arch) -> np.ndarray:
        """Architecture -> integer genes; ``decode(encode(a)) == a`` exactly."""

    @abstractmethod
    def decode(self, x: np.ndarray) -> Arch:
        """Integer genes -> architecture; raises on genes outside ``[xl, xu]``."""

    def check_genes(self, x: np.ndarray) -> np.ndarray:
        """``x`` as an int array after checking its shape, integrality and per-gene bounds."""
        x = np.asarray(x)
        if x.shape != (self.n_var,):
            raise UserError(f"expected {self.n_var} genes, got shape {x.shape}")
        if not np.all(x == np.round(x)):
            raise UserError("genes must be integers")
        x = x.astype(int)
        bad = np.flatnonzero((x < self.xl) | (x > self.xu))
        if len(bad):
            j = int(bad[0])
            raise UserError(f"gene {j} = {x[j]} is outside its bounds [{self.xl[j]}, {self.xu[j]}]")
        return x

    @abstractmethod
    def validate(self, arch: Any) -> Arch:
        """Return ``arch`` if it is a valid member of this space, else raise ``UserError``."""

    def sample(self, n: int, rng: np.random.Generator) -> list[Arch]:
        """``n`` architectures drawn uniformly per gene."""
        x = rng.integers(self.xl, self.xu + 1, size=(n, self.n_var))
        return [self.decode(row) for row in x]

    def canonical(self, arch: Arch) -> Arch:
        """The representative of ``arch``'s equivalence class (genes that have no effect reset)."""
        return arch

    def arch_id(self, arch: Arch) -> str:
        """A stable 12-hex-digit id of the network ``arch`` describes (same network, same id)."""
        blob = json.dumps(self.canonical(arch), sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    def features(self, arch: Arch) -> np.ndarray:
        """Features for surrogate models; the integer genes unless a space knows better."""
        return self.encode(arch).astype(float)

    def feature_names(self) -> list[str]:
        """One name per column of :meth:`features` (a space that overrides one overrides both).

        Convention: dot-separated tokens ``family[.s<stage>][.more]``. The first token is the gene
        family (``ks``, ``e``, ``d``, ``r``, ``edge3``, and later task genes such as ``exit``); a
        token ``s<k>`` places the column in stage ``k`` (none: the column is global); any other
        tokens (``b<j>`` a block within its stage, an operation name) only make the name unique.
        Analysis tools group columns by family and by stage with these names. Default: ``x<i>``.
        """
        return [f"x{i}" for i in range(self.n_var)]

    @abstractmethod
    def build(self, arch: Arch, supernet: nn.Module | None = None) -> nn.Module:
        """A stand-alone network for ``arch`` (weights inherited from ``supernet`` if given)."""

    def read_subnet(self, path: str | os.PathLike) -> Arch:
        """Read and validate a ``net.subnet`` file."""
        return self.validate(read_json(path, "subnet file"))

    def write_subnet(self, path: str | os.PathLike, arch: Arch) -> None:
        write_json(path, self.validate(arch))
