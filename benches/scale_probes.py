"""The fresh-process measurements of `benches/scale.py`, one JSON line each:

    python benches/scale_probes.py cache  CONFIG   # the informer cache: sync time, RSS
    python benches/scale_probes.py stream CONFIG   # async for over stream_async(): peak RSS

CONFIG is the JSON of a `scale.Fleet` plus `endpoints`. Each starts with a connected client
and a collected heap, so the RSS it reports grows from what the measured thing added.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from etcd_resources import EtcdClient, EtcdLabWorkerResourceRepository, ResourceRepository


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


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


async def cache(c: dict[str, Any]) -> dict[str, Any]:
    """The initial sync's seconds, and the RSS the cache adds per resource beyond the mean
    stored document: after the sync, then after one list of every resource (the objects
    returned dropped: what the cache keeps of them)."""
    n: int = c["n"]
    async with EtcdClient(c["endpoints"], timeout=300) as client:
        cached, seconds, grown = await synced(client, c)
        before = rss() - grown
        assert len(await cached.list_async()) == n
        gc.collect()
        grown_read = rss() - before

    def per(grown: int) -> float:
        return grown / n / 1024 - float(c["doc_bytes"]) / 1024

    return {
        "sync": seconds,
        "rss_growth_mib": grown / 2**20,
        "kib_beyond_doc": per(grown),
        "kib_beyond_doc_read": per(grown_read),
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
