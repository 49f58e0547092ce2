"""Read-only watchers (issue 24, item 4): ``watch(readonly=True)`` hands every read-only
watcher of a change the same read-only documents, built once; a plain watcher of the same
prefix still gets its own dicts, which it may edit without any other watcher seeing it. On a
real etcd and on the embedded store."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from etcd_resources import (
    EtcdClient,
    EtcdLabWorkerResourceRepository,
    EtcdStorageBackend,
    EventType,
    ResourceEvent,
    ResourceRepository,
    thaw,
)
from etcd_resources.readonly import ReadOnlyDict, ReadOnlyList

from .helpers import worker

Repo = ResourceRepository[dict[str, Any]]


async def take(events: AsyncIterator[ResourceEvent], n: int) -> list[ResourceEvent]:
    """The first ``n`` changes of ``events`` (bookmarks aside)."""
    out: list[ResourceEvent] = []
    async for event in events:
        if event.type is not EventType.BOOKMARK:
            out.append(event)
        if len(out) == n:
            break
    return out


async def test_read_only_watchers_share_one_object_per_change(
    client: EtcdClient, prefix: str
) -> None:
    repo: Repo = ResourceRepository(client, prefix)
    start = await client.current_revision()
    a, b = (repo.watch(resource_version=str(start), readonly=True) for _ in range(2))
    plain = repo.watch(resource_version=str(start))
    created = await repo.add_async(worker("w1", phase="Pending", owners=["team-a", "team-b"]))
    changed = copy.deepcopy(created)
    changed["status"]["phase"] = "Ready"
    await repo.update_async(changed)
    await repo.remove_async("w1")

    seen_a, seen_b, seen_plain = await asyncio.gather(take(a, 3), take(b, 3), take(plain, 3))
    assert [e.type for e in seen_a] == [EventType.ADDED, EventType.MODIFIED, EventType.DELETED]
    assert [e.type for e in seen_b] == [e.type for e in seen_a]
    for x, y, own in zip(seen_a, seen_b, seen_plain, strict=True):
        assert x.resource is y.resource, "one object per change for read-only watchers"
        assert x.resource == own.resource and x.resource is not own.resource
        assert isinstance(x.resource, ReadOnlyDict) and type(own.resource) is dict
        assert x.resource_version == own.resource_version
    modified = seen_a[1]
    assert modified.resource["status"]["phase"] == "Ready"
    assert modified.previous is seen_b[1].previous
    assert modified.previous["status"]["phase"] == "Pending"
    assert isinstance(modified.resource["metadata"]["owners"], ReadOnlyList)

    # Nobody's edit reaches another: the shared documents refuse, a plain one is its own.
    with pytest.raises(TypeError, match="thaw"):
        modified.resource["status"]["phase"] = "Broken"
    with pytest.raises(TypeError):
        modified.resource["metadata"]["owners"].append("x")
    seen_plain[1].resource["status"]["phase"] = "Edited"
    assert modified.resource["status"]["phase"] == "Ready"
    mine = thaw(modified.resource)
    mine["status"]["phase"] = "Mine"
    assert type(mine) is dict and modified.resource["status"]["phase"] == "Ready"
    for events in (a, b, plain):
        await events.aclose()  # type: ignore[attr-defined]


async def test_a_hundred_read_only_watchers_get_every_change(
    client: EtcdClient, prefix: str
) -> None:
    """Each of 100 read-only watchers gets every change, in order, as the same objects."""
    repo: Repo = ResourceRepository(client, prefix)
    start = await client.current_revision()
    watchers = [repo.watch(resource_version=str(start), readonly=True) for _ in range(100)]
    for i in range(30):
        await repo.add_async(worker(f"w{i:02}"))
    seen = await asyncio.gather(*(take(w, 30) for w in watchers))
    first = seen[0]
    assert [e.resource["metadata"]["name"] for e in first] == [f"w{i:02}" for i in range(30)]
    for other in seen[1:]:
        assert all(x.resource is y.resource for x, y in zip(first, other, strict=True))
    for w in watchers:
        await w.aclose()  # type: ignore[attr-defined]


async def test_the_storage_backend_watches_read_only_too(client: EtcdClient, prefix: str) -> None:
    backend = EtcdStorageBackend(client, prefix)
    got: list[list[Any]] = [[], []]
    done = asyncio.Event()

    def callback(i: int) -> Any:
        def on(event: Any) -> None:
            got[i].append(event)
            if all(len(g) == 2 for g in got):
                done.set()

        return on

    handles = [backend.watch(callback(i), readonly=True) for i in range(2)]
    await asyncio.gather(*(h.started() for h in handles))
    await backend.set("k1", {"metadata": {"name": "k1"}, "spec": {"n": 1}})
    await backend.set("k2", {"metadata": {"name": "k2"}, "spec": {"n": 2}})
    await asyncio.wait_for(done.wait(), 10)
    for x, y in zip(*got, strict=True):
        assert x.value is y.value and isinstance(x.value, ReadOnlyDict)
    for h in handles:
        h.cancel()


def test_a_typed_repository_refuses_readonly(client: EtcdClient, prefix: str) -> None:
    repo = EtcdLabWorkerResourceRepository(client, prefix)
    with pytest.raises(TypeError, match="readonly=True shares read-only dicts"):
        repo.watch(readonly=True)
