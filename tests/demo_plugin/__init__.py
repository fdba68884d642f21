"""A plug-in written only for the tests: it registers a search space, a trainer, a measure, a cost
provider, a population-aware objective, an oracle evaluator and a search strategy, and the tests
run it through ``msunas.py --plugins tests/demo_plugin``, worker processes, Ray, ``--resume``,
``post_search.py`` and the tools without any change to the engine.
"""

from demo_plugin import parts  # noqa: F401 (registers the parts; the folder is loaded by path)
