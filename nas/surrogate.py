"""The Surrogate contract and its registry; surrogate quality (rmse, Spearman rho, Kendall tau),
k-fold cross-validation, fit + report.

A surrogate predicts a metric (top-1, or any expensive metric such as average MACs or
robustness) from architecture features, never an objective value: objectives that are
re-normalised every iteration then do not move its target. ``fit(X, y)`` on features [n, d] and
targets [n], ``predict(X)`` (``predict(X, return_std=True)`` for models with a predictive spread).
The models live in the ``acc_predictor`` plug-in.
"""

from __future__ import annotations

import functools
import math
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

    def predict(self, X: np.ndarray, return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predicted targets [m] for the rows of ``X`` [m, d]; with ``return_std`` also the
        predictive standard deviation [m] (models with ``has_std`` only: ``gp``, ``ridge``, ``carts``)."""
        if self.n_features_ is None:
            raise RuntimeError(f"surrogate {self.name!r} is not fitted; call fit(X, y) first")
        if return_std and not self.has_std:
            raise UserError(f"surrogate {self.name!r} has no predictive spread; use gp, ridge or carts")
        X = check_x(X, self.n_features_, f"surrogate {self.name!r}")
        if len(X) == 0:
            return (np.zeros(0), np.zeros(0)) if return_std else np.zeros(0)
        with one_blas_thread():
            if return_std:
                mean, std = self._predict_std(X)
                return np.asarray(mean, dtype=float).reshape(len(X)), np.asarray(std, dtype=float).reshape(
                    len(X)
                )
            return np.asarray(self._predict(X), dtype=float).reshape(len(X))

    @property
    def has_std(self) -> bool:
        """Whether :meth:`predict` can return a predictive standard deviation."""
        return type(self)._predict_std is not Surrogate._predict_std

    def _predict_std(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

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


def _is_constant(v: np.ndarray) -> bool:
    return bool(np.ptp(v) <= 1e-12 * max(1.0, float(np.max(np.abs(v)))))


def quality(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """``{"rmse", "rho", "tau"}`` of predictions against the truth.

    rho is Spearman's, tau Kendall's tau-b (ties handled). Both are NaN when ``y_true`` is
    constant (a ranking of equal values is undefined) and 0 when only ``y_pred`` is constant
    (a constant prediction ranks nothing); NaN never comes with a warning or an exception.
    """
    y_true = np.asarray(y_true, dtype=float).ravel()
    y_pred = np.asarray(y_pred, dtype=float).ravel()
    if y_true.shape != y_pred.shape or len(y_true) == 0:
        raise UserError(f"quality: need equal, non-empty lengths, got {len(y_true)} and {len(y_pred)}")
    rmse = float(np.sqrt(np.mean((y_true - y_pred) ** 2)))
    if len(y_true) < 2 or _is_constant(y_true):
        rho = tau = math.nan
    elif _is_constant(y_pred):
        rho = tau = 0.0
    else:
        from scipy import stats  # 0.6 s to import: only where rank correlations are computed

        rho = float(stats.spearmanr(y_true, y_pred).statistic)
        tau = float(stats.kendalltau(y_true, y_pred).statistic)
    return {"rmse": rmse, "rho": rho, "tau": tau}


def kfold_indices(n: int, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``k`` disjoint held-out index sets covering ``range(n)`` in a random order (sizes differ by <= 1)."""
    return [np.sort(f) for f in np.array_split(rng.permutation(n), k)]


def min_cv_samples(name: str, k: int) -> int:
    """The fewest samples k-fold cross-validation of surrogate ``name`` accepts.

    Each held-out fold needs 2 rows (a rank correlation of one value is undefined) and each
    training fold the surrogate's own minimum.
    """
    need_train = get_surrogate(name, np.random.default_rng(0)).min_samples
    n = max(2 * k, need_train + 2)
    while n - math.ceil(n / k) < need_train:  # the training folds are the n minus the largest fold
        n += 1
    return n


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 2:
        raise UserError(f"k-fold cross-validation needs an integer k >= 2, got {k!r}")
    return int(k)


def _mean(values: list[float]) -> float:
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    return float(v.mean()) if len(v) else math.nan


def _std(values: list[float]) -> float:
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    return float(v.std()) if len(v) else math.nan


def cross_validate(
    name: str, X: np.ndarray, y: np.ndarray, folds: list[np.ndarray], rng: np.random.Generator
) -> dict[str, Any]:
    """Held-out quality of surrogate ``name`` over the given folds (X, y already checked).

    Returns the per-fold means ``rmse``, ``rho``, ``tau`` (folds where a value is undefined are
    left out; NaN if it is undefined in all), ``tau_std`` over folds, ``k``, ``n`` and the per-fold
    ``tau_folds``.
    """
    per_fold = []
    n = len(y)
    for test in folds:
        train = np.setdiff1d(np.arange(n), test, assume_unique=True)
        model = get_surrogate(name, rng).fit(X[train], y[train])
        per_fold.append(quality(y[test], model.predict(X[test])))
    taus = [q["tau"] for q in per_fold]
    return {
        "rmse": _mean([q["rmse"] for q in per_fold]),
        "rho": _mean([q["rho"] for q in per_fold]),
        "tau": _mean(taus),
        "tau_std": _std(taus),
        "k": len(folds),
        "n": n,
        "tau_folds": taus,
    }


def _check_cv_inputs(name: str, X: Any, y: Any, k: Any) -> tuple[np.ndarray, np.ndarray, int]:
    k = check_k(k)
    X, y = check_xy(X, y, 1, f"cross-validation of {name!r}")
    need = min_cv_samples(name, k)  # also rejects an unknown name with the list of choices
    if len(y) < need:
        raise UserError(
            f"{k}-fold cross-validation of surrogate {name!r} needs at least {need} samples, got {len(y)}"
        )
    return X, y, k


def surrogate_quality(name: str, X: Any, y: Any, rng: np.random.Generator, k: int = 5) -> dict[str, Any]:
    """k-fold cross-validated ``{"rmse", "rho", "tau", ...}`` of surrogate type ``name`` on (X, y).

    ``rmse``, ``rho`` and ``tau`` are means over the folds of each fold's held-out metric, plus
    ``tau_std`` over the folds, ``k`` and ``n`` (see :func:`cross_validate`); all plain floats/ints,
    NaN where undefined (a constant target).
    For ``"as"`` this is a nested cross-validation (each outer training fold runs its own k-fold
    selection), about k times the cost of fitting ``"as"``.
    """
    X, y, k = _check_cv_inputs(name, X, y, k)
    return _summary(cross_validate(name, X, y, kfold_indices(len(y), k, rng), rng))


def _summary(cv: dict[str, Any]) -> dict[str, Any]:
    """The scalars of a cross-validation (for run statistics: no per-fold list)."""
    return {key: v for key, v in cv.items() if key != "tau_folds"}


def fit_surrogate(
    name: str, X: Any, y: Any, rng: np.random.Generator, k: int = 5
) -> tuple[Surrogate, dict[str, Any]]:
    """A surrogate of type ``name`` fitted on all of (X, y), and its k-fold cross-validated quality.

    A surrogate that cross-validates itself while fitting (``"as"``) reports that quality (of the
    model it chose, plus ``"chosen"`` and ``"candidates"``) instead of being cross-validated again.
    """
    k = check_k(k)
    cls = SURROGATES.get(name)
    if cls.cross_validates:  # it checks its own minimum sample count (its candidates' k-fold needs)
        model = cls(rng, k=k).fit(X, y)
        return model, dict(model.cv_quality_)
    X, y, k = _check_cv_inputs(name, X, y, k)
    model = cls(rng).fit(X, y)
    return model, _summary(cross_validate(name, X, y, kfold_indices(len(y), k, rng), rng))
