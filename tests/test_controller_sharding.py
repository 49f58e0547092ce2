"""Replicas of a controller sharing its keys (``sharding=``, ``leader_election=``): every key
runs on the replica holding its shard, shards move when a replica stops or dies, and a standby
takes over from a leader. Waits are on ``Controller.wait_for``, never on sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from etcd_resources import (
    ClosedError,
    ConflictError,
    EtcdClient,
    FencedError,
    ResourceRepository,
    _core,
    thaw,
)
from etcd_resources.controller import Action, Controller, Sharding, stopping
from etcd_resources.controller.sharding import FENCE, share

from .helpers import doc

WAIT = 30.0


@pytest.fixture
def coordination() -> str:
    return f"/coord-{uuid.uuid4().hex[:10]}/"


class Replicas:
    """Controllers named alike on one prefix, each recording what it reconciled."""

    def __init__(self, repo: Any, coordination: str, shards: int, ttl: int = 5) -> None:
        self.repo = repo
        self.coordination = coordination
        self.shards = shards
        self.ttl = ttl
        self.seen: dict[str, list[str]] = defaultdict(list)  # replica -> names
        self.controllers: dict[str, Controller] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def add(self, identity: str, repo: Any = None) -> Controller:
        async def reconcile(resource: Any) -> Action:
            self.seen[identity].append(resource["metadata"]["name"])
            return Action.done()

        config = Sharding(
            shards=self.shards, ttl=self.ttl, identity=identity, prefix=self.coordination
        )
        controller = Controller(repo or self.repo, reconcile, name="workers", sharding=config)
        self.controllers[identity] = controller
        self.tasks[identity] = asyncio.ensure_future(controller.run())
        return controller

    async def stop(self, identity: str) -> None:
        task = self.tasks.pop(identity)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        del self.controllers[identity]

    def held(self) -> dict[str, list[int]]:
        return {i: c.stats()["shards"] or [] for i, c in self.controllers.items()}

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds, checked whenever any replica's stats change (a
        reconcile, a shard taken or given back)."""
        async with asyncio.timeout(WAIT):
            waits = [
                asyncio.ensure_future(c.wait_for(lambda _: condition()))
                for c in self.controllers.values()
            ]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    def balanced(self) -> bool:
        """The running replicas hold every shard, each its share."""
        held = self.held()
        every = sorted(s for shards in held.values() for s in shards)
        names = sorted(held)
        return every == list(range(self.shards)) and all(
            len(held[i]) == share(names, i, self.shards) for i in names
        )

    def reconciled(self, names: set[str]) -> bool:
        return names <= {n for seen in self.seen.values() for n in seen}

    async def close(self) -> None:
        for identity in list(self.tasks):
            await self.stop(identity)


@asynccontextmanager
async def replicas(*args: Any, **kwargs: Any) -> AsyncIterator[Replicas]:
    r = Replicas(*args, **kwargs)
    try:
        yield r
    finally:
        await r.close()


def owner_of(held: dict[str, list[int]], name: str, prefix: str, shards: int) -> str:
    shard = _core.shard_of(prefix + name, shards)
    (owner,) = [i for i, s in held.items() if shard in s]
    return owner


async def test_replicas_share_the_keys_each_running_only_its_shards(
    client: EtcdClient, prefix: str, coordination: str
) -> None:
    repo = ResourceRepository(client, prefix)
    names = {f"w{i}" for i in range(40)}
    for name in sorted(names):
        await repo.add_async(doc(name, n=0))
    async with replicas(repo, coordination, shards=8) as r:
        for identity in ("a", "b", "c"):
            r.add(identity)
        await r.until(lambda: r.balanced() and r.reconciled(names))
        held = r.held()
        assert sorted(len(s) for s in held.values()) == [2, 3, 3]
        # A live change runs on the replica holding its shard, and only there.
        for seen in r.seen.values():
            seen.clear()
        for name in ("w1", "w2", "w3"):
            w = thaw(await repo.get_async(name))
            w["spec"]["n"] = 1
            await repo.update_async(w)
        await r.until(lambda: r.reconciled({"w1", "w2", "w3"}))
        for name in ("w1", "w2", "w3"):
            owner = owner_of(held, name, prefix, 8)
            assert name in r.seen[owner]
            assert all(name not in seen for i, seen in r.seen.items() if i != owner)
        # Each change reached every replica's feed; the two that do not hold it dropped it.
        assert sum(c.stats()["not_mine"] for c in r.controllers.values()) >= 6


async def test_a_replica_that_stops_hands_its_shards_back_at_once(
    client: EtcdClient, prefix: str, coordination: str
) -> None:
    repo = ResourceRepository(client, prefix)
    names = {f"w{i}" for i in range(20)}
    for name in sorted(names):
        await repo.add_async(doc(name))
    # A TTL far longer than the hand-over may take: the shards come back by the revoke, not
    # by the lease's expiry.
    async with replicas(repo, coordination, shards=4, ttl=30) as r:
        r.add("a")
        r.add("b")
        await r.until(lambda: r.balanced() and r.reconciled(names))
        gone = set(r.held()["b"])
        begun = time.monotonic()
        await r.stop("b")
        r.seen.clear()
        await r.until(lambda: r.balanced())
        assert time.monotonic() - begun < 10, "the shards waited for the lease to expire"
        # Every key of b's shards was queued again on a.
        theirs = {n for n in names if _core.shard_of(prefix + n, 4) in gone}
        await r.until(lambda: r.reconciled(theirs))


async def test_a_standby_takes_over_from_a_leader(
    client: EtcdClient, prefix: str, coordination: str
) -> None:
    repo = ResourceRepository(client, prefix)
    await repo.add_async(doc("w0"))
    async with replicas(repo, coordination, shards=1) as r:
        r.add("a")
        await r.until(lambda: r.balanced() and r.reconciled({"w0"}))
        r.add("b")
        await r.until(lambda: r.controllers["b"].stats()["synced"])
        assert r.held() == {"a": [0], "b": []}
        assert r.seen["b"] == []
        await r.stop("a")
        await r.until(lambda: r.held() == {"b": [0]})
        await repo.add_async(doc("w1"))
        await r.until(lambda: "w1" in r.seen["b"])
        assert "w0" in r.seen["b"]  # a new leader runs everything once


async def test_leader_election_is_one_shard() -> None:
    repo = ResourceRepository(EtcdClient("memory://"), "/w/")

    async def reconcile(resource: Any) -> Action:
        return Action.done()

    controller = Controller(repo, reconcile, leader_election=True)
    assert controller._sharding is not None and controller._sharding.shards == 1
    with pytest.raises(ValueError, match="leader_election"):
        Controller(repo, reconcile, leader_election=True, sharding=4)
    with pytest.raises(ValueError, match="shards"):
        Sharding(shards=0)
    with pytest.raises(ValueError, match="identity"):
        Sharding(identity="a/b")


async def test_a_dead_replicas_shards_move_within_its_ttl(
    etcd_endpoints: list[str], prefix: str, coordination: str
) -> None:
    """A replica whose client goes away (no revoke, no renewal) loses its shards when etcd
    expires its lease: the others hold them within one TTL of the death."""
    writer = EtcdClient(etcd_endpoints)
    dying = EtcdClient(etcd_endpoints)
    repo = ResourceRepository(writer, prefix)
    names = {f"w{i}" for i in range(20)}
    for name in sorted(names):
        await repo.add_async(doc(name))
    ttl = 3
    try:
        async with replicas(repo, coordination, shards=4, ttl=ttl) as r:
            r.add("a")
            r.add("b", ResourceRepository(dying, prefix))
            await r.until(lambda: r.balanced() and r.reconciled(names))
            dead = r.controllers.pop("b")
            died = time.monotonic()
            dying.close()  # no revoke reaches etcd: the lease runs out
            await r.until(lambda: r.held() == {"a": [0, 1, 2, 3]})
            moved = time.monotonic() - died
            assert moved <= ttl + 1.0, f"took {moved:.2f}s for a TTL of {ttl}s"
            # The dead replica's run() ended with what killed it.
            with pytest.raises(ClosedError):
                await r.tasks.pop("b")
            assert dead.stats()["in_flight"] == 0
    finally:
        writer.close()


async def test_writes_under_a_fence_commit_only_while_its_record_is_on_its_lease(
    client: EtcdClient, prefix: str, coordination: str
) -> None:
    """The fence a sharded reconcile writes under (``FENCE``), checked by etcd (or the
    embedded store) in the same transaction as each write."""
    _core._use_fence_var(FENCE)
    repo = ResourceRepository(client, prefix)
    await repo.add_async(doc("kept"))
    lease = await client.grant_lease(30)
    record = coordination + "shards/0"
    await client.create_raw(record, b'"me"', lease=lease.id)
    token = FENCE.set((record, lease.id))
    try:
        written = await repo.add_async(doc("a"))  # held: every kind of write goes through
        written = await repo.update_async(thaw(written))
        await client.put_raw(prefix + "raw", b"{}")
        # The record gone (the lease expired while this replica was paused) and taken by
        # another replica's lease: nothing goes through, and nothing is written.
        await lease.revoke()
        other = await client.grant_lease(30)
        unfenced = FENCE.set(None)  # (the other replica's write)
        await client.create_raw(record, b'"other"', lease=other.id)
        FENCE.reset(unfenced)
        attempts = [
            repo.add_async(doc("b")),
            repo.update_async(thaw(written)),
            repo.remove_async("kept"),
            client.put_raw(prefix + "raw", b'{"late": true}'),
        ]
        for attempt in attempts:
            with pytest.raises(FencedError) as caught:
                await attempt
            assert caught.value.fence == record
        # A conflict is still a conflict while the fence holds.
        FENCE.set((record, other.id))
        stale = thaw(written)
        stale["metadata"]["resource_version"] = "1"
        with pytest.raises(ConflictError):
            await repo.update_async(stale)
    finally:
        FENCE.reset(token)
    assert await repo.get_async("b") is None
    assert await repo.get_async("kept") is not None
    assert await client.get_raw(prefix + "raw") == b"{}"
    assert (await repo.get_async("a"))["metadata"]["resource_version"] == written["metadata"][
        "resource_version"
    ]


async def test_a_reconcile_that_outlives_its_shard_cannot_write(
    client: EtcdClient, prefix: str, coordination: str
) -> None:
    """What a paused replica meets on resuming: its reconcile was handed the key under one
    holding of the shard; etcd ended that holding meanwhile (here, its lease revoked behind its
    back) and the shard was taken again (here by the same replica, under a new lease: the fence
    is the holding, not the replica); the old reconcile's write is refused and writes nothing,
    the new holding's runs.
    (A replica that sees its lease go cancels its reconciles; this one runs on regardless, as a
    paused process does before it can look.)"""
    repo = ResourceRepository(client, prefix)
    await repo.add_async(doc("w", n=0))
    first = asyncio.Event()
    resume = asyncio.Event()
    refused: list[tuple[int, FencedError]] = []
    wrote: list[int] = []

    async def reconcile(resource: Any) -> Action:
        fence = FENCE.get()
        assert fence is not None
        first.set()
        try:
            await resume.wait()
        except asyncio.CancelledError:
            await resume.wait()  # the pause: too late to stop
        try:
            await repo.update_async({**thaw(resource), "status": {"lease": fence[1]}})
        except FencedError as exc:
            refused.append((fence[1], exc))
            raise
        wrote.append(fence[1])
        return Action.done()

    ttl = 30  # no renewal of the first lease comes before the end of the test
    replica = Controller(repo, reconcile, name="one", sharding=Sharding(1, ttl, "a", coordination))
    task = asyncio.ensure_future(replica.run())
    try:
        async with asyncio.timeout(WAIT):
            await first.wait()  # a reconcile runs under the first holding
            _, records = await client.list_raw(coordination)
            (old,) = {owner for key, _, _, owner in records if key.endswith("shards/0")}
            await client.revoke_lease(old)  # etcd forgets it, as after a long pause

            def held_again(_: Any) -> bool:
                shards = replica._shards
                fence = None if shards is None else shards.fence(0)
                return fence is not None and fence[1] != old

            await replica.wait_for(held_again)
            resume.set()
            await replica.wait_for(lambda _: bool(refused and wrote))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ClosedError):
            await task
    assert [lease for lease, _ in refused] == [old]
    assert refused[0][1].fence.endswith("shards/0")
    assert old not in wrote
    status = (await repo.get_async("w"))["status"]
    assert status["lease"] in wrote, "the late write wrote nothing; the new holding's did"


async def test_a_sync_reconcile_is_signalled_and_waited_for(
    client: EtcdClient, prefix: str, coordination: str
) -> None:
    """A plain-function reconciler cannot be cancelled when its replica loses the shard: its
    stop signal is set, the key runs again only once its thread has returned (never two runs of
    one key at once), and what it writes late is fenced."""
    repo = ResourceRepository(client, prefix)
    await repo.add_async(doc("w", n=0))
    loop = asyncio.get_running_loop()
    order: list[tuple[str, int]] = []  # appended by the pool's threads, one at a time per key
    blocked = threading.Event()
    again = threading.Event()
    refused: list[int] = []
    old = 0

    def held_again() -> bool:
        shards = replica._shards
        fence = None if shards is None else shards.fence(0)
        return fence is not None and fence[1] != old

    async def write(resource: Any, lease: int) -> None:
        await repo.update_async({**thaw(resource), "status": {"lease": lease}})

    def reconcile(resource: Any) -> Action:
        fence = FENCE.get()
        assert fence is not None, "the thread runs in the reconcile's context"
        first = not order
        order.append(("start", fence[1]))
        if not first:
            again.set()
        else:
            blocked.set()
            assert stopping().wait(WAIT), "the runtime signals the reconcile it stops"
            deadline = time.monotonic() + WAIT
            while not held_again() and time.monotonic() < deadline:
                time.sleep(0.01)  # polls a condition of the runtime, from its thread
            # The shard is held again and the key queued: a runtime that let go of the key
            # while its thread runs would start it now (the window checked for that).
            again.wait(1.0)
        try:
            asyncio.run_coroutine_threadsafe(write(resource, fence[1]), loop).result(WAIT)
        except FencedError:
            refused.append(fence[1])
        order.append(("end", fence[1]))
        return Action.done()

    ttl = 30  # no renewal of the first lease comes before the end of the test
    config = Sharding(1, ttl, "a", coordination)
    replica = Controller(repo, reconcile, name="sync", sharding=config, sync_workers=2)
    task = asyncio.ensure_future(replica.run())
    try:
        async with asyncio.timeout(WAIT):
            await loop.run_in_executor(None, blocked.wait, WAIT)
            _, records = await client.list_raw(coordination)
            (old,) = {owner for key, _, _, owner in records if key.endswith("shards/0")}
            await client.revoke_lease(old)  # the replica finds its lease gone and stops the key
            await replica.wait_for(lambda _: len(order) >= 4)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ClosedError):
            await task
    new = order[2][1]
    assert new != old
    assert order == [("start", old), ("end", old), ("start", new), ("end", new)]
    assert refused == [old], "the stopped reconcile's late write is refused"
    assert (await repo.get_async("w"))["status"] == {"lease": new}
