"""Neuroglia's storage protocol on etcd: the service-shaped ``LabInstanceResourceRepository``
(a subclass of Neuroglia's own ``ResourceRepository``) runs on ``NeurogliaStorageBackend``
unchanged, its ``update_async`` and ``update_with_retry_async`` as compare-and-swaps on etcd's
revision, on etcd and memory://."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from neuroglia.data.resources.abstractions import ResourceConflictError

from etcd_resources import AlreadyExistsError, ConflictError, EtcdClient, from_document
from etcd_resources.neuroglia import NeurogliaStorageBackend

from . import service_model as svc
from . import service_repositories as service
from .test_lab_instances import ServiceQueries, population

P = svc.LabInstancePhase


async def phase_of(repo: Any, id: str) -> str | None:
    """The stored phase. Neuroglia's ``JsonSerializer`` writes an enum's name
    (``SCHEDULING``); its ``YamlResourceSerializer`` loses an enum without a ``str`` mixin
    (``phase: {}``), so there is nothing to compare (``None``)."""
    phase = (await repo.get_async(id)).status["phase"]
    return P[phase].value if isinstance(phase, str) else None


class DictBackend:
    """Neuroglia's storage protocol on a dict: what the service's repository does on a
    backend that is not etcd."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    async def exists(self, key: str) -> bool:
        return key in self.data

    async def get(self, key: str) -> str | None:
        return self.data.get(key)

    async def set(self, key: str, value: str) -> None:
        self.data[key] = value

    async def delete(self, key: str) -> None:
        self.data.pop(key, None)

    async def keys(self, pattern: str) -> list[str]:
        return sorted(k for k in self.data if k.startswith(pattern.rstrip("*")))


class TypedLabInstanceResourceRepository(service.RunnableLabInstanceResourceRepository):
    """The service's class with its documents rebuilt as its own class (Neuroglia's
    ``_dict_to_resource`` builds a ``GenericResource`` with dict spec and status, which the
    service's ``isinstance`` filters drop: its queries answer nothing on any backend)."""

    def _dict_to_resource(self, resource_dict: dict[str, Any]) -> Any:
        return from_document(svc.LabInstanceRequest, resource_dict)


@pytest.fixture(params=["json", "yaml"])
def serializer(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def on(
    backend: Any, serializer: str, kind: type = service.RunnableLabInstanceResourceRepository
) -> Any:
    factory = (
        kind.create_with_json_serializer
        if serializer == "json"
        else kind.create_with_yaml_serializer
    )
    return factory(backend)


async def test_the_services_repository_runs_on_etcd(
    client: EtcdClient, prefix: str, serializer: str
) -> None:
    backend = NeurogliaStorageBackend(client, prefix)
    repo = on(backend, serializer)
    request = svc.new_instance("req-1")
    await repo.add_async(request)
    key = f"resources:labinstancerequest:{request.id}"
    assert await backend.keys("resources:labinstancerequest:*") == [key]
    assert await repo.contains_async(request.id)
    with pytest.raises(ValueError):  # Neuroglia's own check
        await repo.add_async(request)
    stored = await client.get_kv(prefix + key)
    assert stored is not None
    got = await repo.get_async(request.id)
    assert got.metadata.name == "req-1" and got.spec["student_email"] == request.spec.student_email
    assert got.metadata.resource_version == str(stored[1])  # etcd's revision of the key

    # update_async: Neuroglia's read, check, write, as one compare-and-swap.
    request.metadata.resource_version = got.metadata.resource_version
    request.status.phase = P.SCHEDULING
    await repo.update_async(request)
    assert await phase_of(repo, request.id) in ("Scheduling", None if serializer == "yaml" else "")
    updated = (await repo.get_async(request.id)).metadata.resource_version
    assert int(updated) > int(got.metadata.resource_version)
    request.metadata.resource_version = got.metadata.resource_version  # stale now
    with pytest.raises(ResourceConflictError):
        await repo.update_async(request)
    # update_with_retry_async reloads the version and writes again.
    request.status.phase = P.PROVISIONING
    await repo.update_with_retry_async(request)
    assert await phase_of(repo, request.id) in (
        "Provisioning",
        None if serializer == "yaml" else "",
    )
    assert int((await repo.get_async(request.id)).metadata.resource_version) > int(updated)

    (listed,) = await repo.list_async(namespace="labs")
    assert listed.metadata.name == "req-1"
    await repo.remove_async(request.id)
    assert not await repo.contains_async(request.id)
    assert await repo.get_async(request.id) is None


def another_copy(of: svc.LabInstanceRequest, version: str) -> svc.LabInstanceRequest:
    """A second object for the same resource (same uid), holding ``version``: what another
    replica of the service read."""
    copy = svc.new_instance(of.metadata.name)
    copy.metadata.uid = copy.id = of.metadata.uid
    copy.metadata.resource_version = version
    return copy


class Interleaved(NeurogliaStorageBackend):
    """Lets another writer write between Neuroglia's read and its write, once."""

    other: Any = None

    async def set(self, key: str, value: str) -> int:
        if self.other is not None:
            other, self.other = self.other, None
            await other()
        return await super().set(key, value)


async def test_a_write_between_the_read_and_the_write_is_not_overwritten(
    client: EtcdClient, prefix: str
) -> None:
    backend = Interleaved(client, prefix)
    repo = on(backend, "json")
    request = svc.new_instance("req-1")
    await repo.add_async(request)
    request.metadata.resource_version = (await repo.get_async(request.id)).metadata.resource_version
    rival = on(NeurogliaStorageBackend(client, prefix), "json")

    async def rival_writes() -> None:
        held = (await rival.get_async(request.id)).metadata.resource_version
        theirs = another_copy(request, held)
        theirs.status.phase = P.FAILED
        await rival.update_async(theirs)

    backend.other = rival_writes
    request.status.phase = P.SCHEDULING
    with pytest.raises(ConflictError) as raised:  # Neuroglia's read-then-write would overwrite
        await repo.update_async(request)
    assert isinstance(raised.value, ResourceConflictError)
    assert await phase_of(repo, request.id) == "Failed"  # the rival's stands

    # With retries: the conflict is retried on the new version.
    backend.other = rival_writes
    request.metadata.resource_version = (await repo.get_async(request.id)).metadata.resource_version
    await repo.update_with_retry_async(request)
    assert await phase_of(repo, request.id) == "Scheduling"
    # A second create of a taken key fails in the transaction, not only in Neuroglia's check.
    with pytest.raises(AlreadyExistsError):
        await backend.set(
            f"resources:labinstancerequest:{request.id}", '{"metadata": {"resource_version": "1"}}'
        )


async def test_every_query_answers_as_on_a_plain_backend(client: EtcdClient, prefix: str) -> None:
    resources = population()
    on_etcd = on(
        NeurogliaStorageBackend(client, prefix), "json", TypedLabInstanceResourceRepository
    )
    on_dicts = on(DictBackend(), "json", TypedLabInstanceResourceRepository)
    as_written = on(NeurogliaStorageBackend(client, prefix), "json")
    for r in resources:
        await on_etcd.add_async(r)
        await on_dicts.add_async(r)
    oracle = ServiceQueries(resources)

    def names(found: list[Any]) -> list[str]:
        return sorted(r.metadata.name for r in found)

    calls: list[tuple[str, tuple[Any, ...], list[Any]]] = [
        ("find_by_namespace_async", ("exams",), oracle.find_by_namespace("exams")),
        (
            "find_by_student_email_async",
            ("student1@university.edu",),
            oracle.find_by_student_email("student1@university.edu"),
        ),
        ("find_by_phase_async", (P.RUNNING,), oracle.find_by_phase(P.RUNNING)),
        ("find_scheduled_pending_async", (), oracle.find_scheduled_pending()),
        ("find_running_instances_async", (), oracle.find_running_instances()),
        ("find_expired_instances_async", (), oracle.find_expired_instances()),
    ]
    for method, args, expected in calls:
        got = await getattr(on_etcd, method)(*args)
        assert names(got) == names(await getattr(on_dicts, method)(*args)) == names(expected), (
            method
        )
        assert expected or method == "find_by_namespace_async"
        # As the service writes its class, every query answers nothing (see the class above).
        assert await getattr(as_written, method)(*args) == []
    assert await on_etcd.count_by_phase_async(P.PENDING) == oracle.count_by_phase(P.PENDING) > 0
    assert await on_etcd.count_by_namespace_async("labs") == oracle.count_by_namespace("labs") > 0


async def test_of_concurrent_updates_from_one_version_exactly_one_wins(
    client: EtcdClient, prefix: str
) -> None:
    backend = NeurogliaStorageBackend(client, prefix)
    repo = on(backend, "json")
    first = svc.new_instance("req-1")
    await repo.add_async(first)
    version = (await repo.get_async(first.id)).metadata.resource_version

    def copy(i: int) -> svc.LabInstanceRequest:
        mine = another_copy(first, version)
        mine.status.retry_count = i
        return mine

    results = await asyncio.gather(
        *(repo.update_async(copy(i)) for i in range(8)), return_exceptions=True
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and all(isinstance(e, ResourceConflictError) for e in lost)
    assert (await repo.get_async(first.id)).status["retry_count"] == won[0].status.retry_count
