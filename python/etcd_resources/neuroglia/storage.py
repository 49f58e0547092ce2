"""``NeurogliaStorageBackend``: Neuroglia's storage protocol on etcd, so Neuroglia's own
``ResourceRepository(storage_backend, serializer, resource_type)`` (and the service's
subclasses of it) run on etcd unchanged.

The protocol is text: ``get(key) -> str | None``, ``set(key, text)``, ``exists(key)``,
``delete(key)``, ``keys("resources:kind:*")`` (a trailing ``*`` means "starting with").
Values are stored at ``prefix + key`` as the serializer wrote them. A document read back holds
the key's etcd revision as ``metadata.resource_version``; a document written holding version
``n`` is written only if the key's revision is still ``n - 1`` (Neuroglia's ``update_async``
writes the version it read plus one; a new resource holds ``"1"``, written only if the key is
absent). So ``update_async`` and ``update_with_retry_async`` are compare-and-swaps on etcd's
revision: a write between their read and their write raises ``ConflictError`` (Neuroglia's
``ResourceConflictError`` too), which ``update_with_retry_async`` retries. Text without a
version (a bookmark) is written as it is. Errors raise.
"""

from __future__ import annotations

from .._core import EtcdClient, TextBackend

__all__ = ["NeurogliaStorageBackend"]


class NeurogliaStorageBackend:
    """Text values under ``prefix`` (default ``/neuroglia/``), in Neuroglia's storage
    protocol; every method is async."""

    def __init__(self, client: EtcdClient, prefix: str = "/neuroglia/") -> None:
        self._client = client
        self._core = TextBackend(client, prefix)

    @property
    def client(self) -> EtcdClient:
        return self._client

    @property
    def prefix(self) -> str:
        return self._core.prefix

    async def exists(self, key: str) -> bool:
        """Whether ``key`` is stored."""
        return await self._core.exists(key)

    async def get(self, key: str) -> str | None:
        """The text at ``key`` (a document's ``resource_version`` is its etcd revision), or
        ``None`` when absent."""
        return await self._core.get(key)

    async def set(self, key: str, value: str) -> int:
        """Store ``value``; a document holding version ``n`` only if the stored revision is
        ``n - 1`` (``ConflictError`` if not, ``AlreadyExistsError`` for a new one whose key is
        taken). Returns the new revision."""
        if not isinstance(value, str):
            raise TypeError(f"a value is text (a serializer's output), not {type(value).__name__}")
        return await self._core.set(key, value)

    async def delete(self, key: str) -> bool:
        """Delete; ``True`` if it existed."""
        return await self._core.delete(key)

    async def keys(self, pattern: str) -> list[str]:
        """The keys ``pattern`` names: with a trailing ``*``, all that start with the rest."""
        return await self._core.keys(pattern)

    def __repr__(self) -> str:
        return f"NeurogliaStorageBackend(prefix={self.prefix!r})"
