"""The search spaces hardware tools measure: OFA MobileNetV3 and the spaces derived from it."""

from __future__ import annotations

from typing import Any

from nas.errors import UserError


def ofa_space(name: str, width_mult: float = 1.0, **options: Any) -> Any:
    """The registered space ``name`` at ``width_mult``; refused unless it is an OFA MobileNetV3."""
    from nas.space import SEARCH_SPACES
    from NasSearchSpace.ofa_mbv3 import OFAMobileNetV3Space

    cls = SEARCH_SPACES.get(name)
    if not (isinstance(cls, type) and issubclass(cls, OFAMobileNetV3Space)):
        raise UserError(
            f"--space {name!r} is not an OFA MobileNetV3 space; latency tables are made for those"
        )
    return cls(width_mult=width_mult, **options)
