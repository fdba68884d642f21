"""The engine's search strategies: ``msunas`` (the default), ``random`` and ``re``.

Importing the package registers them in :data:`nas.search.strategy.STRATEGIES`; plug-ins add
more (Bayesian optimisation, local search, reinforcement learning, progressive search).
"""

from nas.search.strategies import msunas, random_search, regularized_evolution  # noqa: F401
from nas.search.strategy import STRATEGIES, list_strategies  # noqa: F401
