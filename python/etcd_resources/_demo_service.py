"""The demo's slice of a Lab Resource Manager: commands and their handlers, which receive the
LabWorker repository by constructor injection (module level, so Neuroglia's dependency
injection can read their annotations), and their registration. Imported only with Neuroglia
installed."""

from __future__ import annotations

from typing import Any

from neuroglia.core import OperationResult
from neuroglia.dependency_injection import ServiceCollection
from neuroglia.mediation import Command, CommandHandler, Mediator

from ._core import EtcdClient
from .config import EtcdSettings
from .lab_instance_repository import EtcdLabInstanceResourceRepository
from .lab_worker_repository import EtcdLabWorkerResourceRepository
from .lab_workers import LabWorker, LabWorkerPhase
from .neuroglia import add_etcd_resources


class CreateLabWorker(Command[OperationResult[Any]]):
    def __init__(self, name: str, lab_track: str) -> None:
        self.name, self.lab_track = name, lab_track


class MoveToPhase(Command[OperationResult[Any]]):
    def __init__(self, name: str, phase: LabWorkerPhase) -> None:
        self.name, self.phase = name, phase


class CreateLabWorkerHandler(CommandHandler[CreateLabWorker, OperationResult[Any]]):
    def __init__(self, repository: EtcdLabWorkerResourceRepository) -> None:
        super().__init__()
        self.repository = repository

    async def handle_async(self, request: CreateLabWorker) -> OperationResult[Any]:
        worker = await self.repository.add_async(LabWorker.create(request.name, request.lab_track))
        return self.created(worker)


class MoveToPhaseHandler(CommandHandler[MoveToPhase, OperationResult[Any]]):
    def __init__(self, repository: EtcdLabWorkerResourceRepository) -> None:
        super().__init__()
        self.repository = repository

    async def handle_async(self, request: MoveToPhase) -> OperationResult[Any]:
        worker = await self.repository.get_async(request.name)
        if worker is None:
            return self.not_found(LabWorker, request.name)
        worker.status.phase = request.phase
        return self.ok(await self.repository.update_async(worker))


class Registered:
    """The client and the handlers registered as the service's main.py does it; commands go
    through the mediator."""

    def __init__(self, endpoints: list[str], prefix: str, instances_prefix: str) -> None:
        services = ServiceCollection()
        add_etcd_resources(
            services,
            EtcdSettings(endpoints=endpoints, prefix=prefix),
            lab_instance_type=dict,
            lab_instance_prefix=instances_prefix,
        )
        services.add_singleton(Mediator)
        services.add_scoped(CreateLabWorkerHandler)
        services.add_scoped(MoveToPhaseHandler)
        Mediator._handler_registry[CreateLabWorker] = CreateLabWorkerHandler
        Mediator._handler_registry[MoveToPhase] = MoveToPhaseHandler
        self.provider = services.build()
        self.mediator: Any = self.provider.get_required_service(Mediator)
        self.client: EtcdClient = self.provider.get_required_service(EtcdClient)

    def repository(self) -> EtcdLabWorkerResourceRepository:
        scope = self.provider.create_scope().get_service_provider()
        return scope.get_required_service(EtcdLabWorkerResourceRepository)

    def instances(self) -> EtcdLabInstanceResourceRepository:
        scope = self.provider.create_scope().get_service_provider()
        return scope.get_required_service(EtcdLabInstanceResourceRepository)

    async def create(self, name: str, lab_track: str) -> Any:
        return (await self.mediator.execute_async(CreateLabWorker(name, lab_track))).data

    async def move(self, name: str, phase: LabWorkerPhase) -> Any:
        return (await self.mediator.execute_async(MoveToPhase(name, phase))).data
