"""More search strategies, each a registered :class:`nas.search.strategy.Strategy` (``--strategy``):

- ``ls``: local search over one-gene neighbourhoods, first improvement, restarts; Pareto local
  search for several objectives (:mod:`strategies.local_search`);
- ``bo``: Bayesian optimisation with a surrogate that has a predictive spread (``gp``, ``carts``,
  ``ridge``), BANANAS-style candidates, Monte-Carlo expected improvement or Thompson sampling;
  several objectives by a Thompson draw plus non-dominated sorting and hypervolume gain
  (:mod:`strategies.bayesian`);
- ``rl``: REINFORCE over a per-gene categorical policy or an LSTM controller
  (:mod:`strategies.reinforce`);
- ``pnas``: progressive search with a predictor, growing networks group of genes by group
  (:mod:`strategies.progressive`).

They work on every space through the space's genes, neighbours and growth groups, resume exactly
(their state is in every ``iter_k.stats``) and write the same run directories as ``msunas``.
"""

from strategies import bayesian, local_search, progressive, reinforce  # noqa: F401
