"""``Controller``: runs a reconciler on the keys the native queue hands out.

The queue, the feed of changes and the cache reads are Rust (``_core.ControllerCore``); this
loop only asks for the next key, runs ``reconcile`` on it (a coroutine on the event loop, a
plain function in a bounded thread pool) and reports the ``Action``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypedDict

from .. import _core
from ..errors import ClosedError, WatchFellBehindError
from ..repository import _Repository
from . import calling
from ._resource import key_of
from .action import Action
from .changes import ChangeFilter, ChangePredicate, split
from .collector import Collector
from .metrics import Metrics
from .relations import Follower, Mapper, OwnerDeletions, relations
from .sharding import FENCE, Sharding, Shards

__all__ = ["Controller", "ControllerStats", "Reconcile"]

log = logging.getLogger("etcd_resources.controller")

Reconcile = Callable[[Any], Awaitable[Action]] | Callable[[Any], Action]


class ControllerStats(TypedDict):
    """What a controller did (``Controller.stats()``)."""

    reconciles: int
    """Reconciles finished, whatever their outcome."""
    errors: int
    """Reconciles that raised, or returned ``retry`` or ``terminal``."""
    done: int
    requeues: int
    retries: int
    terminal: int
    queue_depth: int
    """Keys waiting to run (due or not)."""
    initial_depth: int
    """Keys of the initial listing still waiting."""
    in_flight: int
    """Reconciles running now (keys the queue handed out that have not finished)."""
    changes: int
    """Watched changes that passed the predicates."""
    filtered: int
    """Watched changes the predicates held back."""
    gone: int
    """Keys deleted before their turn came (not reconciled)."""
    skipped: int
    """Keys whose resource failed ``when`` (not reconciled)."""
    relists: int
    cache_timeouts: int
    related: int
    """Keys triggered by changes of related resources (``owns=``, ``watches=``)."""
    collected: int
    """Owned resources deleted because their owners had gone (``owns=``)."""
    running: bool
    synced: bool
    """Running, with the initial listing loaded and queued (a readiness probe)."""
    not_mine: int
    """Changes of keys whose shards another replica holds (not run here)."""
    shards: list[int] | None
    """The shards this replica holds (``sharding=``), ``None`` when not sharded. With
    ``leader_election``, ``[0]`` on the leader and ``[]`` on a standby."""
    since_last_event: float
    """Seconds since the feed last heard from the watch (a change or a progress
    notification), or since the listing: a liveness probe for a prefix that changes often."""
    last_error: str | None


# What `ControllerCore.next()` hands out: (key, resource, failures, priority, error, waited).
_Work = tuple[str, Any, int, str, BaseException | None, float]

# What a key whose resource fails `when` finishes with (told apart by identity).
_SKIPPED = Action("done")


class Controller:
    """Reconciles every resource under ``repository``'s prefix.

    ``reconcile(resource) -> Action`` runs for each resource of the initial listing, then again
    for each change that passes ``predicates`` (default ``("generation",)``: spec changes and
    deletions held by finalizers; also ``"labels"``, ``"annotations"``, ``"finalizers"``,
    ``"any"``, ``"field:<dotted path>"``, evaluated in Rust; and functions
    ``(old, new) -> bool`` over the resource as the repository reads it, see
    ``etcd_resources.controller.changes``), and when an ``Action`` asks for it. ``resource`` is
    what the repository's reads return, read from the shared cache once it has applied the
    change and this client's own writes. One key runs at most once at a time,
    ``max_concurrency`` keys at once; sync reconcilers run in a pool of ``sync_workers``
    threads. An exception counts as ``Action.retry(exc)``.

    ``debounce`` (seconds) runs a key that far after the last change of a burst, at most
    ``debounce_max`` (default ten times ``debounce``) after its first. ``aging``: how long a
    ready key of the initial listing waits before it shares the slots with live changes.

    ``when(resource) -> bool`` (kopf's ``when=``): a key whose resource fails it is not
    reconciled (counted as ``skipped``); it runs in the event loop, so keep it cheap.

    ``owns=repository`` (or several): a change of a resource there reconciles the owners its
    ``metadata.owner_references`` name (``owner_reference(owner)`` makes one), and with
    ``collect=True`` (the default) it is deleted once its owners are gone, as Kubernetes'
    garbage collector does. ``watches=(repository, mapper)`` (or several pairs): a change of a
    resource there reconciles what ``mapper(resource)`` names (names, ``(name, namespace)``
    pairs or resources).

    ``every`` (seconds, kopf's timers): each resource is reconciled again that long after a
    run that succeeded, change or not (a ``done`` becomes ``requeue_after(every)``; a longer
    requeue is shortened to it). ``name`` names the controller in its metrics and spans
    (default: the prefix); ``meter_provider`` is OpenTelemetry's (default: the global one).

    ``sharding=Sharding(shards=16, ttl=5)`` (or a number of shards): replicas of this
    controller (processes running it under the same ``name`` on the same etcd) share its keys,
    each running the keys of the shards it holds with an etcd lease; a replica that dies,
    stops or is cut off gives its shards to the others within ``ttl`` seconds, and no key runs
    on two replicas at once (see ``etcd_resources.controller.sharding``).
    ``leader_election=True`` is one shard: one replica runs everything, the others keep their
    caches synced and take over within ``ttl``.

    ``record_status=True``: after each reconcile, the runtime sets ``status.observed_generation``
    (to the generation reconciled, on success) and the ``Reconciled`` condition (``True``, or
    ``False`` with the error), with compare-and-swap, re-reading on conflicts; nothing is
    written when neither changed.
    """

    def __init__(
        self,
        repository: _Repository[Any],
        reconcile: Reconcile,
        *,
        max_concurrency: int = 8,
        sync_workers: int = 4,
        backoff_base: float = 0.05,
        backoff_max: float = 300.0,
        debounce: float = 0.0,
        debounce_max: float | None = None,
        aging: float = 1.0,
        predicates: Sequence[str | ChangePredicate] = ("generation",),
        drain_timeout: float | None = None,
        record_status: bool = False,
        when: Callable[[Any], bool] | None = None,
        owns: _Repository[Any] | Sequence[_Repository[Any]] | None = None,
        watches: tuple[_Repository[Any], Mapper]
        | Sequence[tuple[_Repository[Any], Mapper]]
        | None = None,
        collect: bool = True,
        every: float | None = None,
        name: str | None = None,
        meter_provider: Any = None,
        sharding: Sharding | int | None = None,
        leader_election: bool = False,
    ) -> None:
        self._repository = repository
        self._reconcile = reconcile
        self._async = calling.is_async(reconcile)
        self._sync_workers = sync_workers
        self._drain_timeout = drain_timeout
        self._record_status = record_status
        self._when = when
        self._relations = relations(owns, watches)
        names, self._functions = split(predicates)
        self._collect = collect
        self._collectors: list[Collector] = []
        self._feed_error: BaseException | None = None
        self._every = None if every is None else Action.requeue_after(every).after
        self._name = repository.prefix if name is None else name
        self._metrics = Metrics(self._name, self._depth, meter_provider)
        self._synced = False
        if leader_election:
            if sharding is not None:
                raise ValueError("leader_election is one shard: give sharding= or leader_election=")
            sharding = Sharding(shards=1)
        self._sharding = Sharding(shards=sharding) if isinstance(sharding, int) else sharding
        self._shards: Shards | None = None
        self._by_key: dict[str, asyncio.Task[None]] = {}
        self._notices: set[asyncio.Task[None]] = set()
        self._options: dict[str, Any] = {
            "max_concurrency": max_concurrency,
            "backoff_base": backoff_base,
            "backoff_max": backoff_max,
            "debounce": debounce,
            "debounce_max": debounce * 10 if debounce_max is None else debounce_max,
            "aging": aging,
            "predicates": names,
        }
        # Checks the options now, not at run().
        self._core = _core.ControllerCore(repository._core, **self._options)
        self._running = False
        self._reconciles = 0
        self._errors = 0
        self._skipped = 0
        self._last_error: str | None = None
        self._changed: asyncio.Condition | None = None
        self._waiting = 0  # tasks in wait_for()
        # Counted here, not by the queue: a batch the queue gave out just as run() was
        # cancelled never reached Python, and was never running.
        self._in_flight = 0

    def __repr__(self) -> str:
        name = getattr(self._reconcile, "__qualname__", type(self._reconcile).__name__)
        state = "running" if self._running else "stopped"
        return f"Controller(prefix={self._repository.prefix!r}, reconcile={name}, {state})"

    @property
    def name(self) -> str:
        """The controller's name in its metrics and spans."""
        return self._name

    def _depth(self) -> int:
        return int(self._core.stats()["queue_depth"])

    @property
    def repository(self) -> _Repository[Any]:
        """The repository reconcilers write through (their next run reads what they wrote)."""
        return self._repository

    async def write_status(self, resource: Any) -> Any:
        """Put ``resource``'s status onto the stored resource (compare-and-swap, re-reading on
        conflicts, so a spec edit made meanwhile is kept); returns the stored resource, or
        ``None`` if it is gone. For reconcilers that edit the status in memory."""
        status = (
            resource.get("status")
            if isinstance(resource, Mapping)
            else getattr(resource, "status", None)
        )
        key = key_of(self._repository._core, resource)
        _, stored = await self._core.write_status(key, {} if status is None else status)
        return stored

    async def set_finalizer(self, resource: Any, name: str, present: bool) -> Any:
        """Add (``present``) or remove the finalizer ``name`` on the stored resource
        (compare-and-swap, re-reading on conflicts); removing the last one of a resource being
        deleted deletes it. Returns the stored resource, or ``None`` if it is gone."""
        key = key_of(self._repository._core, resource)
        _, stored = await self._core.set_finalizer(key, name, present)
        return stored

    def stats(self) -> ControllerStats:
        """What this controller did (counts since ``run()`` began)."""
        native = self._core.stats()
        return ControllerStats(
            reconciles=self._reconciles,
            errors=self._errors,
            done=native["done"],
            requeues=native["requeues"],
            retries=native["retries"],
            terminal=native["terminal"],
            queue_depth=native["queue_depth"],
            initial_depth=native["initial_depth"],
            in_flight=self._in_flight,
            changes=native["changes"],
            filtered=native["filtered"],
            gone=native["gone"],
            skipped=self._skipped,
            relists=native["relists"],
            cache_timeouts=native["cache_timeouts"],
            related=native["related"],
            collected=sum(c.collected for c in self._collectors),
            running=self._running,
            synced=self._running and self._synced,
            not_mine=native["not_mine"],
            shards=None if self._shards is None else sorted(self._shards.held),
            since_last_event=native["since_last_event"],
            last_error=self._last_error,
        )

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def wait_for(self, condition: Callable[[ControllerStats], bool]) -> ControllerStats:
        """Wait until ``condition(stats())`` holds, checked now and after each reconcile (and
        when ``run()`` ends); bound it with ``asyncio.timeout``."""
        changed = self._condition()
        self._waiting += 1
        try:
            async with changed:
                await changed.wait_for(lambda: condition(self.stats()))
        finally:
            self._waiting -= 1
        return self.stats()

    def _changed_soon(self) -> None:
        """Wake ``wait_for`` from synchronous code (a shard taken or given back)."""
        if self._waiting:
            task = asyncio.get_running_loop().create_task(self._notify())
            self._notices.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self._notices.discard)

    async def _notify(self) -> None:
        if not self._waiting:  # the usual case: no lock taken per reconcile
            return
        changed = self._condition()
        async with changed:
            changed.notify_all()

    async def run(self) -> None:
        """Reconcile until cancelled. On cancellation, stops taking keys and lets the
        reconciles in flight finish (up to ``drain_timeout`` seconds, then cancels them) before
        raising ``CancelledError``. Raises what stopped the feed of changes (``ClosedError``
        once the client is closed), after the same drain."""
        if self._running:
            raise RuntimeError("this controller is running already")
        core = _core.ControllerCore(self._repository._core, **self._options)
        self._core = core
        self._running = True
        self._reconciles = self._errors = self._skipped = 0
        self._last_error = None
        self._feed_error = None
        self._synced = False
        executor = None if self._async else ThreadPoolExecutor(self._sync_workers, "etcd-reconcile")
        tasks: set[asyncio.Task[None]] = set()
        followers, deletions = self._feeds()
        streams: list[Follower | ChangeFilter | OwnerDeletions] = [*followers, *deletions]
        feeds: list[asyncio.Task[None]] = []
        sharing: asyncio.Task[None] | None = None
        self._share(core)
        try:
            self._metrics.arm()
            # Opened before the listing: a related change made meanwhile is not missed.
            for feed in streams:
                await feed.open()
            await core.start()
            self._synced = True
            for follower in followers:
                feeds.append(
                    self._start_feed(core, follower, functools.partial(follower.run, core.trigger))
                )
            for deletion in deletions:
                feeds.append(self._start_feed(core, deletion, deletion.run))
            if self._shards is not None:
                sharing = self._start_feed(core, None, self._shards.run)
            await self._notify()  # `running`, with the listing queued
            while True:
                try:
                    batch = await core.next_batch()
                except ClosedError:
                    if self._feed_error is not None:
                        raise self._feed_error from None
                    raise
                for work in batch:
                    task = asyncio.create_task(self._run_one(core, executor, work))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    self._track(work[0], task)
        finally:
            core.stop()
            for feed_task in feeds:
                feed_task.cancel()
            if sharing is not None:
                sharing.cancel()
            for feed in streams:
                feed.close()
            await self._drain(tasks)
            if self._shards is not None:
                await self._shards.close()  # hand the shards back once nothing runs
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)
            self._running = False
            await self._notify()

    def _share(self, core: _core.ControllerCore) -> None:
        """With ``sharding``: hold no shard until the sharing (started by ``run()``) says."""
        config = self._sharding
        self._shards = None
        if config is None:
            return
        count = config.shards
        core.set_shards(count, [])

        def hold(held: frozenset[int]) -> None:
            core.set_shards(count, sorted(held))
            self._changed_soon()

        def running_in(shards: frozenset[int]) -> list[asyncio.Task[None]]:
            return [t for k, t in self._by_key.items() if _core.shard_of(k, count) in shards]

        async def release(shards: frozenset[int]) -> None:
            # Given back to another replica: let what runs finish (up to drain_timeout).
            await self._drain(set(running_in(shards)))

        def lose() -> None:
            # The lease is lost (or about to be on etcd's side): stop now.
            core.set_shards(count, [])
            self._abort()
            self._changed_soon()

        self._shards = Shards(
            self._repository.client, self._name, config, hold=hold, release=release, lose=lose
        )

    def _abort(self) -> None:
        """Cancel the reconciles in flight now (sync ones are signalled; ``run()`` still waits
        for their threads): for a replica that lost the right to run them. Cancel ``run()``
        with it, or the queue hands their keys out again."""
        for task in list(self._by_key.values()):
            task.cancel()

    def _track(self, key: str, task: asyncio.Task[None]) -> None:
        """Remember which task runs ``key`` (one at a time), to stop it with its shard."""
        self._by_key[key] = task

        def untrack(_: asyncio.Task[None]) -> None:
            if self._by_key.get(key) is task:
                del self._by_key[key]

        task.add_done_callback(untrack)

    def _feeds(self) -> tuple[list[Follower | ChangeFilter], list[OwnerDeletions]]:
        """The feeds that trigger keys (related repositories, predicate functions), and of
        owner deletions (collect=True)."""
        self._collectors = []
        followers: list[Follower | ChangeFilter] = []
        if self._functions:
            followers.append(ChangeFilter(self._repository, self._functions))
        for relation in self._relations:
            collector = None
            if relation.mapper is None and self._collect:
                collector = Collector(
                    self._repository._core.as_dicts(),
                    relation.repository._core.as_dicts(),
                    self._notify,
                )
                self._collectors.append(collector)
            followers.append(Follower(relation, self._repository, collector))
        deletions = [OwnerDeletions(self._repository, self._collectors)] if self._collectors else []
        return followers, deletions

    def _start_feed(
        self,
        core: _core.ControllerCore,
        feed: Follower | ChangeFilter | OwnerDeletions | None,
        run: Callable[[], Awaitable[None]],
    ) -> asyncio.Task[None]:
        """Run a feed (``run()``: until it fails). Fallen behind, it is reopened from now and
        every key queued again, as the Rust feed relists; any other failure stops the queue,
        and ``run()`` raises it."""

        async def guarded() -> None:
            while True:
                try:
                    await run()
                    return
                except asyncio.CancelledError:
                    raise
                except BaseException as exc:
                    if isinstance(exc, WatchFellBehindError) and feed is not None:
                        log.warning(
                            "a feed of %s fell behind (%s): all keys queued again", self, exc
                        )
                        await feed.reopen()
                        core.relist()
                        continue
                    log.error("a feed of related resources failed: %r", exc)
                    self._feed_error = exc
                    core.stop()
                    return

        return asyncio.create_task(guarded())

    async def _drain(self, tasks: set[asyncio.Task[None]]) -> None:
        if not tasks:
            return
        _, late = await asyncio.wait(set(tasks), timeout=self._drain_timeout)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)

    async def _outcome(
        self, core: _core.ControllerCore, executor: ThreadPoolExecutor | None, work: _Work
    ) -> Action:
        """Run the reconcile (and record it); what to tell the queue."""
        key, resource, _failures, _priority, error, _waited = work
        try:
            if error is not None:
                raise error
            if self._when is not None and not self._when(resource):
                return _SKIPPED
            action = await calling.call(self._reconcile, executor, resource)
        except Exception as exc:
            log.warning("reconcile of %s failed: %r", key, exc, exc_info=exc)
            action = Action.retry(exc)
        if self._record_status:
            action = await calling.record(core, key, resource, action)
        return self._timer(action)

    def _timer(self, action: Action) -> Action:
        """``every``: a success runs again after it at the latest."""
        every = self._every
        if every is None or action.failed:
            return action
        if action.kind == "done" or (action.after is not None and action.after > every):
            return Action.requeue_after(every)
        return action

    async def _settle(
        self, core: _core.ControllerCore, executor: ThreadPoolExecutor | None, work: _Work
    ) -> Action:
        """Run the reconcile and tell the queue how it ended (cancelled: run it again)."""
        key = work[0]
        self._in_flight += 1
        outcome: Action | None = None
        try:
            outcome = await self._outcome(core, executor, work)
        finally:
            self._in_flight -= 1
            if outcome is None:  # cancelled mid-way (a drain that timed out): run it again
                core.finish(key, "retry", 0.0)
            else:
                core.finish(key, outcome.kind, outcome.after)
        return outcome

    async def _run_one(
        self, core: _core.ControllerCore, executor: ThreadPoolExecutor | None, work: _Work
    ) -> None:
        key, _resource, failures, priority, _error, waited = work
        if self._shards is not None:
            fence = self._shards.fence(_core.shard_of(key, self._shards.count))
            if fence is None:  # its shard was lost since the queue handed it out
                core.finish(key, "done")
                return
            FENCE.set(fence)  # this task's writes commit only while the shard is held
        self._metrics.waited(waited)
        started = time.perf_counter()
        if self._metrics.tracing:
            with self._metrics.span(key, "retry" if failures else priority) as finished:
                outcome = await self._settle(core, executor, work)
                finished(outcome.kind)
        else:  # the usual case: no span, no context manager per run
            outcome = await self._settle(core, executor, work)
        if outcome is _SKIPPED:
            self._skipped += 1
        else:
            self._reconciles += 1
            self._metrics.reconciled(outcome.kind, time.perf_counter() - started)
        if outcome.failed:
            self._errors += 1
            self._last_error = f"{key}: {outcome.error!r}"
        if self._waiting:  # the usual case has no one in wait_for(): no coroutine made
            await self._notify()
