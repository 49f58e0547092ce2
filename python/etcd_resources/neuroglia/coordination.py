"""``EtcdCoordinationBackend``: Neuroglia's ``CoordinationBackend`` on etcd leases and
transactions, so Neuroglia's ``LeaderElection`` runs on etcd.

A lease record is the key ``prefix + name`` holding the holder's identity, attached to an etcd
lease of ``ttl_seconds``: when the holder stops renewing (it crashed, or lost its network), etcd
deletes the key when the lease expires and another candidate can take it. Acquiring is one
transaction on "the key is absent"; renewing and releasing first check the holder, then act on
that exact version (a compare-and-swap on the key's revision, or the holder's own lease), so two
candidates can never both believe they hold it.

The backend also remembers when it *sent* the acquire or renewal that etcd acknowledged last
(``renewed_at``): etcd counts the lease's TTL from receiving it, so until that time plus the
TTL, no other candidate can hold the lease. ``ResourceControllerHost`` stops reconciling at
that deadline on its own clock, even while Neuroglia's loop still waits for a renewal that
cannot come (etcd unreachable: it keeps ``is_leader()`` true until one returns).
"""

from __future__ import annotations

import asyncio
import logging
import time

from neuroglia.coordination.abstractions import CoordinationBackend

from .._core import EtcdClient, normalize_prefix
from ..errors import AlreadyExistsError, ConflictError, NotFoundError

__all__ = ["EtcdCoordinationBackend"]

log = logging.getLogger("etcd_resources")


class EtcdCoordinationBackend(CoordinationBackend):
    """Leases for leader election, under ``prefix`` (default ``/leases/``; made to end in
    ``/`` like every prefix of the package)."""

    def __init__(self, client: EtcdClient, prefix: str = "/leases/") -> None:
        self._client = client
        self._prefix = normalize_prefix(prefix)
        # key -> (holder, monotonic time the last acknowledged acquire or renewal was sent)
        self._renewed: dict[str, tuple[str, float]] = {}
        self._renewal: dict[str, asyncio.Event] = {}  # set (and replaced) on each one

    def _key(self, key: str) -> str:
        return self._prefix + key

    @property
    def client(self) -> EtcdClient:
        return self._client

    def record_key(self, key: str) -> str:
        """The etcd key of the lease record ``key``."""
        return self._key(key)

    def renewed_at(self, key: str, holder_identity: str) -> float | None:
        """When (``time.monotonic()``) this backend sent the last acquire or renewal of ``key``
        by ``holder_identity`` that etcd acknowledged; ``None`` if none."""
        last = self._renewed.get(key)
        return last[1] if last is not None and last[0] == holder_identity else None

    async def wait_renewed(self, key: str, holder_identity: str, after: float) -> None:
        """Return once an acquire or renewal of ``key`` by ``holder_identity`` sent after
        ``after`` has been acknowledged."""
        while (self.renewed_at(key, holder_identity) or after) <= after:
            await self._renewal.setdefault(key, asyncio.Event()).wait()

    def _acknowledged(self, key: str, holder_identity: str, sent: float) -> None:
        self._renewed[key] = (holder_identity, sent)
        event = self._renewal.pop(key, None)
        if event is not None:
            event.set()

    async def acquire_lease(self, key: str, holder_identity: str, ttl_seconds: int) -> bool:
        """Take the lease if nobody holds it (or renew it if we do)."""
        current = await self._client.get_kv(self._key(key))
        if current is not None:
            if current[0].decode() == holder_identity:
                return await self.renew_lease(key, holder_identity, ttl_seconds)
            return False
        sent = time.monotonic()  # etcd starts the lease's TTL after this
        lease = await self._client.grant_lease(max(1, int(ttl_seconds)), keep_alive=False)
        try:
            await self._client.create_raw(self._key(key), holder_identity.encode(), lease=lease.id)
        except AlreadyExistsError:
            await lease.revoke()  # another candidate was faster
            return False
        self._acknowledged(key, holder_identity, sent)
        return True

    async def renew_lease(self, key: str, holder_identity: str, ttl_seconds: int) -> bool:
        """Renew the lease if we hold it; ``False`` if we do not (any more)."""
        current = await self._client.get_kv(self._key(key))
        if current is None or current[0].decode() != holder_identity:
            return False
        sent = time.monotonic()
        try:
            await self._client.keep_alive_once(current[2])
        except NotFoundError:
            return False  # it expired under us
        self._acknowledged(key, holder_identity, sent)
        return True

    async def release_lease(self, key: str, holder_identity: str) -> bool:
        """Give the lease up if we hold it."""
        current = await self._client.get_kv(self._key(key))
        if current is None or current[0].decode() != holder_identity:
            return False
        self._renewed.pop(key, None)
        try:
            await self._client.delete_raw(self._key(key), expected=current[1])
        except ConflictError:
            return False
        if current[2]:
            try:
                await self._client.revoke_lease(current[2])
            except NotFoundError:
                pass
        return True

    async def get_lease_holder(self, key: str) -> str | None:
        """Who holds the lease, or ``None``."""
        current = await self._client.get_kv(self._key(key))
        return None if current is None else current[0].decode()
