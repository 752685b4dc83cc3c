"""One registry per kind of pluggable component: sharing mechanisms (``MECHANISMS``), data
sources (``DATA_SOURCES``) and experiment kinds (``EXPERIMENTS``).

The config loader, ``mtlshare mechanisms`` and the contract tests all read the same registry,
so a new component is one file plus one decorator.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from mtlshare.errors import ConfigError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered component: its name, what builds it, and its config dataclass (or None)."""

    name: str
    build: T
    config: type | None
    summary: str
    paper: str


class Registry(Generic[T]):
    """Named components of one kind. ``home`` is the package whose import registers the
    library's own: it is imported on the first lookup, so ``MECHANISMS["hard"]`` works without
    importing ``mtlshare.sharing`` first (registration is an import's side effect)."""

    def __init__(self, kind: str, home: str = "") -> None:
        self.kind = kind
        self.home = home
        self._entries: dict[str, Entry[T]] = {}

    def _entries_now(self) -> dict[str, Entry[T]]:
        if self.home and self.home not in sys.modules:
            importlib.import_module(self.home)
        return self._entries

    def register(
        self, name: str, *, config: type | None = None, summary: str = "", paper: str = ""
    ) -> Callable[[T], T]:
        def decorate(obj: T) -> T:
            self._add(Entry(name, obj, config, summary, paper))
            return obj

        return decorate

    def _add(self, entry: Entry[T]) -> None:
        # the same definition again is its module imported again (``importlib.reload``,
        # a notebook's autoreload): it takes the old one's place
        old = self._entries.get(entry.name)
        if old is not None and not _same_definition(old.build, entry.build):
            raise ValueError(f"{self.kind} {entry.name!r} is registered twice")
        self._entries[entry.name] = entry

    def __getitem__(self, name: str) -> Entry[T]:
        try:
            return self._entries_now()[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries_now()

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries_now().values())

    def names(self) -> list[str]:
        return list(self._entries_now())


class CallableRegistry(Registry[Callable[..., Any]]):
    """A registry of classes and functions whose decorator hands back what it decorates with
    its own type, so that a data source registered by a user keeps its signature for type
    checkers (``Registry.register`` would make it a ``Callable[..., Any]``)."""

    def register(
        self, name: str, *, config: type | None = None, summary: str = "", paper: str = ""
    ) -> Callable[[F], F]:
        def decorate(obj: F) -> F:
            self._add(Entry(name, obj, config, summary, paper))
            return obj

        return decorate


def _same_definition(old: object, new: object) -> bool:
    """Whether ``new`` is ``old``'s definition run again: a class or function of the same
    module and qualified name."""
    where = [(getattr(o, "__module__", None), getattr(o, "__qualname__", None)) for o in (old, new)]
    return None not in where[0] and where[0] == where[1]


MECHANISMS = CallableRegistry("mechanism", home="mtlshare.sharing")
DATA_SOURCES = CallableRegistry("data source", home="mtlshare.data")
# experiment kinds (``experiment = "..."`` in a config): the section dataclass they read; what
# runs each lives in the application layer (``mtlshare.app.experiments``)
EXPERIMENTS: Registry[type | None] = Registry("experiment", home="mtlshare.config")
