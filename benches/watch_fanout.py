"""Watch fan-out (issue 13, item 3): events per second delivered to each of 1, 10 and 100
watchers of one client on one prefix (one shared etcd watch), each with a selector of its own,
as a ratio to one watcher alone; and what one watcher that stops reading does to the others.

5,000 LabWorker writes (~2.1 KB), then the watchers replay them from the revision before the
first (as benches/watch.py does: the figure is delivery, not the writer's pace). Two
selections: every watcher's selector matches every change (100 watchers: 100 Python objects
built per change; with `readonly=True`, one read-only document per change shared by all), or
each watcher follows one shard of 100 (each change is one watcher's).
A watcher's rate is its events over the time from opening the watches to its last event.
The throughput rows give each watcher a backlog of all 5,000 changes (`max_backlog=`): with the
default (1,000), watchers that cannot keep up with etcd's replay are ended as fallen behind,
and the last line counts them.

    python benches/watch_fanout.py [ROUNDS]   # etcd started for the run, or ETCD_ENDPOINTS

Each row is the median of ROUNDS runs (default 3).
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from common import etcd_endpoints, lab_worker

from etcd_resources import EtcdClient, ResourceEvent, ResourceRepository, WatchFellBehindError

N = 5_000
SHARDS = 100
SLOW_BACKLOG = 1_000

Repo = ResourceRepository[dict[str, Any]]


def document(i: int) -> dict[str, Any]:
    doc = lab_worker(i)
    doc["metadata"]["labels"]["shard"] = str(i % SHARDS)
    return doc


async def drain(events: AsyncIterator[ResourceEvent], n: int) -> float | None:
    """Read `n` events; return when the last came (perf_counter), or None if the watcher was
    ended as fallen behind."""
    seen = 0
    try:
        async for _ in events:
            seen += 1
            if seen == n:
                break
    except WatchFellBehindError:
        return None
    return time.perf_counter()


detached_last = [0]  # how many watchers the last fan_out's replay detached


async def fan_out(
    endpoints: list[str],
    prefix: str,
    start: int,
    selectors: list[tuple[str, int]],
    *,
    clients: int = 1,
    slow: bool = False,
    backlog: int | None = N,
    readonly: bool = False,
) -> tuple[list[float], int, int]:
    """Open a watcher per (label selector, expected events) from `start`, on `clients` clients
    (round robin); return the events/s of each watcher that got all its events, the etcd
    watches open for them and how many were ended as fallen behind (none: a replay detaches
    a watcher that falls behind it; `detached_last` keeps how many were). With `slow`, one more
    watcher reads one event and no more until the others are done."""
    made = [EtcdClient(endpoints, timeout=60) for _ in range(clients)]
    try:
        repos: list[Repo] = [ResourceRepository(c, prefix) for c in made]
        watches = [
            repos[i % clients].watch(
                label_selector=selector,
                resource_version=start,
                max_backlog=backlog,
                readonly=readonly,
            )
            for i, (selector, _) in enumerate(selectors)
        ]
        laggard = repos[0].watch(resource_version=start, max_backlog=SLOW_BACKLOG) if slow else None
        began = time.perf_counter()
        tasks = [
            asyncio.ensure_future(drain(w, n)) for w, (_, n) in zip(watches, selectors, strict=True)
        ]
        if laggard is not None:
            # Opened with the others (so it shares their etcd watch), one event read, no more.
            await anext(laggard)
        upstream = 0
        while not all(t.done() for t in tasks):
            upstream = max(upstream, sum(c.watch_stats()["upstream"] for c in made))
            await asyncio.wait(tasks, timeout=0.05)
        ends = await asyncio.gather(*tasks)
        if laggard is not None:
            # Fallen behind a replay, it was detached (not ended): it reads the rest from its
            # own etcd watch, every change after its first.
            assert made[0].watch_stats()["detached"] >= 1, "the slow watcher was not detached"
            assert await asyncio.wait_for(drain(laggard, N - 1), 120) is not None
            await laggard.aclose()
        detached_last[0] = sum(c.watch_stats()["detached"] for c in made)
        for w in watches:
            await w.aclose()
        rates = [
            n / (end - began)
            for (_, n), end in zip(selectors, ends, strict=True)
            if end is not None
        ]
        return rates, upstream, sum(end is None for end in ends)
    finally:
        for c in made:
            c.close()


async def measure(endpoints: list[str], rounds: int) -> list[tuple[str, int, float, float, int]]:
    prefix = f"/bench-fanout-{uuid.uuid4().hex[:8]}/"
    async with EtcdClient(endpoints, timeout=60) as writer:
        repo: Repo = ResourceRepository(writer, prefix)
        start = await writer.current_revision()
        for first in range(0, N, 500):
            await asyncio.gather(*(repo.add_async(document(i)) for i in range(first, first + 500)))
    per_shard = N // SHARDS

    def every(k: int) -> list[tuple[str, int]]:
        # Different selectors, each matching every document.
        return [(f"shard!=none-{j}", N) for j in range(k)]

    def sharded(k: int) -> list[tuple[str, int]]:
        return [(f"shard={j % SHARDS}", per_shard) for j in range(k)]

    rows: list[tuple[str, int, float, float, int]] = []

    async def row(name: str, k: int, selectors: list[tuple[str, int]], **kw: Any) -> None:
        medians, slowest, upstream = [], [], 0
        for _ in range(rounds):
            rates, upstream, ended = await fan_out(endpoints, prefix, start, selectors, **kw)
            assert ended == 0, f"{name}: {ended} watchers fell behind"
            medians.append(statistics.median(rates))
            slowest.append(min(rates))
        rows.append((name, k, statistics.median(medians), statistics.median(slowest), upstream))

    for k in (1, 10, 100):
        await row("every change", k, every(k))
    for k in (10, 100):
        await row("every change, read-only (shared objects)", k, every(k), readonly=True)
    await row("every change, a client each (unshared)", 10, every(10), clients=10)
    for k in (1, 10, 100):
        await row(f"own shard of {SHARDS}", k, sharded(k))
    await row(f"every change, + 1 slow (max_backlog={SLOW_BACKLOG})", 10, every(10), slow=True)
    _, _, ended = await fan_out(endpoints, prefix, start, every(100), backlog=None)
    rows.append(("ended", 100, float(ended), float(detached_last[0]), 0))
    return rows


async def read_only_ratio(endpoints: list[str], n: int = 5_000, k: int = 100) -> float:
    """Each of `k` read-only watchers' rate of every change over one plain watcher's, `n`
    changes replayed (make bench-check's row)."""
    prefix = f"/bench-fanout-ro-{uuid.uuid4().hex[:8]}/"
    async with EtcdClient(endpoints, timeout=60) as writer:
        repo: Repo = ResourceRepository(writer, prefix)
        start = await writer.current_revision()
        for first in range(0, n, 500):
            await asyncio.gather(
                *(repo.add_async(document(i)) for i in range(first, min(n, first + 500)))
            )
    every = [(f"shard!=none-{j}", n) for j in range(k)]
    one, _, _ = await fan_out(endpoints, prefix, start, every[:1], backlog=n)
    many, _, ended = await fan_out(endpoints, prefix, start, every, backlog=n, readonly=True)
    assert ended == 0
    return statistics.median(many) / one[0]


def run(endpoints: list[str], rounds: int = 3) -> str:
    rows = asyncio.run(measure(endpoints, rounds))
    _, _, ended_f, detached_f, _ = rows.pop()
    ended, detached = int(ended_f), int(detached_f)
    base = {name.split(",")[0]: median for name, k, median, _, _ in rows if k == 1}
    lines = [
        f"watch fan-out: {N} changes of ~2.1 KB replayed from etcd to k watchers "
        "(async for, dicts)",
        f"{'selection':<44}{'k':>4}{'events/s each':>15}{'slowest':>10}"
        f"{'vs 1 watcher':>14}{'etcd watches':>14}",
    ]
    for name, k, median, slowest, upstream in rows:
        one = base[name.split(",")[0]]  # the same selection, one watcher
        lines.append(
            f"{name:<44}{k:>4}{median:>15,.0f}{slowest:>10,.0f}{median / one:>14.2f}{upstream:>14}"
        )
    slow = rows[-1][2]
    ten = next(m for name, k, m, _, _ in rows if name == "every change" and k == 10)
    lines.append(
        f"one slow watcher (detached from the replay after {SLOW_BACKLOG} unread events, then "
        f"read the rest from its own etcd watch): the 10 others at {slow / ten:.2f} of their "
        "rate without it"
    )
    lines.append(
        f"with the default max_backlog (1,000), {ended} of 100 every-change watchers were ended "
        f"as fallen behind during this replay, {detached} detached to their own etcd watch"
    )
    return "\n".join(lines)


def main() -> None:
    with etcd_endpoints() as endpoints:
        print(
            f"# machine: {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, etcd on loopback\n"
        )
        print(run(endpoints, int(sys.argv[1]) if len(sys.argv) > 1 else 3))


if __name__ == "__main__":
    sys.exit(main())
