"""Hardware in the loop: latency tables and datasets measured on your own device, latency
predictors, energy (measured or from a device profile) and HADAS's bi-level exits + DVFS search.

Importing the package registers its components (cost providers, measures, objectives) in the
engine's registries.
"""

from hardware import bilevel, latency, search_energy  # noqa: F401
