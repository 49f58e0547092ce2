"""The LabWorker resource, shaped like the Lab Resource Manager's: a CML lab host on an EC2
instance, moving through its lifecycle phases.

These are plain dataclasses (no Neuroglia needed). A service with its own Neuroglia
``Resource`` classes passes them as ``resource_type=`` instead; documents are the same.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

__all__ = [
    "API_VERSION",
    "KIND",
    "AwsConfig",
    "CmlConfig",
    "LabWorker",
    "LabWorkerCapacity",
    "LabWorkerCondition",
    "LabWorkerPhase",
    "LabWorkerSpec",
    "LabWorkerStatus",
    "ResourceMetadata",
]

API_VERSION = "lab.neuroglia.io/v1"
KIND = "LabWorker"


class LabWorkerPhase(str, Enum):  # noqa: UP042 (a str mixin, as the service declares it)
    """Where a worker is in its lifecycle. Stored as the value."""

    PENDING = "Pending"
    PROVISIONING_EC2 = "ProvisioningEC2"
    EC2_READY = "EC2Ready"
    STARTING = "Starting"
    READY_UNLICENSED = "ReadyUnlicensed"
    LICENSING = "Licensing"
    READY = "Ready"
    ACTIVE = "Active"
    DRAINING = "Draining"
    UNLICENSING = "Unlicensing"
    STOPPING = "Stopping"
    TERMINATING_EC2 = "TerminatingEC2"
    TERMINATED = "Terminated"
    FAILED = "Failed"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ResourceMetadata:
    """Kubernetes-style metadata, with the fields of Neuroglia's ``ResourceMetadata``."""

    name: str
    namespace: str = "default"
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    creation_timestamp: datetime = field(default_factory=_now)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    generation: int = 0
    resource_version: str | None = None
    finalizers: list[str] = field(default_factory=list)
    deletion_timestamp: datetime | None = None


@dataclass
class AwsConfig:
    ami_id: str = ""
    instance_type: str = "c5.2xlarge"
    key_name: str | None = None
    vpc_id: str | None = None
    subnet_id: str | None = None
    security_group_ids: list[str] = field(default_factory=list)
    assign_public_ip: bool = True
    ebs_volume_size_gb: int = 500
    ebs_volume_type: str = "gp3"
    ebs_iops: int | None = None
    iam_instance_profile: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class CmlConfig:
    license_token: str | None = None
    admin_username: str = "admin"
    admin_password: str | None = None
    api_base_url: str | None = None
    max_nodes_unlicensed: int = 5
    max_nodes_licensed: int = 520
    enable_telemetry: bool = False


@dataclass
class LabWorkerSpec:
    lab_track: str
    aws_config: AwsConfig = field(default_factory=AwsConfig)
    cml_config: CmlConfig = field(default_factory=CmlConfig)
    desired_phase: LabWorkerPhase = LabWorkerPhase.READY
    auto_license: bool = True
    enable_draining: bool = True


@dataclass
class LabWorkerCondition:
    type: str
    status: str = "True"  # "True", "False" or "Unknown", as Kubernetes conditions
    last_transition: datetime = field(default_factory=_now)
    reason: str | None = None
    message: str | None = None


@dataclass
class LabWorkerCapacity:
    total_cpu_cores: int = 0
    allocated_cpu_cores: int = 0
    total_memory_mb: int = 0
    allocated_memory_mb: int = 0
    total_storage_gb: int = 0
    allocated_storage_gb: int = 0
    max_concurrent_labs: int = 0


@dataclass
class LabWorkerStatus:
    phase: LabWorkerPhase = LabWorkerPhase.PENDING
    conditions: list[LabWorkerCondition] = field(default_factory=list)
    ec2_instance_id: str | None = None
    public_ip: str | None = None
    private_ip: str | None = None
    ec2_state: str | None = None
    cml_version: str | None = None
    cml_api_url: str | None = None
    cml_ready: bool = False
    cml_licensed: bool = False
    capacity: LabWorkerCapacity = field(default_factory=LabWorkerCapacity)
    hosted_lab_ids: list[str] = field(default_factory=list)
    active_lab_count: int = 0
    provisioning_started: datetime | None = None
    provisioning_completed: datetime | None = None
    last_health_check: datetime | None = None
    error_message: str | None = None
    error_count: int = 0
    observed_generation: int = 0
    last_updated: datetime = field(default_factory=_now)


@dataclass
class LabWorker:
    """A LabWorker resource: ``LabWorker.create("w1", "ccna")`` for a new one."""

    metadata: ResourceMetadata
    spec: LabWorkerSpec
    status: LabWorkerStatus = field(default_factory=LabWorkerStatus)
    api_version: str = API_VERSION
    kind: str = KIND

    @classmethod
    def create(
        cls, name: str, lab_track: str, *, namespace: str = "default", **spec: Any
    ) -> LabWorker:
        """A new worker on ``lab_track``, labelled ``lab-track=<lab_track>``."""
        metadata = ResourceMetadata(name=name, namespace=namespace, labels={"lab-track": lab_track})
        return cls(metadata=metadata, spec=LabWorkerSpec(lab_track=lab_track, **spec))

    @property
    def id(self) -> str:
        return self.metadata.uid

    def to_dict(self) -> dict[str, Any]:
        """The document, in the shape of Neuroglia's ``Resource.to_dict()``."""
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": asdict(self.metadata),
            "spec": asdict(self.spec),
            "status": asdict(self.status),
        }
