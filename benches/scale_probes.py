"""The fresh-process measurements of `benches/scale.py`, one JSON line each:

    python benches/scale_probes.py cache  CONFIG   # the informer cache: sync, RSS, reads
    python benches/scale_probes.py stream CONFIG   # async for over stream_async(): peak RSS

CONFIG is the JSON of a `scale.Fleet` plus `endpoints`. Each starts with a connected client
and a collected heap, so the RSS it reports grows from what the measured thing added.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from etcd_resources import EtcdClient, EtcdLabWorkerResourceRepository, ResourceRepository

MANY_PHASE, FEW_PHASE, LABEL = "Ready", "Licensing", ("lab-track", "ccna")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def timed(
    fn: Any, *, min_rounds: int = 3, max_rounds: int = 200, budget: float = 1.0, warm: bool = True
) -> list[float]:
    """Samples of `await fn()` after one warm-up (none with `warm=False`: it is warm already):
    at least `min_rounds`, then more until `budget` seconds have gone by or `max_rounds`."""
    if warm:
        await fn()
    samples: list[float] = []
    began = time.perf_counter()
    while len(samples) < max_rounds and (
        len(samples) < min_rounds or time.perf_counter() - began < budget
    ):
        started = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - started)
    return samples


async def synced(
    client: EtcdClient, c: dict[str, Any]
) -> tuple[EtcdLabWorkerResourceRepository, float, int]:
    """The client's cache of the prefix, made and synced; the seconds that took; RSS growth."""
    await client.current_revision()  # connected before the clock starts
    gc.collect()
    before = rss()
    started = time.perf_counter()
    cached = EtcdLabWorkerResourceRepository(client, c["prefix"], resource_type=dict, cache=True)
    assert await cached.count_async() == c["n"]  # answered once the initial list is in
    seconds = time.perf_counter() - started
    gc.collect()
    return cached, seconds, rss() - before


async def sync_once(c: dict[str, Any]) -> float:
    async with EtcdClient(c["endpoints"], timeout=300) as client:
        return (await synced(client, c))[1]


async def cache(c: dict[str, Any]) -> dict[str, Any]:
    n: int = c["n"]
    async with EtcdClient(c["endpoints"], timeout=300) as client:
        cached, seconds, grown = await synced(client, c)
        sync = [seconds]
        before = rss() - grown

        async def list_all() -> None:
            assert len(await cached.list_async()) == n

        async def find_many() -> None:
            assert len(await cached.find_by_phase_async(MANY_PHASE)) == c["many"]

        async def find_few() -> None:
            assert len(await cached.find_by_phase_async(FEW_PHASE)) == c["few"]

        async def count() -> None:
            assert await cached.count_by_phase_async(MANY_PHASE) == c["many"]

        async def label() -> None:
            assert len(await cached.find_by_lab_track_async(LABEL[1])) == c["labelled"]

        await list_all()  # every resource read once: what the cache keeps after reads
        gc.collect()
        grown_read = rss() - before
        budget = 2.0 if n > 20_000 else 1.0
        reads = {
            "list": await timed(list_all, budget=budget, warm=False),  # warmed just above
            "find many": await timed(find_many, budget=budget),
            "find few": await timed(find_few, budget=budget),
            "count": await timed(count, min_rounds=50, max_rounds=2000, budget=0.5),
            "label": await timed(label, budget=budget),
        }
    # More samples of the sync, each on a fresh client (the first's cache is gone with it).
    for _ in range(2 if n <= 20_000 else 0):
        sync.append(await sync_once(c))

    def per(grown: int) -> float:
        return grown / n / 1024 - float(c["doc_bytes"]) / 1024

    return {
        "sync": sync,
        "rss_growth_mib": grown / 2**20,
        "kib_beyond_doc": per(grown),
        "kib_beyond_doc_read": per(grown_read),
        "reads": reads,
        "median_sync": statistics.median(sync),
    }


async def stream(c: dict[str, Any]) -> dict[str, Any]:
    async with EtcdClient(c["endpoints"], timeout=300) as client:
        await client.current_revision()
        repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, c["prefix"])
        gc.collect()
        before = peak = rss()
        count = 0
        started = time.perf_counter()
        async for _doc in repo.stream_async():
            count += 1
            if count % 250 == 0:
                peak = max(peak, rss())
        seconds = time.perf_counter() - started
        peak = max(peak, rss())
        assert count == c["n"], count
        return {"seconds": seconds, "peak_mib": (peak - before) / 2**20}


def main() -> None:
    kind, config = sys.argv[1], json.loads(sys.argv[2])
    probes = {"cache": cache, "stream": stream}
    if kind not in probes:
        sys.exit(f"usage: {sys.argv[0]} cache|stream CONFIG")
    print(json.dumps(asyncio.run(probes[kind](config))))


if __name__ == "__main__":
    main()
