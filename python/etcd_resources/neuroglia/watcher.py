"""``EtcdResourceWatcher``: Neuroglia's ``ResourceWatcherBase`` driven by the etcd watch
instead of polling.

Change handlers (``add_change_handler``) and the CloudEvent publisher receive the same
``ResourceChangeEvent``s (``CREATED``, ``UPDATED`` when the generation went up,
``STATUS_UPDATED`` when only the status changed, ``DELETED``), as each change happens rather
than every ``watch_interval``. The resume point is an integer revision: saved to the bookmark
storage after every change (and on progress bookmarks), and on restart the watch resumes right
after it, so no change is missed or repeated across restarts. Without a bookmark, it starts
with the current resources as ``CREATED``. If etcd compacted past the bookmark, it lists
again and reports the difference with its cache, as the polling watcher would.
"""

from __future__ import annotations

import logging
from typing import Any

from neuroglia.data.resources.watcher import (
    ResourceChangeEvent,
    ResourceChangeType,
    ResourceWatcherBase,
)

from ..errors import ExpiredError, WatchFellBehindError
from ..repository import ResourceRepository
from ..watching import EventType, ResourceEvent

__all__ = ["EtcdResourceWatcher"]

log = logging.getLogger("etcd_resources")


def _key(resource: Any) -> str:
    return str(getattr(resource, "id", None) or resource.metadata.uid)


def _status_differs(new: Any, old: Any) -> bool:
    """Whether any status field changed (Neuroglia's polling check looks only at
    ``observed_generation`` and ``last_updated``, and misses a phase change alone)."""
    a, b = getattr(new, "status", None), getattr(old, "status", None)
    if hasattr(a, "__dict__") and hasattr(b, "__dict__"):
        return bool(vars(a) != vars(b))
    return bool(a != b)


class EtcdResourceWatcher(ResourceWatcherBase[Any, Any]):
    """Watches a repository's resources through etcd's watch (see the module doc)."""

    def __init__(
        self,
        repository: ResourceRepository[Any],
        event_publisher: Any = None,
        bookmark_storage: Any = None,
        bookmark_key: str | None = None,
    ) -> None:
        super().__init__(
            event_publisher=event_publisher,
            watch_interval=0.0,
            bookmark_storage=bookmark_storage,
            bookmark_key=bookmark_key,
        )
        self._repository = repository
        self.revision: int | None = None
        """The revision of the last change delivered to the handlers."""

    async def _list_resources(
        self, namespace: str | None = None, label_selector: dict[str, str] | None = None
    ) -> list[Any]:
        return await self._repository.list_async(namespace, label_selector)

    async def _watch_loop(
        self, namespace: str | None = None, label_selector: dict[str, str] | None = None
    ) -> None:
        bookmark = self._last_resource_version
        self.revision = int(bookmark) if bookmark not in (None, "") else None
        while self._watching:
            try:
                async for event in self._repository.watch(
                    namespace=namespace,
                    label_selector=label_selector,
                    resource_version=self.revision,
                    send_initial=self.revision is None,
                ):
                    await self._handle(event)
            except ExpiredError:
                log.warning("revision %s was compacted: listing again", self.revision)
                await self._relist(namespace, label_selector)
            except WatchFellBehindError as e:
                # Every change up to `self.revision` was handled: watch again right after it
                # (a compacted revision then raises ExpiredError, and the watcher relists).
                log.warning("%s: resuming after revision %s", e, self.revision)

    async def _handle(self, event: ResourceEvent) -> None:
        revision = int(event.resource_version)
        if event.type is EventType.BOOKMARK:
            await self._advance(revision)
            return
        resource = event.resource
        key = _key(resource)
        cached = self._resource_cache.get(key)
        change: ResourceChangeEvent[Any, Any] | None
        if event.type is EventType.DELETED:
            self._resource_cache.pop(key, None)
            change = ResourceChangeEvent(ResourceChangeType.DELETED, resource, event.previous)
        elif event.type is EventType.ADDED or cached is None:
            self._resource_cache[key] = resource
            change = ResourceChangeEvent(ResourceChangeType.CREATED, resource)
        else:
            self._resource_cache[key] = resource
            old = event.previous if event.previous is not None else cached
            if resource.metadata.generation > old.metadata.generation:
                change = ResourceChangeEvent(ResourceChangeType.UPDATED, resource, old)
            elif self._has_status_changed(resource, old) or _status_differs(resource, old):
                change = ResourceChangeEvent(ResourceChangeType.STATUS_UPDATED, resource, old)
            else:
                change = None  # metadata only: the polling watcher reported nothing either
        if change is not None:
            await self._process_change(change)
        await self._advance(revision)

    async def _advance(self, revision: int) -> None:
        self.revision = revision
        self._last_resource_version = str(revision)
        await self._save_bookmark(str(revision))

    async def _relist(self, namespace: str | None, label_selector: dict[str, str] | None) -> None:
        page = await self._repository.list_page_async(namespace, label_selector, limit=1 << 30)
        current = {_key(r): r for r in page.items}
        for change in self._detect_changes(current):
            await self._process_change(change)
        self._resource_cache = current
        await self._advance(int(page.resource_version))
