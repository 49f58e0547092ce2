"""A rolling upgrade: the old Python repository and this package side by side on one etcd.
What either writes, the other reads (see the README's "Migrating a running service")."""

from __future__ import annotations

from typing import Any

from etcd_resources import EtcdClient, EtcdLabWorkerResourceRepository, ResourceRepository

from . import service_model as svc
from .old_repository import old_bytes, old_read
from .test_typed import active_worker, check_worker


def repository(client: EtcdClient, prefix: str) -> EtcdLabWorkerResourceRepository:
    return EtcdLabWorkerResourceRepository.create_with_json_serializer(
        client, prefix, resource_type=svc.LabWorker
    )


async def test_what_the_old_repository_wrote_is_read_typed(client: EtcdClient, prefix: str) -> None:
    worker = active_worker("w1")
    await client.put_raw(f"{prefix}w1", old_bytes(worker))
    repo = repository(client, prefix)

    # The old repository kept Neuroglia's generation 0 of a new resource.
    check_worker(await repo.get_async("w1"), worker, generation=0)
    (listed,) = await repo.list_async()
    check_worker(listed, worker, generation=0)
    (found,) = await repo.find_by_phase_async(svc.LabWorkerPhase.ACTIVE)
    check_worker(found, worker, generation=0)
    assert await repo.count_by_lab_track_async("ccna") == 1
    # Its resource_version is etcd's, not the "1" the old repository kept inside the document.
    got = await repo.get_async("w1")
    assert got.metadata.resource_version != "1"
    # And this package updates it with a compare-and-swap like any other.
    got.status.error_count = 9
    await repo.update_async(got)
    assert (await repo.get_async("w1")).status.error_count == 9


def _state(obj: Any) -> dict[str, Any]:
    """What the old reader made of an object, as comparable values."""
    return {k: _plain(v) for k, v in vars(obj).items()}


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return {type(value).__name__: _state(value)}
    return value


async def test_what_this_package_writes_the_old_repository_reads(
    client: EtcdClient, prefix: str
) -> None:
    worker = active_worker("w1")
    await repository(client, prefix).add_async(worker)
    raw = await client.get_raw(f"{prefix}w1")
    assert raw is not None

    ours = old_read(raw, svc.LabWorker, svc.LabWorkerSpec, svc.LabWorkerStatus)
    theirs = old_read(old_bytes(worker), svc.LabWorker, svc.LabWorkerSpec, svc.LabWorkerStatus)
    assert _state(ours.spec) == _state(theirs.spec)
    assert _state(ours.status) == _state(theirs.status)
    assert ours.status.phase == theirs.status.phase
    for field in ("name", "namespace", "labels", "uid", "generation"):
        assert getattr(ours.metadata, field) == getattr(theirs.metadata, field), field


async def test_plain_dict_repositories_read_old_documents(client: EtcdClient, prefix: str) -> None:
    await client.put_raw(f"{prefix}w1", old_bytes(active_worker("w1")))
    repo = ResourceRepository[dict[str, Any]](client, prefix)
    (doc,) = await repo.list_async(field_selector="status.phase=Active")
    assert doc["status"]["capacity"]["allocated_cpu_cores"] == 8.5
    assert doc["metadata"]["resource_version"] != "1"
