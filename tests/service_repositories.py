"""The Lab Resource Manager's own repository and handler classes, in the shapes the service
writes them: the ``LabInstanceResourceRepository`` it keeps (a subclass of Neuroglia's
``ResourceRepository`` on a ``storage_backend`` with Neuroglia's text protocol; every query
lists everything and filters in Python, every failure logged and answered ``[]`` or ``0``),
and handlers whose constructors ask the container for what the service's handlers ask for."""

from __future__ import annotations

import logging
from typing import Any

from neuroglia.data.infrastructure.resources import ResourceRepository
from neuroglia.data.resources.serializers.yaml_serializer import YamlResourceSerializer
from neuroglia.dependency_injection import ServiceProviderBase
from neuroglia.mapping import Mapper
from neuroglia.serialization.abstractions import TextSerializer
from neuroglia.serialization.json import JsonSerializer

from . import service_model as svc

log = logging.getLogger(__name__)

P = svc.LabInstancePhase


class LabInstanceResourceRepository(
    ResourceRepository[svc.LabInstanceRequestSpec, svc.LabInstanceRequestStatus]
):
    def __init__(self, storage_backend: Any, serializer: TextSerializer) -> None:
        super().__init__(
            storage_backend=storage_backend,
            serializer=serializer,
            resource_type="LabInstanceRequest",
        )

    async def _requests(self, namespace: str | None = None) -> list[svc.LabInstanceRequest]:
        listed = await self.list_async(namespace=namespace)
        return [r for r in listed if isinstance(r, svc.LabInstanceRequest)]

    async def find_by_namespace_async(self, namespace: str) -> list[svc.LabInstanceRequest]:
        try:
            return await self._requests(namespace)
        except Exception as e:
            log.error("find_by_namespace_async(%s): %s", namespace, e)
            return []

    async def find_by_student_email_async(self, email: str) -> list[svc.LabInstanceRequest]:
        try:
            return [r for r in await self._requests() if r.spec.student_email == email]
        except Exception as e:
            log.error("find_by_student_email_async(%s): %s", email, e)
            return []

    async def find_by_phase_async(
        self, phase: svc.LabInstancePhase
    ) -> list[svc.LabInstanceRequest]:
        try:
            return [r for r in await self._requests() if r.status.phase == phase]
        except Exception as e:
            log.error("find_by_phase_async(%s): %s", phase, e)
            return []

    async def find_scheduled_pending_async(self) -> list[svc.LabInstanceRequest]:
        try:
            return [r for r in await self.find_by_phase_async(P.PENDING) if r.is_scheduled()]
        except Exception as e:
            log.error("find_scheduled_pending_async: %s", e)
            return []

    async def find_running_instances_async(self) -> list[svc.LabInstanceRequest]:
        return await self.find_by_phase_async(P.RUNNING)

    async def find_expired_instances_async(self) -> list[svc.LabInstanceRequest]:
        try:
            return [r for r in await self.find_running_instances_async() if r.is_expired()]
        except Exception as e:
            log.error("find_expired_instances_async: %s", e)
            return []

    async def count_by_namespace_async(self, namespace: str) -> int:
        try:
            return len(await self.find_by_namespace_async(namespace))
        except Exception as e:
            log.error("count_by_namespace_async(%s): %s", namespace, e)
            return 0

    async def count_by_phase_async(self, phase: svc.LabInstancePhase) -> int:
        try:
            return len(await self.find_by_phase_async(phase))
        except Exception as e:
            log.error("count_by_phase_async(%s): %s", phase, e)
            return 0

    @classmethod
    def create_with_yaml_serializer(cls, storage_backend: Any) -> LabInstanceResourceRepository:
        return cls(storage_backend, YamlResourceSerializer())

    @classmethod
    def create_with_json_serializer(cls, storage_backend: Any) -> LabInstanceResourceRepository:
        return cls(storage_backend, JsonSerializer())


# -- handlers, by what their constructors ask for ----------------------------------------------


class CreateLabWorkerCommandHandler:
    def __init__(
        self,
        repository: ResourceRepository[svc.LabWorkerSpec, svc.LabWorkerStatus],
        mapper: Mapper,
    ) -> None:
        self.repository = repository
        self.mapper = mapper


class GetLabWorkerQueryHandler(CreateLabWorkerCommandHandler):
    pass


class ListLabWorkersQueryHandler(CreateLabWorkerCommandHandler):
    pass


class CreateLabInstanceCommandHandler:
    def __init__(
        self,
        service_provider: ServiceProviderBase,
        resource_repository: LabInstanceResourceRepository,
        mapper: Mapper,
    ) -> None:
        self.service_provider = service_provider
        self.resource_repository = resource_repository
        self.mapper = mapper


class GetLabInstanceQueryHandler(CreateLabInstanceCommandHandler):
    pass


class LabInstanceSchedulerService:
    def __init__(
        self, service_provider: ServiceProviderBase, repository: LabInstanceResourceRepository
    ) -> None:
        self.service_provider = service_provider
        self.repository = repository


LAB_WORKER_HANDLERS = (
    CreateLabWorkerCommandHandler,
    GetLabWorkerQueryHandler,
    ListLabWorkersQueryHandler,
)
LAB_INSTANCE_HANDLERS = (CreateLabInstanceCommandHandler, GetLabInstanceQueryHandler)


class RunnableLabInstanceResourceRepository(LabInstanceResourceRepository):
    """The service's class made concrete: Neuroglia's ``ResourceRepository`` (0.9.4, and the
    framework's main branch) leaves ``Repository``'s template methods abstract, so the
    service's own class cannot be instantiated as written. Its ``add_async``,
    ``update_async`` and ``remove_async`` never call them."""

    async def _do_add_async(self, entity: Any) -> Any:
        raise AssertionError("Neuroglia's ResourceRepository.add_async does not call this")

    async def _do_update_async(self, entity: Any) -> Any:
        raise AssertionError("Neuroglia's ResourceRepository.update_async does not call this")

    async def _do_remove_async(self, id: Any) -> None:
        raise AssertionError("Neuroglia's ResourceRepository.remove_async does not call this")
