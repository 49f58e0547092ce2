"""Related resources, as kube-runtime's ``Controller::owns`` and ``Controller::watches``: a
change under another prefix triggers the controller's resources it relates to.

- ``owns=repository``: a change of a resource there triggers the owners its owner references
  name (``owners.py``), both before and after a re-parenting; with ``collect=True`` (the
  default) the ``Collector`` deletes it once its owners are gone.
- ``watches=(repository, mapper)``: ``mapper(resource)`` (the resource as the repository's
  reads return it) says which of the controller's resources to reconcile: names,
  ``(name, namespace)`` pairs, or resources.

Each relation follows its prefix's shared watch (opened before the controller lists, so nothing
falls between), and tells the related prefix's cache that this client saw the change: a
reconciler's cached read of the related resource waits until the cache has it, so it never acts
on the state the change replaced. A mapper that raises ends ``run()`` with its error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import _core
from ..errors import ClosedError, InvalidArgumentError
from ..repository import _Repository
from ._resource import key_of
from .collector import Collector
from .owners import owner_refs

__all__ = ["Mapper", "Relation", "relations"]

log = logging.getLogger("etcd_resources.controller")

# Changes a relation's feed may leave unread (while the collector's startup sweep runs, say)
# before its watch ends with WatchFellBehindError: the controller then reopens it and queues
# every key again (``Controller._start_feed``).
BACKLOG = 100_000

Mapper = Callable[[Any], Iterable[Any]]
"""``mapper(resource)``: what to reconcile for a change of ``resource`` (names,
``(name, namespace)`` pairs, or resources of the controller's repository)."""


@dataclass(frozen=True)
class Relation:
    """One related repository: its changes trigger the controller's keys."""

    repository: _Repository[Any]
    mapper: Mapper | None
    """``None``: the owners named by owner references (``owns=``)."""


def relations(
    owns: _Repository[Any] | Sequence[_Repository[Any]] | None,
    watches: tuple[_Repository[Any], Mapper] | Sequence[tuple[_Repository[Any], Mapper]] | None,
) -> list[Relation]:
    """The ``owns=`` and ``watches=`` arguments of ``Controller``, checked."""
    found: list[Relation] = []
    owned: Sequence[object] = (
        [] if owns is None else [owns] if isinstance(owns, _Repository) else owns
    )
    for repository in owned:
        if not isinstance(repository, _Repository):
            raise TypeError(f"owns= takes repositories, not {repository!r}")
        found.append(Relation(repository, None))
    pairs: Sequence[object] = (
        []
        if watches is None
        else [watches]
        if isinstance(watches, tuple) and watches and isinstance(watches[0], _Repository)
        else watches
    )
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], _Repository)):
            raise TypeError(f"watches= takes (repository, mapper) pairs, not {pair!r}")
        if not callable(pair[1]):
            raise TypeError(f"the mapper of watches= must be callable, not {pair[1]!r}")
        found.append(Relation(pair[0], pair[1]))
    return found


class _Feed:
    """A watch of one prefix, in dicts, from the moment it is opened."""

    def __init__(self, watched: _core.RepositoryCore) -> None:
        self._watched = watched
        self._stream: _core.WatchStream | None = None

    async def open(self) -> None:
        self._stream = await self._watched.watch_stream(0, typed=False, max_backlog=BACKLOG)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()

    async def reopen(self) -> None:
        """After the watch fell behind: follow on from now (the caller queues every key again,
        which makes up for what was missed)."""
        self.close()
        await self.open()

    def stream(self) -> _core.WatchStream:
        if self._stream is None:
            raise RuntimeError("open() the feed first")
        return self._stream


class Follower(_Feed):
    """One relation's feed."""

    def __init__(
        self,
        relation: Relation,
        controller: _Repository[Any],
        collector: Collector | None,
    ) -> None:
        super().__init__(relation.repository._core)
        self._relation = relation
        self._related = relation.repository._core
        self._controller = controller
        self._collector = collector

    def _keys(self, document: Any) -> list[str]:
        """The controller's keys a change of ``document`` (a dict) triggers."""
        core = self._controller._core
        namespaced = core.namespaced
        if self._relation.mapper is None:
            keys = []
            for ref in owner_refs(document):
                try:
                    keys.append(core.key(ref.name, ref.namespace if namespaced else None))
                except InvalidArgumentError:
                    log.warning("an owner reference names %r, not a valid name", ref.name)
            return keys
        resource = self._relation.repository._from_document(document)
        keys = []
        for target in self._relation.mapper(resource):
            if isinstance(target, str):
                keys.append(core.key(target, None))
            elif isinstance(target, tuple) and len(target) == 2:
                keys.append(core.key(target[0], target[1] if namespaced else None))
            else:
                keys.append(key_of(core, target))
        return keys

    async def run(self, trigger: Callable[[list[str]], None]) -> None:
        """Trigger the related keys of every change, until the stream ends (``ClosedError``)."""
        stream = self.stream()
        prefix = self._related.prefix
        while (batch := await stream.next_batch()) is not None:
            keys: list[str] = []
            last: tuple[str, int] | None = None
            for kind, name, value, previous, revision in batch:
                if kind == "BOOKMARK":
                    continue
                last = (prefix + name, revision)
                for document in (value, previous):
                    if isinstance(document, Mapping):
                        keys.extend(self._keys(document))
                if self._collector is not None:
                    self._collector.note(kind, value, previous)
                    if self._reparented(kind, value, previous):
                        await self._collector.consider(value)
            if last is not None:
                # Reads of the related cache from now on wait until it has these changes.
                self._related.note_seen(*last)
            if keys:
                trigger(list(dict.fromkeys(keys)))
        raise ClosedError("the watch of related resources ended")

    async def reopen(self) -> None:
        await super().reopen()
        if self._collector is not None:
            await self._collector.sweep()  # re-parentings missed meanwhile

    @staticmethod
    def _reparented(kind: str, value: Any, previous: Any) -> bool:
        if value is None or kind == "DELETED":
            return False
        return kind == "ADDED" or owner_refs(value) != owner_refs(previous)


class OwnerDeletions(_Feed):
    """The controller's own prefix, for the collector: each deleted owner collects what it
    owned."""

    def __init__(self, controller: _Repository[Any], collectors: list[Collector]) -> None:
        super().__init__(controller._core)
        self._collectors = collectors

    async def run(self) -> None:
        stream = self.stream()
        for collector in self._collectors:
            await collector.sweep()
        while (batch := await stream.next_batch()) is not None:
            for kind, _name, value, previous, _revision in batch:
                for collector in self._collectors:
                    if kind == "DELETED" and isinstance(previous, Mapping):
                        await collector.owner_gone(previous)
                    elif isinstance(value, Mapping):
                        collector.learn(value)
        raise ClosedError("the watch of the controller's prefix ended")
