"""The demo's slice of a Lab Resource Manager: commands and their handlers, which receive the
LabWorker repository by constructor injection (module level, so Neuroglia's dependency
injection can read their annotations)."""

from __future__ import annotations

from typing import Any

from neuroglia.core import OperationResult
from neuroglia.mediation import Command, CommandHandler

from .lab_worker_repository import EtcdLabWorkerResourceRepository
from .lab_workers import LabWorker, LabWorkerPhase


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
