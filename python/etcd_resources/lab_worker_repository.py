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

from .kind_repository import KindRepository, phase_text, text_argument
from .lab_workers import LabWorker, LabWorkerPhase
from .watching import WatchEvent, WatchHandle

__all__ = ["DEFAULT_PREFIX", "EtcdLabWorkerResourceRepository"]

DEFAULT_PREFIX = "/lab-workers/"
LAB_TRACK_LABEL = "lab-track"
ACTIVE_PHASES = (LabWorkerPhase.READY, LabWorkerPhase.DRAINING)


class EtcdLabWorkerResourceRepository(KindRepository):
    """LabWorkers in etcd. Reads return ``resource_type`` instances (the package's
    :class:`~etcd_resources.lab_workers.LabWorker` by default; ``dict`` for raw documents).
    ``cache=True`` answers the queries from the shared informer cache, indexed on
    ``status.phase`` and on labels (``lab-track``)."""

    DEFAULT_PREFIX = DEFAULT_PREFIX
    DEFAULT_RESOURCE_TYPE = LabWorker
    CACHE_FIELDS = ("status.phase", "status.active_lab_count")

    # -- queries ------------------------------------------------------------------------------

    async def find_by_lab_track_async(self, lab_track: str) -> list[Any]:
        """Workers labelled ``lab-track=<lab_track>``."""
        track = text_argument(lab_track, "a lab track")
        return await self.list_async(label_selector={LAB_TRACK_LABEL: track})

    async def find_by_phase_async(self, phase: LabWorkerPhase | Enum | str) -> list[Any]:
        """Workers whose ``status.phase`` is ``phase`` (an enum member or its value)."""
        return await self.list_async(field_selector={"status.phase": phase_text(phase)})

    async def find_by_phases_async(
        self, phases: tuple[LabWorkerPhase | Enum | str, ...]
    ) -> list[Any]:
        """Workers in any of ``phases``."""
        wanted = ",".join(phase_text(p) for p in phases)
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
        return await self.count_async(field_selector={"status.phase": phase_text(phase)})

    async def count_by_lab_track_async(self, lab_track: str) -> int:
        """How many workers are on ``lab_track``; builds no Python objects."""
        track = text_argument(lab_track, "a lab track")
        return await self.count_async(label_selector={LAB_TRACK_LABEL: track})

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
