"""Name -> object registries (search spaces, datasets, surrogates, objectives ...)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from nas.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to objects; registering a name twice fails loudly."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name")``."""

        def add(obj: T) -> T:
            if name in self._items and not _same_definition(self._items[name], obj):
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            if isinstance(obj, type) and not getattr(obj, "name", None):
                obj.name = name  # a component class knows the name it is registered under
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        if name not in self._items:
            choices = ", ".join(self.names()) or "(none registered)"
            raise UserError(f"unknown {self.kind} {name!r}; choose one of: {choices}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _same_definition(a: object, b: object) -> bool:
    """Whether ``a`` and ``b`` are one definition run twice: the same qualified name in the same
    file (a plug-in module imported under two names, e.g. as a script and as a package module)."""

    def where(obj: object) -> tuple[str | None, str | None]:
        module = sys.modules.get(getattr(obj, "__module__", "") or "")
        return getattr(obj, "__qualname__", None), getattr(module, "__file__", None)

    qa, fa = where(a)
    return qa is not None and fa is not None and (qa, fa) == where(b)
