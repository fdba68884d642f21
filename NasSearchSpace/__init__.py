"""Search-space plug-in: the OFA MobileNetV3 space (``mobilenetv3``), its analytic cost model and
latency look-up tables, and the NAS-Bench-201 cell space (``nb201``).

Importing the package registers them in :data:`nas.space.SEARCH_SPACES` (and the ``lut_latency``
cost provider); the contract they implement is :class:`nas.space.SearchSpace`.
"""

from NasSearchSpace import nb201, ofa_mbv3, ofa_mbv3_latency  # noqa: F401
