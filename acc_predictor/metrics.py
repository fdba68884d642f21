"""Surrogate quality: rmse, Spearman rho and Kendall tau, k-fold cross-validation, fit + report."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from acc_predictor.base import SURROGATES, Surrogate, check_xy, get_surrogate
from nas.errors import UserError


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
