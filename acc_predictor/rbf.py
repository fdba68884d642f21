"""``rbf``: radial basis function interpolation, cubic kernel with a linear polynomial tail."""

from __future__ import annotations

import numpy as np
from scipy.interpolate import RBFInterpolator

from acc_predictor.common import Standardizer, random_subset
from nas.surrogate import SURROGATES, Surrogate


@SURROGATES.register("rbf")
class RBF(Surrogate):
    """Cubic RBF interpolant ``s(x) = sum_i w_i |x - x_i|^3 + a + b.x`` through the training points.

    - Features are z-scored per column, so genes with different ranges weigh alike.
    - Duplicate rows of X are merged into one point with the mean target: an interpolant cannot
      pass through two different values at the same x, and the identical rows would make the
      linear system singular (scipy raises).
    - The points are expressed in coordinates of the affine subspace they span (an SVD of the
      centred features): constant or collinear features, or fewer distinct points than
      features + 1, otherwise leave the linear tail undetermined (scipy raises). When the points span
      all features this is a rotation, which leaves distances and hence the interpolant unchanged;
      otherwise new points are projected onto that subspace as well.
    - The linear solve is O(n^3): above ``max_samples`` distinct points the model interpolates a
      uniform random subset of that size (seeded from the generator).
    """

    name = "rbf"
    max_samples = 1500

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        X_u, inverse = np.unique(X, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        y_u = np.bincount(inverse, weights=y) / np.bincount(inverse)
        keep = random_subset(len(y_u), self.max_samples, self.rng)
        X_u, y_u = X_u[keep], y_u[keep]

        self.scaler_ = Standardizer(X_u)
        Z = self.scaler_(X_u)
        self.centre_ = Z.mean(axis=0)
        _, s, vt = np.linalg.svd(Z - self.centre_, full_matrices=False)
        rank = int(np.sum(s > 1e-9 * max(s[0], 1e-300))) if len(s) else 0
        self.basis_ = vt[:rank].T  # [d, rank]
        self.const_ = float(y_u.mean())
        if rank == 0:  # a single distinct point: the interpolant is that constant
            self.interp_ = None
            return
        self.interp_ = RBFInterpolator(self._coords(Z), y_u, kernel="cubic", degree=1)

    def _coords(self, Z: np.ndarray) -> np.ndarray:
        return (Z - self.centre_) @ self.basis_

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if self.interp_ is None:
            return np.full(len(X), self.const_)
        return self.interp_(self._coords(self.scaler_(X)))
