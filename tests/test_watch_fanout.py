"""Watchers that share (issue 13, item 3): every watch of a client on one prefix reads one etcd
watch, each with its own selector and its own objects; a watcher from an older revision still
gets every event; a watcher that stops reading is ended with ``WatchFellBehindError`` while the
others get everything; the last watcher to leave closes the etcd watch. On a real etcd and on
the embedded store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from etcd_resources import (
    EtcdClient,
    EtcdLabWorkerResourceRepository,
    EventType,
    LabWorker,
    ResourceEvent,
    ResourceRepository,
    WatchFellBehindError,
)

from .helpers import worker
from .test_watch import etcd_watchers

Repo = ResourceRepository[dict[str, Any]]
Seen = tuple[str, str, int]  # (type, name, revision)

SHARDS = 10
SIZES = 13


async def until(condition: Callable[[], bool], within: float = 20) -> None:
    """Wait for a condition on an outside figure (etcd's gauge, the client's counters): they
    change on the runtime's threads and on etcd, not in our tasks."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def stats(client: EtcdClient) -> dict[str, int]:
    return client.watch_stats()


@pytest.fixture(autouse=True)
async def no_etcd_watch_left(
    client: EtcdClient, store_kind: str, etcd_endpoints: list[str]
) -> AsyncIterator[None]:
    """Each test ends with its etcd watches closed on the server too, not still closing while
    the next test counts etcd's watchers (etcd's gauge is the whole server's)."""
    before = etcd_watchers(etcd_endpoints[0]) if store_kind == "etcd" else 0
    yield
    client.close()
    if store_kind == "etcd":
        await until(lambda: etcd_watchers(etcd_endpoints[0]) <= before)


async def collect(events: AsyncIterator[ResourceEvent], n: int, out: list[Seen]) -> None:
    """Append the first ``n`` changes (bookmarks aside) of ``events`` to ``out``."""
    async for event in events:
        if event.type is EventType.BOOKMARK:
            continue
        out.append(
            (event.type.value, event.resource["metadata"]["name"], int(event.resource_version))
        )
        if len(out) == n:
            return


def doc(name: str, shard: int, size: int, phase: str = "Pending") -> dict[str, Any]:
    d = worker(name, phase=phase)
    d["metadata"]["labels"]["shard"] = str(shard)
    d["spec"]["size"] = size
    return d


def kubernetes_rule(
    match: Callable[[dict[str, Any]], bool],
    writes: list[tuple[str, int, dict[str, Any] | None, dict[str, Any] | None]],
) -> list[Seen]:
    """What a watcher with the selector ``match`` must see of ``writes``
    (name, revision, before, after): ADDED/DELETED as a resource enters or leaves it."""
    seen: list[Seen] = []
    for name, revision, before, after in writes:
        was = before is not None and match(before)
        now = after is not None and match(after)
        if was and now:
            seen.append(("MODIFIED", name, revision))
        elif now:
            seen.append(("ADDED", name, revision))
        elif was:
            seen.append(("DELETED", name, revision))
    return seen


async def test_a_hundred_watchers_with_their_own_selectors_share_one_etcd_watch(
    client: EtcdClient, store_kind: str, etcd_endpoints: list[str], prefix: str
) -> None:
    repo: Repo = ResourceRepository(client, prefix)
    etcd_before = etcd_watchers(etcd_endpoints[0]) if store_kind == "etcd" else 0
    rv = await client.current_revision()

    # Watcher i: shard i % 10 and spec.size > i // 10 (100 different selectors).
    selectors = [(i % SHARDS, i // SHARDS) for i in range(100)]

    def matcher(shard: int, above: int) -> Callable[[dict[str, Any]], bool]:
        return lambda d: (
            d["metadata"]["labels"]["shard"] == str(shard) and d["spec"]["size"] > above
        )

    # The writes, decided up front so every watcher knows how many events it waits for.
    writes: list[tuple[str, int, dict[str, Any] | None, dict[str, Any] | None]] = []
    plan: list[tuple[str, dict[str, Any] | None]] = []
    state: dict[str, dict[str, Any]] = {}
    for k in range(40):
        plan.append((f"w{k:02}", doc(f"w{k:02}", k % SHARDS, k % SIZES)))
    for k in range(40):
        plan.append((f"w{k:02}", doc(f"w{k:02}", k % SHARDS, (k + 4) % SIZES, "Ready")))
    for k in range(0, 40, 2):
        plan.append((f"w{k:02}", None))
    expected_counts = []
    for shard, above in selectors:
        model: dict[str, dict[str, Any]] = {}
        count = 0
        match = matcher(shard, above)
        for name, after in plan:
            before = model.get(name)
            count += bool(
                (before is not None and match(before)) or (after is not None and match(after))
            )
            if after is None:
                model.pop(name, None)
            else:
                model[name] = after
        assert count > 0, "every watcher waits for at least one event"
        expected_counts.append(count)

    got: list[list[Seen]] = [[] for _ in selectors]
    # Held here, so each stays open after its task has what it waits for.
    watches = [
        repo.watch(
            label_selector=f"shard={shard}",
            field_selector=f"spec.size>{above}",
            resource_version=rv,
        )
        for shard, above in selectors
    ]
    tasks = [
        asyncio.ensure_future(collect(w, expected_counts[i], got[i])) for i, w in enumerate(watches)
    ]
    # All open before the first write: one etcd watch, no catch-up.
    await until(lambda: stats(client)["watchers"] == 100 and stats(client)["shared"] == 1)
    assert stats(client) == {
        "upstream": 1,
        "shared": 1,
        "catch_up": 0,
        "watchers": 100,
        "fell_behind": 0,
        "detached": 0,
    }
    if store_kind == "etcd":
        assert etcd_watchers(etcd_endpoints[0]) <= etcd_before + 1  # one, or another test's closed

    for name, after in plan:
        before = state.get(name)
        if after is None:
            await repo.remove_async(name)
            revision = await client.current_revision()
            del state[name]
        else:
            if before is not None:
                after["metadata"]["resource_version"] = before["metadata"]["resource_version"]
                written = await repo.update_async(after)
            else:
                written = await repo.add_async(after)
            revision = int(written["metadata"]["resource_version"])
            state[name] = written
        writes.append((name, revision, before, state.get(name)))

    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    for i, (shard, above) in enumerate(selectors):
        assert got[i] == kubernetes_rule(matcher(shard, above), writes), f"watcher {i}"
    assert sum(map(len, got)) > 500  # the selectors overlap: a change reaches many watchers
    # Still one etcd watch for all of them.
    assert stats(client)["upstream"] == 1
    if store_kind == "etcd":
        assert etcd_watchers(etcd_endpoints[0]) <= etcd_before + 1  # one, or another test's closed
    for w in watches:
        await w.aclose()
    assert stats(client)["watchers"] == 0


async def test_typed_and_dict_watchers_share_it_with_objects_of_their_own(
    client: EtcdClient, prefix: str
) -> None:
    typed = EtcdLabWorkerResourceRepository(client, prefix)
    raw = EtcdLabWorkerResourceRepository(client, prefix, resource_type=dict)
    rv = await client.current_revision()
    a = typed.watch(resource_version=rv)
    b = raw.watch(resource_version=rv)
    c = raw.watch(resource_version=rv)
    await typed.add_async(LabWorker.create("w1", "ccna"))
    ea, eb, ec = await asyncio.wait_for(asyncio.gather(anext(a), anext(b), anext(c)), 20)
    assert isinstance(ea.resource, LabWorker)
    assert isinstance(eb.resource, dict) and eb.resource == ec.resource
    eb.resource["status"]["phase"] = "Mangled"  # one watcher's edit stays its own
    assert ec.resource["status"]["phase"] == "Pending"
    assert stats(client)["upstream"] == 1
    for events in (a, b, c):
        await events.aclose()


async def test_a_watcher_from_an_older_revision_gets_every_event(
    client: EtcdClient, prefix: str
) -> None:
    repo: Repo = ResourceRepository(client, prefix)
    start = await client.current_revision()
    live: list[Seen] = []
    follower = asyncio.ensure_future(collect(repo.watch(resource_version=start), 30, live))
    await until(lambda: stats(client)["shared"] == 1)
    revisions = []
    for i in range(20):
        created = await repo.add_async(worker(f"w{i:02}", track="ccna" if i % 2 else "ccnp"))
        revisions.append(int(created["metadata"]["resource_version"]))
    # The shared watch has passed `start` (the follower has seen the first 20 changes).
    await until(lambda: len(live) == 20)

    late: list[Seen] = []
    ccna = [r for i, r in enumerate(revisions) if i % 2]
    catching_up = asyncio.ensure_future(
        collect(repo.watch(resource_version=start, label_selector="lab-track=ccna"), 15, late)
    )
    await until(lambda: len(late) >= 1)  # on its own watch, from `start`
    for i in range(20, 30):
        created = await repo.add_async(worker(f"w{i:02}", track="ccna" if i % 2 else "ccnp"))
        revision = int(created["metadata"]["resource_version"])
        revisions.append(revision)
        if i % 2:
            ccna.append(revision)
    await asyncio.wait_for(asyncio.gather(follower, catching_up), 30)
    assert [r for _, _, r in late] == ccna  # every one, in order, none twice
    assert [r for _, _, r in live] == revisions
    # Caught up, it left its own watch for the shared one.
    await until(lambda: stats(client)["catch_up"] == 0)


async def test_a_watch_from_an_old_revision_replays_a_long_history_at_its_readers_pace(
    client: EtcdClient, prefix: str
) -> None:
    """3,000 changes of history, three times the default backlog, and no shared watch yet:
    the replay is read on the watcher's own etcd watch, at the pace it reads, and never ends it
    as fallen behind (before, the shared watch was opened at the old revision and pushed the
    replay at etcd's pace: `WatchFellBehindError` after 1,000 events)."""
    repo: Repo = ResourceRepository(client, prefix)
    start = await client.current_revision()
    revisions: list[int] = []
    for batch in range(30):
        made = await asyncio.gather(
            *(repo.add_async(worker(f"w{batch:02}-{i:02}")) for i in range(100))
        )
        revisions += [int(m["metadata"]["resource_version"]) for m in made]
    seen: list[int] = []
    async for event in repo.watch(resource_version=start):
        seen.append(event.resource_version)
        # A reader that does a request's work for each event, as a handler does: slower than
        # etcd sends a replay (a reader that does nothing kept up before, mostly).
        await client.current_revision()
        if len(seen) == len(revisions):
            break
    assert seen == sorted(revisions)
    assert stats(client)["fell_behind"] == 0


async def test_a_watcher_that_stops_reading_is_ended_and_the_others_get_everything(
    client: EtcdClient, prefix: str
) -> None:
    repo: Repo = ResourceRepository(client, prefix)
    rv = await client.current_revision()
    slow = repo.watch(resource_version=rv, max_backlog=20)
    readers: list[list[Seen]] = [[] for _ in range(5)]
    fast = [
        asyncio.ensure_future(collect(repo.watch(resource_version=rv), 101, readers[i]))
        for i in range(5)
    ]
    first = await repo.add_async(worker("first"))
    event = await asyncio.wait_for(anext(slow), 20)  # it reads one event, then no more
    assert event.resource_version == int(first["metadata"]["resource_version"])

    revisions = [int(first["metadata"]["resource_version"])]
    for i in range(100):
        created = await repo.add_async(worker(f"w{i:03}"))
        revisions.append(int(created["metadata"]["resource_version"]))
    await asyncio.wait_for(asyncio.gather(*fast), 30)
    for got in readers:
        assert [r for _, _, r in got] == revisions
    await until(lambda: stats(client)["fell_behind"] == 1)
    with pytest.raises(WatchFellBehindError) as raised:
        await anext(slow)
    # It says where to resume: right after the last event it was given.
    assert raised.value.revision == revisions[0]
    assert raised.value.max_backlog == 20
    assert "fell behind" in str(raised.value)
    # Resuming from there gets exactly what it missed.
    resumed: list[Seen] = []
    await asyncio.wait_for(
        collect(repo.watch(resource_version=raised.value.revision), 100, resumed), 30
    )
    assert [r for _, _, r in resumed] == revisions[1:]


async def test_a_stuck_callback_ends_its_watch_with_the_error(
    client: EtcdClient, prefix: str
) -> None:
    repo: Repo = ResourceRepository(client, prefix)
    release = asyncio.Event()
    calls = 0

    async def stuck(_: Any) -> None:
        nonlocal calls
        calls += 1
        await release.wait()

    handle = repo.watch_changes(stuck, max_backlog=5)
    await handle.started()
    for i in range(20):
        await repo.add_async(worker(f"w{i:02}"))
    await until(lambda: stats(client)["fell_behind"] == 1)
    release.set()
    with pytest.raises(WatchFellBehindError):
        await asyncio.wait_for(handle.wait(), 20)
    assert calls <= 6


async def test_the_last_watcher_to_leave_closes_the_etcd_watch(
    client: EtcdClient, store_kind: str, etcd_endpoints: list[str], prefix: str
) -> None:
    repo: Repo = ResourceRepository(client, prefix)
    etcd_before = etcd_watchers(etcd_endpoints[0]) if store_kind == "etcd" else 0
    rv = await client.current_revision()
    watchers = [repo.watch(resource_version=rv, label_selector=f"n={i}") for i in range(10)]
    firsts = [asyncio.ensure_future(anext(w)) for w in watchers]
    await until(lambda: stats(client)["watchers"] == 10 and stats(client)["shared"] == 1)
    for i in range(10):
        d = worker(f"w{i}")
        d["metadata"]["labels"]["n"] = str(i)
        await repo.add_async(d)
    await asyncio.wait_for(asyncio.gather(*firsts), 20)
    for w in watchers[:9]:
        await w.aclose()
    assert stats(client)["watchers"] == 1
    assert stats(client)["upstream"] == 1  # one watcher left: the watch stays
    await watchers[9].aclose()
    await until(lambda: stats(client)["upstream"] == 0 and stats(client)["watchers"] == 0)
    if store_kind == "etcd":
        await until(lambda: etcd_watchers(etcd_endpoints[0]) <= etcd_before)

    # Closing the client ends the watchers still open, and their etcd watch.
    left: list[Seen] = []
    open_one = asyncio.ensure_future(collect(repo.watch(), 1, left))
    await until(lambda: stats(client)["shared"] == 1)
    client.close()
    await asyncio.wait_for(open_one, 20)
    assert left == []
    await until(lambda: stats(client)["upstream"] == 0)
    if store_kind == "etcd":
        await until(lambda: etcd_watchers(etcd_endpoints[0]) <= etcd_before)


async def test_max_backlog_must_be_positive(client: EtcdClient, prefix: str) -> None:
    repo: Repo = ResourceRepository(client, prefix)
    with pytest.raises(ValueError, match="max_backlog"):
        await anext(repo.watch(max_backlog=0))
