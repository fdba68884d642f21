"""``ridge``: Bayesian ridge regression with one prior scale per feature block (evidence-fitted)."""

from __future__ import annotations

import numpy as np
from scipy import linalg, optimize
from scipy.linalg import lapack

from acc_predictor.common import LinearBlocks, TargetScaler
from nas.surrogate import SURROGATES, Surrogate


@SURROGATES.register("ridge")
class Ridge(Surrogate):
    """Posterior mean of ``y = phi(x).w + noise`` with ``w_i ~ N(0, s_block(i))``, noise ``N(0, v)``.

    ``phi`` is :class:`~acc_predictor.common.LinearBlocks`: the z-scored features and their ordinal
    codes, in blocks by gene kind (features sharing a set of values), each block with its own prior
    variance ``s_b``; targets are scaled to zero mean and unit variance. The ``n_blocks + 1``
    variances maximise the log evidence (type-II maximum likelihood: L-BFGS-B on their logarithms
    with the analytic gradient), so the data decide how far each block may move the prediction;
    no cross-validation and nothing random.

    Cost: everything after one ``phi' phi`` [p, p] product (p about 160 for the OFA features) is
    O(p^3) per evidence step whatever n is, so a fit at 5,000 samples takes as long as at 1,000
    plus that product.
    """

    name = "ridge"
    codes = "ordinal"  # or "onehot": the codes of LinearBlocks
    # log-space bounds of each block's prior variance (per weight; features and targets z-scored)
    # and of the noise variance.
    s_bounds = (1e-8, 1e2)
    v_bounds = (1e-6, 1.0)
    v_start = 1e-2

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self.phi_ = LinearBlocks(X, self.codes)
        self.target_ = TargetScaler(y)
        P, t = self.phi_(X), self.target_.forward(y)
        n, p = P.shape
        self.w_ = np.zeros(p)
        self.chol_ = None
        if p == 0:  # no feature varies: predict the mean
            self.theta_ = np.log([self.v_start])
            self.v_ = float(t.var()) if n > 1 else 1.0
            return
        PtP, Ptt, tt = P.T @ P, P.T @ t, float(t @ t)
        nb = self.phi_.n_blocks
        sizes = np.bincount(self.phi_.block_, minlength=nb)
        # start: the prior spreads the unit target variance evenly over the p weights
        theta0 = np.log(np.r_[np.full(nb, 1.0 / p), self.v_start])
        bounds = np.log([self.s_bounds] * nb + [self.v_bounds])
        res = optimize.minimize(
            self._neg_log_evidence, theta0, args=(PtP, Ptt, tt, n, sizes), jac=True,
            method="L-BFGS-B", bounds=bounds,
        )  # fmt: skip
        self.theta_ = res.x
        self.w_, self.chol_, _, self.v_ = self._posterior(res.x, PtP, Ptt)

    def _posterior(self, theta: np.ndarray, PtP: np.ndarray, Ptt: np.ndarray):
        """(mean m, Cholesky factor of A, prior variance per weight, noise v) for log variances theta."""
        s = np.exp(theta[self.phi_.block_])
        v = float(np.exp(theta[-1]))
        A = PtP / v
        A[np.diag_indices_from(A)] += 1.0 / s
        L = linalg.cho_factor(A, lower=True, check_finite=False)
        m = linalg.cho_solve(L, Ptt / v, check_finite=False)
        return m, L, s, v

    def _neg_log_evidence(
        self, theta: np.ndarray, PtP: np.ndarray, Ptt: np.ndarray, tt: float, n: int, sizes: np.ndarray
    ) -> tuple[float, np.ndarray]:
        try:
            m, L, s, v = self._posterior(theta, PtP, Ptt)
        except linalg.LinAlgError:
            return 1e25, np.zeros_like(theta)
        # A = S^-1 + P'P / v, m = A^-1 P't / v (Bishop, PRML 3.5; MacKay 1992)
        rss = tt - 2.0 * m @ Ptt + m @ PtP @ m
        log_det_a = 2.0 * np.log(np.diag(L[0])).sum()
        nll = 0.5 * (n * np.log(v) + np.log(s).sum() + log_det_a + rss / v + (m * m / s).sum())
        Sigma, info = lapack.dpotri(L[0], lower=1)  # A^-1 from the Cholesky factor: one lower triangle
        if info != 0:
            return 1e25, np.zeros_like(theta)
        Sigma = np.tril(Sigma) + np.tril(Sigma, -1).T
        # d nll / d log s_b = -1/2 sum_{i in b} ((m_i^2 + Sigma_ii) / s_b - 1)
        per_weight = (m * m + np.diag(Sigma)) / s
        g_s = -0.5 * (np.bincount(self.phi_.block_, weights=per_weight, minlength=len(sizes)) - sizes)
        # d nll / d log v = -1/2 ((rss + tr(P'P Sigma)) / v - n)
        g_v = -0.5 * ((rss + (PtP * Sigma).sum()) / v - n)
        return float(nll), np.r_[g_s, g_v]

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self.target_.inverse(self.phi_(X) @ self.w_)

    def _predict_std(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior predictive mean and standard deviation: ``var = v + phi A^-1 phi'``."""
        P = self.phi_(X)
        var = np.full(len(X), self.v_)
        if self.chol_ is not None:
            V = linalg.solve_triangular(self.chol_[0], P.T, lower=True, check_finite=False)
            var += (V * V).sum(axis=0)
        return self.target_.inverse(P @ self.w_), np.sqrt(var) * self.target_.scale
