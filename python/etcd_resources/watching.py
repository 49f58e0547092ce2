"""Watch events and the callback form of watching (``watch(callback, key_prefix)``).

Callbacks run on the event loop that called ``watch``, in event order, one at a time; an
``async`` callback is awaited before the next event is delivered.

Every watch form begins at its call: it delivers every change made after the call returns
(the opening starts at once; see ``Client::watch_start`` in the core). Revisions in events are
``int`` (etcd's revision), ``WatchEvent.revision`` and ``ResourceEvent.resource_version`` alike;
``metadata.resource_version`` in documents is the same number as a string, as Kubernetes
writes it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, TypeVar

from . import _core

__all__ = ["EventType", "ResourceEvent", "WatchEvent", "WatchHandle"]

log = logging.getLogger("etcd_resources")

T = TypeVar("T")


def retrieved(opening: Awaitable[T]) -> asyncio.Future[T]:
    """``opening`` running already, its failure not reported as "never retrieved" when nobody
    awaits it (a watch asked for and never iterated)."""
    future = asyncio.ensure_future(opening)
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change under a watched prefix."""

    type: Literal["put", "delete"]
    """``"put"`` (created or updated) or ``"delete"``."""
    name: str
    """The key without the repository's prefix."""
    value: dict[str, Any] | None
    """The document after the change; ``None`` for a delete."""
    previous: dict[str, Any] | None
    """The document before the change, where etcd gives it."""
    revision: int
    """The revision of the change (the new resource_version)."""
    resource: Any = None
    """``value`` as the repository's reads return it (a typed object for typed repositories)."""
    previous_resource: Any = None
    """``previous``, likewise."""


Callback = Callable[[WatchEvent], Awaitable[None] | None]


class EventType(StrEnum):
    """What happened to a resource, as Kubernetes watches say it."""

    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    BOOKMARK = "BOOKMARK"
    """No change: everything up to ``resource_version`` has been delivered."""


@dataclass(frozen=True, slots=True)
class ResourceEvent:
    """One event of ``repository.watch()``."""

    type: EventType
    resource: Any
    """The resource (typed as reads return it); for ``DELETED``, its last known state; ``None``
    for a ``BOOKMARK``."""
    previous: Any
    """The resource before the change, where etcd gives it."""
    resource_version: int
    """The revision of the event (an ``int``, as ``WatchEvent.revision``): resume a watch after
    it with ``resource_version=``."""


class WatchHandle:
    """A running callback watch. ``cancel()`` stops it; ``await started()`` waits until etcd
    has accepted the watch (events from then on are delivered)."""

    def __init__(
        self,
        open_stream: Callable[[], Awaitable[_core.WatchStream]],
        callback: Callback,
        description: str,
        *,
        convert: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self._description = description
        self._convert = convert
        self._started = asyncio.get_running_loop().create_future()
        self._stream: _core.WatchStream | None = None
        # Opened now, not when the task first runs: a change made right after the call is seen.
        opening = retrieved(open_stream())
        self._task = asyncio.get_running_loop().create_task(self._run(opening, callback))

    async def _run(self, opening: Awaitable[_core.WatchStream], callback: Callback) -> None:
        try:
            self._stream = await opening
        except BaseException as e:
            if not self._started.done():
                self._started.set_exception(e)
            raise
        self._started.set_result(None)
        try:
            while (batch := await self._stream.next_batch()) is not None:
                for kind, name, value, previous, revision in batch:
                    if kind == "BOOKMARK":
                        continue
                    try:
                        event = self._event(kind, name, value, previous, revision)
                        result = callback(event)
                        if inspect.isawaitable(result):
                            await result
                    except Exception:
                        log.exception("watch callback failed on %s (%s)", name, self._description)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("watch on %s ended with an error", self._description)
            raise
        finally:
            self._stream.close()

    def _event(
        self,
        kind: str,
        name: str,
        value: dict[str, Any] | None,
        previous: dict[str, Any] | None,
        revision: int,
    ) -> WatchEvent:
        convert = self._convert
        resource = value if convert is None or value is None else convert(value)
        before = previous if convert is None or previous is None else convert(previous)
        # The seed API's two kinds: a put (created or updated) or a delete.
        put_or_delete = "delete" if kind == "DELETED" else "put"
        return WatchEvent(put_or_delete, name, value, previous, revision, resource, before)  # type: ignore[arg-type]

    async def started(self) -> None:
        """Wait until the watch is established; raises if it could not be."""
        await asyncio.shield(self._started)

    def cancel(self) -> None:
        """Stop the watch. Idempotent."""
        if self._stream is not None:
            self._stream.close()
        self._task.cancel()

    def done(self) -> bool:
        return self._task.done()

    async def wait(self) -> None:
        """Wait until the watch ends (after ``cancel()``, or by an error, which is raised)."""
        try:
            await self._task
        except asyncio.CancelledError:
            if not self._task.cancelled():
                raise

    def __repr__(self) -> str:
        state = "done" if self.done() else "running"
        return f"WatchHandle({self._description}, {state})"
