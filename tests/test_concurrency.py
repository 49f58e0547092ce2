"""Concurrency and cancellation: many calls share one client; a cancelled call leaves the
stored data either as it was or as written, never half-written."""

from __future__ import annotations

import asyncio
from typing import Any

from etcd_resources import EtcdClient, ResourceRepository

from .helpers import worker


async def test_two_hundred_concurrent_operations(client: EtcdClient, prefix: str) -> None:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    created = await asyncio.gather(*(repo.add_async(worker(f"w{i:03}")) for i in range(200)))
    assert len({d["metadata"]["resource_version"] for d in created}) == 200
    got = await asyncio.gather(*(repo.get_async(f"w{i:03}") for i in range(200)))
    assert [g["metadata"]["name"] for g in got if g] == [f"w{i:03}" for i in range(200)]
    updated = await asyncio.gather(
        *(repo.update_async({**d, "status": {"phase": "Ready"}}) for d in created)
    )
    assert all(u["status"]["phase"] == "Ready" for u in updated)
    assert len(await repo.list_async(label_selector={"lab-track": "ccna"})) == 200


async def test_cancelled_calls_leave_nothing_half_written(client: EtcdClient, prefix: str) -> None:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    base = await repo.add_async(worker("w1"))
    for steps in range(12):
        current = await repo.get_async("w1")
        assert current is not None
        marker = f"P{steps}"
        new = {
            **current,
            "spec": {**current["spec"], "marker": marker},
            "status": {"phase": marker},
        }
        task = asyncio.ensure_future(repo.update_async(new))
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        after = await repo.get_async("w1")
        assert after is not None
        if after["metadata"]["resource_version"] == current["metadata"]["resource_version"]:
            assert after["status"] == current["status"]  # untouched
        else:
            # Fully applied: spec, status and generation together.
            assert after["spec"]["marker"] == marker and after["status"]["phase"] == marker
            assert after["metadata"]["generation"] == current["metadata"]["generation"] + 1
        assert after["metadata"]["uid"] == base["metadata"]["uid"]

    for steps in range(8):
        name = f"c{steps}"
        task = asyncio.ensure_future(repo.add_async(worker(name)))
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        stored = await repo.get_async(name)
        assert stored is None or stored["metadata"]["generation"] == 1


async def test_many_tasks_share_one_client_with_watch_open(client: EtcdClient, prefix: str) -> None:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    seen: list[int] = []
    done = asyncio.Event()

    def on_change(event: Any) -> None:
        seen.append(event.revision)
        if len(seen) == 50:
            done.set()

    handle = repo.watch_changes(on_change)
    await handle.started()
    await asyncio.gather(*(repo.add_async(worker(f"w{i}")) for i in range(50)))
    await asyncio.wait_for(done.wait(), 10)
    handle.cancel()
    assert seen == sorted(seen) and len(set(seen)) == 50


def test_event_loops_in_several_threads_share_a_client(
    etcd_endpoints: list[str], prefix: str
) -> None:
    import threading

    client = EtcdClient(etcd_endpoints)
    errors: list[BaseException] = []

    def run(thread: int) -> None:
        async def work() -> None:
            repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
            for i in range(40):
                await repo.add_async(worker(f"t{thread}-{i}"))
                assert await repo.get_async(f"t{thread}-{i}") is not None

        try:
            asyncio.run(work())
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    assert errors == []
    client.close()
