"""``gp``: Gaussian-process regression with a linear trend (NumPy/SciPy, analytic gradients)."""

from __future__ import annotations

import numpy as np
from scipy import linalg, optimize
from scipy.linalg import lapack

from acc_predictor.base import SURROGATES, Standardizer, Surrogate, TargetScaler, random_subset

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
    """GP posterior mean, kernel ``a (b + x.x'/d) + c Matern52(|x - x'| / l) + v [x == x']``.

    The dot-product term is a Bayesian linear trend (a Gaussian prior on the weights of
    ``w0 + w.x``), the Matern 5/2 term the smooth deviation from it and ``v`` the noise, which also
    keeps the kernel matrix positive definite when rows of X repeat (repeats are kept: they are
    evidence about the noise). Features are z-scored per column, targets to zero mean and unit
    variance. The five hyperparameters maximise the log marginal likelihood (L-BFGS-B on their
    logarithms with the analytic gradient) from a fixed start plus ``n_restarts`` starts drawn
    from the generator.

    Cost caps (both steps are O(n^3)): the hyperparameters are fitted on a uniform random subset of
    at most ``max_opt_samples`` rows, and the posterior is conditioned on at most ``max_samples``
    rows (a superset of the first subset), both drawn from the generator.
    """

    name = "gp"
    max_opt_samples = 200
    max_samples = 1500
    n_restarts = 0
    # log-space bounds of (a, b, c, l / sqrt(d), v); l is relative to sqrt(d), the typical distance
    bounds = np.log([(1e-4, 1e2), (1e-3, 1e2), (1e-4, 1e2), (1e-2, 1e2), (1e-6, 1.0)])
    start = np.log([0.5, 1.0, 0.5, 1.0, 1e-2])
    jitter = 1e-8
    predict_chunk = 2000

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self.scaler_ = Standardizer(X)
        self.target_ = TargetScaler(y)
        Z, t = self.scaler_(X), self.target_.forward(y)
        self.d_ = Z.shape[1]
        rows = random_subset(len(t), self.max_samples, self.rng)
        opt_rows = rows[random_subset(len(rows), self.max_opt_samples, self.rng)]

        Zo, to = Z[opt_rows], t[opt_rows]
        G, D2 = Zo @ Zo.T / self.d_, _sq_dists(Zo, Zo)
        starts = [self.start] + [
            self.rng.uniform(self.bounds[:, 0], self.bounds[:, 1]) for _ in range(self.n_restarts)
        ]
        best = None
        for theta0 in starts:
            res = optimize.minimize(
                self._neg_log_likelihood, theta0, args=(G, D2, to), jac=True, method="L-BFGS-B",
                bounds=self.bounds,
            )  # fmt: skip
            if best is None or res.fun < best.fun:
                best = res
        self.theta_ = best.x

        self.Z_ = Z[rows]
        K = self._cov(self.Z_ @ self.Z_.T / self.d_, _sq_dists(self.Z_, self.Z_), self.theta_)[0]
        self.alpha_ = linalg.cho_solve(self._cholesky(K), t[rows])

    def _cov(self, G: np.ndarray, D2: np.ndarray, theta: np.ndarray, noise: bool = True):
        """Kernel matrix and its parts: (K, linear part, Matern part, s = sqrt(5) r / l)."""
        a, b, c, l_rel, v = np.exp(theta)
        s = SQRT5 * np.sqrt(D2) / (l_rel * np.sqrt(self.d_))
        lin, mat = a * (b + G), c * _matern52(s)
        K = lin + mat
        if noise:
            K[np.diag_indices_from(K)] += v + self.jitter
        return K, lin, mat, s

    def _cholesky(self, K: np.ndarray) -> tuple[np.ndarray, bool]:
        jitter = 0.0
        for _ in range(6):  # near-singular K (e.g. tiny noise and repeated rows): add jitter
            try:
                return linalg.cho_factor(K + jitter * np.eye(len(K)), lower=True, check_finite=False)
            except linalg.LinAlgError:
                jitter = max(1e-6, 10 * jitter)
        raise linalg.LinAlgError("GP kernel matrix is not positive definite even with jitter")

    def _neg_log_likelihood(
        self, theta: np.ndarray, G: np.ndarray, D2: np.ndarray, t: np.ndarray
    ) -> tuple[float, np.ndarray]:
        K, lin, mat, s = self._cov(G, D2, theta)
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
        a, b, c, _, v = np.exp(theta)
        dmat_dlogl = c * (s * s / 3.0) * (1.0 + s) * np.exp(-s)
        grad = np.array(
            [
                (W * lin).sum(),  # d/d log a
                a * b * W.sum(),  # d/d log b
                (W * mat).sum(),  # d/d log c
                (W * dmat_dlogl).sum(),  # d/d log l
                v * np.trace(W),  # d/d log v
            ]
        )
        return float(nll), -0.5 * grad

    def _predict(self, X: np.ndarray) -> np.ndarray:
        a, b, c, l_rel, _ = np.exp(self.theta_)
        scale = SQRT5 / (l_rel * np.sqrt(self.d_))
        # the linear part needs no [m, n] matrix: a (b + Z Z_'/d) alpha = a (b sum(alpha) + Z (Z_' alpha) / d)
        w_lin = self.Z_.T @ self.alpha_ / self.d_
        out = np.empty(len(X))
        for i in range(0, len(X), self.predict_chunk):  # bounded memory: chunk x max_samples matrices
            Z = self.scaler_(X[i : i + self.predict_chunk])
            s = _sq_dists(Z, self.Z_)  # Matern part in place: fewer passes over the big matrix
            np.sqrt(s, out=s)
            s *= scale
            e = np.exp(-s)
            poly = s / 3.0
            poly += 1.0
            poly *= s
            poly += 1.0
            poly *= e
            out[i : i + len(Z)] = a * (b * self.alpha_.sum() + Z @ w_lin) + c * (poly @ self.alpha_)
        return self.target_.inverse(out)
