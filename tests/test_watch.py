"""``async for event in repo.watch(...)``: Kubernetes event types, selectors, initial events,
resume points, expiry, cleanup, and surviving an etcd restart without losing or repeating an
event."""

from __future__ import annotations

import asyncio
import gc
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from etcd_resources import (
    EtcdClient,
    EtcdLabWorkerResourceRepository,
    EtcdTimeoutError,
    EventType,
    ExpiredError,
    LabWorker,
    LabWorkerPhase,
    ResourceEvent,
    ResourceRepository,
    UnavailableError,
)
from etcd_resources.testing import EtcdServer

from .helpers import worker


async def take(events: Any, n: int, within: float = 10) -> list[ResourceEvent]:
    got: list[ResourceEvent] = []

    async def run() -> None:
        async for event in events:
            got.append(event)
            if len(got) == n:
                return

    await asyncio.wait_for(run(), within)
    return got


async def test_event_types_and_typed_resources(client: EtcdClient, prefix: str) -> None:
    repo = EtcdLabWorkerResourceRepository(client, prefix)
    rv = await client.current_revision()
    w = await repo.add_async(LabWorker.create("w1", "ccna"))
    w.status.phase = LabWorkerPhase.READY
    await repo.update_async(w)
    await repo.remove_async("w1")
    got = await take(repo.watch(resource_version=rv), 3)
    assert [e.type for e in got] == [EventType.ADDED, EventType.MODIFIED, EventType.DELETED]
    assert isinstance(got[0].resource, LabWorker)
    assert got[1].resource.status.phase is LabWorkerPhase.READY
    assert got[1].previous.status.phase is LabWorkerPhase.PENDING
    assert got[2].resource.metadata.name == "w1"  # the last known state
    versions = [int(e.resource_version) for e in got]
    assert versions == sorted(versions) and versions[0] > rv


async def test_selectors_follow_the_kubernetes_rule(client: EtcdClient, prefix: str) -> None:
    repo = EtcdLabWorkerResourceRepository(client, prefix)
    rv = await client.current_revision()
    w = await repo.add_async(LabWorker.create("w1", "ccna"))  # Pending: not seen
    for phase in (LabWorkerPhase.READY, LabWorkerPhase.READY, LabWorkerPhase.DRAINING):
        w.status.phase = phase
        w = await repo.update_async(w)
    await repo.add_async(LabWorker.create("other", "ccnp"))
    got = await take(
        repo.watch(
            resource_version=rv,
            field_selector="status.phase=Ready",
            label_selector="lab-track=ccna",
        ),
        3,
    )
    assert [e.type for e in got] == [EventType.ADDED, EventType.MODIFIED, EventType.DELETED]
    assert got[2].resource.status.phase is LabWorkerPhase.DRAINING  # it left the selection


async def test_initial_events_then_changes(client: EtcdClient, prefix: str) -> None:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    for i in range(3):
        await repo.add_async(worker(f"w{i}"))
    events = repo.watch(send_initial=True)
    first = await take(events, 4)
    assert [e.type for e in first] == [EventType.ADDED] * 3 + [EventType.BOOKMARK]
    assert {e.resource["metadata"]["name"] for e in first[:3]} == {"w0", "w1", "w2"}
    await repo.add_async(worker("w3"))
    (added,) = await take(events, 1)
    assert added.type is EventType.ADDED and added.resource["metadata"]["name"] == "w3"
    assert int(added.resource_version) > int(first[3].resource_version)
    await events.aclose()


async def test_resuming_after_a_resource_version(client: EtcdClient, prefix: str) -> None:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    versions = []
    for i in range(5):
        created = await repo.add_async(worker(f"w{i}"))
        versions.append(int(created["metadata"]["resource_version"]))
    got = await take(repo.watch(resource_version=versions[1]), 3)
    assert [int(e.resource_version) for e in got] == versions[2:]


async def test_a_compacted_revision_is_expired(client: EtcdClient, prefix: str) -> None:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    first = await repo.add_async(worker("w0"))
    await repo.add_async(worker("w1"))
    await client.compact(await client.current_revision())
    with pytest.raises(ExpiredError):
        await take(repo.watch(resource_version=int(first["metadata"]["resource_version"]) - 1), 1)


def etcd_watchers(endpoint: str) -> int:
    metrics = urllib.request.urlopen(f"{endpoint}/metrics", timeout=5).read().decode()
    gauge = "etcd_debugging_mvcc_watcher_total"
    line = next(x for x in metrics.splitlines() if x.startswith(gauge))
    return int(float(line.split()[-1]))


async def wait_for(condition: Any, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)  # polling an external gauge, not ordering our own tasks


async def test_leaving_the_loop_stops_the_etcd_watch(tmp_path: Path) -> None:
    # Its own etcd: etcd counts every client's watchers, and the gc.collect() below may end
    # watches that earlier tests left to the collector.
    with EtcdServer(data_dir=tmp_path / "etcd") as server:
        await leaving_the_loop_stops_the_etcd_watch(server.endpoints, "/leave/")


async def leaving_the_loop_stops_the_etcd_watch(endpoints: list[str], prefix: str) -> None:
    client = EtcdClient(endpoints)
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    before = etcd_watchers(endpoints[0])
    rv = await client.current_revision()
    await repo.add_async(worker("w0"))
    async for _ in repo.watch(resource_version=rv):
        assert etcd_watchers(endpoints[0]) == before + 1
        break
    gc.collect()
    await wait_for(lambda: etcd_watchers(endpoints[0]) == before)

    task = asyncio.ensure_future(take(repo.watch(), 1, within=60))
    await wait_for(lambda: etcd_watchers(endpoints[0]) == before + 1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # The watch began at the call: if the task was cancelled before its first step, the
    # iterator (open) lives in the task's CancelledError traceback until the task goes.
    del task
    gc.collect()
    await wait_for(lambda: etcd_watchers(endpoints[0]) == before)
    client.close()


async def test_an_etcd_restart_loses_and_repeats_nothing(tmp_path: Path) -> None:
    server = EtcdServer(data_dir=tmp_path / "etcd").start()
    try:
        # No circuit breaker: the writer must reach etcd as soon as it is back.
        client = EtcdClient(server.endpoints, timeout=1.0, breaker_threshold=0)
        repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, "/restart/")
        start = await client.current_revision()
        received: list[int] = []
        total = 120
        acked: list[int] = []
        unknown = 0
        target = [0]
        caught_up = asyncio.Event()

        async def watch() -> None:
            async for event in repo.watch(resource_version=start):
                received.append(int(event.resource_version))
                if target[0] and received[-1] >= target[0]:
                    caught_up.set()

        watcher = asyncio.ensure_future(watch())
        for i in range(total):
            if i == total // 3:
                server.stop()  # etcd goes away mid-stream...
            if i == total // 3 + 5:
                server.start()  # ...and comes back with its data, on the same port
            try:
                created = await repo.add_async(worker(f"w{i:03}"))
                acked.append(int(created["metadata"]["resource_version"]))
            except (UnavailableError, EtcdTimeoutError):
                unknown += 1  # not acknowledged: applied or not, the watch must say which
        target[0] = acked[-1]
        if received and received[-1] >= target[0]:
            caught_up.set()
        await asyncio.wait_for(caught_up.wait(), 60)
        watcher.cancel()
        assert received == sorted(set(received)), "an event was repeated or out of order"
        assert set(acked) <= set(received), "an acknowledged write was not delivered"
        assert len(received) - len(acked) <= unknown
        assert len(acked) >= total - 10
        client.close()
    finally:
        server.close()
