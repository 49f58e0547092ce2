"""A prefix always ends in ``/``: ``"/x"`` is ``"/x/"``, so it never reads, counts, watches or
deletes what ``"/x-other/"`` holds, on any path (direct reads, pages, the informer cache, both
watch forms, the seed backend, the coordination backend); and a prefix typed with or without
its ``/`` addresses the same keys. On etcd and on the embedded store."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from etcd_resources import (
    EtcdClient,
    EtcdStorageBackend,
    EventType,
    InvalidArgumentError,
    NotFoundError,
    ResourceEvent,
    ResourceRepository,
    WatchEvent,
)

from .helpers import worker

Repo = ResourceRepository[dict[str, Any]]


@pytest.fixture
def x(prefix: str) -> str:
    """A prefix typed without its trailing ``/`` (``/test-.../x``)."""
    return prefix + "x"


@pytest.fixture
async def other(client: EtcdClient, x: str) -> Repo:
    """``/test-.../x-other/``, holding w1 and w2: none of it is under ``x``."""
    repo: Repo = ResourceRepository(client, x + "-other/")
    for name in ["w1", "w2"]:
        await repo.add_async(worker(name))
    return repo


async def test_the_prefix_is_normalised(client: EtcdClient, x: str) -> None:
    assert ResourceRepository(client, x).prefix == x + "/"
    assert ResourceRepository(client, x + "//").prefix == x + "/"
    assert EtcdStorageBackend(client, x).prefix == x + "/"
    assert ResourceRepository(client, "/").prefix == "/"  # every key under "/"
    for make in (
        lambda: ResourceRepository(client, ""),
        lambda: EtcdStorageBackend(client, ""),
        lambda: client.current_revision(prefix=""),
    ):
        with pytest.raises(InvalidArgumentError, match="prefix must not be empty"):
            make()


async def test_reads_and_deletes_never_reach_the_longer_prefix(
    client: EtcdClient, x: str, other: Repo
) -> None:
    repo: Repo = ResourceRepository(client, x)
    assert await repo.get_async("w1") is None
    assert not await repo.contains_async("w1")
    assert await repo.list_async() == []
    assert await repo.list_async(label_selector={"lab-track": "ccna"}) == []
    assert await repo.count_async() == 0
    assert await repo.count_async(field_selector="status.phase=Pending") == 0
    page = await repo.list_page_async(limit=1)
    assert (page.items, page.continue_token) == ([], None)
    with pytest.raises(NotFoundError):
        await repo.remove_async("w1")
    assert await other.count_async() == 2


@pytest.mark.parametrize("consistent", [None, True, False])
async def test_the_cache_never_holds_the_longer_prefix(
    client: EtcdClient, x: str, other: Repo, consistent: bool | None
) -> None:
    cached: Repo = ResourceRepository(client, x, cache=True)
    assert await cached.list_async(consistent=consistent) == []
    assert await cached.count_async(consistent=consistent) == 0
    # Once running, the cache's watch does not bring the other prefix's writes either.
    await other.add_async(worker("w3"))
    mine = await ResourceRepository(client, x).add_async(worker("mine"))
    assert await cached.count_async(consistent=True) == 1
    listed = await cached.list_async(consistent=consistent)
    assert [d["metadata"]["name"] for d in listed] == ["mine"]
    assert listed[0]["metadata"]["resource_version"] == mine["metadata"]["resource_version"]


async def first_change(events: Any) -> ResourceEvent:
    async for event in events:
        if event.type is not EventType.BOOKMARK:
            return event
    raise AssertionError("the watch ended")


async def test_the_watch_never_sees_the_longer_prefix(
    client: EtcdClient, x: str, other: Repo
) -> None:
    repo: Repo = ResourceRepository(client, x)
    rv = await client.current_revision(prefix=x)
    # From a revision before the other prefix's writes: they are in etcd's history, not ours.
    await other.add_async(worker("w3"))
    await repo.add_async(worker("mine"))
    event = await asyncio.wait_for(first_change(repo.watch(resource_version=rv)), 10)
    assert (event.type, event.resource["metadata"]["name"]) == (EventType.ADDED, "mine")
    # With the initial listing, from now on.
    events = repo.watch(send_initial=True)
    initial = await asyncio.wait_for(events.__anext__(), 10)
    assert initial.resource["metadata"]["name"] == "mine"
    assert (await asyncio.wait_for(events.__anext__(), 10)).type is EventType.BOOKMARK
    await other.add_async(worker("w4"))
    await repo.add_async(worker("mine-2"))
    event = await asyncio.wait_for(first_change(events), 10)
    assert event.resource["metadata"]["name"] == "mine-2"
    await events.aclose()


async def callbacks_see(
    start: Callable[[Callable[[WatchEvent], None]], Any],
    write_other: Callable[[], Any],
    write_mine: Callable[[], Any],
) -> list[str]:
    """Start a callback watch, write under the other prefix, then under ours: the names seen
    until our write arrives."""
    seen: list[str] = []
    mine_arrived = asyncio.Event()

    def on_change(event: WatchEvent) -> None:
        seen.append(event.name)
        if event.name == "mine":
            mine_arrived.set()

    handle = start(on_change)
    await asyncio.wait_for(handle.started(), 10)
    await write_other()
    await write_mine()
    await asyncio.wait_for(mine_arrived.wait(), 10)
    handle.cancel()
    return seen


async def test_callback_watches_never_see_the_longer_prefix(
    client: EtcdClient, x: str, other: Repo
) -> None:
    repo: Repo = ResourceRepository(client, x)
    seen = await callbacks_see(
        repo.watch_changes,
        lambda: other.add_async(worker("w3")),
        lambda: repo.add_async(worker("mine")),
    )
    assert seen == ["mine"]
    backend = EtcdStorageBackend(client, x)
    theirs = EtcdStorageBackend(client, x + "-other")
    await backend.delete("mine")
    seen = await callbacks_see(
        backend.watch,
        lambda: theirs.set("w5", worker("w5")),
        lambda: backend.set("mine", worker("mine")),
    )
    assert seen == ["mine"]


async def test_the_backend_never_reaches_the_longer_prefix(
    client: EtcdClient, x: str, other: Repo
) -> None:
    backend = EtcdStorageBackend(client, x)
    assert await backend.keys() == []
    assert await backend.keys("w") == []
    assert await backend.list_with_labels() == []
    assert await backend.list_with_labels({"lab-track": "ccna"}) == []
    assert await backend.get("w1") is None
    assert not await backend.exists("w1")
    assert not await backend.delete("w1")
    assert not await backend.compare_and_swap("w1", 1, worker("w1"))
    assert await other.count_async() == 2
    theirs = EtcdStorageBackend(client, x + "-other")
    assert await theirs.keys() == ["w1", "w2"]


async def test_the_coordination_backend_keeps_to_its_prefix(
    client: EtcdClient, x: str, other: Repo
) -> None:
    from etcd_resources.neuroglia import EtcdCoordinationBackend

    theirs = EtcdCoordinationBackend(client, x + "-other")
    mine = EtcdCoordinationBackend(client, x)
    assert await theirs.acquire_lease("leader", "them", 30)
    assert await mine.get_lease_holder("leader") is None
    assert await mine.acquire_lease("leader", "us", 30)
    assert await client.get_raw(x + "/leader") == b"us"
    assert await client.get_raw(x + "-other/leader") == b"them"
    assert await EtcdCoordinationBackend(client, x + "/").get_lease_holder("leader") == "us"
    with pytest.raises(InvalidArgumentError):
        EtcdCoordinationBackend(client, "")
    assert await mine.release_lease("leader", "us")
    assert await theirs.release_lease("leader", "them")


async def test_prefixes_as_people_type_them_address_the_same_keys(
    client: EtcdClient, prefix: str
) -> None:
    typed = [prefix + "lab-workers", prefix + "lab-workers/", prefix + "lab-workers//"]
    writer: Repo = ResourceRepository(client, typed[0])
    await writer.add_async(worker("w1"))
    assert await client.get_raw(prefix + "lab-workers/w1") is not None
    for spelling in typed:
        repo: Repo = ResourceRepository(client, spelling)
        assert repo.prefix == prefix + "lab-workers/"
        assert [d["metadata"]["name"] for d in await repo.list_async()] == ["w1"]
        assert await EtcdStorageBackend(client, spelling).keys() == ["w1"]
        cached: Repo = ResourceRepository(client, spelling, cache=True)
        assert await cached.count_async() == 1


async def test_a_prefix_without_a_leading_slash_keeps_the_old_layout(
    client: EtcdClient,
) -> None:
    # The Python backend made "lab-workers" into "lab-workers/" (no leading "/" added), and
    # wrote there: that is where its data is read.
    bare = f"lab-workers-{uuid.uuid4().hex[:8]}"
    await client.put_raw(f"{bare}/w1", json.dumps(worker("w1")).encode())
    repo: Repo = ResourceRepository(client, bare)
    assert repo.prefix == bare + "/"
    got = await repo.get_async("w1")
    assert got is not None and got["spec"]["lab_track"] == "ccna"
    assert await ResourceRepository(client, "/" + bare).get_async("w1") is None
    await repo.remove_async("w1")
