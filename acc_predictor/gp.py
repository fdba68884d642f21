"""``gp``: Gaussian-process regression with a linear trend (NumPy/SciPy, analytic gradients)."""

from __future__ import annotations

import numpy as np
from scipy import linalg, optimize
from scipy.linalg import lapack

from acc_predictor.common import LinearBlocks, Standardizer, TargetScaler, random_subset
from nas.surrogate import SURROGATES, Surrogate

SQRT5 = np.sqrt(5.0)


def _sq_dists(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances [len(A), len(B)] through one matrix product (fast, >= 0)."""
    d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T)
    return np.maximum(d2, 0.0)


def _matern52(s: np.ndarray) -> np.ndarray:
    """Matern 5/2 correlation of ``s = sqrt(5) r / length``."""
    return (1.0 + s + s * s / 3.0) * np.exp(-s)


@SURROGATES.register("gp")
class GP(Surrogate):
    """GP posterior mean: a Bayesian linear trend on feature blocks plus a Matern 5/2 deviation.

    Kernel ``b + sum_k a_k phi_k(x).phi_k(x') / p_k + c Matern52(|z - z'| / l) + v [x == x']``.
    ``phi`` is :class:`~acc_predictor.common.LinearBlocks` (the z-scored features and their ordinal
    codes in blocks by gene kind, block ``k`` with ``p_k`` columns): the linear terms are a Bayesian
    linear trend with one prior scale ``a_k`` per block (as in ``ridge``), ``b`` a constant, the
    Matern 5/2 term on the z-scored features ``z`` the smooth deviation from the trend and ``v``
    the noise, which also keeps the kernel matrix positive definite when rows of X repeat (repeats
    are kept: they are evidence about the noise). Targets are scaled to zero mean and unit
    variance. The ``n_blocks + 4`` hyperparameters maximise the log marginal likelihood (L-BFGS-B
    on their logarithms with the analytic gradient) from a fixed start plus ``n_restarts`` starts
    drawn from the generator.

    Cost caps (both steps are O(n^3)): the hyperparameters are fitted on a uniform random subset of
    at most ``max_opt_samples`` rows, and the posterior is conditioned on at most ``max_samples``
    rows (a superset of the first subset), both drawn from the generator.
    """

    name = "gp"
    codes = "ordinal"  # or "onehot": the codes of LinearBlocks
    max_opt_samples = 200
    max_samples = 1500
    n_restarts = 0
    # log-space bounds of (a_k for each block, b, c, l / sqrt(d), v); l is relative to sqrt(d),
    # the typical distance between z-scored rows
    a_bounds = (1e-6, 1e2)
    bounds_rest = np.log([(1e-3, 1e2), (1e-4, 1e2), (1e-2, 1e2), (1e-6, 1.0)])
    start_rest = np.log([1.0, 0.5, 1.0, 1e-2])
    a_start = 0.5  # split over the blocks
    jitter = 1e-8
    predict_chunk = 2000

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self.scaler_ = Standardizer(X)
        self.phi_ = LinearBlocks(X, self.codes)
        self.target_ = TargetScaler(y)
        Z, P, t = self.scaler_(X), self.phi_(X), self.target_.forward(y)
        self.d_ = Z.shape[1]
        nb = self.phi_.n_blocks
        self.col_scale_ = 1.0 / np.bincount(self.phi_.block_, minlength=nb)[self.phi_.block_]
        rows = random_subset(len(t), self.max_samples, self.rng)
        opt_rows = rows[random_subset(len(rows), self.max_opt_samples, self.rng)]

        Po, to = P[opt_rows], t[opt_rows]
        D2 = _sq_dists(Z[opt_rows], Z[opt_rows])
        bounds = np.vstack([np.log([self.a_bounds] * nb).reshape(nb, 2), self.bounds_rest])
        start = np.r_[np.full(nb, np.log(self.a_start / max(nb, 1))), self.start_rest]
        starts = [start] + [self.rng.uniform(bounds[:, 0], bounds[:, 1]) for _ in range(self.n_restarts)]
        best = None
        for theta0 in starts:
            res = optimize.minimize(
                self._neg_log_likelihood, theta0, args=(Po, D2, to), jac=True, method="L-BFGS-B",
                bounds=bounds,
            )  # fmt: skip
            if best is None or res.fun < best.fun:
                best = res
        self.theta_ = best.x

        self.Z_, self.P_ = Z[rows], P[rows]
        K = self._cov(self.P_, _sq_dists(self.Z_, self.Z_), self.theta_)[0]
        self.chol_ = self._cholesky(K)
        self.alpha_ = linalg.cho_solve(self.chol_, t[rows])

    def _cov(self, P: np.ndarray, D2: np.ndarray, theta: np.ndarray, noise: bool = True):
        """Kernel matrix and its parts: (K, per-column weights of the linear part, Matern part, s)."""
        nb = self.phi_.n_blocks
        a = np.exp(theta[:nb])
        b, c, l_rel, v = np.exp(theta[nb:])
        w = a[self.phi_.block_] * self.col_scale_
        s = SQRT5 * np.sqrt(D2) / (l_rel * np.sqrt(self.d_))
        mat = c * _matern52(s)
        K = (P * w) @ P.T + b + mat
        if noise:
            K[np.diag_indices_from(K)] += v + self.jitter
        return K, w, mat, s

    def _cholesky(self, K: np.ndarray) -> tuple[np.ndarray, bool]:
        jitter = 0.0
        for _ in range(6):  # near-singular K (e.g. tiny noise and repeated rows): add jitter
            try:
                return linalg.cho_factor(K + jitter * np.eye(len(K)), lower=True, check_finite=False)
            except linalg.LinAlgError:
                jitter = max(1e-6, 10 * jitter)
        raise linalg.LinAlgError("GP kernel matrix is not positive definite even with jitter")

    def _neg_log_likelihood(
        self, theta: np.ndarray, P: np.ndarray, D2: np.ndarray, t: np.ndarray
    ) -> tuple[float, np.ndarray]:
        K, w, mat, s = self._cov(P, D2, theta)
        try:
            L = linalg.cho_factor(K, lower=True, check_finite=False)
        except linalg.LinAlgError:
            return 1e25, np.zeros_like(theta)
        alpha = linalg.cho_solve(L, t, check_finite=False)
        nll = 0.5 * t @ alpha + np.log(np.diag(L[0])).sum() + 0.5 * len(t) * np.log(2 * np.pi)
        # d nll / d theta_j = -1/2 tr((alpha alpha^T - K^-1) dK/dtheta_j), theta = log parameters
        K_inv, info = lapack.dpotri(L[0], lower=1)  # from the Cholesky factor: one lower triangle
        if info != 0:
            return 1e25, np.zeros_like(theta)
        K_inv = np.tril(K_inv) + np.tril(K_inv, -1).T
        W = np.outer(alpha, alpha) - K_inv
        nb = self.phi_.n_blocks
        b, c, _, v = np.exp(theta[nb:])
        # tr(W dK/d log a_k) = sum over block k's columns j of w_j P_j' W P_j
        per_col = w * ((W @ P) * P).sum(axis=0)
        dmat_dlogl = c * (s * s / 3.0) * (1.0 + s) * np.exp(-s)
        grad = np.r_[
            np.bincount(self.phi_.block_, weights=per_col, minlength=nb),  # d/d log a_k
            b * W.sum(),  # d/d log b
            (W * mat).sum(),  # d/d log c
            (W * dmat_dlogl).sum(),  # d/d log l
            v * np.trace(W),  # d/d log v
        ]
        return float(nll), -0.5 * grad

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self._posterior(X, with_std=False)[0]

    def _predict_std(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior predictive mean and standard deviation (the noise ``v`` included)."""
        return self._posterior(X, with_std=True)

    def _posterior(self, X: np.ndarray, with_std: bool) -> tuple[np.ndarray, np.ndarray | None]:
        nb = self.phi_.n_blocks
        a = np.exp(self.theta_[:nb])
        b, c, l_rel, v = np.exp(self.theta_[nb:])
        scale = SQRT5 / (l_rel * np.sqrt(self.d_))
        # the linear part needs no [m, n] matrix: (P W P_') alpha = P (W P_' alpha)
        w_lin = (self.P_.T @ self.alpha_) * a[self.phi_.block_] * self.col_scale_
        out = np.empty(len(X))
        var = np.empty(len(X)) if with_std else None
        w_cols = a[self.phi_.block_] * self.col_scale_
        for i in range(0, len(X), self.predict_chunk):  # bounded memory: chunk x max_samples matrices
            Xi = X[i : i + self.predict_chunk]
            Z = self.scaler_(Xi)
            s = _sq_dists(Z, self.Z_)  # Matern part in place: fewer passes over the big matrix
            np.sqrt(s, out=s)
            s *= scale
            e = np.exp(-s)
            poly = s / 3.0
            poly += 1.0
            poly *= s
            poly += 1.0
            poly *= e
            Pi = self.phi_(Xi)
            out[i : i + len(Z)] = b * self.alpha_.sum() + Pi @ w_lin + c * (poly @ self.alpha_)
            if var is not None:  # k(x, x) - k_x' K^-1 k_x, plus the noise
                Kx = (Pi * w_cols) @ self.P_.T + b + c * poly
                V = linalg.solve_triangular(self.chol_[0], Kx.T, lower=True, check_finite=False)
                prior = (Pi * Pi * w_cols).sum(axis=1) + b + c + v
                var[i : i + len(Z)] = np.maximum(prior - (V * V).sum(axis=0), 1e-12)
        mean = self.target_.inverse(out)
        return mean, None if var is None else np.sqrt(var) * self.target_.scale
