"""Read-only documents: what lists from an informer cache return.

A repository made with ``cache=[...]`` answers lists from memory. Each cached document is
built into Python objects once per version and the same objects are handed to every reader
(a copy per reader cost more than the query itself: ~13-18 us per 2 KB document on the
machines measured, against ~0.1 us to hand out a shared one). So that no reader's edit can
reach another, those documents are read-only: a ``ReadOnlyDict`` is a ``dict`` (``isinstance``,
``json.dumps``, ``==``, ``doc["status"]["phase"]`` all work as on a dict) and a
``ReadOnlyList`` a ``list``, but changing either raises ``TypeError``. Kubernetes' informer
listers and kube-rs' reflector stores hand out shared objects the same way.

To change one, take a mutable copy: ``thaw(doc)`` (or ``copy.deepcopy(doc)``) gives plain
dicts and lists all the way down; ``dict(doc)`` a shallow one. Reads straight from etcd
(``get_async``, lists of a repository without a cache) return plain dicts as before, and so
do watches, unless asked for ``readonly=True``: then every read-only watcher of a change gets
the same read-only documents, built once (a hundred watchers of every change would otherwise
build a hundred copies of each document).
"""

from __future__ import annotations

import copy
from typing import Any, NoReturn, TypeVar

__all__ = ["ReadOnlyDict", "ReadOnlyList", "thaw"]

_T = TypeVar("_T")


def _refuse(obj: object) -> NoReturn:
    raise TypeError(
        f"this {type(obj).__name__} is a document shared with other readers (a cache's, or"
        " read-only watchers') and cannot be changed; etcd_resources.thaw(doc) (or"
        " copy.deepcopy(doc)) gives a mutable copy"
    )


class ReadOnlyDict(dict[str, Any]):
    """A ``dict`` that refuses changes (see the module doc)."""

    __slots__ = ()

    def __setitem__(self, key: str, value: Any) -> None:
        _refuse(self)

    def __delitem__(self, key: str) -> None:
        _refuse(self)

    def __ior__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _refuse(self)

    def clear(self) -> None:
        _refuse(self)

    def pop(self, *args: Any) -> Any:
        _refuse(self)

    def popitem(self) -> tuple[str, Any]:
        _refuse(self)

    def setdefault(self, *args: Any) -> Any:
        _refuse(self)

    def update(self, *args: Any, **kwargs: Any) -> None:
        _refuse(self)

    def copy(self) -> dict[str, Any]:
        """A shallow, mutable copy (a plain ``dict``; what it holds is still read-only)."""
        return dict(self)

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v, memo) for k, v in self.items()}

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as a plain dict: a copy is a copy, wherever it goes.
        return (dict, (dict(self),))


class ReadOnlyList(list[Any]):
    """A ``list`` that refuses changes (see the module doc)."""

    __slots__ = ()

    def __setitem__(self, index: Any, value: Any) -> None:
        _refuse(self)

    def __delitem__(self, index: Any) -> None:
        _refuse(self)

    def __iadd__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _refuse(self)

    def __imul__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _refuse(self)

    def append(self, value: Any) -> None:
        _refuse(self)

    def extend(self, values: Any) -> None:
        _refuse(self)

    def insert(self, index: Any, value: Any) -> None:
        _refuse(self)

    def pop(self, *args: Any) -> Any:
        _refuse(self)

    def remove(self, value: Any) -> None:
        _refuse(self)

    def clear(self) -> None:
        _refuse(self)

    def reverse(self) -> None:
        _refuse(self)

    def sort(self, *args: Any, **kwargs: Any) -> None:
        _refuse(self)

    def copy(self) -> list[Any]:
        """A shallow, mutable copy (a plain ``list``; what it holds is still read-only)."""
        return list(self)

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return [copy.deepcopy(v, memo) for v in self]

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (list(self),))


def thaw(doc: _T) -> _T:
    """A mutable copy of a document: read-only dicts and lists become plain ones, all the way
    down; anything else is returned as it is (a plain dict is copied too)."""
    if isinstance(doc, dict):
        return {k: thaw(v) for k, v in doc.items()}  # type: ignore[return-value]
    if isinstance(doc, list):
        return [thaw(v) for v in doc]  # type: ignore[return-value]
    return doc
