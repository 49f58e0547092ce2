"""Every watch form begins at its call: a watch started in a task sees a write made right after,
before the task has run, on a fresh client (no revision known yet) and on one that has talked
to etcd already. Revisions in events are ``int``."""

from __future__ import annotations

import asyncio
from typing import Any

from etcd_resources import (
    EtcdClient,
    EtcdStorageBackend,
    EventType,
    ResourceEvent,
    ResourceRepository,
    WatchEvent,
)


async def first(events: Any) -> ResourceEvent:
    async for event in events:
        return event  # type: ignore[no-any-return]
    raise AssertionError("the watch ended without an event")


def fresh(client: EtcdClient) -> EtcdClient:
    return EtcdClient(client.endpoints, timeout=5.0)


async def test_a_watch_in_a_task_sees_a_write_made_at_once(client: EtcdClient, prefix: str) -> None:
    new = fresh(client)
    for c in (new, client):  # no revision known yet, then one known
        repo: ResourceRepository[Any] = ResourceRepository(c, prefix)
        name = f"w{id(c) % 1000}"
        task = asyncio.create_task(first(repo.watch()))
        written = await repo.add_async({"metadata": {"name": name}, "spec": {}})
        event = await asyncio.wait_for(task, 10)
        assert event.type is EventType.ADDED and event.resource["metadata"]["name"] == name
        assert event.resource_version == int(written["metadata"]["resource_version"])
        assert isinstance(event.resource_version, int)
        await repo.remove_async(name)
    new.close()


async def test_a_watch_never_iterated_sees_writes_made_before_its_first_step(
    client: EtcdClient, prefix: str
) -> None:
    repo: ResourceRepository[Any] = ResourceRepository(fresh(client), prefix)
    events = repo.watch()
    await repo.add_async({"metadata": {"name": "a"}, "spec": {}})
    await repo.add_async({"metadata": {"name": "b"}, "spec": {}})
    got = [await asyncio.wait_for(anext(events), 10) for _ in range(2)]
    assert [e.resource["metadata"]["name"] for e in got] == ["a", "b"]
    await events.aclose()  # type: ignore[attr-defined]
    repo.client.close()


async def test_callback_watches_begin_at_the_call(client: EtcdClient, prefix: str) -> None:
    backend = EtcdStorageBackend(fresh(client), prefix)
    seen: asyncio.Queue[WatchEvent] = asyncio.Queue()
    handle = backend.watch(seen.put_nowait)  # no `await handle.started()`
    revision = int(await backend.set("x", {"v": 1}))
    event = await asyncio.wait_for(seen.get(), 10)
    assert (event.name, event.revision) == ("x", revision)
    handle.cancel()
    backend.client.close()
