"""Search-space plug-in: the OFA MobileNetV3 space (``mobilenetv3``), its analytic cost model and
latency look-up tables, and the NAS-Bench-201 cell space (``nb201``).

Importing the package registers them in :data:`nas.space.SEARCH_SPACES`, the ``lut_latency`` cost
provider, and the ``default`` preset (the run ``msunas.py`` makes without ``--benchmark``); the
contract they implement is :class:`nas.space.SearchSpace`.
"""

from nas.search.description import PRESETS, Preset
from NasSearchSpace import nb201, ofa_mbv3, ofa_mbv3_latency  # noqa: F401

# What msunas.py searches without --benchmark: the CNAS defaults (subnets of an OFA MobileNetV3
# supernet scored on a dataset, exact analytic costs, top-1 [+ --sec_obj], MSuNAS with Adaptive
# Switching).
PRESETS.register("default")(
    Preset(
        {
            "space": {"name": "mobilenetv3"},
            "evaluator": {"name": "subnet"},
            "trainer": {"name": "single_exit"},
            "measures": ["accuracy"],
            "costs": ["analytic"],
            "objectives": ["top1"],
            "strategy": {"name": "msunas", "predictor": "as"},
        },
        "subnets of an OFA MobileNetV3 supernet on a dataset (the CNAS defaults)",
    )
)
