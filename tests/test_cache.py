"""The informer cache: same answers as etcd, reads after writes see the writes, one cache per
client and prefix however many repositories use it."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from etcd_resources import (
    ConflictError,
    EtcdClient,
    EtcdLabWorkerResourceRepository,
    LabWorker,
    LabWorkerPhase,
    ResourceRepository,
    thaw,
)

from .helpers import worker
from .test_watch import etcd_watchers, wait_for

Repo = ResourceRepository[dict[str, Any]]
PHASES = [LabWorkerPhase.PENDING, LabWorkerPhase.READY, LabWorkerPhase.DRAINING]


async def fill(repo: EtcdLabWorkerResourceRepository, n: int) -> None:
    for i in range(n):
        w = LabWorker.create(f"w{i:03}", ["ccna", "ccnp"][i % 2])
        w.status.phase = PHASES[i % 3]
        await repo.add_async(w)


def names(workers: list[LabWorker]) -> list[str]:
    return [w.metadata.name for w in workers]


async def test_the_cache_answers_like_etcd(client: EtcdClient, prefix: str) -> None:
    direct = EtcdLabWorkerResourceRepository(client, prefix)
    cached = EtcdLabWorkerResourceRepository(client, prefix, cache=True)
    await fill(direct, 30)
    for phase in [*PHASES, LabWorkerPhase.FAILED]:
        assert names(await cached.find_by_phase_async(phase)) == names(
            await direct.find_by_phase_async(phase)
        )
        assert await cached.count_by_phase_async(phase) == await direct.count_by_phase_async(phase)
    assert names(await cached.find_active_workers_async()) == names(
        await direct.find_active_workers_async()
    )
    assert await cached.count_by_lab_track_async("ccnp") == 15
    mixed = {"label_selector": "lab-track!=ccna", "field_selector": "status.phase notin (Ready)"}
    assert names(await cached.list_async(**mixed)) == names(await direct.list_async(**mixed))
    stale_ok = await cached.list_async(consistent=False)
    assert len(stale_ok) == 30


async def test_numeric_comparisons_answer_like_etcd_through_updates_and_deletes(
    client: EtcdClient, prefix: str
) -> None:
    direct: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    cached: ResourceRepository[dict[str, Any]] = ResourceRepository(
        client, prefix, cache=["status.active_lab_count"]
    )
    for i in range(30):
        await direct.add_async(
            {
                "metadata": {"name": f"w{i:02}", "labels": {"slots": str(i % 7)}},
                "spec": {},
                "status": {"active_lab_count": i},
            }
        )
    room = "status.active_lab_count<20"

    async def same_as_etcd() -> int:
        for selector in [
            room,
            "status.active_lab_count>25",
            "status.active_lab_count>9.5,status.active_lab_count<20",
        ]:
            want = [d["metadata"]["name"] for d in await direct.list_async(field_selector=selector)]
            got = [d["metadata"]["name"] for d in await cached.list_async(field_selector=selector)]
            assert got == want, selector
            assert await cached.count_async(field_selector=selector) == len(want), selector
        both = {"label_selector": "slots>3", "field_selector": room}
        want = [d["metadata"]["name"] for d in await direct.list_async(**both)]
        assert [d["metadata"]["name"] for d in await cached.list_async(**both)] == want
        return await cached.count_async(field_selector=room)

    assert await same_as_etcd() == 20
    for i in range(0, 30, 3):  # labs start: 6, 9, 12, 15 and 18 reach 20 or more
        doc = await cached.get_async(f"w{i:02}")
        assert doc is not None
        doc["status"]["active_lab_count"] = i + 15
        await cached.update_async(doc)
    assert await same_as_etcd() == 15
    for name, count in [("w01", "n/a"), ("w02", None), ("w04", ...)]:  # no longer numbers
        doc = await direct.get_async(name)
        assert doc is not None
        if count is ...:
            del doc["status"]["active_lab_count"]
        else:
            doc["status"]["active_lab_count"] = count
        await direct.update_async(doc)
    assert await same_as_etcd() == 12
    for i in range(10):
        await direct.remove_async(f"w{i:02}")
    assert await same_as_etcd() == 7


async def test_reads_after_writes_see_the_writes(client: EtcdClient, prefix: str) -> None:
    repo = EtcdLabWorkerResourceRepository(client, prefix, cache=True)
    assert await repo.count_by_phase_async(LabWorkerPhase.READY) == 0
    for i in range(25):
        w = await repo.add_async(LabWorker.create(f"w{i:02}", "ccna"))
        assert await repo.count_async() == i + 1
        w.status.phase = LabWorkerPhase.READY
        await repo.update_async(w)
        assert await repo.count_by_phase_async(LabWorkerPhase.READY) == i + 1
    await repo.remove_async("w00")
    assert "w00" not in names(await repo.find_ready_workers_async())
    # A write under another prefix moves etcd's revision; the cache still answers at once.
    await client.put_raw(prefix.rstrip("/") + "-other/x", b"{}")
    assert await repo.count_by_phase_async(LabWorkerPhase.READY) == 24


async def test_writes_made_while_a_cache_lists_are_all_in_it(
    etcd_endpoints: list[str], prefix: str
) -> None:
    """etcd before 3.5.13 answers a progress request ahead of the events of a watch that is
    still catching up (etcd#15220): a cache that took that answer skipped the writes made
    while it listed, for good (seen in 2 of 5 rounds here before `crate::progress`). Each round
    lists a prefix while another client adds and updates documents in it, then compares the
    cache with etcd, name by name and version by version."""

    def doc(name: str, v: int = 0) -> dict[str, Any]:
        return {"metadata": {"name": name}, "spec": {"v": v}, "status": {}}

    def versions(docs: list[dict[str, Any]]) -> dict[str, str]:
        return {d["metadata"]["name"]: d["metadata"]["resource_version"] for d in docs}

    async def write(direct: Repo, stop: asyncio.Event) -> int:
        k = 0
        while not stop.is_set():
            got = await direct.get_async(f"w{k % 1500:04}")
            assert got is not None
            got["spec"]["v"] = k
            await asyncio.gather(direct.update_async(got), direct.add_async(doc(f"n{k}")))
            k += 1
        return k

    async with EtcdClient(etcd_endpoints) as writer, EtcdClient(etcd_endpoints) as reader:
        for round_ in range(4):
            here = f"{prefix}r{round_}/"
            direct: Repo = ResourceRepository(writer, here)
            await asyncio.gather(*(direct.add_async(doc(f"w{i:04}")) for i in range(1500)))
            stop = asyncio.Event()
            writing = asyncio.create_task(write(direct, stop))
            # The cache lists and watches while the writes go on; its first read waits for
            # etcd's revision (a progress request), whatever the consistency asked.
            while await direct.count_async() < 1510:
                pass
            cached: Repo = ResourceRepository(reader, here, cache=True)
            await cached.list_async()
            stop.set()
            assert await writing > 0
            want = versions(await direct.list_async())
            got = versions(await cached.list_async(consistent=True))
            assert got == want, (
                f"round {round_}: the cache misses {len(set(want) - set(got))} of {len(want)}, "
                f"{sum(got.get(n) not in (None, v) for n, v in want.items())} stale"
            )


async def test_consistent_reads_under_a_steady_write_load_finish(
    etcd_endpoints: list[str], prefix: str
) -> None:
    """A linearizable cache read compared what the cache had applied *after* etcd answered its
    revision with that answer: a change applied while the answer travelled looked like etcd
    gone back in time (a restore), and the read waited for a relist that never came, until its
    timeout (one of 20 fresh caches under three writers hung in 3 runs of 5 here). Each of 50
    fresh caches' first consistent read now finishes."""

    async def write(direct: Repo, stop: asyncio.Event, j: int) -> int:
        n = 0
        while not stop.is_set():
            got = await direct.get_async(f"k{(n + j) % 10}")
            assert got is not None
            got["spec"]["n"] = n
            with contextlib.suppress(ConflictError):  # the writers race one another
                await direct.update_async(got)
            n += 1
        return n

    async with EtcdClient(etcd_endpoints) as writer:
        direct: Repo = ResourceRepository(writer, prefix)
        await asyncio.gather(*(direct.add_async(worker(f"k{i}")) for i in range(10)))
        stop = asyncio.Event()
        writers = [asyncio.create_task(write(direct, stop, j)) for j in range(3)]
        try:
            for _ in range(50):
                async with EtcdClient(etcd_endpoints, timeout=5) as fresh:
                    cached: Repo = ResourceRepository(fresh, prefix, cache=True)
                    assert len(await cached.list_async(consistent=True)) == 10
        finally:
            stop.set()
            written = await asyncio.gather(*writers)
        assert min(written) > 0


async def test_one_cache_per_client_and_prefix(etcd_endpoints: list[str], prefix: str) -> None:
    client = EtcdClient(etcd_endpoints)
    before = etcd_watchers(etcd_endpoints[0])
    scoped = [EtcdLabWorkerResourceRepository(client, prefix, cache=True) for _ in range(20)]
    counts = await asyncio.gather(*(r.count_async() for r in scoped))
    assert counts == [0] * 20
    # The cache's watch opens after its first list answered the counts: wait for it, and it
    # alone (twenty would never read as one).
    await wait_for(lambda: etcd_watchers(etcd_endpoints[0]) == before + 1)
    del scoped, counts
    gc.collect()
    await wait_for(lambda: etcd_watchers(etcd_endpoints[0]) == before)
    client.close()


async def test_session_reads_cost_no_round_trip_and_linearizable_ones_see_other_clients(
    etcd_endpoints: list[str], prefix: str
) -> None:
    client, other = EtcdClient(etcd_endpoints), EtcdClient(etcd_endpoints)
    plain = EtcdLabWorkerResourceRepository(client, prefix)  # no cache: still noted
    cached = EtcdLabWorkerResourceRepository(client, prefix, cache=True)
    assert await cached.count_async() == 0

    def calls() -> int:
        return sum(int(op["count"]) for op in client.metrics().values())

    for i in range(10):
        await plain.add_async(LabWorker.create(f"w{i}", "ccna"))
        before = calls()
        assert await cached.count_async() == i + 1, "a read after this client's write sees it"
        assert calls() == before, "and asks etcd nothing"

    await EtcdLabWorkerResourceRepository(other, prefix).add_async(LabWorker.create("x", "ccna"))
    assert await cached.count_async(consistent=True) == 11, "another client's acknowledged write"
    client.close()
    other.close()


async def test_cached_reads_share_read_only_documents(client: EtcdClient, prefix: str) -> None:
    cached = EtcdLabWorkerResourceRepository(client, prefix, resource_type=dict, cache=True)
    await cached.add_async(LabWorker.create("w1", "ccna"))
    first = (await cached.list_async())[0]
    # Dicts and lists to every reader of them...
    assert isinstance(first, dict) and isinstance(first["status"]["conditions"], list)
    assert json.loads(json.dumps(first)) == first
    # ... that no reader can change, at any depth, by any method.
    edits: list[Callable[[], object]] = [
        lambda: first["spec"].__setitem__("lab_track", "changed by a caller"),
        lambda: first["metadata"]["labels"].clear(),
        lambda: first["metadata"]["labels"].update(x="y"),
        lambda: first["metadata"].pop("name"),
        lambda: first["status"].setdefault("new", 1),
        lambda: first.popitem(),
        lambda: first["status"].__delitem__("phase"),
        lambda: first["status"]["conditions"].append({"oops": True}),
        lambda: first["metadata"]["finalizers"].extend(["f"]),
        lambda: first["status"]["conditions"].sort(),
    ]
    for edit in edits:
        with pytest.raises(TypeError, match="thaw"):
            edit()
    again = (await cached.list_async())[0]
    assert again is first, "the same objects for the same version: nothing copied per reader"
    assert again["spec"]["lab_track"] == "ccna"
    assert again["metadata"]["labels"] == {"lab-track": "ccna"}
    # A mutable copy on request: plain dicts and lists all the way down, independent.
    for mutable in (thaw(first), copy.deepcopy(first), pickle.loads(pickle.dumps(first))):
        assert type(mutable) is dict and type(mutable["status"]["conditions"]) is list
        assert mutable == first
        mutable["spec"]["lab_track"] = "changed by a caller"
        mutable["status"]["conditions"].append({"oops": True})
        assert first["spec"]["lab_track"] == "ccna" and first["status"]["conditions"] == []
    # A new version is a new document; the old one is left as it was read.
    await cached.update_async(thaw(first) | {"spec": thaw(first["spec"]) | {"lab_track": "ccnp"}})
    newer = (await cached.list_async())[0]
    assert newer["spec"]["lab_track"] == "ccnp" and first["spec"]["lab_track"] == "ccna"
    # Reads straight from etcd are plain dicts, as before.
    got = await cached.get_async("w1")
    assert type(got) is dict
    got["spec"]["lab_track"] = "fine"
    # The collector is paused while a list is built, and left as it was.
    assert gc.isenabled()
    gc.disable()
    try:
        await cached.list_async()
        assert not gc.isenabled()
    finally:
        gc.enable()


async def test_documents_written_by_other_tools_read_the_same_from_the_cache(
    client: EtcdClient, prefix: str
) -> None:
    """camelCase metadata, `api_version`, YAML, garbage: the cache (from its first list and
    from its watch) answers as a read of etcd does, and its indexes see the normalised
    documents."""
    writes = {
        "w1": b'{"api_version": "v1", "kind": "LabWorker", "metadata": {"name": "w1", '
        b'"namespace": "labs", "creationTimestamp": "2025-01-01T00:00:00Z", '
        b'"resourceVersion": "9", "labels": {"lab-track": "ccna", "slots": "7"}}, '
        b'"status": {"phase": "Ready", "active_lab_count": 3}}',
        "w2": b"apiVersion: v1\nkind: LabWorker\nmetadata:\n  name: w2\n"
        b"  labels: {lab-track: ccna, slots: '12'}\nstatus:\n  phase: Ready\n"
        b"  active_lab_count: 11\n  conditions: [{type: A}]\n",
        "w3": b"{not json",
    }
    plain: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    cached: ResourceRepository[dict[str, Any]] = ResourceRepository(
        client, prefix, cache=["status.phase", "status.active_lab_count"]
    )
    queries: list[dict[str, Any]] = [
        {},
        {"label_selector": "lab-track=ccna"},
        {"label_selector": "slots>10"},
        {"label_selector": "slots", "field_selector": "status.active_lab_count<5"},
        {"field_selector": "status.phase=Ready,metadata.name!=w1"},
        {"namespace": "labs"},
        {"field_selector": "status.conditions="},
    ]

    async def same() -> None:
        for query in queries:
            want = await plain.list_async(**query)
            got = await cached.list_async(consistent=True, **query)
            assert got == want, query
            assert await cached.count_async(**query) == len(want), query

    await client.put_raw(prefix + "w1", writes["w1"])
    await client.put_raw(prefix + "w3", writes["w3"])
    await same()  # from the first list
    await client.put_raw(prefix + "w2", writes["w2"])
    await same()  # w2 from the watch
    assert [d["metadata"]["name"] for d in await cached.list_async()] == ["w1", "w2"]
    w2 = (await cached.list_async(label_selector="slots>10"))[0]
    assert w2["apiVersion"] == "v1" and w2["status"]["conditions"] == [{"type": "A"}]
    w1 = (await cached.list_async(namespace="labs"))[0]
    assert "creationTimestamp" not in w1["metadata"]
    assert w1["metadata"]["creation_timestamp"] == "2025-01-01T00:00:00Z"


async def test_the_cache_sees_every_resource_of_a_revoked_lease_go(
    client: EtcdClient, prefix: str
) -> None:
    """A lease revoked (or expired) with several resources on it deletes them all at one
    revision: the cache and the watch drop every one (they kept all but the first, once)."""
    cached = EtcdLabWorkerResourceRepository(client, prefix, cache=True)
    watch = cached.watch()
    lease = await client.grant_lease(30)
    for i in range(3):
        await cached.add_async(LabWorker.create(f"w{i}", "ccna"), lease=lease)
    await cached.add_async(LabWorker.create("kept", "ccna"))
    await lease.revoke()
    assert await cached.count_async(consistent=True) == 1
    deleted = []
    async with asyncio.timeout(10):
        async for event in watch:
            if event.type == "DELETED":
                deleted.append(event.resource.metadata.name)
            if len(deleted) == 3:
                break
    assert sorted(deleted) == ["w0", "w1", "w2"]
