"""The LabInstanceRequest repository: the service's classes round-trip on every path (get,
list, each query, watch, the cache), and every query answers as the service's own
list-then-filter implementation does on the same data, on etcd and memory://."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from etcd_resources import (
    ClosedError,
    ConflictError,
    EtcdClient,
    EtcdLabInstanceResourceRepository,
    EventType,
    InvalidSelectorError,
    WatchEvent,
)

from . import service_model as svc

P = svc.LabInstancePhase
NOW = datetime.now()  # naive local time, as the service writes it
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class ServiceQueries:
    """The oracle: the queries of the service's ``LabInstanceResourceRepository`` as it writes
    them (list everything, keep the ``LabInstanceRequest``s, filter in Python with the
    resource's own ``is_scheduled()`` and ``is_expired()``), on the objects the test wrote."""

    def __init__(self, resources: list[svc.LabInstanceRequest]) -> None:
        self.resources = resources

    def find_by_namespace(self, namespace: str) -> list[svc.LabInstanceRequest]:
        return [r for r in self.resources if not namespace or r.metadata.namespace == namespace]

    def find_by_student_email(self, email: str) -> list[svc.LabInstanceRequest]:
        return [r for r in self.resources if r.spec.student_email == email]

    def find_by_phase(self, phase: svc.LabInstancePhase) -> list[svc.LabInstanceRequest]:
        return [r for r in self.resources if r.status.phase == phase]

    def find_scheduled_pending(self) -> list[svc.LabInstanceRequest]:
        return [r for r in self.find_by_phase(P.PENDING) if r.is_scheduled()]

    def find_running_instances(self) -> list[svc.LabInstanceRequest]:
        return self.find_by_phase(P.RUNNING)

    def find_expired_instances(self) -> list[svc.LabInstanceRequest]:
        return [r for r in self.find_running_instances() if r.is_expired()]

    def count_by_namespace(self, namespace: str) -> int:
        return len(self.find_by_namespace(namespace))

    def count_by_phase(self, phase: svc.LabInstancePhase) -> int:
        return len(self.find_by_phase(phase))


def population() -> list[svc.LabInstanceRequest]:
    """Instances in every phase, three namespaces, three students; naive start times (the
    service's ``datetime.now()``) a minute or more either side of expiry; scheduled starts
    naive, aware or unset."""
    out = []
    for i in range(24):
        phase = list(P)[i % len(P)] if i % 3 else (P.RUNNING if i % 2 else P.PENDING)
        scheduled = [None, NOW + timedelta(hours=1), T0][i % 3]
        request = svc.new_instance(
            f"req-{i:02}",
            f"student{i % 3}@university.edu",
            ["labs", "exams", "default"][i % 3 if i % 5 else 0],
            duration_minutes=30 + 15 * (i % 4),
            scheduled_start=scheduled,
        )
        request.status.phase = phase
        if i % 7:
            # Started between 10 minutes and 3 hours ago; never within a minute of expiry.
            minutes = [10, 29 + 2, 200, 60 - 2, 75 + 3, 95][i % 6]
            request.status.start_time = NOW - timedelta(minutes=minutes, seconds=i)
        request.assign_to_worker("labs", f"w{i % 2}")
        request.status.container_id = f"c-{i}" if i % 2 else None
        request.status.add_condition(
            svc.LabInstanceCondition("WorkerAssigned", True, NOW, "AssignedToWorker", "ok")
        )
        out.append(request)
    return out


def check(got: Any, want: svc.LabInstanceRequest) -> None:
    """Attribute by attribute, with the classes of what holds the attributes."""
    assert type(got) is svc.LabInstanceRequest, type(got)
    assert (got.api_version, got.kind) == ("lab.neuroglia.io/v1", "LabInstanceRequest")
    for field in ("name", "namespace", "uid", "labels", "creation_timestamp", "annotations"):
        assert getattr(got.metadata, field) == getattr(want.metadata, field), field
    assert int(got.metadata.resource_version) > 0
    assert type(got.spec) is svc.LabInstanceRequestSpec and vars(got.spec) == vars(want.spec)
    assert got.spec.lab_instance_type is svc.LabInstanceType.CML
    assert type(got.status) is svc.LabInstanceRequestStatus
    assert vars(got.status) == vars(want.status)
    assert got.status.phase is want.status.phase
    for condition in got.status.conditions:
        assert type(condition) is svc.LabInstanceCondition
    scheduled, start = got.spec.scheduled_start, got.status.start_time
    assert scheduled is None or scheduled.tzinfo == want.spec.scheduled_start.tzinfo
    assert start is None or start.tzinfo is None  # naive stays naive
    assert got.is_expired() == want.is_expired()  # the class's own behaviour on what was read


def names(resources: list[Any]) -> list[str]:
    return sorted(r.metadata.name for r in resources)


@pytest.fixture(params=[False, True], ids=["direct", "cache"])
def cache(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
async def written(
    client: EtcdClient, prefix: str, cache: bool
) -> tuple[EtcdLabInstanceResourceRepository, list[svc.LabInstanceRequest]]:
    repo = EtcdLabInstanceResourceRepository.create_with_json_serializer(
        client, prefix, resource_type=svc.LabInstanceRequest, cache=cache
    )
    resources = population()
    for r in resources:
        await repo.add_async(r)
    return repo, resources


async def test_every_query_answers_as_the_service_does(
    written: tuple[EtcdLabInstanceResourceRepository, list[svc.LabInstanceRequest]],
) -> None:
    repo, resources = written
    oracle = ServiceQueries(resources)
    by_name = {r.metadata.name: r for r in resources}
    answers: dict[str, list[Any]] = {
        "scheduled pending": await repo.find_scheduled_pending_async(),
        "running": await repo.find_running_instances_async(),
        "expired": await repo.find_expired_instances_async(),
    }
    expected = {
        "scheduled pending": oracle.find_scheduled_pending(),
        "running": oracle.find_running_instances(),
        "expired": oracle.find_expired_instances(),
    }
    for namespace in ("labs", "exams", "default", "nowhere"):
        answers[namespace] = await repo.find_by_namespace_async(namespace)
        expected[namespace] = oracle.find_by_namespace(namespace)
        assert await repo.count_by_namespace_async(namespace) == oracle.count_by_namespace(
            namespace
        )
    for student in ("student0@university.edu", "student2@university.edu", "nobody@x"):
        answers[student] = await repo.find_by_student_email_async(student)
        expected[student] = oracle.find_by_student_email(student)
    for phase in P:
        answers[phase.value] = await repo.find_by_phase_async(phase)
        expected[phase.value] = oracle.find_by_phase(phase)
        assert await repo.count_by_phase_async(phase) == oracle.count_by_phase(phase)
        assert await repo.count_by_phase_async(phase.value) == oracle.count_by_phase(phase)
    for query, got in answers.items():
        assert names(got) == names(expected[query]), query
        for resource in got:  # each query's objects round-trip whole
            check(resource, by_name[resource.metadata.name])
    # The data exercises each condition both ways.
    assert 0 < len(expected["expired"]) < len(expected["running"])
    assert 0 < len(expected["scheduled pending"]) < len(expected["Pending"])


async def test_get_list_and_watch_round_trip(
    written: tuple[EtcdLabInstanceResourceRepository, list[svc.LabInstanceRequest]],
) -> None:
    repo, resources = written
    by_name = {r.metadata.name: r for r in resources}
    for r in resources[:4]:
        got = await repo.get_async(r.metadata.name)
        assert got is not None
        check(got, r)
    listed = await repo.list_async()
    assert names(listed) == names(resources)
    for got in listed:
        check(got, by_name[got.metadata.name])

    events = repo.watch(field_selector="status.phase=Running", send_initial=True)
    initial = []
    while (event := await anext(events)).type is EventType.ADDED:
        initial.append(event.resource)
    assert event.type is EventType.BOOKMARK
    assert names(initial) == names(ServiceQueries(resources).find_running_instances())
    for got in initial:
        check(got, by_name[got.metadata.name])
    # A change arrives typed and whole: a running instance times out.
    changed = await repo.get_async(initial[0].metadata.name)
    assert changed is not None
    changed.status.phase = P.EXPIRED
    changed.status.completion_time = NOW
    await repo.save_async(changed)
    gone = await anext(events)
    assert gone.type is EventType.DELETED  # it left the selector
    check(gone.previous, by_name[changed.metadata.name])
    await events.aclose()
    check(await repo.get_async(changed.metadata.name), changed)


async def test_aware_start_times_are_compared_as_instants(
    client: EtcdClient, prefix: str, cache: bool
) -> None:
    """The service's own ``is_expired`` raises on an aware start time (``datetime.now()``
    against an aware value); here it is the instant it names."""
    repo = EtcdLabInstanceResourceRepository(
        client, prefix, resource_type=svc.LabInstanceRequest, cache=cache
    )
    east = timezone(timedelta(hours=5))
    for name, start in [
        ("aware-old", datetime.now(UTC) - timedelta(minutes=61)),
        ("aware-new", datetime.now(east) - timedelta(minutes=59)),
        ("naive-old", NOW - timedelta(minutes=61)),
    ]:
        r = svc.new_instance(name, duration_minutes=60)
        r.status.phase = P.RUNNING
        r.status.start_time = start
        await repo.add_async(r)
    assert names(await repo.find_expired_instances_async()) == ["aware-old", "naive-old"]
    # ``now`` may be given; a naive stored time is read in its offset.
    later = datetime.now(UTC) + timedelta(minutes=2)
    assert names(await repo.find_expired_instances_async(now=later)) == [
        "aware-new",
        "aware-old",
        "naive-old",
    ]
    with pytest.raises(TypeError):
        await repo.find_expired_instances_async(now="now")  # type: ignore[arg-type]


async def test_save_creates_then_compare_and_swaps(client: EtcdClient, prefix: str) -> None:
    repo = EtcdLabInstanceResourceRepository(client, prefix, resource_type=svc.LabInstanceRequest)
    request = svc.new_instance("req-save")
    assert request.metadata.resource_version == "1"  # Neuroglia's start, not a revision
    saved = await repo.save_async(request)
    assert saved is request and int(request.metadata.resource_version) > 1
    first = request.metadata.resource_version
    request.status.phase = P.SCHEDULING
    await repo.save_async(request)
    assert int(request.metadata.resource_version) > int(first)
    got = await repo.get_async("req-save")
    assert got is not None and got.status.phase is P.SCHEDULING
    check(got, request)
    # A stale copy conflicts instead of overwriting.
    stale = await repo.get_async("req-save")
    assert stale is not None
    got.status.phase = P.PROVISIONING
    await repo.save_async(got)
    stale.status.phase = P.FAILED
    with pytest.raises(ConflictError):
        await repo.save_async(stale)
    # Without a version, an existing resource is replaced; a deleted one is created again.
    doc = {"metadata": {"name": "plain"}, "spec": {}, "status": {}}
    dicts = EtcdLabInstanceResourceRepository(client, prefix + "d/", resource_type=None)
    created = await dicts.save_async(doc)
    replaced = await dicts.save_async({"metadata": {"name": "plain"}, "spec": {"x": 1}})
    assert int(replaced["metadata"]["resource_version"]) > int(
        created["metadata"]["resource_version"]
    )
    await repo.remove_async("req-save")
    held = int(got.metadata.resource_version)
    assert await repo.save_async(got) is got and int(got.metadata.resource_version) > held
    again = await repo.get_async("req-save")
    assert again is not None and again.status.phase is P.PROVISIONING


async def test_errors_raise(client: EtcdClient, prefix: str) -> None:
    repo = EtcdLabInstanceResourceRepository(client, prefix)
    with pytest.raises(TypeError):
        await repo.find_by_student_email_async(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await repo.count_by_phase_async(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidSelectorError):
        await repo.list_async(field_selector="status.start_time+days(spec.x)<2026-01-01T00:00Z")
    client.close()
    with pytest.raises(ClosedError):  # not 0, as the service's repository answered
        await repo.count_by_phase_async("Running")
    with pytest.raises(ClosedError):  # not []
        await repo.find_expired_instances_async()


def test_factories_and_defaults(client: EtcdClient) -> None:
    json_repo = EtcdLabInstanceResourceRepository.create_with_json_serializer(client)
    yaml_repo = EtcdLabInstanceResourceRepository.create_with_yaml_serializer(
        client, "/x", resource_type=svc.LabInstanceRequest
    )
    assert json_repo.prefix == "/lab-instance-requests/" and json_repo.resource_type is None
    assert yaml_repo.prefix == "/x/" and yaml_repo.resource_type is svc.LabInstanceRequest


@pytest.fixture
def kolkata() -> Iterator[None]:
    """This process's local time at UTC+05:30 for one test (``datetime.now()`` and
    ``astimezone()`` follow ``TZ``)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


async def test_naive_times_are_local_times_as_the_service_reads_them(
    client: EtcdClient, prefix: str, cache: bool, kolkata: None
) -> None:
    """Away from UTC, a naive ``start_time`` is the service's local wall clock: read as UTC,
    every instance below would seem to start five and a half hours from now (none expired)."""
    assert datetime.now().astimezone().utcoffset() == timedelta(hours=5, minutes=30)
    repo = EtcdLabInstanceResourceRepository(
        client, prefix, resource_type=svc.LabInstanceRequest, cache=cache
    )
    resources = []
    for minutes in (10, 50, 70, 200):
        r = svc.new_instance(f"m{minutes}", duration_minutes=60)
        r.status.phase = P.RUNNING
        r.status.start_time = datetime.now() - timedelta(minutes=minutes)
        resources.append(await repo.add_async(r))
    want = ServiceQueries(resources).find_expired_instances()
    assert names(want) == ["m200", "m70"]
    assert names(await repo.find_expired_instances_async()) == names(want)


async def test_callback_watch_carries_whole_instances(
    written: tuple[EtcdLabInstanceResourceRepository, list[svc.LabInstanceRequest]],
) -> None:
    repo, resources = written
    seen: list[WatchEvent] = []
    arrived = asyncio.Event()

    def on_change(event: WatchEvent) -> None:
        seen.append(event)
        arrived.set()

    handle = repo.watch_changes(on_change)
    await handle.started()
    got = await repo.get_async(resources[0].metadata.name)
    assert got is not None
    got.status.retry_count += 1
    await repo.save_async(got)
    await asyncio.wait_for(arrived.wait(), 10)
    handle.cancel()
    (event,) = seen
    check(event.resource, got)
