"""A watcher and an informer cache run alongside a workload (``Observer``), checked afterwards
(``Observer.finish``): the watcher's events must be in order, without duplicates, and
complete (every revision etcd holds for the prefix since the start, read again by a fresh
watch on the healed cluster); the cache, and a second one started while the workload writes
(``start_late``), must equal a direct read from etcd."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field
from typing import Any

from etcd_resources._core import EtcdClient
from etcd_resources.errors import EtcdTimeoutError, UnavailableError
from etcd_resources.repository import ResourceRepository
from etcd_resources.watching import EventType

from .workload import counter_resource

__all__ = ["Observed", "Observer"]

Event = tuple[int, str]
"""(revision, name) of one watch event."""


@dataclass
class Observed:
    """What ``Observer.finish`` found."""

    events: int
    """Events the watcher delivered (up to the final revision)."""
    missing: int
    """Events etcd holds that the watcher did not deliver (or the other way round)."""
    duplicated: int
    """Events the watcher delivered more than once."""
    out_of_order: int
    """Events whose revision was not above the one before."""
    cache_mismatches: int
    """Names whose resource_version differs between a cache and etcd (or in one only)."""
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicated or self.out_of_order or self.cache_mismatches)


async def _watch_until(
    repo: ResourceRepository[Any],
    start: int,
    out: list[Event],
    target: list[int],
    reached: asyncio.Event,
) -> None:
    """Append every event after ``start`` to ``out``; set ``reached`` once an event at or
    after ``target[0]`` (when set) arrived."""
    async for event in repo.watch(resource_version=start):
        if event.type is EventType.BOOKMARK:
            continue
        revision = int(event.resource_version)
        out.append((revision, str(event.resource["metadata"]["name"])))
        if target and revision >= target[0]:
            reached.set()


class Observer:
    """``await start()`` before the workload: reads the revision, starts a watcher from it and
    an informer cache (``cache=True``) on ``client`` under ``prefix``. ``await finish()`` on
    the healed cluster writes a last resource (its revision is the final one), drains the
    watcher up to it and compares (see the module doc). Every wait is bounded by
    ``timeout``."""

    def __init__(self, client: EtcdClient, prefix: str, *, timeout: float = 15.0) -> None:
        self.client = client
        self.prefix = prefix
        self.timeout = timeout
        self.direct: ResourceRepository[Any] = ResourceRepository(client, prefix)
        self.cached: ResourceRepository[Any] = ResourceRepository(client, prefix, cache=True)
        self.start_revision = 0
        self.seen: list[Event] = []
        self._target: list[int] = []
        self._reached = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._error: list[BaseException] = []
        self.late: ResourceRepository[Any] | None = None

    async def start(self) -> None:
        page = await self.direct.list_page_async(limit=1)
        self.start_revision = int(page.resource_version)
        self._task = asyncio.create_task(
            _watch_until(self.direct, self.start_revision, self.seen, self._target, self._reached)
        )
        await self.cached.list_async(consistent=True)  # the informer runs from here on

    async def start_late(self, client: EtcdClient) -> None:
        """Start a second informer cache, on ``client`` (another client: one cache per client
        and prefix), while the workload writes: its listing and its first wait for etcd's
        revision race the writes. (etcd before 3.5.13 answers that wait ahead of the watch's
        events, etcd#15220; a cache that took the answer lost those writes for good.) It is
        compared with etcd in ``finish`` as the first one is."""
        self.late = ResourceRepository(client, self.prefix, cache=True)
        await asyncio.wait_for(self.late.list_async(consistent=True), self.timeout)

    async def _differ(self, cache: ResourceRepository[Any], which: str, details: list[str]) -> int:
        """Names whose resource_version differs between ``cache`` and etcd (noted)."""
        cached = await asyncio.wait_for(cache.list_async(consistent=True), self.timeout)
        direct = await self.direct.list_async()
        in_cache = {r["metadata"]["name"]: r["metadata"]["resource_version"] for r in cached}
        in_etcd = {r["metadata"]["name"]: r["metadata"]["resource_version"] for r in direct}
        differ = sorted(
            n for n in in_cache.keys() | in_etcd.keys() if in_cache.get(n) != in_etcd.get(n)
        )
        if differ:
            details.append(
                f"{which} differs: "
                + ", ".join(f"{n} {in_cache.get(n)}/{in_etcd.get(n)}" for n in differ)
            )
        return len(differ)

    async def _final_revision(self) -> int:
        """Write a last resource (retried, bounded) and return its revision."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        name = f"zz-end-{self.start_revision}"
        while True:
            try:
                made = await self.direct.add_async(counter_resource(name, 0))
                return int(made["metadata"]["resource_version"])
            except (UnavailableError, EtcdTimeoutError):
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.1)  # retry interval

    async def _reference(self, final: int, details: list[str]) -> list[Event]:
        """What etcd holds for the prefix from the start revision up to ``final``: a fresh
        watch on the healed cluster. Opening it is retried (bounded) when it fails with
        ``UnavailableError`` or ``EtcdTimeoutError`` (noted in ``details``): right after the
        cluster heals, a call can still fail (every endpoint ejected, a member catching up),
        and the reference is not what is under test."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            reference: list[Event] = []
            reached = asyncio.Event()
            fresh = asyncio.create_task(
                _watch_until(self.direct, self.start_revision, reference, [final], reached)
            )
            waiter = asyncio.create_task(reached.wait())
            try:
                await asyncio.wait(
                    {fresh, waiter},
                    timeout=max(0.0, deadline - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                for task in (waiter, fresh):
                    task.cancel()
                await asyncio.gather(waiter, fresh, return_exceptions=True)
            if reached.is_set():
                return reference
            error = None if fresh.cancelled() else fresh.exception()
            if isinstance(error, UnavailableError | EtcdTimeoutError) and loop.time() < deadline:
                details.append(f"reference watch reopened after {error!r}")
                await asyncio.sleep(0.1)  # retry interval
                continue
            if error is not None:
                raise error
            raise TimeoutError(f"the reference watch did not reach revision {final}")

    async def finish(self) -> Observed:
        assert self._task is not None, "start() first"
        final = await self._final_revision()
        self._target.append(final)
        if self.seen and self.seen[-1][0] >= final:
            self._reached.set()
        details: list[str] = []
        try:
            await asyncio.wait_for(self._reached.wait(), self.timeout)
        except TimeoutError:
            last = self.seen[-1][0] if self.seen else None
            details.append(f"watcher stopped at revision {last}, final {final}")
            if self._task.done() and (e := self._task.exception()) is not None:
                details.append(f"watcher raised {e!r}")
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task

        reference = [e for e in await self._reference(final, details) if e[0] <= final]
        seen = [e for e in self.seen if e[0] <= final]

        missing = sorted(set(reference) - set(seen))
        duplicated = len(seen) - len(set(seen))
        out_of_order = sum(1 for a, b in itertools.pairwise(seen) if b[0] <= a[0])
        extra = sorted(set(seen) - set(reference))
        if missing:
            details.append(f"missing {missing[:10]}")
        if extra:
            details.append(f"delivered but not in etcd's history {extra[:10]}")

        differ = await self._differ(self.cached, "cache", details)
        if self.late is not None:
            differ += await self._differ(self.late, "late cache", details)
        return Observed(
            events=len(seen),
            missing=len(missing) + len(extra),
            duplicated=duplicated,
            out_of_order=out_of_order,
            cache_mismatches=differ,
            details=details,
        )
