"""A LabWorker controller written the way the service writes its controllers (a Neuroglia
``ResourceControllerBase`` subclass with ``_do_reconcile`` by phase and ``_do_finalize``), and
a fake cloud provider that records its calls. Not the service's code: its shapes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Optional

from neuroglia.data.resources.controller import ReconciliationResult, ResourceControllerBase
from neuroglia.dependency_injection import ServiceProviderBase
from neuroglia.eventing.cloud_events.infrastructure.cloud_event_publisher import (
    CloudEventPublisher,
)

from . import service_model as svc

# The service's own style (Optional[...]) is kept on purpose.
# ruff: noqa: UP045

P = svc.LabWorkerPhase
FINALIZER = "lab-worker-controller.example.com"


@dataclass
class InstanceInfo:
    instance_id: str
    state: str


@dataclass
class FakeCloudProvider:
    """Instances start ``pending`` and are ``running`` from their second look."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    looks: dict[str, int] = field(default_factory=dict)
    fail_terminate: int = 0
    """How many ``terminate_instance`` calls fail before one succeeds."""
    hold: asyncio.Event | None = None
    """When set, ``provision_instance`` waits for it (a call that outlasts the caller's lease)."""
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once a ``provision_instance`` call waits on ``hold``."""

    async def provision_instance(self, worker_name: str) -> InstanceInfo:
        instance_id = f"i-{worker_name}"
        self.calls.append(("provision", instance_id))
        if self.hold is not None:
            self.holding.set()
            await self.hold.wait()
        return InstanceInfo(instance_id, "pending")

    async def get_instance_info(self, instance_id: str) -> InstanceInfo:
        self.calls.append(("describe", instance_id))
        self.looks[instance_id] = self.looks.get(instance_id, 0) + 1
        return InstanceInfo(instance_id, "pending" if self.looks[instance_id] < 2 else "running")

    async def health_check(self, instance_id: str) -> bool:
        self.calls.append(("health", instance_id))
        return True

    async def terminate_instance(self, instance_id: str) -> None:
        self.calls.append(("terminate", instance_id))
        if self.fail_terminate > 0:
            self.fail_terminate -= 1
            raise RuntimeError(f"cannot terminate {instance_id} yet")

    def count(self, what: str) -> int:
        return sum(1 for call, _ in self.calls if call == what)


class WorkerController(ResourceControllerBase[svc.LabWorkerSpec, svc.LabWorkerStatus]):
    """Pending -> ProvisioningEC2 -> EC2Ready -> Starting -> Licensing -> Ready."""

    poll = timedelta(milliseconds=20)
    """How long to wait for an instance to start (``requeue_after``)."""
    monitor: Optional[timedelta] = None
    """With a value, a Ready worker is checked again that often; without, it is settled."""

    def __init__(
        self,
        service_provider: ServiceProviderBase,
        cloud_provider: FakeCloudProvider,
        event_publisher: Optional[CloudEventPublisher] = None,
    ):
        super().__init__(service_provider, event_publisher)
        self.cloud_provider = cloud_provider
        self.finalizer_name = FINALIZER
        self.phases_seen: list[svc.LabWorkerPhase] = []
        self.entered: asyncio.Event | None = None
        self.gate: asyncio.Event | None = None
        """With both set, a Pending run sets ``entered`` then waits for ``gate``."""

    async def _do_reconcile(self, resource: svc.LabWorker) -> ReconciliationResult:  # type: ignore[override]
        phase = resource.status.phase
        self.phases_seen.append(phase)
        if phase == P.PENDING:
            if self.entered is not None and self.gate is not None:
                self.entered.set()
                await self.gate.wait()
            errors = resource.spec.validate()
            if errors:
                return ReconciliationResult.failed(ValueError("; ".join(errors)))
            resource.transition_to_phase(P.PROVISIONING_EC2)
            return ReconciliationResult.success("Transitioned to provisioning phase")
        if phase == P.PROVISIONING_EC2:
            if not resource.status.ec2_instance_id:
                info = await self.cloud_provider.provision_instance(resource.metadata.name)
                resource.status.ec2_instance_id = info.instance_id
                resource.status.ec2_state = info.state
                return ReconciliationResult.requeue_after(self.poll, "provisioning initiated")
            info = await self.cloud_provider.get_instance_info(resource.status.ec2_instance_id)
            if info.state == "pending":
                return ReconciliationResult.requeue_after(self.poll, "waiting for the instance")
            resource.status.ec2_state = info.state
            resource.status.add_condition(
                svc.LabWorkerCondition(
                    svc.LabWorkerConditionType.EC2_PROVISIONED,
                    True,
                    resource.status.last_updated,
                    "InstanceRunning",
                    f"EC2 instance {info.instance_id} is running",
                )
            )
            resource.transition_to_phase(P.EC2_READY)
            return ReconciliationResult.success("EC2 instance is ready")
        if phase in (P.EC2_READY, P.STARTING, P.LICENSING):
            following = {P.EC2_READY: P.STARTING, P.STARTING: P.LICENSING, P.LICENSING: P.READY}
            resource.status.cml_ready = phase != P.EC2_READY
            resource.transition_to_phase(following[phase])
            return ReconciliationResult.success(f"moved on from {phase.value}")
        if phase == P.READY:
            assert resource.status.ec2_instance_id is not None
            if self.monitor is None:
                return ReconciliationResult.success("ready")
            await self.cloud_provider.health_check(resource.status.ec2_instance_id)
            return ReconciliationResult.requeue_after(self.monitor, "monitoring ready worker")
        return ReconciliationResult.success("Resource is in terminal state")

    async def _do_finalize(self, resource: svc.LabWorker) -> bool:  # type: ignore[override]
        if resource.status.ec2_instance_id:
            await self.cloud_provider.terminate_instance(resource.status.ec2_instance_id)
        return True
