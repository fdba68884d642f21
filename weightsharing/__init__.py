"""Weight-sharing and gradient-based NAS: supernets whose training replaces most evaluations.

Importing the package registers the supernets (:data:`weightsharing.supernet.SUPERNETS`) and the
methods as search strategies: ``darts`` and ``pcdarts`` (:mod:`weightsharing.darts`; ``--robust``
adds the beta-decay fix), ``enas`` (:mod:`weightsharing.enas`), ``spos`` (:mod:`weightsharing.spos`)
and ``proxyless`` (:mod:`weightsharing.proxyless`, on the OFA MobileNetV3 space), the DARTS cell
space (:mod:`weightsharing.darts_space`), the ``oneshot`` evaluator and the ``train.py`` modes.
Every method trains its supernet inside the search loop and proposes the architecture it derives,
so its run directory is that of any search (see :mod:`weightsharing.method`).
"""

from weightsharing import (  # noqa: F401  (registrations)
    darts,
    darts_space,
    enas,
    evaluator,
    proxyless,
    spos,
    supernet,
    train_modes,
)
