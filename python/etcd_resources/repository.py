"""``ResourceRepository``: Kubernetes-style resources in etcd, with Neuroglia's repository
method names.

Semantics (see docs/semantics.md): the key is ``prefix + name`` (``prefix + namespace + "/" + name``
when ``namespaced=True``); ``add_async`` is an atomic create; ``update_async`` is a
compare-and-swap on ``metadata.resource_version`` (etcd's mod_revision); ``generation`` counts
spec changes; deletes wait for finalizers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import _core
from . import _neuroglia_bases as _neuroglia
from .errors import AlreadyExistsError, ConflictError, NotFoundError
from .tracing import traced
from .typed import from_document, plan_for
from .watching import Callback, EventType, ResourceEvent, WatchHandle, retrieved

__all__ = ["ResourcePage", "ResourceRepository", "UnreadableDocument"]

log = logging.getLogger("etcd_resources")

_EVENT_TYPES = {t.value: t for t in EventType}

T = TypeVar("T")
Document = dict[str, Any]
Selector = Mapping[str, Any] | str | None


@dataclass(frozen=True, slots=True)
class ResourcePage:
    """One page of a listing."""

    items: list[Any]
    resource_version: str
    """The revision every page of this listing is read at."""
    continue_token: str | None
    """Where the next page starts; ``None`` on the last page."""


@dataclass(frozen=True, slots=True)
class UnreadableDocument:
    """A stored document under the prefix that cannot be read (``find_unreadable_async``)."""

    key: str
    name: str
    """The key after the prefix (``namespace/name`` in a namespaced repository)."""
    resource_version: str
    reason: str


# The metadata fields the store owns, copied back onto the caller's object after a write.
_SERVER_FIELDS = ("resource_version", "generation", "uid", "deletion_timestamp")


def _metadata_of(resource: Any) -> Any:
    if isinstance(resource, Mapping):
        return resource.get("metadata")
    return getattr(resource, "metadata", None)


def _name_of(resource: Any) -> str:
    meta = _metadata_of(resource)
    name = meta.get("name") if isinstance(meta, Mapping) else getattr(meta, "name", None)
    if not isinstance(name, str):
        raise TypeError("a resource needs metadata.name (a string)")
    return name


class _Repository(Generic[T]):
    """Resources under one key prefix.

    ``cache=True`` (or a list of field paths to index, e.g. ``["status.phase"]``) answers lists
    and counts from an informer cache shared by every repository of the client on the same
    prefix: a list + watch held in Rust, every label indexed.

    Resources are dicts in the ``Resource.to_dict()`` shape, or objects with ``to_dict()``
    (a Neuroglia ``Resource``). Writes return the stored state: a dict for a dict, the same
    object (with ``metadata.resource_version``, ``generation`` and ``uid`` updated) for an
    object. Reads return dicts.
    """

    def __init__(
        self,
        client: _core.EtcdClient,
        prefix: str,
        *,
        namespaced: bool = False,
        format: str = "json",
        default_namespace: str = "default",
        resource_type: type | None = None,
        mediator: Any = None,
        cache: bool | Sequence[str] = False,
    ) -> None:
        self._client = client
        self._resource_type = None if resource_type in (None, dict) else resource_type
        # Anything with `async publish_async(event)`, e.g. Neuroglia's Mediator.
        self._mediator = mediator
        self._core = _core.RepositoryCore(
            client,
            prefix,
            namespaced=namespaced,
            format=format,
            default_namespace=default_namespace,
            cache_fields=None if cache is False else ([] if cache is True else list(cache)),
            # Reads build resource_type instances in Rust, from a plan made once per class.
            type_plan=None if self._resource_type is None else plan_for(self._resource_type),
        )

    @property
    def client(self) -> _core.EtcdClient:
        return self._client

    @property
    def prefix(self) -> str:
        return self._core.prefix

    # -- mapping between stored documents and the caller's objects ---------------------------

    @property
    def resource_type(self) -> type | None:
        """The class reads return (``None``: dicts)."""
        return self._resource_type

    def _from_document(self, doc: Document) -> Any:
        """Turn a document (a dict) into what reads return: a ``resource_type`` instance, or the
        dict itself. (The core's reads already return what reads return.)"""
        if self._resource_type is None:
            return doc
        return from_document(self._resource_type, doc)

    def _after_write(self, resource: Any, doc: Document) -> Any:
        if isinstance(resource, dict):
            return doc
        meta = _metadata_of(resource)
        if meta is None:
            return self._from_document(doc)
        stored = doc.get("metadata", {})
        for field in _SERVER_FIELDS:
            if not (hasattr(meta, field) or field in stored):
                continue
            value = stored.get(field)
            if field.endswith("_timestamp") and isinstance(value, str):
                value = datetime.fromisoformat(value)
            try:
                setattr(meta, field, value)
            except AttributeError:
                pass  # a read-only attribute: the object keeps its own value
        return resource

    # -- Neuroglia's repository methods -------------------------------------------------------

    @traced("contains")
    async def contains_async(self, id: str, namespace: str | None = None) -> bool:
        """Whether a resource named ``id`` exists."""
        return await self._core.contains(id, namespace)

    @traced("get")
    async def get_async(self, id: str, namespace: str | None = None) -> Any | None:
        """The resource named ``id``, or ``None`` when there is none (failures raise)."""
        return await self._core.get(id, namespace)

    async def add_async(
        self, entity: T, *, ttl: int | None = None, lease: _core.Lease | None = None
    ) -> T:
        """Create the resource. Raises ``AlreadyExistsError`` if the name is taken. Then
        publishes the entity's pending domain events (with a mediator).

        ``ttl=seconds`` attaches a new etcd lease: the resource disappears when it expires.
        ``lease=`` attaches an existing one, e.g. ``await client.grant_lease(30)``, which Rust
        keeps alive until ``lease.cancel()`` or ``await lease.revoke()`` (several resources may
        share it). Updates keep the lease."""
        result = await self._do_add_async(entity, ttl=ttl, lease=lease)
        await self._publish_domain_events(entity)
        return result

    @traced("create")
    async def _do_add_async(
        self, entity: T, *, ttl: int | None = None, lease: _core.Lease | None = None
    ) -> T:
        lease_id = 0
        if lease is not None:
            lease_id = lease.id
        elif ttl is not None:
            lease_id = (await self._client.grant_lease(ttl, keep_alive=False)).id
        doc = await self._core.create(entity, lease=lease_id)
        return self._after_write(entity, doc)  # type: ignore[no-any-return]

    async def update_async(self, entity: T) -> T:
        """Replace the resource if its ``metadata.resource_version`` is still the stored one;
        raises ``ConflictError`` if not. Without a resource_version, replaces whatever is
        stored. ``generation`` goes up by one when ``spec`` changed. Then publishes the
        entity's pending domain events (with a mediator)."""
        result = await self._do_update_async(entity)
        await self._publish_domain_events(entity)
        return result

    @traced("update")
    async def _do_update_async(self, entity: T) -> T:
        doc = await self._core.update(entity)
        return self._after_write(entity, doc)  # type: ignore[no-any-return]

    async def update_with_retry_async(
        self,
        entity: T,
        max_retries: int = 3,
        *,
        mutate: Callable[[Any], Any] | None = None,
    ) -> T:
        """Update, retrying on conflicts.

        Without ``mutate`` (Neuroglia's semantics): on a conflict, take the stored
        resource_version and write ``entity`` again (the last writer wins, but never blindly:
        each attempt is still a compare-and-swap). With ``mutate``: read the stored resource,
        apply ``mutate(current)`` (which returns the new resource), write; on a conflict read
        again and re-apply, so no concurrent change is lost.
        """
        name = _name_of(entity)
        namespace = self._namespace_of(entity)
        attempt = 0
        while True:
            try:
                if mutate is None:
                    return await self.update_async(entity)
                current = await self._core.get(name, namespace)
                if current is None:
                    raise NotFoundError(
                        f"{self._core.key(name, namespace)!r} not found",
                        key=self._core.key(name, namespace),
                    )
                return await self.update_async(mutate(current))
            except ConflictError as conflict:
                attempt += 1
                if attempt > max_retries:
                    raise
                if mutate is None:
                    if conflict.actual_version is None:
                        raise NotFoundError(str(conflict), key=conflict.key) from conflict
                    self._set_resource_version(entity, conflict.actual_version)

    async def save_async(self, entity: T) -> T:
        """Create the resource if it is absent, else update it: a compare-and-swap on the
        ``metadata.resource_version`` the caller holds (``ConflictError`` if it is stale), or,
        without one, on the version stored when the update reads it. Returns the stored
        resource, with its new ``resource_version`` (the scheduler's ``save_async``)."""
        meta = _metadata_of(entity)
        held = meta.get("resource_version") if isinstance(meta, Mapping) else None
        if meta is not None and not isinstance(meta, Mapping):
            held = getattr(meta, "resource_version", None)
        if held in (None, ""):
            try:
                return await self.add_async(entity)
            except AlreadyExistsError:
                return await self.update_async(entity)
        try:
            return await self.update_async(entity)
        except NotFoundError:
            # A new object (Neuroglia's ResourceMetadata starts at "1"), or one deleted.
            return await self.add_async(entity)

    async def remove_async(
        self,
        id: str,
        namespace: str | None = None,
        *,
        delete_unreadable: bool = False,
        expected_version: str | int | None = None,
    ) -> None:
        """Delete the resource. With finalizers, marks it (``deletion_timestamp``) instead; it
        goes when an update removes the last finalizer. Raises ``NotFoundError`` if absent.

        ``expected_version`` (a ``resource_version``, as Kubernetes' delete preconditions):
        only while the resource is at that version; ``ConflictError`` once it changed, and
        nothing is done.

        A stored document that cannot be read (garbage written by another tool) raises
        ``SerializationError`` naming the key, since its finalizers cannot be honoured; with
        ``delete_unreadable=True`` it is deleted, only at the revision read (a repair written
        meanwhile raises ``ConflictError`` and stays)."""
        await self._do_remove_async(
            id, namespace, delete_unreadable=delete_unreadable, expected_version=expected_version
        )

    @traced("delete")
    async def _do_remove_async(
        self,
        id: str,
        namespace: str | None = None,
        *,
        delete_unreadable: bool = False,
        expected_version: str | int | None = None,
    ) -> None:
        await self._core.remove(
            id, namespace, delete_unreadable=delete_unreadable, expected_version=expected_version
        )

    async def _publish_domain_events(self, entity: Any) -> None:
        """Publish the entity's pending domain events through the mediator, after a write that
        succeeded (Neuroglia's rule), then clear them. Any entity with
        ``get_uncommitted_events()`` or ``domain_events`` qualifies, not only aggregates. A
        failing handler is logged with its event; the write stands."""
        if self._mediator is None:
            return
        if hasattr(entity, "get_uncommitted_events"):
            events = list(entity.get_uncommitted_events())
        else:
            events = list(getattr(entity, "domain_events", None) or [])
        for event in events:
            try:
                await self._mediator.publish_async(event)
            except Exception:
                log.exception("publishing %s after a write failed", type(event).__name__)
        if events:
            if hasattr(entity, "clear_pending_events"):
                entity.clear_pending_events()
            elif isinstance(getattr(entity, "domain_events", None), list):
                entity.domain_events.clear()

    @traced("list")
    async def list_async(
        self,
        namespace: str | None = None,
        label_selector: Selector = None,
        field_selector: Selector = None,
        *,
        consistent: bool | None = None,
    ) -> list[Any]:
        """Every resource, optionally in one namespace, matching a label selector and a field
        selector (a dict means equality on each key; a string is Kubernetes' grammar, e.g.
        ``"lab-track in (ccna,ccnp)"`` or ``"status.phase=Ready"``). One snapshot, filtered in
        Rust; only matches become Python objects.

        With ``cache=``, answered from the shared informer cache. By default once it has
        applied every change this client wrote or read under the prefix (a read after your
        write sees it; usually no wait and no round trip). ``consistent=True`` first learns
        etcd's current revision (one round trip: also sees every other client's writes
        acknowledged before the call); ``consistent=False`` answers at once."""
        docs, rest = await self._core.list(
            namespace, label_selector, field_selector, consistent=consistent
        )
        # The rest arrives chunk by chunk: objects are made here while Rust reads on.
        while rest is not None and (chunk := await rest.next()) is not None:
            docs.extend(chunk)
        return docs

    async def stream_async(
        self,
        namespace: str | None = None,
        label_selector: Selector = None,
        field_selector: Selector = None,
        *,
        consistent: bool | None = None,
    ) -> AsyncIterator[Any]:
        """``async for resource in repo.stream_async(...)``: what ``list_async`` returns, one
        resource at a time, as the listing's chunks (500 keys, then up to 1,000 while they
        are small) arrive: one snapshot, and only a chunk or two are held at once however
        large the prefix (Rust reads at most two chunks ahead of the loop). Leaving the loop
        stops the reading. From a cache, the cached matches."""
        docs, rest = await self._core.list(
            namespace, label_selector, field_selector, consistent=consistent, streamed=True
        )
        try:
            while True:
                for doc in docs:
                    yield doc
                if rest is None or (chunk := await rest.next()) is None:
                    return
                docs = chunk
        finally:
            docs = []
            rest = None  # dropped: the Rust reader stops

    @traced("list_page")
    async def list_page_async(
        self,
        namespace: str | None = None,
        label_selector: Selector = None,
        field_selector: Selector = None,
        *,
        limit: int = 500,
        continue_token: str | None = None,
    ) -> ResourcePage:
        """One page of at most ``limit`` matching resources. Pass the page's
        ``continue_token`` to get the next; every page of a listing is read at the revision of
        the first (a snapshot). A token older than etcd's compaction raises ``ExpiredError``:
        start again without one."""
        items, version, token = await self._core.list_page(
            namespace, label_selector, field_selector, limit=limit, continue_token=continue_token
        )
        return ResourcePage(items, version, token)

    async def find_unreadable_async(self) -> list[UnreadableDocument]:
        """Every stored document under the prefix that cannot be read (garbage written by
        another tool, a half-restored backup), which lists, counts, watches and caches skip.
        Reads and decodes the whole prefix: a full listing's cost. Delete one with
        ``remove_async(name, delete_unreadable=True)``."""
        found = await self._core.unreadable()
        prefix = self.prefix
        return [
            UnreadableDocument(key, key[len(prefix) :], str(revision), reason)
            for key, revision, reason in found
        ]

    @traced("count")
    async def count_async(
        self,
        namespace: str | None = None,
        label_selector: Selector = None,
        field_selector: Selector = None,
        *,
        consistent: bool | None = None,
    ) -> int:
        """How many resources match; no Python object is built for them. With ``cache=``, an
        indexed equality is a single lookup (see ``list_async`` for ``consistent``)."""
        return await self._core.count(
            namespace, label_selector, field_selector, consistent=consistent
        )

    async def get_by_namespace_async(self, namespace: str) -> list[Any]:
        return await self.list_async(namespace=namespace)

    async def get_by_labels_async(self, labels: Mapping[str, Any] | str) -> list[Any]:
        return await self.list_async(label_selector=labels)

    def watch(
        self,
        *,
        namespace: str | None = None,
        label_selector: Selector = None,
        field_selector: Selector = None,
        resource_version: str | int | None = None,
        send_initial: bool = False,
        max_backlog: int | None = None,
        readonly: bool = False,
    ) -> AsyncIterator[ResourceEvent]:
        """``async for event in repo.watch(...)``: every change made after this call returns
        (or after ``resource_version``), as ``ADDED``, ``MODIFIED``, ``DELETED`` events with
        typed resources. The watch begins at the call, not at the first iteration: a write made
        right after it, before the ``async for`` runs, is delivered. With selectors, a resource
        that stops matching arrives as ``DELETED`` and one that starts matching as ``ADDED``.
        With ``send_initial``, the current matching resources first arrive as ``ADDED``, then a
        ``BOOKMARK`` at the revision they were read at, then the changes after it.

        The watch reconnects by itself after a lost connection, an etcd restart or a leader
        change, resuming after the last event it delivered: none lost, none repeated, in
        order. A revision etcd has compacted raises ``ExpiredError``: list again and watch
        from the list's ``resource_version``. Leaving the ``async for`` (or cancelling its
        task) stops the watch.

        Every watch of the client on this prefix shares one etcd watch, each with its own
        selectors. A watch that leaves more than ``max_backlog`` events unread (default 1,000)
        is ended with ``WatchFellBehindError`` (the others go on): watch again after its
        ``revision``, or list again.

        With ``readonly=True`` (a repository of dicts only), the changes' documents are
        read-only dicts (``etcd_resources.readonly``) built once and shared with every other
        read-only watcher in the thread, as cached lists share theirs: a hundred watchers of
        every change then cost little more than one. ``dict(doc)`` or ``copy.deepcopy(doc)``
        gives an editable copy. (With ``send_initial``, the listed resources are the
        watcher's own.)"""
        if readonly and self._resource_type is not None:
            raise TypeError(
                "readonly=True shares read-only dicts; this repository reads "
                f"{self._resource_type.__name__} objects: watch without readonly, or through "
                "a repository of dicts"
            )
        if send_initial:
            return self._watch_listed(
                namespace, label_selector, field_selector, max_backlog, readonly
            )
        start = 0 if resource_version in (None, "") else int(resource_version) + 1
        opening = self._core.watch_stream(
            start,
            namespace,
            label_selector,
            field_selector,
            max_backlog=max_backlog,
            readonly=readonly,
        )
        return self._events(retrieved(opening))

    async def _watch_listed(
        self,
        namespace: str | None,
        label_selector: Selector,
        field_selector: Selector,
        max_backlog: int | None,
        readonly: bool,
    ) -> AsyncIterator[ResourceEvent]:
        token: str | None = None
        while True:
            page = await self.list_page_async(
                namespace, label_selector, field_selector, continue_token=token
            )
            for item in page.items:
                yield ResourceEvent(EventType.ADDED, item, None, int(page.resource_version))
            token = page.continue_token
            if token is None:
                break
        yield ResourceEvent(EventType.BOOKMARK, None, None, int(page.resource_version))
        opening = self._core.watch_stream(
            int(page.resource_version) + 1,
            namespace,
            label_selector,
            field_selector,
            max_backlog=max_backlog,
            readonly=readonly,
        )
        async with aclosing(self._events(opening)) as events:  # closed when this one is
            async for event in events:
                yield event

    async def _events(
        self, opening: Awaitable[_core.WatchStream]
    ) -> AsyncGenerator[ResourceEvent, None]:
        try:
            stream = await opening
        finally:
            # A cancelled opening's frame may live on in a traceback: it must not keep the
            # stream (and its etcd watch) alive.
            del opening
        types = _EVENT_TYPES  # a dict lookup: calling the enum costs more than the rest
        try:
            while (batch := await stream.next_batch()) is not None:
                for kind, _name, value, previous, revision in batch:
                    if kind == "BOOKMARK":
                        yield ResourceEvent(EventType.BOOKMARK, None, None, revision)
                    else:
                        resource = previous if value is None else value
                        yield ResourceEvent(types[kind], resource, previous, revision)
        finally:
            stream.close()

    def watch_changes(
        self, callback: Callback, *, start_revision: int = 0, max_backlog: int | None = None
    ) -> WatchHandle:
        """Call ``callback(event)`` on this event loop for every change under the prefix;
        ``event.resource`` is the resource as reads return it. ``max_backlog`` as for
        ``watch()``: a callback that keeps the loop from delivering more than that many
        events ends the watch with ``WatchFellBehindError`` (raised by ``handle.wait()``)."""
        return WatchHandle(
            lambda: self._core.watch_stream(start_revision, typed=False, max_backlog=max_backlog),
            callback,
            self.prefix,
            convert=self._from_document,
        )

    # -- helpers -------------------------------------------------------------------------------

    def _namespace_of(self, resource: Any) -> str | None:
        meta = _metadata_of(resource)
        ns = (
            meta.get("namespace") if isinstance(meta, Mapping) else getattr(meta, "namespace", None)
        )
        return ns if isinstance(ns, str) else None

    @staticmethod
    def _set_resource_version(resource: Any, version: str) -> None:
        meta = _metadata_of(resource)
        if isinstance(meta, dict):
            meta["resource_version"] = version
        elif meta is not None:
            meta.resource_version = version

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self.prefix!r})"


if TYPE_CHECKING:

    class ResourceRepository(_Repository[T]):
        """Resources under one key prefix (see ``_Repository``)."""

else:
    # With Neuroglia installed, a Neuroglia Repository traced by its TracedRepositoryMixin
    # (see _neuroglia_bases.py); otherwise a plain class. One class under this name either way.
    class ResourceRepository(*_neuroglia.BEFORE, _Repository[T], *_neuroglia.AFTER, Generic[T]):
        __doc__ = _Repository.__doc__
