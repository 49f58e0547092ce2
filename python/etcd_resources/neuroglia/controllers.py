"""``ResourceControllerHost``: Neuroglia ``ResourceControllerBase`` subclasses run unchanged on
the package's controller runtime, as a Neuroglia ``HostedService``.

Per key, the runtime's queue hands the host the resource (from the shared cache, after the
change that triggered it and the host's own writes); the host runs the controller's own
``reconcile()`` on a copy (its leader check, deletion handling, ``needs_reconciliation()``,
timeout and CloudEvents as written), reads the ``ReconciliationResult`` it handled (see
``results.py``), then persists what the controller changed in memory:

- the status, with a compare-and-swap that re-reads on conflicts (a spec edit made meanwhile is
  kept; the generation is not bumped), with ``status.observed_generation`` set to the
  generation once a run succeeds without changing anything (so ``needs_reconciliation()``
  turns false until the next spec change);
- the finalizers it added or removed (``finalize()`` removes the controller's own finalizer
  once its cleanup is complete: the last one removed, the resource goes).

With ``add_finalizer`` (the default), the controller's ``finalizer_name`` is added to each live
resource before its first reconcile, as Kubernetes controllers do, so a delete waits for
``finalize()``. With ``leader_election`` (Neuroglia's ``LeaderElection``, e.g. on
:class:`EtcdCoordinationBackend`), the runtime runs only while this replica leads; a standby
keeps the shared cache of the prefix loaded and follows its changes. On
:class:`EtcdCoordinationBackend`, a leader's writes are fenced on its lease record: a leader
paused past its lease (so that another took over) has its late writes refused with
``FencedError`` (see ``etcd_resources.controller.sharding``).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable
from typing import Any

from neuroglia.coordination import LeaderElection
from neuroglia.data.resources.controller import ReconciliationStatus, ResourceControllerBase
from neuroglia.hosting.abstractions import HostedService

from .. import _core
from ..controller import Action, Controller, ControllerStats
from ..controller.sharding import FENCE
from ..errors import EtcdResourcesError, InvalidArgumentError
from ..repository import _Repository
from .coordination import EtcdCoordinationBackend
from .results import capture, capturing, to_action

__all__ = ["ResourceControllerHost"]

log = logging.getLogger("etcd_resources.controller")

# Status fields that change on every write and say nothing about the resource.
_BOOKKEEPING = ("last_updated", "observed_generation")


def _fields(status: Any) -> Any:
    """A copy of ``status``'s fields to compare before and after a run (a status class whose
    ``@dataclass`` has no fields compares every instance equal, so fields are compared)."""
    if status is None:
        return None
    values = vars(status) if hasattr(status, "__dict__") else status
    if not isinstance(values, dict):
        return copy.deepcopy(values)
    return {k: copy.deepcopy(v) for k, v in values.items() if k not in _BOOKKEEPING}


async def _cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` and wait for it; raises what it raised, if not cancelled, and a
    cancellation of the caller that arrives meanwhile (one it is already handling, as in a
    ``finally`` after its own cancellation, does not stop it here)."""
    if task is None:
        return
    current = asyncio.current_task()
    before = 0 if current is None else current.cancelling()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if current is not None and current.cancelling() > before:
            raise


class ResourceControllerHost(HostedService):
    """Runs ``controller`` (a Neuroglia ``ResourceControllerBase``) on the resources of
    ``repository``; ``options`` go to :class:`etcd_resources.controller.Controller`
    (``max_concurrency``, ``backoff_base``, ``backoff_max``, ``predicates``, ...)."""

    def __init__(
        self,
        controller: ResourceControllerBase[Any, Any],
        repository: _Repository[Any],
        *,
        leader_election: LeaderElection | None = None,
        add_finalizer: bool = True,
        **options: Any,
    ) -> None:
        if repository.resource_type is None:
            raise InvalidArgumentError(
                f"{type(controller).__name__} reconciles Resource objects: give {repository!r} "
                "a resource_type= (its reads return dicts)"
            )
        self._controller = controller
        self._repository = repository
        self._election = leader_election
        self._add_finalizer = add_finalizer
        self._runtime = Controller(repository, self._reconcile, **options)
        self._task: asyncio.Task[None] | None = None
        self._leading: asyncio.Task[None] | None = None
        self._deadline: asyncio.Task[None] | None = None
        self._failed: asyncio.Future[None] | None = None
        self._fence: tuple[str, int] | None = None
        capturing(controller)
        if leader_election is not None and controller.leader_election is None:
            controller.leader_election = leader_election  # its own check agrees with ours

    def __repr__(self) -> str:
        if self._election is None:
            state = "unelected"
        else:
            state = "leading" if self.is_leader else "standby"
        return (
            f"ResourceControllerHost({type(self._controller).__name__}, "
            f"prefix={self._repository.prefix!r}, {state})"
        )

    @property
    def controller(self) -> ResourceControllerBase[Any, Any]:
        """The Neuroglia controller."""
        return self._controller

    @property
    def runtime(self) -> Controller:
        """The runtime's controller (its queue, stats and writes)."""
        return self._runtime

    @property
    def repository(self) -> _Repository[Any]:
        return self._repository

    @property
    def is_leader(self) -> bool:
        """Whether this replica reconciles now: always without leader election; with it, while
        the runtime runs for the lease it holds (not Neuroglia's flag alone, which stays set
        when releasing the lease failed)."""
        if self._election is None:
            return True
        return self._leading is not None and not self._leading.done()

    def stats(self) -> ControllerStats:
        return self._runtime.stats()

    async def wait_for(self, condition: Callable[[ControllerStats], bool]) -> ControllerStats:
        """``Controller.wait_for`` of the runtime; bound it with ``asyncio.timeout``."""
        return await self._runtime.wait_for(condition)

    # -- HostedService ---------------------------------------------------------------------

    async def start_async(self) -> None:
        """Start :meth:`run` in the background."""
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self.run())

    async def stop_async(self) -> None:
        """Stop: the reconciles in flight finish, the lease (if any) is released. Raises what
        stopped the host before, if anything did."""
        task, self._task = self._task, None
        await _cancel(task)

    async def run(self) -> None:
        """Run until cancelled: the runtime at once, or while leading with leader election.
        A runtime that fails while leading (a closed client, ...) ends the election too (the
        lease is released, not held by a replica that no longer reconciles) and is raised."""
        if self._election is None:
            await self._runtime.run()
            return
        if self._repository._core.cached:
            await self._repository.count_async()  # a standby keeps the shared cache loaded
        self._failed = asyncio.get_running_loop().create_future()
        # It awaits coroutine functions (its annotation says `Callable[[], None]`).
        election = asyncio.ensure_future(
            self._election.run(
                self._started_leading,  # type: ignore[arg-type]
                self._stopped_leading,  # type: ignore[arg-type]
            )
        )
        try:
            await asyncio.wait({election, self._failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._failed.cancel()
            # Stopping: the reconciles in flight finish while the lease is still held and
            # renewed; then the election releases it (Neuroglia's order is the other way).
            await _cancel(self._deadline)
            await self._pause(abort=False)
            await _cancel(election)  # releases the lease, if held
            await self._stopped_leading()  # raises what failed the runtime, if it failed
        election.result()

    async def _started_leading(self) -> None:
        try:
            await self._lead()
        except EtcdResourcesError as exc:
            # Neuroglia counts this replica as leading now and will not call again: the
            # deadline keeper starts the runtime after the next renewal.
            log.warning("%s: starting to lead failed: %r", self, exc)
        if self._deadline is None or self._deadline.done():
            self._deadline = asyncio.ensure_future(self._keep_deadline())

    async def _lead(self) -> None:
        self._fence = await self._lease_record()
        if self._leading is None or self._leading.done():
            self._leading = asyncio.ensure_future(self._runtime.run())
            self._leading.add_done_callback(self._runtime_ended)

    def _runtime_ended(self, task: asyncio.Task[None]) -> None:
        if self._failed is not None and not task.cancelled() and task.exception() is not None:
            self._failed.cancel()  # wakes run()

    async def _stopped_leading(self) -> None:
        """Neuroglia's word that the lease is gone (or released): stop at once."""
        await _cancel(self._deadline)
        self._deadline = None
        await self._pause(abort=True)

    async def _pause(self, abort: bool) -> None:
        """Stop the runtime: at once (``abort``: reconciles in flight cancelled, for a leader
        whose lease is or may be gone), or letting them finish."""
        task, self._leading = self._leading, None
        if abort and task is not None:
            task.cancel()
            self._runtime._abort()
        await _cancel(task)
        self._fence = None

    async def _keep_deadline(self) -> None:
        """Stop reconciling when the lease's deadline passes on this replica's clock (the TTL
        after the last acknowledged renewal was sent: etcd's expiry is no earlier), and lead
        again once a renewal is acknowledged. Neuroglia alone would keep leading while a
        renewal hangs or fails on an unreachable etcd. Only on EtcdCoordinationBackend (which
        knows when it sent what etcd acknowledged)."""
        election = self._election
        backend = getattr(election, "backend", None)
        if election is None or not isinstance(backend, EtcdCoordinationBackend):
            return
        key, me = f"leases:{election.config.lease_name}", election.config.identity
        ttl = max(1, int(election.config.lease_duration.total_seconds()))
        while True:
            sent = backend.renewed_at(key, me)
            if sent is None:
                return
            left = sent + ttl - time.monotonic()
            running = self._leading is not None and not self._leading.done()
            if left > 0 and running:
                await asyncio.sleep(left)  # the deadline's timer; a renewal moves it
                continue
            if left > 0:  # renewed, not running: stopped at a deadline, or starting failed
                try:
                    await self._lead()
                    continue
                except EtcdResourcesError as exc:
                    log.warning("%s: leading again failed: %r; after the next renewal", self, exc)
            elif running:
                log.warning(
                    "%s: no renewal of the leader's lease acknowledged for %.1fs (its TTL): "
                    "reconciles stop until one is",
                    self,
                    time.monotonic() - sent,
                )
                await self._pause(abort=True)
            await backend.wait_renewed(key, me, after=sent)

    async def _lease_record(self) -> tuple[str, int] | None:
        """The fence of this leader's writes: its lease record and the etcd lease it is on, when
        the election runs on :class:`EtcdCoordinationBackend` (``None`` on another backend). A
        leader paused past its lease, resuming mid-reconcile, then has its writes refused
        (``FencedError``) instead of overwriting the new leader's."""
        election = self._election
        backend = getattr(election, "backend", None)
        if election is None or not isinstance(backend, EtcdCoordinationBackend):
            return None
        key = backend.record_key(f"leases:{election.config.lease_name}")
        current = await backend.client.get_kv(key)
        if current is None or current[0].decode() != election.config.identity or not current[2]:
            return None
        _core._use_fence_var(FENCE)
        return (key, current[2])

    # -- one reconcile -------------------------------------------------------------------

    async def _reconcile(self, resource: Any) -> Action:
        if self._fence is not None:
            FENCE.set(self._fence)  # this reconcile's writes commit only while it leads
        runtime = self._runtime
        name = self._controller.finalizer_name
        working = copy.deepcopy(resource)
        meta = working.metadata
        if self._add_finalizer and not meta.is_being_deleted() and not meta.has_finalizer(name):
            stored = await runtime.set_finalizer(working, name, True)
            if stored is None:
                return Action.done()  # gone meanwhile
            working = copy.deepcopy(stored)
            meta = working.metadata
        deleting = meta.is_being_deleted()
        status_before = _fields(working.status)
        finalizers_before = list(meta.finalizers)

        box = capture()
        await self._controller.reconcile(working)
        result = box[-1] if box else None

        changed = _fields(working.status) != status_before
        settled = (
            result is not None
            and result.status is ReconciliationStatus.SUCCESS
            and not changed
            and working.status is not None
            and getattr(working.status, "observed_generation", None) != meta.generation
        )
        if settled:
            working.status.observed_generation = meta.generation
        if (changed or settled) and not deleting:
            await runtime.write_status(working)
        for finalizer in [*finalizers_before, *meta.finalizers]:
            present = finalizer in meta.finalizers
            if present != (finalizer in finalizers_before):
                await runtime.set_finalizer(working, finalizer, present)
        if deleting:
            if meta.has_finalizer(name):
                return Action.retry(f"finalizer {name} not complete")
            return Action.done()
        return to_action(result, changed)
