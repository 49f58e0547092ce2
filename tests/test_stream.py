"""Streamed listings: one snapshot, chunk by chunk, stopping when the loop stops."""

from __future__ import annotations

import asyncio
from typing import Any

from etcd_resources import EtcdClient, ResourceRepository

from .helpers import worker

N = 1_203  # three chunks of 500 and a few


async def fill(repo: ResourceRepository[Any], n: int) -> None:
    for start in range(0, n, 100):
        await asyncio.gather(
            *(repo.add_async(worker(f"w{i:05}", phase="Ready" if i % 3 else "Pending"))
              for i in range(start, min(n, start + 100)))
        )  # fmt: skip


async def test_a_stream_is_the_listing_one_at_a_time(client: EtcdClient, prefix: str) -> None:
    repo: ResourceRepository[Any] = ResourceRepository(client, prefix)
    await fill(repo, N)
    listed = await repo.list_async(field_selector="status.phase=Ready")
    streamed = [d async for d in repo.stream_async(field_selector="status.phase=Ready")]
    assert len(streamed) == len(listed) == 802
    assert [d["metadata"]["name"] for d in streamed] == [d["metadata"]["name"] for d in listed]
    # One snapshot: a write made while the stream is read does not appear in it.
    seen = 0
    async for doc in repo.stream_async():
        if seen == 0:
            await repo.add_async(worker("zz-late"))
        seen += 1
        assert doc["metadata"]["name"] != "zz-late"
    assert seen == N


async def test_leaving_a_stream_early_stops_it(client: EtcdClient, prefix: str) -> None:
    repo: ResourceRepository[Any] = ResourceRepository(client, prefix)
    await fill(repo, N)
    stream = repo.stream_async()
    first = [await anext(stream) for _ in range(3)]
    await stream.aclose()
    assert [d["metadata"]["name"] for d in first] == ["w00000", "w00001", "w00002"]
    # The client still serves (nothing left waiting on the abandoned reader).
    assert await repo.count_async() == N


async def test_a_cached_stream(client: EtcdClient, prefix: str) -> None:
    repo: ResourceRepository[Any] = ResourceRepository(client, prefix, cache=True)
    await fill(repo, 30)
    names = [
        d["metadata"]["name"] async for d in repo.stream_async(label_selector="lab-track=ccna")
    ]
    assert names == [f"w{i:05}" for i in range(30)]
