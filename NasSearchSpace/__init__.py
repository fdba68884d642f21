"""Search spaces: what can be searched and how to build it. Look them up by name."""

from nas.registry import Registry

SEARCH_SPACES: Registry = Registry("search space")


def get_search_space(name: str, **kwargs):
    """Instantiate a registered search space, e.g. ``get_search_space("mobilenetv3", lr=32, ur=64)``."""
    return SEARCH_SPACES.get(name)(**kwargs)


def list_search_spaces() -> list[str]:
    return SEARCH_SPACES.names()


# Registration happens on import of each space module.
import NasSearchSpace.nb201  # noqa: E402,F401
from NasSearchSpace import ofa_mbv3  # noqa: E402,F401
