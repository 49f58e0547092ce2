"""Watch events per second delivered to Python: 5,000 LabWorker writes, then a watch that
replays them from the revision before the first (so the figure is delivery, not the writer's
pace), read with `async for` (typed events and raw dicts) and with a callback."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from common import lab_worker

from etcd_resources import EtcdClient, EtcdLabWorkerResourceRepository, WatchEvent

N = 5_000


async def measure(endpoints: list[str]) -> list[tuple[str, float]]:
    prefix = f"/bench-watch-{uuid.uuid4().hex[:8]}/"
    async with EtcdClient(endpoints, timeout=60) as client:
        typed = EtcdLabWorkerResourceRepository(client, prefix)
        raw = EtcdLabWorkerResourceRepository(client, prefix, resource_type=dict)
        start = await client.current_revision()
        for first in range(0, N, 500):
            await asyncio.gather(*(raw.add_async(lab_worker(i)) for i in range(first, first + 500)))

        async def drain(repo: EtcdLabWorkerResourceRepository) -> float:
            began = time.perf_counter()
            seen = 0
            async for _ in repo.watch(resource_version=start):
                seen += 1
                if seen == N:
                    break
            return N / (time.perf_counter() - began)

        async def by_callback() -> float:
            done = asyncio.Event()
            seen = [0]

            def on_event(_: WatchEvent) -> None:
                seen[0] += 1
                if seen[0] == N:
                    done.set()

            began = time.perf_counter()
            handle = raw.watch_changes(on_event, start_revision=start + 1)
            await done.wait()
            handle.cancel()
            return N / (time.perf_counter() - began)

        rows: list[tuple[str, Any]] = [
            ("async for, dict resources", await drain(raw)),
            ("async for, typed LabWorker resources", await drain(typed)),
            ("callback (watch_changes), dicts", await by_callback()),
        ]
    return rows


def run(endpoints: list[str]) -> str:
    rows = asyncio.run(measure(endpoints))
    lines = [
        f"watch: {N} events of ~2.1 KB replayed from etcd into Python",
        f"{'reader':<40}{'events/s':>12}",
    ]
    lines += [f"{name:<40}{rate:>12,.0f}" for name, rate in rows]
    return "\n".join(lines)
