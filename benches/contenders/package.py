"""This package (etcd_resources), run in /work/main/.venv: its repository API with dicts."""

from __future__ import annotations

import asyncio
from typing import Any

from _workload import Config, Results, bump_errors, config, key_ops_async, run_async

from etcd_resources import (
    EtcdClient,
    EtcdLabWorkerResourceRepository,
    EtcdStorageBackend,
    ResourceRepository,
)


async def main(results: Results) -> None:
    c: Config = config()
    async with EtcdClient([c.endpoint], timeout=60) as client:
        repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, c.prefix)
        repo_a: ResourceRepository[dict[str, Any]] = ResourceRepository(client, c.prefix_a)
        repo_b: ResourceRepository[dict[str, Any]] = ResourceRepository(client, c.prefix_b)
        workers_a = EtcdLabWorkerResourceRepository(client, c.prefix_a, resource_type=dict)
        workers_b = EtcdLabWorkerResourceRepository(client, c.prefix_b, resource_type=dict)
        typed_a = EtcdLabWorkerResourceRepository(client, c.prefix_a)  # LabWorker objects
        watched: ResourceRepository[dict[str, Any]] = ResourceRepository(client, c.prefix_watch)
        await repo_a.get_async(c.name(0))  # connect

        async def get_one(name: str) -> dict[str, Any]:
            doc = await repo.get_async(name)
            assert doc is not None
            return doc

        async def compare_and_swap(i: int) -> None:
            doc = await repo.get_async(c.name(i))
            await repo.update_async(bump_errors(doc))

        await key_ops_async(results, c, repo.add_async, get_one, compare_and_swap)

        # The other entry point a user picks for keys: the storage backend (LabWorker's
        # repository of old), on the same keys.
        backend = EtcdStorageBackend(client, c.prefix)

        async def backend_get(name: str) -> None:
            assert await backend.get(name) is not None

        async def backend_get_batch(b: int) -> None:
            await asyncio.gather(*(backend_get(name) for name in c.batch_names(b)))

        async def backend_compare_and_swap(i: int) -> None:
            doc = await backend.get(c.name(i))
            assert doc is not None
            version = doc["metadata"]["resource_version"]
            assert await backend.compare_and_swap(c.name(i), version, bump_errors(doc))

        await results.each_async("backend get", range(c.n_seq), lambda i: backend_get(c.name(i)))
        await results.each_async(f"backend get x{c.batch}", range(c.n_batches), backend_get_batch)
        await results.each_async(
            "backend compare_and_swap", range(c.n_seq), backend_compare_and_swap
        )

        async def get_typed(i: int) -> None:
            assert await typed_a.get_async(c.name(i % c.n_a)) is not None

        await results.each_async("get typed LabWorker", range(c.n_seq), get_typed)

        async def list_typed(_: int) -> None:
            assert len(await typed_a.list_async()) == c.n_a

        await results.each_async(f"list {c.n_a} typed LabWorker", range(c.n_list), list_typed)

        for n, r in ((c.n_a, repo_a), (c.n_b, repo_b)):

            async def list_all(_: int, n: int = n, r: Any = r) -> None:
                assert len(await r.list_async()) == n

            await results.each_async(f"list {n}", range(c.n_list), list_all)

        for n, ready, w in ((c.n_a, c.ready_a, workers_a), (c.n_b, c.ready_b, workers_b)):

            async def find(_: int, ready: int = ready, w: Any = w) -> None:
                assert len(await w.find_by_phase_async("Ready")) == ready

            await results.each_async(f"find_by_phase {n}", range(c.n_list), find)

        async def count(_: int) -> None:
            assert await workers_b.count_by_phase_async("Ready") == c.ready_b

        await results.each_async(f"count_by_phase {c.n_b}", range(c.n_list), count)

        async def watch(_: int) -> None:
            seen = 0
            async for _event in watched.watch(resource_version=c.watch_start):
                seen += 1
                if seen == c.n_watch:
                    break

        await results.each_async(f"watch {c.n_watch}", range(c.n_watch_samples), watch)

        # Package-only: the informer cache (a list + watch held in Rust), warmed by one call.
        cached = EtcdLabWorkerResourceRepository(client, c.prefix_b, resource_type=dict, cache=True)
        await cached.count_by_phase_async("Ready")

        async def cached_count(_: int) -> None:
            assert await cached.count_by_phase_async("Ready") == c.ready_b

        async def cached_find(_: int) -> None:
            assert len(await cached.find_by_phase_async("Ready")) == c.ready_b

        await results.each_async(f"cached count_by_phase {c.n_b}", range(c.n_cached), cached_count)
        await results.each_async(f"cached find_by_phase {c.n_b}", range(c.n_cached), cached_find)


if __name__ == "__main__":
    run_async(main)
