"""Stored documents become the application's own classes, typed as declared, whatever the
class's shape: checked attribute by attribute on every read path (get, list, a query, a page,
a watch event, a callback, the cache), with the service's own classes (service_model.py), and
the methods of those classes work on what was read."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from neuroglia.data.resources.abstractions import ResourceMetadata

from etcd_resources import (
    EtcdClient,
    EtcdLabWorkerResourceRepository,
    EventType,
    LabWorker,
    LabWorkerPhase,
    ResourceRepository,
    SerializationError,
    WatchEvent,
    from_document,
)
from etcd_resources import lab_workers as model
from etcd_resources.typed import type_hints

from . import service_model as svc

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_every_declared_attribute_is_found() -> None:
    hints = type_hints(svc.LabWorkerStatus)  # a @dataclass with its own __init__: no fields
    assert hints["phase"] is svc.LabWorkerPhase
    assert hints["conditions"] == list[svc.LabWorkerCondition]
    assert hints["observed_generation"] is int  # from Neuroglia's ResourceStatus.__init__
    assert hints["last_updated"] is datetime
    assert type_hints(svc.LabWorkerSpec)["aws_config"] is svc.AwsEc2Config  # dataclass field
    assert type_hints(svc.LabWorker)["metadata"] is ResourceMetadata  # assigned parameter


def active_worker(name: str = "w1", track: str = "ccna") -> svc.LabWorker:
    """A worker as the service has it after provisioning: every kind of status attribute set."""
    worker = svc.new_worker(name, track)
    status = worker.status
    status.phase = svc.LabWorkerPhase.ACTIVE
    status.add_condition(
        svc.LabWorkerCondition(
            svc.LabWorkerConditionType.HEALTH_CHECK_PASSED, True, T0, "Probe", "healthy"
        )
    )
    status.add_condition(
        svc.LabWorkerCondition(svc.LabWorkerConditionType.CML_READY, False, T0, "Boot", "wait")
    )
    status.capacity = svc.ResourceCapacity(64, 262144, 2000, allocated_cpu_cores=8.5)
    status.ec2_instance_id = "i-0abc"
    status.ec2_state = "running"
    status.cml_ready = True
    status.hosted_lab_ids = ["lab-1", "lab-2"]
    status.active_lab_count = 2
    status.last_health_check = T0 + timedelta(minutes=5)
    status.error_count = 3
    status.observed_generation = 1
    status.last_updated = T0
    worker.spec.desired_phase = svc.LabWorkerPhase.ACTIVE
    worker.spec.auto_license = False
    return worker


def check_worker(got: Any, expected: svc.LabWorker, generation: int = 1) -> None:
    """Attribute by attribute, then the classes' own methods on what was read."""
    assert type(got) is svc.LabWorker
    assert got.api_version == "lab.neuroglia.io/v1" and got.kind == "LabWorker"
    assert type(got.metadata) is ResourceMetadata
    assert got.metadata.name == expected.metadata.name
    assert got.metadata.namespace == expected.metadata.namespace
    assert got.metadata.uid == expected.metadata.uid and got.id == expected.metadata.uid
    assert got.metadata.labels == expected.metadata.labels
    assert got.metadata.creation_timestamp == expected.metadata.creation_timestamp
    assert int(got.metadata.resource_version) > 0 and got.metadata.generation == generation

    spec = got.spec
    assert type(spec) is svc.LabWorkerSpec
    assert spec.lab_track == expected.spec.lab_track
    assert spec.aws_config == expected.spec.aws_config and type(spec.aws_config) is svc.AwsEc2Config
    assert spec.aws_config.key_name is None  # Optional, stored as absent
    assert spec.cml_config == svc.CmlConfig()
    assert spec.desired_phase is svc.LabWorkerPhase.ACTIVE
    assert spec.auto_license is False and spec.enable_draining is True
    assert spec.validate() == []

    status, want = got.status, expected.status
    assert type(status) is svc.LabWorkerStatus
    assert status.phase is svc.LabWorkerPhase.ACTIVE
    assert len(status.conditions) == 2
    for condition, wanted in zip(status.conditions, want.conditions, strict=True):
        assert type(condition) is svc.LabWorkerCondition
        assert condition.type is wanted.type  # an enum member, not its value
        assert condition.status is wanted.status
        assert condition.last_transition == T0 and condition.last_transition.tzinfo is not None
        assert (condition.reason, condition.message) == (wanted.reason, wanted.message)
    assert type(status.capacity) is svc.ResourceCapacity
    assert status.capacity == want.capacity
    assert isinstance(status.capacity.total_cpu_cores, float)  # stored as 64, declared float
    assert status.ec2_instance_id == "i-0abc" and status.ec2_state == "running"
    assert status.cml_ready is True and status.cml_licensed is False
    assert status.hosted_lab_ids == ["lab-1", "lab-2"] and status.active_lab_count == 2
    assert status.last_health_check == T0 + timedelta(minutes=5)
    assert status.provisioning_started is None and status.error_message is None
    assert status.error_count == 3 and status.observed_generation == 1
    assert status.last_updated == T0

    # The classes' own behaviour, on what was read.
    assert status.is_healthy()
    assert status.can_accept_labs()
    assert status.get_condition(svc.LabWorkerConditionType.CML_READY) is status.conditions[1]
    assert status.capacity.available_cpu_cores == 55.5
    assert status.capacity.can_accommodate(8, 1024, 100)
    assert got.get_utilization_metrics()["lab_count"] == 2
    assert got.state_machine is not None  # built by the class's own __init__
    assert got.transition_to_phase(svc.LabWorkerPhase.DRAINING)  # ACTIVE -> DRAINING
    assert not got.transition_to_phase(svc.LabWorkerPhase.LICENSING)


def workers(client: EtcdClient, prefix: str, **options: Any) -> EtcdLabWorkerResourceRepository:
    return EtcdLabWorkerResourceRepository.create_with_json_serializer(
        client, prefix, resource_type=svc.LabWorker, **options
    )


async def test_the_service_worker_reads_back_whole(client: EtcdClient, prefix: str) -> None:
    repo = workers(client, prefix)
    worker = active_worker()
    stored = await repo.add_async(worker)
    assert stored is worker and worker.metadata.generation == 1

    check_worker(await repo.get_async("w1"), worker)
    (listed,) = await repo.list_async()
    check_worker(listed, worker)
    (found,) = await repo.find_by_phase_async(svc.LabWorkerPhase.ACTIVE)
    check_worker(found, worker)
    (by_track,) = await repo.find_by_lab_track_async("ccna")
    check_worker(by_track, worker)
    (selected,) = await repo.list_async(field_selector="status.phase=Active")
    check_worker(selected, worker)
    page = await repo.list_page_async(limit=10)
    check_worker(page.items[0], worker)
    assert await repo.count_by_phase_async(svc.LabWorkerPhase.ACTIVE) == 1

    # And back: an update of what was read is a compare-and-swap like any other, and the next
    # read has the change.
    got = await repo.get_async("w1")
    got.status.error_count = 4
    await repo.update_async(got)
    assert (await repo.get_async("w1")).status.error_count == 4


async def test_watch_events_and_callbacks_carry_whole_workers(
    client: EtcdClient, prefix: str
) -> None:
    repo = workers(client, prefix)
    worker = active_worker()
    await repo.add_async(worker)

    seen: list[WatchEvent] = []
    arrived = asyncio.Event()

    def on_change(event: WatchEvent) -> None:
        seen.append(event)
        arrived.set()

    handle = repo.watch_workers(on_change)
    await handle.started()
    events = repo.watch(send_initial=True)
    initial = await anext(events)
    assert initial.type is EventType.ADDED
    check_worker(initial.resource, worker)
    assert (await anext(events)).type is EventType.BOOKMARK

    got = await repo.get_async("w1")
    got.status.error_count = 3  # unchanged, but a new version
    await repo.update_async(got)
    modified = await anext(events)
    assert modified.type is EventType.MODIFIED
    check_worker(modified.resource, worker)
    check_worker(modified.previous, worker)
    await events.aclose()

    await asyncio.wait_for(arrived.wait(), 10)  # delivered on this loop, in its turn
    handle.cancel()
    check_worker(seen[0].resource, worker)
    assert seen[0].value["status"]["phase"] == "Active"  # the dict stays a dict


async def test_cached_reads_carry_whole_workers(client: EtcdClient, prefix: str) -> None:
    repo = workers(client, prefix, cache=True)
    worker = active_worker()
    await repo.add_async(worker)
    (found,) = await repo.find_by_phase_async(svc.LabWorkerPhase.ACTIVE)
    check_worker(found, worker)
    (listed,) = await repo.list_async(label_selector={"lab-track": "ccna"})
    check_worker(listed, worker)
    # Each read is a new object: one caller's change does not reach another.
    found.status.phase = svc.LabWorkerPhase.FAILED
    (again,) = await repo.list_async()
    assert again.status.phase is svc.LabWorkerPhase.ACTIVE


async def test_the_service_lab_instance_request_reads_back_whole(
    client: EtcdClient, prefix: str
) -> None:
    repo = ResourceRepository[svc.LabInstanceRequest](
        client, prefix, resource_type=svc.LabInstanceRequest
    )
    request = svc.LabInstanceRequest(
        ResourceMetadata(name="req-1", namespace="students", labels={"lab-track": "devnet"}),
        svc.LabInstanceRequestSpec(
            "python-101",
            90,
            "student@example.edu",
            lab_instance_type=svc.LabInstanceType.CML,
            scheduled_start=T0,
            environment_variables={"MODE": "exam"},
        ),
    )
    request.transition_to_phase(svc.LabInstancePhase.SCHEDULING, "Queued")
    request.status.worker_ref = "labs/w1"
    request.status.worker_name = "w1"
    request.status.start_time = T0
    request.status.resource_allocation = {"cpu": "2"}
    request.status.retry_count = 1
    await repo.add_async(request)

    for got in [await repo.get_async("req-1"), *(await repo.list_async())]:
        assert type(got) is svc.LabInstanceRequest and got.kind == "LabInstanceRequest"
        spec, status = got.spec, got.status
        assert (
            type(spec) is svc.LabInstanceRequestSpec
            and type(status) is svc.LabInstanceRequestStatus
        )
        assert spec.lab_instance_type is svc.LabInstanceType.CML
        assert spec.scheduled_start == T0 and spec.lab_track is None
        assert spec.resource_limits == {"cpu": "1", "memory": "2Gi"}
        assert spec.environment_variables == {"MODE": "exam"}
        assert status.phase is svc.LabInstancePhase.SCHEDULING
        (condition,) = status.conditions
        assert type(condition) is svc.LabInstanceCondition
        assert condition.type == "PhaseTransition" and condition.reason == "Queued"
        assert isinstance(condition.last_transition, datetime)
        assert status.worker_ref == "labs/w1" and status.worker_name == "w1"
        assert status.start_time == T0 and status.completion_time is None
        assert status.resource_allocation == {"cpu": "2"} and status.retry_count == 1
        assert got.get_expected_end_time() == T0 + timedelta(minutes=90)
        assert got.is_assigned_to_worker()
        assert got.can_transition_to_phase(svc.LabInstancePhase.PROVISIONING)
        got.transition_to_phase(svc.LabInstancePhase.PROVISIONING, "Assigned")
        assert got.status.phase is svc.LabInstancePhase.PROVISIONING


async def test_a_document_the_class_cannot_hold_raises_naming_the_attribute(
    client: EtcdClient, prefix: str
) -> None:
    raw = ResourceRepository[dict[str, Any]](client, prefix)
    repo = workers(client, prefix)
    doc = svc_document("w1")
    doc["status"]["phase"] = "Exploded"
    await raw.add_async(doc)
    with pytest.raises(
        SerializationError, match=r"status\.phase: 'Exploded' is not a LabWorkerPhase"
    ) as e:
        await repo.get_async("w1")
    assert e.value.key == f"{prefix}w1"
    with pytest.raises(SerializationError, match=r"status\.phase"):
        await repo.list_async()

    doc = svc_document("w2")
    doc["status"]["conditions"][0]["last_transition"] = "yesterday"
    await raw.add_async(doc)
    with pytest.raises(
        SerializationError,
        match=r"status\.conditions\[0\]\.last_transition: cannot read 'yesterday' as a datetime",
    ):
        await repo.get_async("w2")

    doc = svc_document("w3")
    doc["status"]["capacity"] = "lots"
    await raw.add_async(doc)
    with pytest.raises(
        SerializationError, match=r"status\.capacity: expected an object for ResourceCapacity"
    ):
        await repo.get_async("w3")


def svc_document(name: str) -> dict[str, Any]:
    """A worker document as this package writes it, as a dict."""
    doc = active_worker(name).to_dict()
    return {
        **doc,
        "metadata": {**doc["metadata"], "creation_timestamp": T0.isoformat()},
        "spec": {"lab_track": "ccna", "aws_config": {"ami_id": "ami-1"}, "cml_config": {}},
        "status": {
            "phase": "Active",
            "conditions": [
                {
                    "type": "CMLReady",
                    "status": True,
                    "last_transition": T0.isoformat(),
                    "reason": "r",
                    "message": "m",
                }
            ],
        },
    }


# -- shapes of classes ---------------------------------------------------------------------------


class Color(enum.Enum):
    RED = 1
    BLUE = 2


@dataclass
class Paint:
    color: Color
    mixed: list[Color | None] = field(default_factory=list)


class Annotated:
    """Class annotations, no __init__ parameters."""

    color: Color
    when: datetime | None = None


class Assigned:
    """Parameters assigned in __init__ type the attributes."""

    def __init__(self, color: Color, count: int = 0) -> None:
        self.color = color
        self.count = count
        self.made_by_init = True


class NeedsSomethingElse:
    """An __init__ that requires what no attribute holds: made without it."""

    def __init__(self, connection: object) -> None:
        raise AssertionError("not called")

    color: Color


@dataclass
class Base:
    when: datetime


@dataclass
class Derived(Base):
    color: Color = Color.RED


@dataclass(frozen=True)
class Frozen:
    color: Color


@dataclass
class Explodes:
    n: int

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("n must not be negative")


def test_every_shape_of_class_is_rebuilt() -> None:
    # Neuroglia's JsonEncoder wrote plain (non-str) enums by name: both are read.
    assert from_document(Paint, {"color": "RED", "mixed": [None, 1]}).mixed == [None, Color.RED]
    assert from_document(Paint, {"color": 2}).color is Color.BLUE

    a = from_document(Annotated, {"color": 1, "when": T0.isoformat(), "extra": {"k": [1]}})
    assert a.color is Color.RED and a.when == T0
    assert a.extra == {"k": [1]}  # type: ignore[attr-defined]  # undeclared: kept as JSON

    b = from_document(Assigned, {"color": "BLUE", "count": 3})
    assert b.color is Color.BLUE and b.count == 3 and b.made_by_init

    c = from_document(NeedsSomethingElse, {"color": 2})
    assert c.color is Color.BLUE

    d = from_document(Derived, {"when": T0.isoformat(), "color": 2})
    assert d.when == T0 and d.color is Color.BLUE

    assert from_document(Frozen, {"color": 1}).color is Color.RED

    # camelCase keys fill the snake_case attributes (Kubernetes tools write them).
    meta = from_document(model.ResourceMetadata, {"name": "n", "creationTimestamp": T0.isoformat()})
    assert meta.creation_timestamp == T0


def test_what_cannot_be_rebuilt_says_which_attribute_and_why() -> None:
    with pytest.raises(SerializationError, match=r"color: 'GREEN' is not a Color"):
        from_document(Paint, {"color": "GREEN"})
    with pytest.raises(SerializationError, match=r"mixed\[1\]: 7 is not a Color"):
        from_document(Paint, {"color": 1, "mixed": [1, 7]})
    with pytest.raises(SerializationError, match=r"mixed: expected a list, got \"RED\""):
        from_document(Paint, {"color": 1, "mixed": "RED"})
    with pytest.raises(SerializationError, match=r"Explodes\(...\) raised ValueError: n must not"):
        from_document(Explodes, {"n": -1})


async def test_the_package_model_round_trips(client: EtcdClient, prefix: str) -> None:
    repo = EtcdLabWorkerResourceRepository.create_with_yaml_serializer(client, prefix)
    worker = LabWorker.create("w1", "ccnp")
    worker.spec.aws_config.tags = {"team": "labs"}
    worker.status.phase = LabWorkerPhase.LICENSING
    worker.status.conditions = [model.LabWorkerCondition("Licensed", "False", reason="pending")]
    await repo.add_async(worker)
    got = await repo.get_async("w1")
    assert isinstance(got, LabWorker)
    assert got.spec == worker.spec
    assert got.status.phase is LabWorkerPhase.LICENSING
    assert got.status.conditions == worker.status.conditions
    assert got.metadata.uid == worker.metadata.uid
    assert got.metadata.generation == 1
    assert got.to_dict()["spec"] == worker.to_dict()["spec"]


async def test_dict_repositories_stay_dicts(client: EtcdClient, prefix: str) -> None:
    repo = EtcdLabWorkerResourceRepository(client, prefix, resource_type=dict)
    await repo.add_async(LabWorker.create("w1", "ccna"))
    got: Any = await repo.get_async("w1")
    assert isinstance(got, dict) and got["status"]["phase"] == "Pending"


def test_classes_defined_inside_a_function() -> None:
    # Annotations are text here (`from __future__ import annotations`); names the class's
    # __init__ uses come from its closure.
    class Phase(enum.Enum):
        PENDING = "Pending"
        READY = "Ready"

    @dataclass
    class LocalStatus:
        def __init__(self) -> None:
            self.phase: Phase = Phase.PENDING
            self.count: int = 0

    status = from_document(LocalStatus, {"phase": "Ready", "count": 2})
    assert status.phase is Phase.READY and status.count == 2


def test_a_plan_naming_a_class_it_lacks_is_refused() -> None:
    from etcd_resources import _core
    from etcd_resources.typed import ClassPlan, FieldPlan

    nested = ("list", ("object", 5), None)
    field = FieldPlan(attr="mixed", keys=("mixed",), node=nested, init=True)
    plan = ClassPlan(
        cls=Paint,
        name="Paint",
        fields=[field],
        required=(),
        construct=True,
        has_id=False,
        fill=None,
    )
    with pytest.raises(ValueError, match="names a class the plan lacks"):
        _core.TypePlan([plan])


def test_the_plan_is_read_by_name() -> None:
    """typed.py and the Rust side share the plan's structure by attribute names: a plan whose
    class lacks one of them is refused, naming it, not read by position."""
    from etcd_resources import _core
    from etcd_resources.typed import ClassPlan, plan_for

    class Renamed:
        def __init__(self, plan: ClassPlan) -> None:
            self.cls, self.name, self.fields = plan.cls, plan.name, plan.fields
            self.required, self.construct, self.fill = plan.required, plan.construct, plan.fill

    planner_plan = ClassPlan(
        cls=Paint, name="Paint", fields=[], required=(), construct=True, has_id=False, fill=None
    )
    with pytest.raises(AttributeError, match="has_id"):
        _core.TypePlan([Renamed(planner_plan)])
    assert repr(plan_for(Paint)) == "TypePlan(Paint)"
