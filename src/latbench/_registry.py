"""Registries: register by name with a decorator, list with a filter, create by name.

Follows timm's ``_registry``: a registry maps a name to a factory. Third parties plug in through
the entry-point group ``latbench.<kind>`` (for example ``latbench.spaces``), loaded lazily the
first time a registry is listed or looked up.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Generic, TypeVar

from latbench.errors import UnknownNameError

log = logging.getLogger(__name__)

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of factories of one kind (spaces, runtimes, devices, predictors)."""

    def __init__(self, kind: str, label: str | None = None) -> None:
        self.kind = kind
        self.label = label or (kind[:-1] if kind.endswith("s") else kind)
        self._items: dict[str, T] = {}
        self._entry_points_loaded = False

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: ``@SPACES.register("nb201")`` on a class or factory function."""

        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or getattr(obj, "__name__", None)
            if not isinstance(key, str):
                raise TypeError(f"cannot infer a registry name for {obj!r}")
            self._items[key] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        self._items[name] = obj

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in metadata.entry_points(group=f"latbench.{self.kind}"):
            if ep.name in self._items:
                continue
            try:
                self._items[ep.name] = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break latbench
                log.warning("could not load %s plugin %r: %s", self.kind, ep.name, exc)

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a glob ``pattern``, sorted."""
        self._load_entry_points()
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def get(self, name: str) -> T:
        self._load_entry_points()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(self.names()) or "(none)"
            raise UnknownNameError(
                f"unknown {self.label} {name!r}; expected one of: {known}"
            ) from None

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
