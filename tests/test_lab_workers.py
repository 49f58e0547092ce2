"""The LabWorker repository's queries, on etcd and memory://."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from etcd_resources import (
    EtcdClient,
    EtcdLabWorkerResourceRepository,
    LabWorker,
    LabWorkerPhase,
    WatchEvent,
)

PLAN = [
    ("w0", "ccna", LabWorkerPhase.READY),
    ("w1", "ccna", LabWorkerPhase.DRAINING),
    ("w2", "ccnp", LabWorkerPhase.READY),
    ("w3", "ccnp", LabWorkerPhase.PENDING),
    ("w4", "devnet", LabWorkerPhase.FAILED),
    ("w5", "ccna", LabWorkerPhase.ACTIVE),
]


@pytest.fixture
async def repo(client: EtcdClient, prefix: str) -> EtcdLabWorkerResourceRepository:
    r = EtcdLabWorkerResourceRepository.create_with_json_serializer(client, prefix)
    for name, track, phase in PLAN:
        worker = LabWorker.create(name, track)
        worker.status.phase = phase
        await r.add_async(worker)
    return r


def names(workers: list[Any]) -> list[str]:
    return [w.metadata.name for w in workers]


async def test_queries(repo: EtcdLabWorkerResourceRepository) -> None:
    assert names(await repo.find_by_lab_track_async("ccna")) == ["w0", "w1", "w5"]
    assert names(await repo.find_by_phase_async(LabWorkerPhase.READY)) == ["w0", "w2"]
    assert names(await repo.find_by_phase_async("Ready")) == ["w0", "w2"]
    assert names(await repo.find_active_workers_async()) == ["w0", "w1", "w2"]
    assert names(await repo.find_ready_workers_async()) == ["w0", "w2"]
    assert names(await repo.find_draining_workers_async()) == ["w1"]
    assert await repo.count_by_phase_async(LabWorkerPhase.READY) == 2
    assert await repo.count_by_phase_async(LabWorkerPhase.TERMINATED) == 0
    assert await repo.count_by_lab_track_async("ccnp") == 2
    assert all(isinstance(w, LabWorker) for w in await repo.list_async())


async def test_phase_changes_move_workers_between_queries(
    repo: EtcdLabWorkerResourceRepository,
) -> None:
    worker = await repo.get_async("w3")
    worker.status.phase = LabWorkerPhase.READY
    await repo.update_async(worker)
    assert names(await repo.find_ready_workers_async()) == ["w0", "w2", "w3"]
    assert await repo.count_by_phase_async(LabWorkerPhase.PENDING) == 0


async def test_watch_workers_gives_typed_events(repo: EtcdLabWorkerResourceRepository) -> None:
    events: list[WatchEvent] = []
    got = asyncio.Event()

    def on_event(event: WatchEvent) -> None:
        events.append(event)
        if len(events) == 2:
            got.set()

    handle = repo.watch_workers(on_event)
    await handle.started()
    worker = await repo.get_async("w0")
    worker.status.phase = LabWorkerPhase.DRAINING
    await repo.update_async(worker)
    await repo.remove_async("w4")
    await asyncio.wait_for(got.wait(), 10)
    handle.cancel()
    assert isinstance(events[0].resource, LabWorker)
    assert events[0].resource.status.phase is LabWorkerPhase.DRAINING
    assert events[0].previous_resource.status.phase is LabWorkerPhase.READY
    assert events[1].type == "delete" and events[1].resource is None
    assert events[1].previous_resource.metadata.name == "w4"


async def test_bad_phase_argument(repo: EtcdLabWorkerResourceRepository) -> None:
    with pytest.raises(TypeError):
        await repo.find_by_phase_async(3)  # type: ignore[arg-type]
