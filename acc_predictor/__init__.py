"""Surrogate plug-in: ``ridge``, ``gp``, ``rbf``, ``carts``, ``mlp`` and ``as`` (Adaptive Switching).

Importing the package registers them in :data:`nas.surrogate.SURROGATES`; the contract, the
quality measures and ``fit_surrogate`` are the engine's (:mod:`nas.surrogate`). ``as`` picks the
candidate with the best ``mean - std`` of the fold Kendall taus.
"""

from acc_predictor import adaptive_switching, carts, gp, mlp, rbf, ridge  # noqa: F401
