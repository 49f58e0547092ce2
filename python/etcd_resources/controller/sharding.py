"""Replicas of one controller sharing its keys: shards held on etcd with leases.

Each replica of a controller named ``name`` keeps, under ``{prefix}{name}/``:

- ``members/{identity}``: says the replica runs;
- ``shards/{i}``: for each shard it holds, ``{"holder": identity, "lease": lease id}``;

all attached to one etcd lease of ``ttl`` seconds, renewed by the client in the background. A
key belongs to shard ``fnv1a64(key) % shards`` (``_core.shard_of``). Each replica aims at an
equal share (``shards // members``, one more for the first ``shards % members`` identities in
sorted order): it gives back what it holds over its share and takes free shards under it,
woken by any change under the records (a replica that joins, leaves, gives back) and every
``ttl / 2`` seconds.

- **A replica that dies** stops renewing its lease: etcd deletes its records when the lease
  expires, at most ``ttl`` seconds after its last renewal, and the others take its shards.
- **A replica cut off from etcd** stops running every key at once when its lease's deadline
  passes on its own clock (``ttl`` after it sent the last renewal etcd answered: never later
  than etcd's expiry), cancelling the reconciles in flight, then registers again with a new
  lease once etcd answers.
- **A replica that stops** (``run()`` cancelled, as on SIGTERM) lets its reconciles finish,
  then revokes its lease: its shards are free at once, not after a TTL.
- **A replica that was paused** (SIGSTOP, a long GC pause, a VM freeze) may resume in the
  middle of a reconcile after etcd gave its shard to another: its writes through the
  controller's repository are fenced (see ``fence``), so they fail with ``FencedError``
  instead of overwriting the new holder's work.

Leader election is one shard: the leader holds it, the standbys run their caches and wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .. import _core
from ..errors import AlreadyExistsError, ConflictError, EtcdResourcesError, NotFoundError

__all__ = ["FENCE", "Sharding", "Shards", "default_identity"]

log = logging.getLogger("etcd_resources.controller")

FENCE: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar(
    "etcd_resources_fence", default=None
)
"""``(shard record, lease id)`` while a reconcile of a sharded controller runs: every write
the task makes through this package commits only while that record is on that lease
(``FencedError`` otherwise; see ``src/store/fence.rs``)."""


def default_identity() -> str:
    """``host-pid-random``: unique per process, readable in the records."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Sharding:
    """How replicas of a controller share its keys (``Controller(sharding=...)``).

    ``shards``: how many parts the keys are cut into (at least the number of replicas you
    will run; 1 is leader election). ``ttl``: seconds of the lease that holds them (how long a
    dead replica's shards wait). ``identity``: this replica's name in the records (default:
    host, pid and a random suffix). ``prefix``: where the records live."""

    shards: int = 16
    ttl: int = 5
    identity: str = field(default_factory=default_identity)
    prefix: str = "/etcd-resources/controllers/"

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ValueError(f"shards must be at least 1, not {self.shards}")
        if self.ttl < 2:
            raise ValueError(f"ttl must be at least 2 seconds, not {self.ttl}")
        if not self.identity or "/" in self.identity:
            raise ValueError(f"identity must be non-empty and without '/': {self.identity!r}")


def share(members: list[str], identity: str, shards: int) -> int:
    """How many shards ``identity`` should hold among ``members``."""
    ordered = sorted(set(members) | {identity})
    base, extra = divmod(shards, len(ordered))
    return base + (1 if ordered.index(identity) < extra else 0)


# Stops running the keys of these shards, returning once their reconciles are over.
Release = Callable[[frozenset[int]], Awaitable[None]]


class Shards:
    """One replica's part in the sharing (made by ``Controller.run()``)."""

    def __init__(
        self,
        client: _core.EtcdClient,
        name: str,
        config: Sharding,
        *,
        hold: Callable[[frozenset[int]], None],
        release: Release,
        lose: Callable[[], None],
    ) -> None:
        self._client = client
        self._config = config
        _core._use_fence_var(FENCE)
        base = _core.normalize_prefix(config.prefix) + name.strip("/").replace("/", "-") + "/"
        self._base = base
        self._members = base + "members/"
        self._shards = base + "shards/"
        self._hold = hold
        self._release = release
        self._lose = lose
        self._lease: _core.Lease | None = None
        self._stale: int | None = None  # the lease of a session that ended, to revoke
        self._held: dict[int, int] = {}  # shard -> mod_revision of its record
        self._wake = asyncio.Event()
        self.changes = 0  # shards taken or given back, for stats

    @property
    def count(self) -> int:
        return self._config.shards

    @property
    def identity(self) -> str:
        return self._config.identity

    @property
    def held(self) -> frozenset[int]:
        return frozenset(self._held)

    def fence(self, shard: int) -> tuple[str, int] | None:
        """The record and lease a write for a key of ``shard`` is fenced on, while held."""
        lease = self._lease
        if shard not in self._held or lease is None:
            return None
        return (self._shards + str(shard), lease.id)

    async def run(self) -> None:
        """Hold a share until cancelled; registers again after losing the lease."""
        watcher = asyncio.create_task(self._watch())
        try:
            while True:
                try:
                    await self._session()
                except asyncio.CancelledError:
                    raise
                except EtcdResourcesError as exc:
                    log.warning("shards of %s: %r; registering again", self.identity, exc)
                self._drop_all()
                # A fixed pause before registering again: etcd was unreachable or the lease
                # lost; the wake-up event is not a reason to hurry.
                await asyncio.sleep(min(1.0, self._config.ttl / 4))
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def close(self) -> None:
        """Give every shard back at once (revoke the lease); for a replica that stops, once its
        reconciles are over."""
        lease, self._lease = self._lease, None
        self._held.clear()
        if lease is None:
            return
        try:
            await lease.revoke()
        except (EtcdResourcesError, OSError) as exc:
            # etcd will expire it after its TTL instead.
            log.warning("giving back the shards of %s failed: %r", self.identity, exc)

    def _drop_all(self) -> None:
        if self._held:
            self.changes += len(self._held)
        self._held.clear()
        self._lose()
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.cancel()
            self._stale = lease.id

    async def _watch(self) -> None:
        """Wake the loop on any change under the records (best effort: it also polls)."""
        while True:
            try:
                stream = await _core.KvBackend(self._client, self._base).watch_stream()
                try:
                    while await stream.next_batch() is not None:
                        self._wake.set()
                finally:
                    stream.close()
            except asyncio.CancelledError:
                raise
            except EtcdResourcesError as exc:
                log.debug("watch of %s: %r", self._base, exc)
            await asyncio.sleep(min(1.0, self._config.ttl / 4))

    async def _session(self) -> None:
        """One lease: register, then balance until it is lost (raises what lost it)."""
        if self._stale is not None:
            # A session that ended (etcd unreachable for a TTL): its records may outlive it on
            # etcd until the lease expires; nothing runs on them here any more, so free them now.
            with contextlib.suppress(NotFoundError):
                await self._client.revoke_lease(self._stale)
            self._stale = None
        lease = await self._client.grant_lease(self._config.ttl)
        self._lease = lease
        value = json.dumps({"holder": self.identity, "lease": lease.id}).encode()
        await self._client.create_raw(self._members + self.identity, value, lease=lease.id)
        lost = asyncio.ensure_future(lease.wait_lost())
        # Stop at once when the lease is lost, even in the middle of a call to etcd: another
        # replica may hold these shards as soon as etcd expires it.
        lost.add_done_callback(self._on_lost)
        try:
            while not lost.done():
                self._wake.clear()
                await self._balance(lease, value)
                woken = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait(
                    {woken, lost}, timeout=self._config.ttl / 2, return_when=asyncio.FIRST_COMPLETED
                )
                woken.cancel()
            raise lost.result()
        finally:
            lost.cancel()

    def _on_lost(self, lost: asyncio.Future[BaseException]) -> None:
        if not lost.cancelled():  # cancelled: the session ended otherwise
            self._drop_all()

    async def _balance(self, lease: _core.Lease, value: bytes) -> None:
        """Give back what is over this replica's share, take free shards under it."""
        _, records = await self._client.list_raw(self._base)
        members = [k[len(self._members) :] for k, *_ in records if k.startswith(self._members)]
        holders: dict[int, tuple[bytes, int, int]] = {}
        for key, raw, revision, owner in records:
            if key.startswith(self._shards):
                with contextlib.suppress(ValueError):
                    holders[int(key[len(self._shards) :])] = (raw, revision, owner)
        mine = {s: rev for s, (_, rev, owner) in holders.items() if owner == lease.id}
        if lease.lost:
            return
        self._held = dict(mine)
        target = share(members, self.identity, self.count)
        if len(mine) > target:
            extra = frozenset(sorted(mine)[target:])
            for shard in extra:
                del self._held[shard]
            self._hold(self.held)
            await self._release(extra)  # their reconciles end before the records go
            for shard in sorted(extra):
                with contextlib.suppress(ConflictError, NotFoundError):
                    await self._client.delete_raw(self._shards + str(shard), expected=mine[shard])
                self.changes += 1
            return
        free = [s for s in range(self.count) if s not in holders]
        # Start the search at this replica's place so that replicas joining together try
        # different shards first.
        ordered = sorted(set(members) | {self.identity})
        start = ordered.index(self.identity) * self.count // len(ordered)
        free.sort(key=lambda s: (s - start) % self.count)
        for shard in free[: max(0, target - len(mine))]:
            try:
                revision = await self._client.create_raw(
                    self._shards + str(shard), value, lease=lease.id
                )
            except AlreadyExistsError:
                continue
            if lease.lost:
                return
            self._held[shard] = revision
            self.changes += 1
        self._hold(self.held)
