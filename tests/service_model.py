"""A LabWorker model written the way the Lab Resource Manager writes its own: Neuroglia
``Resource`` subclasses, a spec whose ``__init__`` takes typed parameters, and a status whose
``__init__`` takes none and sets annotated attributes (which Python does not keep)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Optional

from neuroglia.data.resources.abstractions import (
    Resource,
    ResourceMetadata,
    ResourceSpec,
    ResourceStatus,
)


class LabWorkerPhase(str, Enum):  # noqa: UP042 (as the service declares it)
    PENDING = "Pending"
    READY = "Ready"
    DRAINING = "Draining"
    FAILED = "Failed"


@dataclass
class AwsEc2Config:
    ami_id: str
    instance_type: str = "c5.2xlarge"
    security_group_ids: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class LabWorkerCondition:
    type: str
    status: bool
    last_transition: datetime
    reason: Optional[str] = None  # noqa: UP045 (the service's style)


@dataclass
class LabWorkerResourceCapacity:
    total_cpu_cores: int
    allocated_cpu_cores: int = 0


class LabWorkerSpec(ResourceSpec):
    def __init__(self, lab_track: str, aws_config: AwsEc2Config, auto_license: bool = True):
        self.lab_track = lab_track
        self.aws_config = aws_config
        self.auto_license = auto_license

    def validate(self) -> list[str]:
        return [] if self.lab_track else ["lab_track is required"]


class LabWorkerStatus(ResourceStatus):
    def __init__(self) -> None:
        super().__init__()
        self.phase: LabWorkerPhase = LabWorkerPhase.PENDING
        self.conditions: list[LabWorkerCondition] = []
        self.capacity: Optional[LabWorkerResourceCapacity] = None  # noqa: UP045
        self.last_health_check: datetime | None = None
        self.hosted_lab_ids: list[str] = []
        self.error_message: str | None = None


class LabWorker(Resource[LabWorkerSpec, LabWorkerStatus]):
    def __init__(
        self,
        metadata: ResourceMetadata,
        spec: LabWorkerSpec,
        status: LabWorkerStatus | None = None,
    ) -> None:
        super().__init__(
            api_version="lab.neuroglia.io/v1",
            kind="LabWorker",
            metadata=metadata,
            spec=spec,
            status=status or LabWorkerStatus(),
        )


def new_worker(name: str, track: str = "ccna") -> LabWorker:
    metadata = ResourceMetadata(name=name, namespace="labs", labels={"lab-track": track})
    spec = LabWorkerSpec(track, AwsEc2Config("ami-1", security_group_ids=["sg-1"], tags={"a": "b"}))
    return LabWorker(metadata, spec)
