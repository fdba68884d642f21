"""Surrogate accuracy predictors, looked up by name: ``ridge``, ``gp``, ``rbf``, ``carts``, ``mlp``, ``as``.

``fit(X, y)`` on features [n, d] and a minimised target [n] (e.g. top-1 error), ``predict(X)``;
``surrogate_quality`` cross-validates a surrogate type (rmse, Spearman rho, Kendall tau) and
``fit_surrogate`` returns a model fitted on all data together with that quality. ``as``
(Adaptive Switching) picks the candidate with the best ``mean - std`` of the fold Kendall taus.
"""

# Registration happens on import of each model module.
from acc_predictor import adaptive_switching, carts, gp, mlp, rbf, ridge  # noqa: E402,F401,I001
from acc_predictor.base import SURROGATES, Surrogate, get_surrogate, list_surrogates
from acc_predictor.metrics import fit_surrogate, quality, surrogate_quality

__all__ = [
    "SURROGATES",
    "Surrogate",
    "fit_surrogate",
    "get_surrogate",
    "list_surrogates",
    "quality",
    "surrogate_quality",
]
