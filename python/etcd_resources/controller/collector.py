"""Cascading deletion, as Kubernetes' garbage collector does it in the background: a resource
whose owner references (``owners.py``) all name owners that are gone is deleted.

It runs beside a controller with ``owns=``: once at startup over every owned resource (owners
deleted while nothing ran), then for each owner deletion the controller's prefix sees, and for
each owned resource created or re-parented (an owner that went just before). An owner's
deletion looks up its dependents in an index (owner -> owned names, as Kubernetes' garbage
collector keeps a graph), built by the startup sweep and kept by the owned prefix's feed, and
reads each of them again: its cost is its dependents, not the owned prefix. The index may hold
a stale entry (the sweep racing the feed), never lack one that matters: a dependent the feed
has not indexed yet is judged when the feed sees it created. An owner counts
as gone when etcd has no resource under its name, or one with another ``uid``; it is read from
etcd (not the cache) before anything is deleted. A reference whose ``kind`` is not the kind of
the controller's resources (as their documents say) names an owner this collector cannot look
up, so the resource is kept. A resource with finalizers is marked, not deleted, as any delete
does.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .. import _core
from ..errors import ConflictError, NotFoundError
from ._resource import meta
from .owners import OwnerRef, owner_refs

__all__ = ["Collector"]

log = logging.getLogger("etcd_resources.controller")

_Id = tuple[str, str | None]  # (name, namespace): a resource of a prefix

_REJUDGE = 8  # reads of a resource that keeps changing while it is judged


async def _every(core: _core.RepositoryCore, consistent: bool | None = None) -> list[Any]:
    """Every resource under ``core``'s prefix, as dicts (the rest of a long list chunk by
    chunk, as ``list_async`` reads it)."""
    docs, rest = await core.list(consistent=consistent)
    while rest is not None and (chunk := await rest.next()) is not None:
        docs.extend(chunk)
    return docs


class Collector:
    """Deletes the resources of ``owned`` (a dict-shaped repository core) whose owners, in
    ``owners`` (one too), have all gone."""

    def __init__(
        self,
        owners: _core.RepositoryCore,
        owned: _core.RepositoryCore,
        collected: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._owners = owners
        self._owned = owned
        self._on_collected = collected
        self._kinds: set[str] = set()
        self.collected = 0
        # owner (name, namespace) -> the owned resources naming it; owned -> the owners named
        self._dependents: dict[_Id, set[_Id]] = {}
        self._owners_of: dict[_Id, list[_Id]] = {}

    def _owned_id(self, resource: Any) -> _Id:
        namespace = meta(resource, "namespace")
        return (meta(resource, "name"), namespace if self._owned.namespaced else None)

    def _index(self, owned: _Id, resource: Any) -> None:
        owners = [(ref.name, self._namespace(ref)) for ref in owner_refs(resource)]
        if owners:
            self._owners_of[owned] = owners
            for owner in owners:
                self._dependents.setdefault(owner, set()).add(owned)

    def note(self, kind: str, value: Any, previous: Any) -> None:
        """Keep the index current with a change of an owned resource (the owned feed's)."""
        document = previous if value is None or kind == "DELETED" else value
        if not isinstance(document, Mapping):
            return
        owned = self._owned_id(document)
        for owner in self._owners_of.pop(owned, ()):
            dependents = self._dependents.get(owner)
            if dependents is not None:
                dependents.discard(owned)
                if not dependents:
                    del self._dependents[owner]
        if kind != "DELETED" and isinstance(value, Mapping):
            self._index(owned, value)

    def learn(self, owner: Any) -> None:
        """``owner`` is a resource of the controller's prefix: remember its kind."""
        kind = owner.get("kind") if isinstance(owner, Mapping) else None
        if isinstance(kind, str):
            self._kinds.add(kind)

    def _namespace(self, ref: OwnerRef) -> str | None:
        return ref.namespace if self._owners.namespaced else None

    async def sweep(self) -> None:
        """Collect every owned resource whose owners are gone (at startup)."""
        owners = await _every(self._owners, consistent=True)
        present: dict[tuple[str, str | None], Any] = {}
        for owner in owners:
            self.learn(owner)
            present[(meta(owner, "name"), meta(owner, "namespace"))] = meta(owner, "uid")
        for resource in await _every(self._owned, consistent=True):
            refs = owner_refs(resource)
            # Added to, never cleared: the feed may already have indexed later changes.
            self._index(self._owned_id(resource), resource)
            if refs and not any(self._alive_in(present, ref) for ref in refs):
                await self.consider(resource)

    async def _orphaned(self, resource: Any) -> bool:
        """Whether every owner ``resource`` names is gone (read from etcd)."""
        refs = owner_refs(resource)
        if not refs:
            return False
        for ref in refs:
            if ref.kind is not None and ref.kind not in self._kinds:
                return False  # an owner of a kind this collector cannot look up
            owner = await self._owners.get(ref.name, self._namespace(ref))
            if owner is not None and (ref.uid is None or meta(owner, "uid") == ref.uid):
                return False
        return True

    def _alive_in(self, present: dict[tuple[str, str | None], Any], ref: OwnerRef) -> bool:
        key = (ref.name, self._namespace(ref))
        return key in present and (ref.uid is None or present[key] == ref.uid)

    async def owner_gone(self, owner: Any) -> None:
        """``owner`` was deleted: collect what it owned, if nothing else owns it."""
        self.learn(owner)
        name, namespace, uid = meta(owner, "name"), meta(owner, "namespace"), meta(owner, "uid")
        key = (name, namespace if self._owners.namespaced else None)
        # Not taken out of the index: an owner made again under the name may own some of them.
        for owned in sorted(self._dependents.get(key, ()), key=str):
            resource = await self._owned.get(*owned)
            if resource is None:
                continue
            for ref in owner_refs(resource):
                if (ref.name, self._namespace(ref)) == key and (ref.uid is None or ref.uid == uid):
                    await self.consider(resource)
                    break

    async def consider(self, resource: Any) -> bool:
        """Delete ``resource`` if every owner it names is gone; whether it did. The delete
        holds only while the resource is at the version whose references were judged: one
        re-parented meanwhile is read again and judged on its new references."""
        name, namespace = meta(resource, "name"), meta(resource, "namespace")
        namespace = namespace if self._owned.namespaced else None
        for _ in range(_REJUDGE):
            if not await self._orphaned(resource):
                return False
            try:
                await self._owned.remove(
                    name, namespace, expected_version=meta(resource, "resource_version")
                )
                break
            except NotFoundError:
                return False
            except ConflictError:
                resource = await self._owned.get(name, namespace)  # changed: judge it again
                if resource is None:
                    return False
        else:
            return False  # changing faster than it can be judged: its next change comes here
        self.collected += 1
        if self._on_collected is not None:
            await self._on_collected()
        log.info("deleted %s%s: its owners are gone", self._owned.prefix, name)
        return True
