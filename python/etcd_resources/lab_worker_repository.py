"""``EtcdLabWorkerResourceRepository``: the Lab Resource Manager's LabWorker repository on
etcd, a drop-in for the Python one it replaces (same methods, same factories, same keys).

Every query is evaluated by the Rust engine on the stored documents (a label selector on
``lab-track``, a field selector on ``status.phase``); only matches become Python objects, and
counts build none.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from . import _core
from .lab_workers import LabWorker, LabWorkerPhase
from .repository import ResourceRepository
from .watching import WatchEvent, WatchHandle

__all__ = ["DEFAULT_PREFIX", "EtcdLabWorkerResourceRepository"]

DEFAULT_PREFIX = "/lab-workers/"
LAB_TRACK_LABEL = "lab-track"
ACTIVE_PHASES = (LabWorkerPhase.READY, LabWorkerPhase.DRAINING)
CACHE_FIELDS = ["status.phase", "status.active_lab_count"]


def _phase_text(phase: Enum | str) -> str:
    """A phase as stored: an enum member's value (its name if the value is not text)."""
    if isinstance(phase, Enum):
        return phase.value if isinstance(phase.value, str) else phase.name
    if isinstance(phase, str):
        return phase
    raise TypeError(f"a phase is a LabWorkerPhase or a str, not {type(phase).__name__}")


class EtcdLabWorkerResourceRepository(ResourceRepository[Any]):
    """LabWorkers in etcd. Reads return ``resource_type`` instances (the package's
    :class:`~etcd_resources.lab_workers.LabWorker` by default; ``dict`` for raw documents)."""

    def __init__(
        self,
        client: _core.EtcdClient,
        prefix: str = DEFAULT_PREFIX,
        *,
        resource_type: type | None = LabWorker,
        format: str = "json",
        namespaced: bool = False,
        mediator: Any = None,
        cache: bool = False,
    ) -> None:
        """``cache=True`` answers the queries from the shared informer cache, indexed on
        ``status.phase`` and on labels (``lab-track``)."""
        super().__init__(
            client,
            prefix,
            namespaced=namespaced,
            format=format,
            resource_type=resource_type,
            mediator=mediator,
            cache=CACHE_FIELDS if cache else False,
        )

    # -- factories (sync, so a dependency-injection factory can call them) ------------------

    @classmethod
    def create_with_json_serializer(
        cls,
        etcd_client: _core.EtcdClient,
        prefix: str = DEFAULT_PREFIX,
        *,
        resource_type: type | None = LabWorker,
        **options: Any,
    ) -> EtcdLabWorkerResourceRepository:
        """A repository that writes JSON (and reads JSON or YAML)."""
        return cls(etcd_client, prefix, resource_type=resource_type, format="json", **options)

    @classmethod
    def create_with_yaml_serializer(
        cls,
        etcd_client: _core.EtcdClient,
        prefix: str = DEFAULT_PREFIX,
        *,
        resource_type: type | None = LabWorker,
        **options: Any,
    ) -> EtcdLabWorkerResourceRepository:
        """A repository that writes YAML (and reads JSON or YAML)."""
        return cls(etcd_client, prefix, resource_type=resource_type, format="yaml", **options)

    # -- queries ------------------------------------------------------------------------------

    async def find_by_lab_track_async(self, lab_track: str) -> list[Any]:
        """Workers labelled ``lab-track=<lab_track>``."""
        if not isinstance(lab_track, str):
            raise TypeError(f"a lab track is a str, not {type(lab_track).__name__}")
        return await self.list_async(label_selector={LAB_TRACK_LABEL: lab_track})

    async def find_by_phase_async(self, phase: LabWorkerPhase | Enum | str) -> list[Any]:
        """Workers whose ``status.phase`` is ``phase`` (an enum member or its value)."""
        return await self.list_async(field_selector={"status.phase": _phase_text(phase)})

    async def find_by_phases_async(
        self, phases: tuple[LabWorkerPhase | Enum | str, ...]
    ) -> list[Any]:
        """Workers in any of ``phases``."""
        wanted = ",".join(_phase_text(p) for p in phases)
        return await self.list_async(field_selector=f"status.phase in ({wanted})")

    async def find_active_workers_async(self) -> list[Any]:
        """Workers that are Ready or Draining."""
        return await self.find_by_phases_async(ACTIVE_PHASES)

    async def find_ready_workers_async(self) -> list[Any]:
        """Workers available for assignment (Ready)."""
        return await self.find_by_phase_async(LabWorkerPhase.READY)

    async def find_draining_workers_async(self) -> list[Any]:
        """Workers being decommissioned (Draining)."""
        return await self.find_by_phase_async(LabWorkerPhase.DRAINING)

    async def count_by_phase_async(self, phase: LabWorkerPhase | Enum | str) -> int:
        """How many workers are in ``phase``; builds no Python objects."""
        return await self.count_async(field_selector={"status.phase": _phase_text(phase)})

    async def count_by_lab_track_async(self, lab_track: str) -> int:
        """How many workers are on ``lab_track``; builds no Python objects."""
        if not isinstance(lab_track, str):
            raise TypeError(f"a lab track is a str, not {type(lab_track).__name__}")
        return await self.count_async(label_selector={LAB_TRACK_LABEL: lab_track})

    def watch_workers(
        self,
        callback: Callable[[WatchEvent], Any],
        *,
        start_revision: int = 0,
        max_backlog: int | None = None,
    ) -> WatchHandle:
        """Call ``callback(event)`` on this event loop for every change to a worker; the event's
        ``resource`` (and ``previous_resource``) are ``resource_type`` instances."""
        return self.watch_changes(callback, start_revision=start_revision, max_backlog=max_backlog)
