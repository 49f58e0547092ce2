"""The query engine and the informer cache on 10k LabWorkers of about 2 KB each: `find Ready
workers` and `count Ready workers`.

- engine: `list_async(field_selector="status.phase=Ready")` and `count_async(...)`: one
  snapshot read in chunks, filtered in Rust on only the fields the selector reads, only
  matches become Python objects (count builds none);
- old algorithm, our client: the old repository's key-then-get-per-key algorithm on this
  package's own async client, to separate the algorithm's cost from the client's (the old
  repository itself, on etcd3-py, is a contender in compare.py);
- the cache: RSS per cached resource, and its reads at each consistency level.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

from common import PHASES, lab_worker, median_time

from etcd_resources import (
    EtcdClient,
    EtcdLabWorkerResourceRepository,
    EtcdStorageBackend,
    ResourceRepository,
)

N = 10_000
CACHE_NOTE = ""


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


READY = sum(1 for i in range(N) if PHASES[i % len(PHASES)] == "Ready")


async def seed(repo: ResourceRepository[dict[str, Any]]) -> None:
    for start in range(0, N, 500):
        await asyncio.gather(
            *(repo.add_async(lab_worker(i)) for i in range(start, min(N, start + 500)))
        )


async def measure(endpoints: list[str], rounds: int = 5) -> list[tuple[str, float]]:
    prefix = f"/bench-query-{uuid.uuid4().hex[:8]}/"
    async with EtcdClient(endpoints, timeout=60) as client:
        repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
        await seed(repo)
        backend = EtcdStorageBackend(client, prefix)

        async def engine_find() -> None:
            assert len(await repo.list_async(field_selector="status.phase=Ready")) == READY

        async def engine_count() -> None:
            assert await repo.count_async(field_selector="status.phase=Ready") == READY

        async def ours_old_algorithm() -> None:
            docs = [await backend.get(name) for name in await backend.keys()]
            assert sum(1 for d in docs if d and d["status"]["phase"] == "Ready") == READY

        find = await median_time(engine_find, rounds)
        count = await median_time(engine_count, rounds)

        rss_before = rss_bytes()
        cached = EtcdLabWorkerResourceRepository(client, prefix, resource_type=dict, cache=True)
        await cached.count_async()  # list + watch: the cache is warm
        per_resource = (rss_bytes() - rss_before) / N

        async def cache_find() -> None:
            assert len(await cached.find_by_phase_async("Ready")) == READY

        async def cache_count() -> None:
            assert await cached.count_by_phase_async("Ready") == READY

        async def cache_count_linearizable() -> None:
            selector = {"status.phase": "Ready"}
            assert await cached.count_async(field_selector=selector, consistent=True) == READY

        async def cache_count_stale_ok() -> None:
            selector = {"status.phase": "Ready"}
            assert await cached.count_async(field_selector=selector, consistent=False) == READY

        cache_rounds = rounds * 20
        c_find = await median_time(cache_find, cache_rounds)
        c_count = await median_time(cache_count, cache_rounds * 10)
        c_count_lin = await median_time(cache_count_linearizable, cache_rounds)
        c_count_fast = await median_time(cache_count_stale_ok, cache_rounds * 10)
        ours_old = await median_time(ours_old_algorithm, 1)
    global CACHE_NOTE
    rows = [
        ("find_by_phase_async (dicts)", c_find * 1e3, "ms", find / c_find),
        ("count_by_phase_async", c_count * 1e6, "us", count / c_count),
        ("count_async, consistent=True", c_count_lin * 1e6, "us", count / c_count_lin),
        ("count_async, consistent=False", c_count_fast * 1e6, "us", count / c_count_fast),
    ]
    CACHE_NOTE = "\n".join(
        [
            f"informer cache of {N} resources: {per_resource / 1024:.1f} KiB of RSS per resource",
            f"{'from the cache (default: session reads)':<40}{'time':>12}{'vs etcd':>10}",
            *(f"{name:<40}{t:>9.2f} {unit}{ratio:>9.0f}x" for name, t, unit, ratio in rows),
        ]
    )
    return [
        ("find Ready (list + filter)", find),
        ("count Ready", count),
        ("old algorithm on our client", ours_old),
    ]


def report(rows: list[tuple[str, float]]) -> str:
    lines = [
        f"{N} LabWorkers of ~2.1 KB, {READY} Ready, straight from etcd",
        f"{'operation':<30}{'this package':>14}",
    ]
    for name, ours in rows:
        lines.append(f"{name:<30}{ours * 1000:>11.1f} ms")
    return "\n".join(lines) + "\n\n" + CACHE_NOTE


def run(endpoints: list[str]) -> str:
    return report(asyncio.run(measure(endpoints)))
