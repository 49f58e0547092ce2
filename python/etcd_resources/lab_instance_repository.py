"""``EtcdLabInstanceResourceRepository``: the Lab Resource Manager's ``LabInstanceRequest``
repository on etcd, with the queries of the service's ``LabInstanceResourceRepository`` under
the same names.

Every query is a selector the Rust engine evaluates on the stored documents (or on the shared
cache, with ``cache=True``); only matches become Python objects and counts build none. The
time conditions are field selectors on the stored timestamps, compared in Rust:

- expired: ``status.phase=Running,status.start_time+minutes(spec.duration_minutes)<NOW``;
- scheduled pending: ``status.phase=Pending,spec.scheduled_start`` (set, not ``null``).

``NOW`` is the caller's local time with its UTC offset (``datetime.now().astimezone()``). The
service writes ``datetime.now()`` (naive, local) and compares with ``datetime.now()``, so a
stored time without an offset is read as local time of the process that asks; a time with an
offset is the instant it names. Errors raise; a query never answers ``[]`` or ``0`` for a
failure.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from .kind_repository import KindRepository, phase_text, text_argument

__all__ = ["EXPIRED", "SCHEDULED_PENDING", "EtcdLabInstanceResourceRepository"]

DEFAULT_PREFIX = "/lab-instance-requests/"
SCHEDULED_PENDING = "status.phase=Pending,spec.scheduled_start"
"""The field selector of ``find_scheduled_pending_async``."""
EXPIRED = "status.phase=Running,status.start_time+minutes(spec.duration_minutes)<{now}"
"""The field selector of ``find_expired_instances_async``, ``now`` an ISO timestamp."""


def _instant(now: datetime | None) -> str:
    """``now`` (default: this moment) as an ISO timestamp with an offset; a naive ``now`` is
    local time, as the service's ``datetime.now()``."""
    if now is None:
        now = datetime.now()
    if not isinstance(now, datetime):
        raise TypeError(f"now is a datetime, not {type(now).__name__}")
    return now.astimezone().isoformat()


class EtcdLabInstanceResourceRepository(KindRepository):
    """LabInstanceRequests in etcd. Reads return ``resource_type`` instances (pass the
    service's ``LabInstanceRequest``; by default dicts). ``cache=True`` answers the queries
    from the shared informer cache, indexed on ``status.phase`` and ``spec.student_email``."""

    DEFAULT_PREFIX = DEFAULT_PREFIX
    CACHE_FIELDS = ("status.phase", "spec.student_email")

    async def find_by_namespace_async(self, namespace: str) -> list[Any]:
        """Instances in ``namespace`` (``metadata.namespace``)."""
        return await self.list_async(namespace=text_argument(namespace, "a namespace"))

    async def find_by_student_email_async(self, student_email: str) -> list[Any]:
        """Instances whose ``spec.student_email`` is ``student_email``."""
        email = text_argument(student_email, "a student email")
        return await self.list_async(field_selector={"spec.student_email": email})

    async def find_by_phase_async(self, phase: Enum | str) -> list[Any]:
        """Instances whose ``status.phase`` is ``phase`` (an enum member or its value)."""
        return await self.list_async(field_selector={"status.phase": phase_text(phase)})

    async def find_scheduled_pending_async(self) -> list[Any]:
        """Pending instances with a ``spec.scheduled_start``."""
        return await self.list_async(field_selector=SCHEDULED_PENDING)

    async def find_running_instances_async(self) -> list[Any]:
        """Running instances."""
        return await self.find_by_phase_async("Running")

    async def find_expired_instances_async(self, now: datetime | None = None) -> list[Any]:
        """Running instances whose ``status.start_time`` plus ``spec.duration_minutes``
        minutes is before ``now`` (default: this moment; see the module doc for naive
        times). Compared in Rust on the stored timestamps."""
        return await self.list_async(field_selector=EXPIRED.format(now=_instant(now)))

    async def count_by_namespace_async(self, namespace: str) -> int:
        """How many instances are in ``namespace``; builds no Python objects."""
        return await self.count_async(namespace=text_argument(namespace, "a namespace"))

    async def count_by_phase_async(self, phase: Enum | str) -> int:
        """How many instances are in ``phase``; builds no Python objects."""
        return await self.count_async(field_selector={"status.phase": phase_text(phase)})
