"""The seed backend API (EtcdStorageBackend), on etcd and on the embedded store."""

from __future__ import annotations

import asyncio

import pytest

from etcd_resources import EtcdClient, EtcdStorageBackend, InvalidNameError, WatchEvent

from .helpers import worker


async def test_crud_round_trip(client: EtcdClient, prefix: str) -> None:
    b = EtcdStorageBackend(client, prefix)
    assert await b.exists("w1") is False
    assert await b.get("w1") is None
    rev = await b.set("w1", worker("w1"))
    assert await b.exists("w1") is True
    got = await b.get("w1")
    assert got is not None
    assert got["metadata"]["resource_version"] == str(rev)
    assert got["spec"]["lab_track"] == "ccna"
    assert await b.delete("w1") is True
    assert await b.delete("w1") is False
    assert await b.get("w1") is None


async def test_keys_are_names_under_the_prefix(client: EtcdClient, prefix: str) -> None:
    b = EtcdStorageBackend(client, prefix)
    other = EtcdStorageBackend(client, prefix + "alpha")  # a prefix is made to end in "/"
    for name in ["alpha", "alpha-2", "beta"]:
        await b.set(name, {"n": name})
    await other.set("x", {})
    assert other.prefix == prefix + "alpha/"
    assert await b.keys("alpha") == ["alpha", "alpha-2", "alpha/x"]
    assert await b.keys("alpha-") == ["alpha-2"]
    assert await other.keys() == ["x"]


async def test_list_with_labels_filters_in_one_snapshot(client: EtcdClient, prefix: str) -> None:
    b = EtcdStorageBackend(client, prefix)
    for i in range(30):
        await b.set(f"w{i:02}", worker(f"w{i:02}", track="ccna" if i % 3 else "ccnp"))
    ccnp = await b.list_with_labels({"lab-track": "ccnp"})
    assert sorted(d["metadata"]["name"] for d in ccnp) == [f"w{i:02}" for i in range(0, 30, 3)]
    assert len(await b.list_with_labels("lab-track in (ccna,ccnp)")) == 30
    assert len(await b.list_with_labels({})) == 30


async def test_compare_and_swap_is_atomic(client: EtcdClient, prefix: str) -> None:
    b = EtcdStorageBackend(client, prefix)
    rev = await b.set("w1", worker("w1"))
    contenders = [
        b.compare_and_swap("w1", str(rev), worker("w1", phase=f"P{i}")) for i in range(20)
    ]
    results = await asyncio.gather(*contenders)
    assert results.count(True) == 1
    winner = results.index(True)
    stored = await b.get("w1")
    assert stored is not None
    assert stored["status"]["phase"] == f"P{winner}"
    assert await b.compare_and_swap("missing", rev, {}) is False


async def test_names_cannot_escape_the_prefix(client: EtcdClient, prefix: str) -> None:
    b = EtcdStorageBackend(client, prefix)
    for bad in ["../etc/passwd", "a/b", "", "UPPER", "sp ace", "wörker"]:
        with pytest.raises(InvalidNameError):
            await b.set(bad, {})
    assert await b.keys() == []


async def test_watch_calls_back_on_the_loop(client: EtcdClient, prefix: str) -> None:
    b = EtcdStorageBackend(client, prefix)
    loop = asyncio.get_running_loop()
    events: list[WatchEvent] = []
    done = asyncio.Event()

    async def on_event(event: WatchEvent) -> None:
        assert asyncio.get_running_loop() is loop
        events.append(event)
        if len(events) == 3:
            done.set()

    handle = b.watch(on_event, key_prefix="w")
    await handle.started()
    r1 = await b.set("w1", worker("w1"))
    await b.set("x1", worker("x1"))  # outside key_prefix
    r2 = await b.set("w1", worker("w1", phase="Ready"))
    await b.delete("w1")
    await asyncio.wait_for(done.wait(), 10)
    handle.cancel()
    await handle.wait()
    assert [(e.type, e.name) for e in events] == [("put", "w1"), ("put", "w1"), ("delete", "w1")]
    assert [e.revision for e in events[:2]] == [r1, r2]
    assert events[1].previous is not None and events[1].previous["status"]["phase"] == "Pending"
    assert events[2].value is None
    assert handle.done()


async def test_sync_callbacks_and_history(client: EtcdClient, prefix: str) -> None:
    b = EtcdStorageBackend(client, prefix)
    first = await b.set("a", {"v": 1})
    await b.set("a", {"v": 2})
    seen: list[int] = []
    got_two = asyncio.Event()

    def on_event(event: WatchEvent) -> None:
        assert event.value is not None
        seen.append(event.value["v"])
        if len(seen) == 2:
            got_two.set()

    handle = b.watch(on_event, start_revision=first)
    await asyncio.wait_for(got_two.wait(), 10)
    handle.cancel()
    assert seen == [1, 2]
