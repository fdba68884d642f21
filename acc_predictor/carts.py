"""``carts``: a bag of regression trees on bootstrap samples and random feature subsets."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from acc_predictor.common import seed_from
from nas.surrogate import SURROGATES, Surrogate


@SURROGATES.register("carts")
class CARTs(Surrogate):
    """Mean prediction of ``n_trees`` fully grown CART regression trees.

    Tree ``t`` sees a bootstrap sample of at most ``max_tree_samples`` rows (drawn with
    replacement) and a random subset of ``ceil(feature_fraction * d)`` features, both drawn from the
    generator. ``feature_importances_`` [d] is the impurity importance of each feature averaged
    over the trees (0 for a tree that did not see the feature, or that has no split). A feature
    without influence still gets a little: a tree that lacks the influential features splits on
    whatever it has to fit its bootstrap sample.

    Cost: fitting is about ``n_trees * m log m`` for ``m = min(n, max_tree_samples)``; the cap on
    the rows per tree keeps a fit at 5,000 samples at about 0.3 s on 2 cores (``n_threads``).
    """

    name = "carts"
    n_trees = 100
    feature_fraction = 0.5
    max_tree_samples = 1000
    min_samples = 2
    # sklearn grows a tree without holding the GIL, so threads use both cores of a 2-core machine
    # (measured: 100 trees on 1,000 rows 0.54 s -> 0.28 s); results do not depend on it.
    n_threads = min(
        4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        n, d = X.shape
        m = min(n, self.max_tree_samples)
        n_sub = max(1, int(np.ceil(self.feature_fraction * d)))
        X32 = np.asarray(X, dtype=np.float32)  # sklearn trees work in float32; convert once
        # All random draws happen here, in order, so the threads below cannot change the result.
        plans = []
        for _ in range(self.n_trees):
            rows = self.rng.integers(0, n, size=m)
            cols = np.sort(self.rng.choice(d, size=n_sub, replace=False))
            plans.append((rows, cols, seed_from(self.rng)))

        from sklearn.tree import DecisionTreeRegressor  # 1 s to import: only when trees are grown

        def grow(plan: tuple[np.ndarray, np.ndarray, int]) -> DecisionTreeRegressor:
            rows, cols, seed = plan
            return DecisionTreeRegressor(random_state=seed).fit(X32[np.ix_(rows, cols)], y[rows])

        with ThreadPoolExecutor(max_workers=self.n_threads) as pool:
            trees = list(pool.map(grow, plans))
        self.trees_ = [(cols, tree) for (_, cols, _), tree in zip(plans, trees, strict=True)]
        importances = np.zeros(d)
        for cols, tree in self.trees_:
            importances[cols] += tree.feature_importances_
        self.feature_importances_ = importances / self.n_trees

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self._tree_predictions(X).mean(axis=0)

    def _predict_std(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The trees' mean and their spread (standard deviation): the ensemble's uncertainty, as
        random-forest Bayesian optimisation uses it."""
        P = self._tree_predictions(X)
        return P.mean(axis=0), P.std(axis=0)

    def _tree_predictions(self, X: np.ndarray) -> np.ndarray:
        X32 = np.ascontiguousarray(X, dtype=np.float32)  # float32, C order: checked once here
        return np.stack([tree.predict(X32[:, cols], check_input=False) for cols, tree in self.trees_])
