"""The Lab Resource Manager's domain classes, in the shapes the service writes them (its
``domain/resources`` modules), so the tests read back what the service really stores:

- enums without a ``str`` mixin, stored by value;
- ``@dataclass`` specs that subclass Neuroglia's ``ResourceSpec`` (an ABC), with defaults,
  ``Optional[datetime]``, nested dataclasses and ``field(default_factory=...)``;
- ``@dataclass`` statuses that subclass ``ResourceStatus`` (not a dataclass) with a hand-written
  ``__init__`` that takes nothing and sets annotated attributes (no dataclass fields at all);
- conditions as dataclasses holding an enum and a datetime; an optional nested dataclass with
  properties; resources whose ``__init__`` is ``(metadata, spec, status=None)`` and builds a
  state machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Optional

from neuroglia.data.resources.abstractions import (
    Resource,
    ResourceMetadata,
    ResourceSpec,
    ResourceStatus,
)
from neuroglia.data.resources.state_machine import StateMachineEngine

# The service's own style (Optional[...]) is kept on purpose.
# ruff: noqa: UP045


class LabWorkerPhase(Enum):
    PENDING = "Pending"
    PROVISIONING_EC2 = "ProvisioningEC2"
    EC2_READY = "EC2Ready"
    STARTING = "Starting"
    READY_UNLICENSED = "ReadyUnlicensed"
    LICENSING = "Licensing"
    READY = "Ready"
    ACTIVE = "Active"
    DRAINING = "Draining"
    STOPPING = "Stopping"
    TERMINATED = "Terminated"
    FAILED = "Failed"


class LabWorkerConditionType(Enum):
    EC2_PROVISIONED = "EC2Provisioned"
    CML_READY = "CMLReady"
    HEALTH_CHECK_PASSED = "HealthCheckPassed"


@dataclass
class LabWorkerCondition:
    type: LabWorkerConditionType
    status: bool
    last_transition: datetime
    reason: str
    message: str


@dataclass
class AwsEc2Config:
    ami_id: str
    instance_type: str = "m5zn.metal"
    key_name: Optional[str] = None
    security_group_ids: list[str] = field(default_factory=list)
    assign_public_ip: bool = True
    ebs_volume_size_gb: int = 500
    tags: dict[str, str] = field(default_factory=dict)

    def validate(self) -> list[str]:
        return [] if self.ami_id.startswith("ami-") else ["valid ami_id is required"]


@dataclass
class CmlConfig:
    license_token: Optional[str] = None
    admin_username: str = "admin"
    max_nodes_unlicensed: int = 5
    max_nodes_licensed: int = 200

    def validate(self) -> list[str]:
        return [] if self.admin_username else ["admin_username is required"]


@dataclass
class ResourceCapacity:
    total_cpu_cores: float
    total_memory_mb: int
    total_storage_gb: int
    allocated_cpu_cores: float = 0.0
    allocated_memory_mb: int = 0
    allocated_storage_gb: int = 0
    max_concurrent_labs: int = 20

    @property
    def available_cpu_cores(self) -> float:
        return self.total_cpu_cores - self.allocated_cpu_cores

    @property
    def cpu_utilization_percent(self) -> float:
        return (
            0.0
            if not self.total_cpu_cores
            else 100 * self.allocated_cpu_cores / self.total_cpu_cores
        )

    def can_accommodate(self, cpu_cores: float, memory_mb: int, storage_gb: int) -> bool:
        return (
            self.available_cpu_cores >= cpu_cores
            and self.total_memory_mb - self.allocated_memory_mb >= memory_mb
            and self.total_storage_gb - self.allocated_storage_gb >= storage_gb
        )


@dataclass
class LabWorkerSpec(ResourceSpec):
    lab_track: str
    aws_config: AwsEc2Config
    cml_config: CmlConfig
    desired_phase: LabWorkerPhase = LabWorkerPhase.READY
    auto_license: bool = True
    enable_draining: bool = True

    def validate(self) -> list[str]:
        errors = [] if self.lab_track else ["lab_track is required"]
        return errors + self.aws_config.validate() + self.cml_config.validate()


@dataclass
class LabWorkerStatus(ResourceStatus):
    def __init__(self):  # type: ignore[no-untyped-def]  # as the service writes it
        super().__init__()
        self.phase: LabWorkerPhase = LabWorkerPhase.PENDING
        self.conditions: list[LabWorkerCondition] = []
        self.ec2_instance_id: Optional[str] = None
        self.ec2_state: Optional[str] = None
        self.cml_ready: bool = False
        self.cml_licensed: bool = False
        self.capacity: Optional[ResourceCapacity] = None
        self.hosted_lab_ids: list[str] = []
        self.active_lab_count: int = 0
        self.provisioning_started: Optional[datetime] = None
        self.last_health_check: Optional[datetime] = None
        self.error_message: Optional[str] = None
        self.error_count: int = 0

    def add_condition(self, condition: LabWorkerCondition) -> None:
        self.conditions = [c for c in self.conditions if c.type != condition.type]
        self.conditions.append(condition)
        self.last_updated = datetime.now()

    def get_condition(self, condition_type: LabWorkerConditionType) -> Optional[LabWorkerCondition]:
        return next((c for c in self.conditions if c.type == condition_type), None)

    def is_condition_true(self, condition_type: LabWorkerConditionType) -> bool:
        condition = self.get_condition(condition_type)
        return condition is not None and condition.status

    def can_accept_labs(self) -> bool:
        return (
            self.phase in (LabWorkerPhase.READY, LabWorkerPhase.ACTIVE)
            and self.cml_ready
            and self.capacity is not None
            and self.active_lab_count < self.capacity.max_concurrent_labs
        )

    def is_healthy(self) -> bool:
        return (
            self.phase not in (LabWorkerPhase.FAILED, LabWorkerPhase.TERMINATED)
            and self.ec2_state == "running"
            and self.cml_ready
            and self.is_condition_true(LabWorkerConditionType.HEALTH_CHECK_PASSED)
        )


class LabWorkerStateMachine(StateMachineEngine[LabWorkerPhase]):
    def __init__(self) -> None:
        p = LabWorkerPhase
        super().__init__(
            initial_state=p.PENDING,
            transitions={
                p.PENDING: [p.PROVISIONING_EC2, p.FAILED],
                p.PROVISIONING_EC2: [p.EC2_READY, p.FAILED],
                p.EC2_READY: [p.STARTING, p.FAILED],
                p.STARTING: [p.READY_UNLICENSED, p.LICENSING, p.FAILED],
                p.READY_UNLICENSED: [p.LICENSING, p.ACTIVE, p.DRAINING, p.FAILED],
                p.LICENSING: [p.READY, p.FAILED],
                p.READY: [p.ACTIVE, p.DRAINING, p.FAILED],
                p.ACTIVE: [p.READY, p.DRAINING, p.FAILED],
                p.DRAINING: [p.READY, p.STOPPING, p.FAILED],
                p.STOPPING: [p.TERMINATED, p.FAILED],
                p.TERMINATED: [],
                p.FAILED: [p.STOPPING],
            },
        )


class LabWorker(Resource[LabWorkerSpec, LabWorkerStatus]):
    def __init__(
        self,
        metadata: ResourceMetadata,
        spec: LabWorkerSpec,
        status: Optional[LabWorkerStatus] = None,
    ) -> None:
        super().__init__(
            api_version="lab.neuroglia.io/v1",
            kind="LabWorker",
            metadata=metadata,
            spec=spec,
            status=status or LabWorkerStatus(),
            state_machine=LabWorkerStateMachine(),
        )

    def transition_to_phase(self, new_phase: LabWorkerPhase) -> bool:
        assert self.state_machine is not None
        if not self.state_machine.can_transition_to(self.status.phase, new_phase):
            return False
        self.state_machine.execute_transition(self.status.phase, new_phase)
        self.status.phase = new_phase
        self.status.last_updated = datetime.now()
        return True

    def add_lab_instance(self, lab_id: str) -> bool:
        if not self.status.can_accept_labs():
            return False
        if lab_id not in self.status.hosted_lab_ids:
            self.status.hosted_lab_ids.append(lab_id)
            self.status.active_lab_count = len(self.status.hosted_lab_ids)
            if self.status.active_lab_count == 1 and self.status.phase == LabWorkerPhase.READY:
                self.transition_to_phase(LabWorkerPhase.ACTIVE)
        return True

    def get_utilization_metrics(self) -> dict[str, float]:
        capacity = self.status.capacity
        if capacity is None:
            return {}
        return {
            "cpu_utilization_percent": capacity.cpu_utilization_percent,
            "lab_count": self.status.active_lab_count,
            "max_labs": capacity.max_concurrent_labs,
        }


# -- LabInstanceRequest -------------------------------------------------------------------------


class LabInstancePhase(Enum):
    PENDING = "Pending"
    SCHEDULING = "Scheduling"
    PROVISIONING = "Provisioning"
    RUNNING = "Running"
    STOPPING = "Stopping"
    COMPLETED = "Completed"
    FAILED = "Failed"
    EXPIRED = "Expired"


class LabInstanceType(Enum):
    CML = "CML"
    CONTAINER = "Container"
    VM = "VM"
    HYBRID = "Hybrid"


@dataclass
class LabInstanceCondition:
    type: str
    status: bool
    last_transition: datetime
    reason: str
    message: str


@dataclass
class LabInstanceRequestSpec(ResourceSpec):
    lab_template: str
    duration_minutes: int
    student_email: str
    lab_instance_type: LabInstanceType = LabInstanceType.CONTAINER
    lab_track: Optional[str] = None
    scheduled_start: Optional[datetime] = None
    resource_limits: dict[str, str] = field(default_factory=lambda: {"cpu": "1", "memory": "2Gi"})
    environment_variables: dict[str, str] = field(default_factory=dict)

    def validate(self) -> list[str]:
        return [] if "@" in self.student_email else ["valid student_email is required"]


@dataclass
class LabInstanceRequestStatus(ResourceStatus):
    def __init__(self):  # type: ignore[no-untyped-def]  # as the service writes it
        super().__init__()
        self.phase: LabInstancePhase = LabInstancePhase.PENDING
        self.conditions: list[LabInstanceCondition] = []
        self.worker_ref: Optional[str] = None
        self.worker_name: Optional[str] = None
        self.worker_namespace: Optional[str] = None
        self.start_time: Optional[datetime] = None
        self.completion_time: Optional[datetime] = None
        self.scheduled_at: Optional[datetime] = None
        self.assigned_at: Optional[datetime] = None
        self.container_id: Optional[str] = None
        self.access_url: Optional[str] = None
        self.cml_lab_id: Optional[str] = None
        self.resource_allocation: Optional[dict[str, str]] = None
        self.error_message: Optional[str] = None
        self.retry_count: int = 0

    def add_condition(self, condition: LabInstanceCondition) -> None:
        self.conditions = [c for c in self.conditions if c.type != condition.type]
        self.conditions.append(condition)
        self.last_updated = datetime.now()


class LabInstanceStateMachine(StateMachineEngine[LabInstancePhase]):
    def __init__(self) -> None:
        p = LabInstancePhase
        super().__init__(
            initial_state=p.PENDING,
            transitions={
                p.PENDING: [p.SCHEDULING, p.FAILED],
                p.SCHEDULING: [p.PROVISIONING, p.PENDING, p.FAILED],
                p.PROVISIONING: [p.RUNNING, p.FAILED],
                p.RUNNING: [p.STOPPING, p.EXPIRED, p.FAILED],
                p.STOPPING: [p.COMPLETED, p.FAILED],
                p.COMPLETED: [],
                p.FAILED: [],
                p.EXPIRED: [],
            },
        )


class LabInstanceRequest(Resource[LabInstanceRequestSpec, LabInstanceRequestStatus]):
    def __init__(
        self,
        metadata: ResourceMetadata,
        spec: LabInstanceRequestSpec,
        status: Optional[LabInstanceRequestStatus] = None,
    ) -> None:
        super().__init__(
            api_version="lab.neuroglia.io/v1",
            kind="LabInstanceRequest",
            metadata=metadata,
            spec=spec,
            status=status or LabInstanceRequestStatus(),
            state_machine=LabInstanceStateMachine(),
        )

    def can_transition_to_phase(self, target: LabInstancePhase) -> bool:
        assert self.state_machine is not None
        return self.state_machine.can_transition_to(self.status.phase, target)

    def transition_to_phase(self, target: LabInstancePhase, reason: str | None = None) -> None:
        if not self.can_transition_to_phase(target):
            raise ValueError(f"Invalid transition from {self.status.phase} to {target}")
        old = self.status.phase
        self.status.phase = target
        self.status.add_condition(
            LabInstanceCondition(
                "PhaseTransition", True, datetime.now(), reason or "", f"{old.value}"
            )
        )

    def is_scheduled(self) -> bool:
        return self.spec.scheduled_start is not None

    def is_expired(self) -> bool:
        if not self.status.start_time:
            return False
        expected_end = self.status.start_time + timedelta(minutes=self.spec.duration_minutes)
        return datetime.now() > expected_end

    def should_start_now(self) -> bool:
        if not self.is_scheduled() or self.status.phase != LabInstancePhase.PENDING:
            return False
        assert self.spec.scheduled_start is not None
        return datetime.now() >= self.spec.scheduled_start - timedelta(minutes=5)

    def get_expected_end_time(self) -> Optional[datetime]:
        if not self.status.start_time:
            return None
        return self.status.start_time + timedelta(minutes=self.spec.duration_minutes)

    def assign_to_worker(self, worker_namespace: str, worker_name: str) -> None:
        self.status.worker_namespace = worker_namespace
        self.status.worker_name = worker_name
        self.status.worker_ref = f"{worker_namespace}/{worker_name}"
        self.status.assigned_at = datetime.now()

    def is_assigned_to_worker(self) -> bool:
        return self.status.worker_ref is not None


def new_worker(name: str, track: str = "ccna", namespace: str = "labs") -> LabWorker:
    metadata = ResourceMetadata(name=name, namespace=namespace, labels={"lab-track": track})
    spec = LabWorkerSpec(
        track,
        AwsEc2Config("ami-1", security_group_ids=["sg-1"], tags={"a": "b"}),
        CmlConfig(),
    )
    return LabWorker(metadata, spec)


def new_instance(
    name: str,
    email: str = "student@university.edu",
    namespace: str = "labs",
    *,
    duration_minutes: int = 120,
    scheduled_start: Optional[datetime] = None,
) -> LabInstanceRequest:
    metadata = ResourceMetadata(name=name, namespace=namespace, labels={"lab-track": "ccna"})
    spec = LabInstanceRequestSpec(
        "python-data-science-v1.2",
        duration_minutes,
        email,
        lab_instance_type=LabInstanceType.CML,
        lab_track="ccna",
        scheduled_start=scheduled_start,
        environment_variables={"A": "1"},
    )
    return LabInstanceRequest(metadata, spec)
