"""The controller runtime: a reconciler run by the native queue, on etcd and on memory://.
Tests wait on ``Controller.wait_for`` (woken after each reconcile), never on sleeps."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from etcd_resources import (
    ClosedError,
    EtcdClient,
    EtcdLabWorkerResourceRepository,
    InvalidArgumentError,
    LabWorker,
    LabWorkerPhase,
    ResourceRepository,
    thaw,
)
from etcd_resources.controller import Action, Controller, ControllerStats, stopping

from .helpers import doc

WAIT = 30.0


def name_of(resource: Any) -> str:
    return str(resource["metadata"]["name"])


@asynccontextmanager
async def running(controller: Controller) -> AsyncIterator[asyncio.Task[None]]:
    """Run the controller for the block; then cancel it and check it ended as cancelled."""
    task = asyncio.ensure_future(controller.run())
    try:
        yield task
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert controller.stats()["in_flight"] == 0


async def until(
    controller: Controller, condition: Callable[[ControllerStats], bool]
) -> ControllerStats:
    async with asyncio.timeout(WAIT):
        return await controller.wait_for(condition)


def reached(field: str, n: int) -> Callable[[ControllerStats], bool]:
    return lambda s: s[field] >= n  # type: ignore[literal-required, operator]


async def test_reconciles_the_listing_then_spec_changes_not_status_writes(
    client: EtcdClient, prefix: str
) -> None:
    repo = ResourceRepository(client, prefix)
    for name in ("a", "b", "c"):
        await repo.add_async(doc(name, n=0))
    seen: list[tuple[str, int]] = []

    async def reconcile(resource: Any) -> Action:
        seen.append((name_of(resource), resource["spec"]["n"]))
        return Action.done()

    controller = Controller(repo, reconcile)
    async with running(controller):
        await until(controller, reached("reconciles", 3))
        assert sorted(seen) == [("a", 0), ("b", 0), ("c", 0)]
        a = thaw(await repo.get_async("a"))
        a["status"]["phase"] = "Ready"  # status only: no reconcile
        a = await repo.update_async(a)
        a = thaw(a)
        a["spec"]["n"] = 1
        await repo.update_async(a)
        stats = await until(controller, reached("reconciles", 4))
        assert seen[3] == ("a", 1)
        assert (stats["filtered"], stats["changes"], stats["errors"]) == (1, 1, 0)
        await repo.add_async(doc("d", n=5))
        await until(controller, reached("reconciles", 5))
        assert seen[4] == ("d", 5)


async def test_a_reconciler_reads_its_own_writes_in_a_tight_loop(
    client: EtcdClient, prefix: str
) -> None:
    repo = ResourceRepository(client, prefix)
    for name in ("a", "b", "c"):
        await repo.add_async(doc(name))
    written: dict[str, int] = {}
    stale: list[tuple[str, int, int]] = []

    async def reconcile(resource: Any) -> Action:
        name = name_of(resource)
        count = resource["status"].get("count", 0)
        if count != written.get(name, 0):
            stale.append((name, count, written[name]))
        if count >= 40:
            return Action.done()
        updated = thaw(resource)
        updated["status"]["count"] = count + 1
        await controller.repository.update_async(updated)  # a status write: no trigger
        written[name] = count + 1
        return Action.requeue_after(0)

    controller = Controller(repo, reconcile)
    async with running(controller):
        stats = await until(controller, reached("done", 3))
    assert stale == [], "a reconcile saw the state its own last write replaced"
    assert written == {"a": 40, "b": 40, "c": 40}
    assert stats["requeues"] == 120 and stats["reconciles"] == 123


async def test_requested_delays_are_kept_errors_too(client: EtcdClient, prefix: str) -> None:
    repo = ResourceRepository(client, prefix)
    await repo.add_async(doc("a"))
    runs: list[float] = []

    async def reconcile(resource: Any) -> Action:
        runs.append(time.monotonic())
        if len(runs) == 1:
            return Action.retry(RuntimeError("cloud busy"), after=0.3)
        if len(runs) == 2:
            return Action.requeue_after(0.2)
        return Action.done()

    # A backoff far shorter than the delay asked for: the delay wins.
    controller = Controller(repo, reconcile, backoff_base=0.001)
    async with running(controller):
        stats = await until(controller, reached("reconciles", 3))
    assert runs[1] - runs[0] >= 0.3
    assert runs[2] - runs[1] >= 0.2
    assert (stats["retries"], stats["requeues"], stats["done"], stats["errors"]) == (1, 1, 1, 1)
    assert stats["last_error"] is not None and "cloud busy" in stats["last_error"]


async def test_exceptions_back_off_then_success_resets(client: EtcdClient, prefix: str) -> None:
    repo = ResourceRepository(client, prefix)
    await repo.add_async(doc("a"))
    runs: list[float] = []

    async def reconcile(resource: Any) -> Action:
        runs.append(time.monotonic())
        if len(runs) <= 4:
            raise ConnectionError(f"attempt {len(runs)}")
        return Action.done()

    controller = Controller(repo, reconcile, backoff_base=0.05)
    async with running(controller):
        stats = await until(controller, reached("done", 1))
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    # Equal jitter: at least half of 50, 100, 200, 400 ms.
    for gap, ceiling in zip(gaps, [0.05, 0.1, 0.2, 0.4], strict=True):
        assert gap >= ceiling / 2, gaps
    assert (stats["errors"], stats["retries"], stats["reconciles"]) == (4, 4, 5)
    assert stats["last_error"] is not None and "attempt 4" in stats["last_error"]


async def test_terminal_waits_for_the_next_change(client: EtcdClient, prefix: str) -> None:
    repo = ResourceRepository(client, prefix)
    await repo.add_async(doc("a", ok=False))
    seen: list[bool] = []

    async def reconcile(resource: Any) -> Action:
        seen.append(resource["spec"]["ok"])
        return Action.done() if resource["spec"]["ok"] else Action.terminal("spec.ok is false")

    controller = Controller(repo, reconcile, backoff_base=0.001)
    async with running(controller):
        await until(controller, reached("terminal", 1))
        a = thaw(await repo.get_async("a"))
        a["spec"]["ok"] = True
        await repo.update_async(a)
        stats = await until(controller, reached("done", 1))
    assert seen == [False, True], "a terminal key is not retried"
    assert (stats["terminal"], stats["errors"]) == (1, 1)


async def test_one_run_per_key_and_bounded_concurrency(client: EtcdClient, prefix: str) -> None:
    repo = ResourceRepository(client, prefix)
    for i in range(12):
        await repo.add_async(doc(f"k{i:02}", n=0))
    running_keys: dict[str, int] = defaultdict(int)
    most = {"all": 0, "key": 0}
    full = asyncio.Event()

    async def reconcile(resource: Any) -> Action:
        name = name_of(resource)
        running_keys[name] += 1
        now = sum(running_keys.values())
        most["all"] = max(most["all"], now)
        most["key"] = max(most["key"], running_keys[name])
        if now == 3:
            full.set()
        await full.wait()
        if resource["spec"]["n"] < 3:  # a spec change while it runs: pending, not parallel
            changed = thaw(resource)
            changed["spec"]["n"] += 1
            await repo.update_async(changed)
        running_keys[name] -= 1
        return Action.done()

    controller = Controller(repo, reconcile, max_concurrency=3)
    async with running(controller):
        stats = await until(controller, lambda s: s["reconciles"] >= 48 and s["queue_depth"] == 0)
    assert most == {"all": 3, "key": 1}
    assert stats["reconciles"] == 48  # 12 keys, each listed then changed 3 times


async def test_sync_reconcilers_run_in_the_thread_pool(client: EtcdClient, prefix: str) -> None:
    repo = ResourceRepository(client, prefix)
    for name in ("a", "b", "c", "d"):
        await repo.add_async(doc(name))
    threads: set[int] = set()

    def reconcile(resource: Any) -> Action:
        threads.add(threading.get_ident())
        return Action.done()

    controller = Controller(repo, reconcile, sync_workers=2)
    async with running(controller):
        await until(controller, reached("done", 4))
    assert threads and threading.get_ident() not in threads
    assert len(threads) <= 2


async def test_a_drain_that_times_out_signals_sync_reconcilers_and_waits_for_them(
    client: EtcdClient, prefix: str
) -> None:
    """A thread cannot be cancelled: past ``drain_timeout`` its reconcile's ``stopping()`` is
    set, and ``run()`` ends only once the thread has returned."""
    repo = ResourceRepository(client, prefix)
    await repo.add_async(doc("a"))
    started = threading.Event()
    returned = threading.Event()

    def reconcile(resource: Any) -> Action:
        started.set()
        signalled = stopping().wait(WAIT)
        returned.set()
        return Action.retry("stopped") if signalled else Action.done()

    controller = Controller(repo, reconcile, drain_timeout=0.05)
    task = asyncio.ensure_future(controller.run())
    await asyncio.get_running_loop().run_in_executor(None, started.wait, WAIT)
    assert not returned.is_set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)
    assert returned.is_set(), "run() ended while a reconcile's thread still ran"
    assert controller.stats()["in_flight"] == 0


async def test_stopping_is_for_reconciles_and_cancels_async_ones_too(
    client: EtcdClient, prefix: str
) -> None:
    with pytest.raises(RuntimeError, match="inside a reconcile"):
        stopping()
    repo = ResourceRepository(client, prefix)
    await repo.add_async(doc("a"))
    seen: list[threading.Event] = []
    started = asyncio.Event()

    async def reconcile(resource: Any) -> Action:
        seen.append(stopping())
        started.set()
        await asyncio.Event().wait()  # until cancelled
        return Action.done()

    controller = Controller(repo, reconcile, drain_timeout=0.0)
    task = asyncio.ensure_future(controller.run())
    await asyncio.wait_for(started.wait(), WAIT)
    assert not seen[0].is_set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)
    assert seen[0].is_set(), "a cancelled async reconcile's signal is set too"


async def test_cancelling_run_lets_reconciles_in_flight_finish(
    client: EtcdClient, prefix: str
) -> None:
    repo = ResourceRepository(client, prefix)
    await repo.add_async(doc("a"))
    started = asyncio.Event()
    release = asyncio.Event()

    async def reconcile(resource: Any) -> Action:
        started.set()
        await release.wait()
        first = thaw(resource)
        first["status"]["step"] = 1
        second = thaw(await repo.update_async(first))
        second["status"]["step"] = 2
        await repo.update_async(second)
        return Action.done()

    controller = Controller(repo, reconcile)
    task = asyncio.ensure_future(controller.run())
    await asyncio.wait_for(started.wait(), WAIT)
    task.cancel()
    await asyncio.sleep(0)  # let the cancellation reach run(): it now drains
    assert not task.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await repo.get_async("a"))["status"]["step"] == 2
    stats = controller.stats()
    assert (stats["reconciles"], stats["in_flight"], stats["running"]) == (1, 0, False)


async def test_a_closed_client_ends_run_with_an_error(
    store_kind: str, etcd_endpoints: list[str], prefix: str
) -> None:
    client = EtcdClient(etcd_endpoints if store_kind == "etcd" else "memory://")
    repo = ResourceRepository(client, prefix)
    await repo.add_async(doc("a"))

    async def reconcile(resource: Any) -> Action:
        return Action.done()

    controller = Controller(repo, reconcile)
    task = asyncio.ensure_future(controller.run())
    await until(controller, reached("done", 1))
    client.close()
    with pytest.raises(ClosedError):
        await asyncio.wait_for(task, WAIT)


async def test_a_reconciler_that_returns_no_action_is_an_error(
    client: EtcdClient, prefix: str
) -> None:
    repo = ResourceRepository(client, prefix)
    await repo.add_async(doc("a"))
    calls = 0

    async def reconcile(resource: Any) -> Any:
        nonlocal calls
        calls += 1
        return None if calls == 1 else Action.done()

    controller = Controller(repo, reconcile, backoff_base=0.001)
    async with running(controller):
        stats = await until(controller, reached("done", 1))
    assert stats["errors"] == 1
    assert stats["last_error"] is not None and "not an Action" in stats["last_error"]


async def test_typed_repositories_hand_their_own_class(client: EtcdClient, prefix: str) -> None:
    workers = EtcdLabWorkerResourceRepository(client, prefix, cache=True)
    await workers.add_async(LabWorker.create("w1", "ccna"))
    seen: list[Any] = []

    async def reconcile(worker: LabWorker) -> Action:
        seen.append(worker)
        return Action.done()

    controller = Controller(workers, reconcile)
    async with running(controller):
        await until(controller, reached("done", 1))
    assert isinstance(seen[0], LabWorker) and seen[0].metadata.name == "w1"


async def test_a_predicate_function_sees_old_and_new_and_triggers_what_it_passes(
    client: EtcdClient, prefix: str
) -> None:
    """``predicates=["generation", fn]``: a status-only write triggers only when
    ``fn(old, new)`` says so, and the run reads the state that passed."""
    repo = ResourceRepository(client, prefix)
    await repo.add_async(doc("a", n=0))
    compared: list[tuple[Any, Any]] = []

    def became_ready(old: Any, new: Any) -> bool:
        compared.append((old["status"].get("phase"), new["status"].get("phase")))
        return old["status"].get("phase") != "Ready" and new["status"].get("phase") == "Ready"

    runs: list[tuple[Any, int]] = []

    async def reconcile(resource: Any) -> Action:
        runs.append((resource["status"].get("phase"), resource["spec"]["n"]))
        return Action.done()

    controller = Controller(repo, reconcile, predicates=["generation", became_ready])
    async with running(controller):
        await until(controller, reached("reconciles", 1))
        a = thaw(await repo.get_async("a"))
        for phase in ("Starting", "Ready"):  # only the second passes
            a["status"]["phase"] = phase
            a = thaw(await repo.update_async(a))
        await until(controller, reached("reconciles", 2))
        a["spec"]["n"] = 1  # the named predicate passes this one
        await repo.update_async(a)
        await until(controller, reached("reconciles", 3))
    assert runs == [(None, 0), ("Ready", 0), ("Ready", 1)]
    assert compared[:2] == [(None, "Starting"), ("Starting", "Ready")]


async def test_a_predicate_function_gets_the_repositorys_class(
    client: EtcdClient, prefix: str
) -> None:
    workers = EtcdLabWorkerResourceRepository(client, prefix, cache=True)
    await workers.add_async(LabWorker.create("w1", "ccna"))
    compared: list[tuple[Any, Any]] = []

    def phase_changed(old: LabWorker, new: LabWorker) -> bool:
        compared.append((old, new))
        return old.status.phase != new.status.phase

    async def reconcile(worker: LabWorker) -> Action:
        return Action.done()

    controller = Controller(workers, reconcile, predicates=[phase_changed])
    async with running(controller):
        await until(controller, reached("reconciles", 1))
        worker = await workers.get_async("w1")
        assert worker is not None
        worker.status.phase = LabWorkerPhase.READY
        await workers.update_async(worker)
        await until(controller, reached("reconciles", 2))
    old, new = compared[0]
    assert isinstance(old, LabWorker) and isinstance(new, LabWorker)
    assert (old.status.phase.value, new.status.phase.value) == ("Pending", "Ready")


def test_predicates_are_names_or_functions(client: EtcdClient, prefix: str) -> None:
    repo = ResourceRepository(client, prefix)
    with pytest.raises(TypeError, match="a name or a function"):
        Controller(repo, settle_sync, predicates=[42])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="takes a list"):
        Controller(repo, settle_sync, predicates="generation")


def settle_sync(resource: Any) -> Action:
    return Action.done()


async def test_label_predicate(client: EtcdClient, prefix: str) -> None:
    repo = ResourceRepository(client, prefix)
    await repo.add_async(doc("a"))
    seen: list[dict[str, Any]] = []

    async def reconcile(resource: Any) -> Action:
        seen.append(thaw(resource["metadata"].get("labels") or {}))
        return Action.done()

    controller = Controller(repo, reconcile, predicates=["labels"])
    async with running(controller):
        await until(controller, reached("done", 1))
        a = thaw(await repo.get_async("a"))
        a["spec"]["x"] = 1  # a spec change: not a label change
        a = thaw(await repo.update_async(a))
        a["metadata"]["labels"] = {"tier": "gold"}
        await repo.update_async(a)
        stats = await until(controller, reached("done", 2))
    assert seen == [{}, {"tier": "gold"}]
    assert stats["filtered"] == 1


def test_options_and_actions_are_checked() -> None:
    client = EtcdClient("memory://")
    repo = ResourceRepository(client, "/checked/")

    async def reconcile(resource: Any) -> Action:
        return Action.done()

    with pytest.raises(InvalidArgumentError, match="unknown predicate"):
        Controller(repo, reconcile, predicates=["spec"])
    with pytest.raises(InvalidArgumentError, match="max_concurrency"):
        Controller(repo, reconcile, max_concurrency=0)
    with pytest.raises(InvalidArgumentError, match="debounce"):
        Controller(repo, reconcile, debounce=-1)
    with pytest.raises(InvalidArgumentError):
        Action.requeue_after(float("nan"))
    with pytest.raises(InvalidArgumentError):
        Action.retry("x", after=-0.5)
    assert Action.retry("x").after is None and Action.terminal("why").failed
    shown = repr(Controller(repo, reconcile))
    assert shown.startswith("Controller(prefix='/checked/', reconcile=test_options")
    assert shown.endswith(".<locals>.reconcile, stopped)")
    client.close()


async def test_when_filters_resources(client: EtcdClient, prefix: str) -> None:
    repo = ResourceRepository(client, prefix)
    for name, track in (("a", "ccna"), ("b", "ccnp"), ("c", "ccna")):
        await repo.add_async(doc(name, track=track))
    seen: list[str] = []

    async def reconcile(resource: Any) -> Action:
        seen.append(name_of(resource))
        return Action.done()

    controller = Controller(repo, reconcile, when=lambda r: r["spec"]["track"] == "ccna")
    async with running(controller):
        stats = await until(controller, lambda s: s["reconciles"] + s["skipped"] >= 3)
    assert sorted(seen) == ["a", "c"]
    assert (stats["skipped"], stats["reconciles"]) == (1, 2)


async def test_run_twice_at_once_is_refused(client: EtcdClient, prefix: str) -> None:
    repo = ResourceRepository(client, prefix)

    async def reconcile(resource: Any) -> Action:
        return Action.done()

    controller = Controller(repo, reconcile)
    async with running(controller) as task:
        await until(controller, lambda s: s["running"])
        with pytest.raises(RuntimeError, match="running already"):
            await controller.run()
        assert not task.done()


async def test_a_drain_that_times_out_cancels_and_releases_the_key(
    client: EtcdClient, prefix: str
) -> None:
    repo = ResourceRepository(client, prefix)
    await repo.add_async(doc("a"))
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def reconcile(resource: Any) -> Action:
        started.set()
        try:
            await asyncio.Event().wait()  # never finishes by itself
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return Action.done()

    controller = Controller(repo, reconcile, drain_timeout=0.1)
    async with running(controller):
        async with asyncio.timeout(WAIT):
            await started.wait()
    assert cancelled.is_set()
    stats = controller.stats()
    assert (stats["in_flight"], stats["reconciles"], stats["retries"]) == (0, 0, 1)


async def test_a_field_predicate_triggers_on_its_path(client: EtcdClient, prefix: str) -> None:
    repo = ResourceRepository(client, prefix)
    await repo.add_async({"metadata": {"name": "a"}, "spec": {}, "status": {"phase": "Pending"}})
    phases: list[str] = []

    async def reconcile(resource: Any) -> Action:
        phases.append(resource["status"]["phase"])
        return Action.done()

    controller = Controller(repo, reconcile, predicates=["generation", "field:status.phase"])
    async with running(controller):
        await until(controller, reached("done", 1))
        a = thaw(await repo.get_async("a"))
        a["status"]["heartbeat"] = 1  # another status field: nothing
        a = thaw(await repo.update_async(a))
        a["status"]["phase"] = "Ready"
        await repo.update_async(a)
        stats = await until(controller, reached("done", 2))
    assert phases == ["Pending", "Ready"]
    assert stats["filtered"] == 1


async def test_debounce_runs_once_after_a_burst(client: EtcdClient, prefix: str) -> None:
    repo = ResourceRepository(client, prefix)
    await repo.add_async(doc("a", n=0))
    seen: list[int] = []

    async def reconcile(resource: Any) -> Action:
        seen.append(resource["spec"]["n"])
        return Action.done()

    async def edit(n: int) -> None:
        a = thaw(await repo.get_async("a"))
        a["spec"]["n"] = n
        await repo.update_async(a)

    # A second is far longer than two writes take, even on a busy machine.
    controller = Controller(repo, reconcile, debounce=1.0)
    async with running(controller):
        await until(controller, reached("done", 1))  # the listing is not debounced
        for n in (1, 2, 3):
            await edit(n)
        await until(controller, reached("done", 2))
        await edit(4)
        stats = await until(controller, reached("done", 3))
    assert seen == [0, 3, 4], "the burst ran once, with its last state"
    assert stats["changes"] == 4
