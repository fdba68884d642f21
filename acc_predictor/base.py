"""The Surrogate contract, its registry and the input checks every surrogate shares."""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from nas.errors import UserError
from nas.registry import Registry


class Surrogate(ABC):
    """A regression model of a minimised target (e.g. top-1 error) from architecture features.

    Subclasses implement ``_fit`` and ``_predict`` on checked float arrays. All randomness comes
    from the generator given to the constructor, so the same seed gives the same predictions.
    """

    name: str = ""
    # The fewest training rows ``fit`` accepts (cross-validation needs this many per training fold).
    min_samples: int = 3
    # True for a surrogate that cross-validates itself while fitting (takes ``k`` and sets cv_quality_).
    cross_validates: bool = False

    def __init__(self, rng: np.random.Generator) -> None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        self.rng = rng
        self.n_features_: int | None = None
        # Cross-validated quality a surrogate measured itself while fitting ("as" does); else None.
        self.cv_quality_: dict[str, Any] | None = None

    def fit(self, X: np.ndarray, y: np.ndarray) -> Surrogate:
        """Fit on features ``X`` [n, d] and targets ``y`` [n]; returns ``self``."""
        X, y = check_xy(X, y, self.min_samples, f"surrogate {self.name!r}")
        with one_blas_thread():
            self._fit(X, y)
        self.n_features_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted targets [m] for the rows of ``X`` [m, d]."""
        if self.n_features_ is None:
            raise RuntimeError(f"surrogate {self.name!r} is not fitted; call fit(X, y) first")
        X = check_x(X, self.n_features_, f"surrogate {self.name!r}")
        if len(X) == 0:
            return np.zeros(0)
        with one_blas_thread():
            return np.asarray(self._predict(X), dtype=float).reshape(len(X))

    @abstractmethod
    def _fit(self, X: np.ndarray, y: np.ndarray) -> None: ...

    @abstractmethod
    def _predict(self, X: np.ndarray) -> np.ndarray: ...

    def __repr__(self) -> str:
        state = "unfitted" if self.n_features_ is None else f"fitted on {self.n_features_} features"
        return f"<{type(self).__name__} {self.name!r}, {state}>"


SURROGATES: Registry[type[Surrogate]] = Registry("surrogate")


def get_surrogate(name: str, rng: np.random.Generator) -> Surrogate:
    """A new, unfitted surrogate of the registered type ``name`` drawing randomness from ``rng``."""
    return SURROGATES.get(name)(rng)


def list_surrogates() -> list[str]:
    return SURROGATES.names()


# ---- input checks -----------------------------------------------------------------------------


def check_x(X: Any, n_features: int | None, what: str) -> np.ndarray:
    """``X`` as a finite float array [n, d] (with ``d == n_features`` when given), else UserError."""
    try:
        X = np.asarray(X, dtype=float)
    except (TypeError, ValueError) as e:
        raise UserError(f"{what}: features X are not numeric ({e})") from None
    if X.ndim != 2:
        raise UserError(f"{what}: features X must be 2-D [n_samples, n_features], got shape {X.shape}")
    if n_features is not None and X.shape[1] != n_features:
        raise UserError(f"{what}: X has {X.shape[1]} features but the model was fitted on {n_features}")
    bad = ~np.isfinite(X)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise UserError(
            f"{what}: X has {int(bad.sum())} NaN/inf value(s), first at row {i}, feature {j}; "
            "surrogates need finite features"
        )
    return X


def check_xy(X: Any, y: Any, min_samples: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(X [n, d], y [n])``: finite, matching lengths, at least ``min_samples`` rows."""
    X = check_x(X, None, what)
    try:
        y = np.asarray(y, dtype=float)
    except (TypeError, ValueError) as e:
        raise UserError(f"{what}: targets y are not numeric ({e})") from None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise UserError(f"{what}: targets y must be 1-D [n_samples], got shape {y.shape}")
    if len(X) != len(y):
        raise UserError(f"{what}: X has {len(X)} rows but y has {len(y)} values; they must match")
    if X.shape[1] == 0:
        raise UserError(f"{what}: X has no features (shape {X.shape})")
    bad = ~np.isfinite(y)
    if bad.any():
        raise UserError(
            f"{what}: y has {int(bad.sum())} NaN/inf value(s), first at index {int(np.argmax(bad))}; "
            "drop failed evaluations before fitting"
        )
    if len(y) < min_samples:
        raise UserError(f"{what} needs at least {min_samples} samples to fit, got {len(y)}")
    return X, y


# ---- helpers shared by the models --------------------------------------------------------------


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


@functools.cache
def _threadpools() -> ThreadpoolController:
    return ThreadpoolController()  # first use: numpy, scipy and sklearn are loaded by then


def one_blas_thread():
    """Context: BLAS/LAPACK on one thread while a surrogate fits or predicts (restored after).

    The models do many small dense operations (GP likelihood steps, RBF solves); with OpenBLAS
    threads on a busy 2-core machine they were 5-30x slower than on one thread (measured: GP fit at
    1,000 samples 15.6 s vs 0.4 s), and one thread loses little even on an idle machine.
    """
    return _threadpools().limit(limits=1, user_api="blas")


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
