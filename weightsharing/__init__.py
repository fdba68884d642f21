"""Weight-sharing and gradient-based NAS: supernets whose training replaces most evaluations.

Importing the package registers the supernets (:data:`weightsharing.supernet.SUPERNETS`) and the
methods as search strategies: ``darts`` and ``pcdarts`` (:mod:`weightsharing.darts`; ``--robust``
adds the beta-decay fix). Every method trains its supernet inside the search loop and proposes the
architecture it derives, so its run directory is that of any search (see
:mod:`weightsharing.method`).
"""

from weightsharing import darts, darts_space, enas, evaluator, spos, supernet, train_modes  # noqa: F401
