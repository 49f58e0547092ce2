"""``EtcdCoordinationBackend``: Neuroglia's ``CoordinationBackend`` on etcd leases and
transactions, so Neuroglia's ``LeaderElection`` runs on etcd.

A lease record is the key ``prefix + name`` holding the holder's identity, attached to an etcd
lease of ``ttl_seconds``: when the holder stops renewing (it crashed, or lost its network), etcd
deletes the key when the lease expires and another candidate can take it. Acquiring is one
transaction on "the key is absent"; renewing and releasing first check the holder, then act on
that exact version (a compare-and-swap on the key's revision, or the holder's own lease), so two
candidates can never both believe they hold it.
"""

from __future__ import annotations

import logging

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

    def _key(self, key: str) -> str:
        return self._prefix + key

    @property
    def client(self) -> EtcdClient:
        return self._client

    def record_key(self, key: str) -> str:
        """The etcd key of the lease record ``key``."""
        return self._key(key)

    async def acquire_lease(self, key: str, holder_identity: str, ttl_seconds: int) -> bool:
        """Take the lease if nobody holds it (or renew it if we do)."""
        current = await self._client.get_kv(self._key(key))
        if current is not None:
            if current[0].decode() == holder_identity:
                return await self.renew_lease(key, holder_identity, ttl_seconds)
            return False
        lease = await self._client.grant_lease(max(1, int(ttl_seconds)), keep_alive=False)
        try:
            await self._client.create_raw(self._key(key), holder_identity.encode(), lease=lease.id)
        except AlreadyExistsError:
            await lease.revoke()  # another candidate was faster
            return False
        return True

    async def renew_lease(self, key: str, holder_identity: str, ttl_seconds: int) -> bool:
        """Renew the lease if we hold it; ``False`` if we do not (any more)."""
        current = await self._client.get_kv(self._key(key))
        if current is None or current[0].decode() != holder_identity:
            return False
        try:
            await self._client.keep_alive_once(current[2])
        except NotFoundError:
            return False  # it expired under us
        return True

    async def release_lease(self, key: str, holder_identity: str) -> bool:
        """Give the lease up if we hold it."""
        current = await self._client.get_kv(self._key(key))
        if current is None or current[0].decode() != holder_identity:
            return False
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
