"""``as``: Adaptive Switching, pick the surrogate that cross-validates best on the data at hand."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from acc_predictor.common import random_subset
from nas.errors import UserError
from nas.surrogate import (
    SURROGATES,
    Surrogate,
    check_k,
    check_xy,
    cross_validate,
    get_surrogate,
    kfold_indices,
    min_cv_samples,
)


@SURROGATES.register("as")
class AdaptiveSwitching(Surrogate):
    """k-fold cross-validates each candidate on the same folds and refits the winner on all data.

    Winner = argmax over candidates of ``mean(tau) - std(tau)`` over the folds (Kendall tau of the
    held-out predictions): a model that ranks well *and* consistently. Folds where tau is undefined
    (a constant held-out target) are left out; a candidate with no defined tau (score NaN) ranks
    last, and ties go to the lower mean rmse, then to the candidate order. ``predict`` delegates to
    the winner.

    Above ``max_cv_samples`` rows the cross-validation runs on a random subset of that many.

    After ``fit``: ``chosen`` (the winner's name), ``model_`` (the winner, refitted on all data),
    ``scores`` (per candidate: cross-validated rmse, rho, tau, tau_std and the selection ``score``)
    and ``cv_quality_`` (the winner's cross-validated quality plus ``chosen`` and ``candidates``;
    an optimistic estimate, as it is the best of several).
    """

    name = "as"
    cross_validates = True
    default_candidates = ("ridge", "gp", "rbf", "carts", "mlp")
    # The choice is made on a random subset of at most this many rows (the winner is refitted on
    # all): the ranking of five models is settled long before, and it keeps an iteration's cost
    # flat in the archive size (B7: 5,000 archs).
    max_cv_samples = 1000

    def __init__(self, rng: np.random.Generator, k: int = 5, candidates: Sequence[str] | None = None) -> None:
        super().__init__(rng)
        self.k = check_k(k)
        self.candidates = tuple(self.default_candidates if candidates is None else candidates)
        if not self.candidates or "as" in self.candidates:
            raise ValueError(
                f"candidates must be a non-empty list of other surrogates, got {self.candidates}"
            )
        # Every candidate must be cross-validated on the data, so that sets the minimum.
        self.min_samples = max(min_cv_samples(c, k) for c in self.candidates)
        self.chosen: str | None = None
        self.scores: dict[str, dict[str, Any]] = {}

    def fit(self, X: np.ndarray, y: np.ndarray) -> AdaptiveSwitching:
        X, y = check_xy(X, y, 1, "surrogate 'as'")
        if len(y) < self.min_samples:  # say why the minimum is what it is
            raise UserError(
                f"surrogate 'as' needs at least {self.min_samples} samples for {self.k}-fold "
                f"cross-validation of {', '.join(self.candidates)}, got {len(y)}"
            )
        return super().fit(X, y)

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        rows = random_subset(len(y), self.max_cv_samples, self.rng)
        Xc, yc = X[rows], y[rows]
        folds = kfold_indices(len(yc), self.k, self.rng)  # the same folds for every candidate
        self.scores = {}
        for c in self.candidates:
            cv = cross_validate(c, Xc, yc, folds, self.rng)
            score = cv["tau"] - cv["tau_std"]
            cv["score"] = score  # NaN when no fold had a defined tau
            self.scores[c] = cv

        order = {c: i for i, c in enumerate(self.candidates)}

        def rank(c: str) -> tuple[float, float, int]:
            score = self.scores[c]["score"]
            return (math.inf if math.isnan(score) else -score, self.scores[c]["rmse"], order[c])

        self.chosen = min(self.candidates, key=rank)
        self.model_ = get_surrogate(self.chosen, self.rng).fit(X, y)
        won = self.scores[self.chosen]
        self.cv_quality_ = {
            **{key: won[key] for key in ("rmse", "rho", "tau", "tau_std", "k", "n")},
            "chosen": self.chosen,
            "candidates": {
                c: {key: s[key] for key in ("rmse", "rho", "tau", "tau_std", "score")}
                for c, s in self.scores.items()
            },
        }

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict(X)
