"""Memory of a streamed listing against a list: 100,000 LabWorkers of about 2 KB on the
embedded store (its own memory does not change while they are read), the process's RSS before
and at its peak while `stream_async` goes through them, then while `list_async` holds them all.

    python benches/stream_memory.py [N]
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys

from common import lab_worker

from etcd_resources import EtcdClient, ResourceRepository


def rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def measure(n: int) -> str:
    async with EtcdClient("memory://") as client:
        repo: ResourceRepository[dict[str, object]] = ResourceRepository(client, "/big/")
        for start in range(0, n, 1000):
            await asyncio.gather(
                *(repo.add_async(lab_worker(i)) for i in range(start, min(n, start + 1000)))
            )
        gc.collect()
        before = peak = rss_mib()
        count = 0
        async for _doc in repo.stream_async():
            count += 1
            if count % 1000 == 0:
                peak = max(peak, rss_mib())
        assert count == n
        gc.collect()
        base = rss_mib()
        docs = await repo.list_async()
        held = rss_mib() - base
        assert len(docs) == n
        return "\n".join(
            [
                f"{n} LabWorkers of ~2 KB on the embedded store",
                f"{'async for over stream_async()':<36}+{peak - before:8.1f} MiB of RSS, peak",
                f"{'list_async() holding them all':<36}+{held:8.1f} MiB of RSS",
            ]
        )


if __name__ == "__main__":
    print(asyncio.run(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)))
