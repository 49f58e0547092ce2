"""``EtcdStorageBackend``: the key-value API of the Python repository this package replaces,
done right: async, one range request per listing, compare-and-swap in one transaction, and
every failure raised (never ``None``/``False`` for "etcd is down")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import _core
from .watching import Callback, WatchHandle

__all__ = ["EtcdStorageBackend"]


class EtcdStorageBackend:
    """Documents (dicts) stored at ``prefix + name``.

    Every method is ``async`` except :meth:`watch`. Dicts read back carry
    ``metadata.resource_version``: the key's etcd mod_revision, as a string.
    """

    def __init__(self, client: _core.EtcdClient, prefix: str, *, format: str = "json") -> None:
        self._client = client
        self._core = _core.KvBackend(client, prefix, format=format)

    @property
    def prefix(self) -> str:
        return self._core.prefix

    @property
    def client(self) -> _core.EtcdClient:
        return self._client

    async def exists(self, name: str) -> bool:
        """Whether ``name`` is stored."""
        return await self._core.exists(name)

    async def get(self, name: str) -> dict[str, Any] | None:
        """The document, or ``None`` when absent."""
        return await self._core.get(name)

    async def set(self, name: str, value: Any) -> int:
        """Store ``value`` (a dict, or an object converted like ``json`` with Neuroglia's
        encoder would) unconditionally. Returns the new revision."""
        return await self._core.set(name, value)

    async def delete(self, name: str) -> bool:
        """Delete; ``True`` if it existed."""
        return await self._core.delete(name)

    async def keys(self, pattern: str = "") -> list[str]:
        """Names (without the prefix) that start with ``pattern``, in key order."""
        return await self._core.keys(pattern)

    async def list_with_labels(
        self, label_selector: Mapping[str, str] | str | None = None
    ) -> list[dict[str, Any]]:
        """Documents whose ``metadata.labels`` match (a dict means equality on each key; a string
        is a Kubernetes label selector). One snapshot, filtered in Rust."""
        return await self._core.list_with_labels(label_selector)

    async def compare_and_swap(
        self, name: str, expected_version: str | int, new_value: Any
    ) -> bool:
        """Write only if the stored mod_revision is ``expected_version``, atomically (one etcd
        transaction). ``False`` when it is not (or the name is gone); errors raise."""
        return await self._core.compare_and_swap(name, expected_version, new_value)

    def watch(
        self,
        callback: Callback,
        key_prefix: str = "",
        *,
        start_revision: int = 0,
        max_backlog: int | None = None,
        readonly: bool = False,
    ) -> WatchHandle:
        """Call ``callback(event)`` on this event loop for each change of a name starting with
        ``key_prefix``. Must be called from a running event loop. Returns a handle:
        ``cancel()`` stops it, ``await handle.started()`` waits until etcd accepted it.
        Watches of the client on the same prefix share one etcd watch; more than
        ``max_backlog`` events left waiting (default 1,000) end this one with
        ``WatchFellBehindError``. With ``readonly=True``, events hold read-only dicts shared
        with the other read-only watchers in the thread (see ``ResourceRepository.watch``)."""
        return WatchHandle(
            lambda: self._core.watch_stream(
                key_prefix, start_revision, max_backlog=max_backlog, readonly=readonly
            ),
            callback,
            f"{self.prefix}{key_prefix}",
        )

    def __repr__(self) -> str:
        return f"EtcdStorageBackend(prefix={self.prefix!r})"
