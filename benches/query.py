"""The query engine against the old repository's way of querying, on 10k LabWorkers of
about 2 KB each: `find Ready workers` and `count Ready workers`.

- engine: `list_async(field_selector="status.phase=Ready")` and `count_async(...)`: one
  snapshot read in chunks of 500, filtered in Rust, only matches become Python objects
  (count builds none);
- old repository (etcd3-py): keys of the prefix, then one `range` per key, `json.loads`,
  filter in Python, on the sync etcd3-py client (over etcd's JSON gateway) it used;
- old algorithm, our client: the same key-then-get-per-key algorithm on this package's own
  async client, to separate the algorithm's cost from the client's.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

from common import PHASES, lab_worker, median_time, sync_median_time

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


def old_repository(host: str, port: int, prefix: str) -> Any:
    import etcd3  # etcd3-py, the client the old repository used

    client = etcd3.Client(host, port)
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)

    def find_ready() -> list[dict[str, Any]]:
        keys = [kv.key for kv in client.range(prefix, range_end=end, keys_only=True).kvs or []]
        docs = [json.loads(client.range(k).kvs[0].value) for k in keys]
        return [d for d in docs if d["status"]["phase"] == "Ready"]

    return find_ready


async def measure(endpoints: list[str], rounds: int = 5) -> list[tuple[str, float, float]]:
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

        async def cache_count_stale_ok() -> None:
            assert (
                await cached.count_async(field_selector={"status.phase": "Ready"}, consistent=False)
                == READY
            )

        cache_rounds = rounds * 20
        c_find = await median_time(cache_find, cache_rounds)
        c_count = await median_time(cache_count, cache_rounds)
        c_count_fast = await median_time(cache_count_stale_ok, cache_rounds * 10)
        ours_old = await median_time(ours_old_algorithm, 1)

        host, port = endpoints[0].removeprefix("http://").rsplit(":", 1)
        old = old_repository(host, int(port), prefix)
        old_find = sync_median_time(lambda: old(), 1, warm_up=False)  # ~1 min a run
    global CACHE_NOTE
    rows = [
        ("find_by_phase_async (dicts), consistent", c_find * 1e3, "ms", find / c_find),
        ("count_by_phase_async, consistent", c_count * 1e6, "us", count / c_count),
        ("count_async, consistent=False", c_count_fast * 1e6, "us", count / c_count_fast),
    ]
    CACHE_NOTE = "\n".join(
        [
            f"informer cache of {N} resources: {per_resource / 1024:.1f} KiB of RSS per resource",
            f"{'from the cache':<40}{'time':>12}{'vs etcd':>10}",
            *(f"{name:<40}{t:>9.2f} {unit}{ratio:>9.0f}x" for name, t, unit, ratio in rows),
        ]
    )
    return [
        ("find Ready (list + filter)", find, old_find),
        ("count Ready", count, old_find),
        ("old algorithm on our client", ours_old, old_find),
    ]


def report(rows: list[tuple[str, float, float]]) -> str:
    lines = [
        f"{N} LabWorkers of ~2.1 KB, {READY} Ready; old = etcd3-py, keys then one get per key",
        f"{'operation':<30}{'this package':>14}{'old repository':>16}{'speed-up':>10}",
    ]
    for name, ours, old in rows:
        lines.append(f"{name:<30}{ours * 1000:>11.1f} ms{old * 1000:>13.1f} ms{old / ours:>9.1f}x")
    return "\n".join(lines) + "\n\n" + CACHE_NOTE


def run(endpoints: list[str]) -> str:
    return report(asyncio.run(measure(endpoints)))
