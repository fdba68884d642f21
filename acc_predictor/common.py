"""Helpers the surrogate models share: feature scaling, categorical codes, linear feature blocks."""

from __future__ import annotations

import numpy as np


class Standardizer:
    """Column-wise z-scores; constant columns get scale 1 so they map to 0 instead of NaN."""

    def __init__(self, X: np.ndarray) -> None:
        self.mean = X.mean(axis=0)
        std = X.std(axis=0)
        self.constant = std <= 1e-12 * np.maximum(1.0, np.abs(self.mean))
        self.scale = np.where(self.constant, 1.0, std)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.scale


class TargetScaler:
    """``y`` -> z-score and back; a constant ``y`` keeps scale 1 (so it never divides by zero)."""

    def __init__(self, y: np.ndarray) -> None:
        self.mean = float(y.mean())
        std = float(y.std())
        self.scale = std if std > 1e-12 * max(1.0, abs(self.mean)) else 1.0

    def forward(self, y: np.ndarray) -> np.ndarray:
        return (y - self.mean) / self.scale

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return z * self.scale + self.mean


class CategoricalCodes:
    """Indicator columns for the distinct values each feature takes in the training ``X``.

    Architecture genes are small integers whose values are categories (a kernel size, an
    operation) more than quantities. ``kind="onehot"``: one column ``x == v`` per distinct value
    ``v``. ``kind="ordinal"`` (thermometer): one column ``x >= v`` per distinct value but the
    smallest, so a linear model on it gives each step between neighbouring values its own
    effect while neighbouring values stay tied (a binary feature maps to itself).

    Only features with 2..``max_levels`` distinct values are encoded (``columns_``); a constant
    feature says nothing and a continuous one would need a column per row. ``inverse`` maps codes
    back to the values: exact for the values seen in training; a value never seen comes back as
    the largest seen value below it (``ordinal``; the smallest seen one if none is below) or as the
    smallest seen value (``onehot``, where it has no indicator set).
    """

    def __init__(self, X: np.ndarray, kind: str = "ordinal", max_levels: int = 16) -> None:
        if kind not in ("onehot", "ordinal"):
            raise ValueError(f"kind must be 'onehot' or 'ordinal', got {kind!r}")
        self.kind = kind
        self.n_features = X.shape[1]
        self.columns_: list[int] = []
        self.values_: list[np.ndarray] = []
        for j in range(X.shape[1]):
            v = np.unique(X[:, j])
            if 2 <= len(v) <= max_levels:
                self.columns_.append(j)
                self.values_.append(v)
        # source feature of each code column
        self.source_ = np.array(
            [j for j, v in zip(self.columns_, self.values_, strict=True) for _ in self._levels(v)], dtype=int
        )

    def _levels(self, v: np.ndarray) -> np.ndarray:
        return v if self.kind == "onehot" else v[1:]

    @property
    def n_codes(self) -> int:
        return len(self.source_)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        out = np.empty((len(X), self.n_codes))
        k = 0
        for j, v in zip(self.columns_, self.values_, strict=True):
            levels = self._levels(v)
            x = X[:, j : j + 1]
            out[:, k : k + len(levels)] = (x == levels) if self.kind == "onehot" else (x >= levels)
            k += len(levels)
        return out

    def inverse(self, C: np.ndarray) -> np.ndarray:
        """Values [n, len(columns_)] of the encoded features (in ``columns_`` order) from codes ``C``."""
        out = np.empty((len(C), len(self.columns_)))
        k = 0
        for i, v in enumerate(self.values_):
            levels = self._levels(v)
            block = C[:, k : k + len(levels)] > 0.5
            if self.kind == "onehot":
                out[:, i] = v[np.argmax(block, axis=1)]
            else:
                out[:, i] = v[block.sum(axis=1)]
            k += len(levels)
        return out


def value_groups(X: np.ndarray, max_levels: int = 16) -> list[np.ndarray]:
    """Indices of the non-constant features of ``X``, grouped by their set of distinct values.

    Genes of one kind share an alphabet (the OFA MobileNetV3 features: kernel and expand genes of
    the blocks that always run take 1..3, of the blocks a depth can switch off 0..3, depths 0..2,
    the resolution 0..4; the NAS-Bench-201 features: 30 one-hot columns in 0..1), and genes of one
    kind tend to matter alike, so a model can learn one prior scale per group instead of one for
    all (measured on B4: ridge tau 0.84 with one scale, 0.876 with these groups) or one per gene
    (0.86; too many scales for 100 samples). Features with more than ``max_levels`` distinct
    values (quantities, not genes) form one group of their own.
    """
    groups: dict[tuple[float, ...] | None, list[int]] = {}
    for j in range(X.shape[1]):
        v = np.unique(X[:, j])
        if len(v) > 1:
            groups.setdefault(tuple(v.tolist()) if len(v) <= max_levels else None, []).append(j)
    return [np.array(g, dtype=int) for g in groups.values()]


class LinearBlocks:
    """Standardised linear-model features in blocks that get one prior scale each (``ridge``, ``gp``).

    For each group of :func:`value_groups`: a block of the group's features themselves and a block
    of their codes (:class:`CategoricalCodes` of ``kind``, for features with 3..``max_levels``
    values: a binary feature's code is the feature). All columns are z-scored on the training
    ``X``. With a prior on the weights of each block, the features carry a trend across a gene's
    values and the codes the deviations from it: a hierarchical prior that the data can move away
    from. Measured like B4 (100 training archs) on seeds 3-5, ridge: features alone tau 0.830,
    one-hot codes alone 0.777, one block of features + one of codes 0.858 (ordinal) / 0.850
    (one-hot), blocks by value group 0.884 with either kind (seeds 0-2: 0.876 / 0.875).
    ``__call__`` returns ``Phi`` [n, p]; ``block_`` [p] holds each column's block index (0..n_blocks-1).
    """

    def __init__(self, X: np.ndarray, kind: str = "ordinal", max_levels: int = 16) -> None:
        codes = CategoricalCodes(X, kind, max_levels)
        n_values = {j: len(v) for j, v in zip(codes.columns_, codes.values_, strict=True)}
        multi = np.array([n_values[j] > 2 for j in codes.source_], dtype=bool)
        feature_cols, code_cols, block = [], [], []
        groups = value_groups(X, max_levels)
        for g in groups:
            feature_cols.append(g)
            block.append(np.full(len(g), len(block)))
        for g in groups:
            c = np.flatnonzero(multi & np.isin(codes.source_, g))
            if len(c):
                code_cols.append(c)
                block.append(np.full(len(c), len(block)))
        self.codes_ = codes
        self.feature_cols_ = np.concatenate(feature_cols) if feature_cols else np.zeros(0, dtype=int)
        self.code_cols_ = np.concatenate(code_cols) if code_cols else np.zeros(0, dtype=int)
        self.block_ = np.concatenate(block).astype(int) if block else np.zeros(0, dtype=int)
        self.n_blocks = len(block)
        self.scaler_ = Standardizer(self._raw(X))

    def _raw(self, X: np.ndarray) -> np.ndarray:
        parts = [X[:, self.feature_cols_]]
        if len(self.code_cols_):
            parts.append(self.codes_(X)[:, self.code_cols_])
        return np.hstack(parts)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return self.scaler_(self._raw(X))


def random_subset(n: int, n_max: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a uniform random subset of ``min(n, n_max)`` of ``range(n)`` (all if it fits).

    Uniform rather than best-by-target: the search is multi-objective, so the cheap, less accurate
    end of the Pareto front needs a good model as much as the accurate end.
    """
    if n <= n_max:
        return np.arange(n)
    return np.sort(rng.choice(n, size=n_max, replace=False))


def seed_from(rng: np.random.Generator) -> int:
    """A 31-bit seed drawn from ``rng`` for libraries that take integer seeds (sklearn, torch)."""
    return int(rng.integers(0, 2**31 - 1))
