"""What the controller runtime writes: the Reconciled condition and observed_generation,
finalizers, statuses; each a compare-and-swap that re-reads on conflicts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from etcd_resources import (
    EtcdClient,
    EtcdLabWorkerResourceRepository,
    LabWorker,
    ResourceRepository,
    thaw,
)
from etcd_resources.controller import Action, Controller, ControllerStats, finalizer

from .helpers import doc

WAIT = 30.0
FINALIZER = "labs.example.com/cleanup"


@asynccontextmanager
async def running(controller: Controller) -> AsyncIterator[None]:
    task = asyncio.ensure_future(controller.run())
    try:
        yield
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def until(
    controller: Controller, condition: Callable[[ControllerStats], bool]
) -> ControllerStats:
    async with asyncio.timeout(WAIT):
        return await controller.wait_for(condition)


def reconciled(resource: Any) -> dict[str, Any]:
    [condition] = [c for c in resource["status"]["conditions"] if c["type"] == "Reconciled"]
    return dict(condition)


async def test_record_status_sets_observed_generation_and_the_condition(
    client: EtcdClient, prefix: str
) -> None:
    repo = ResourceRepository(client, prefix)
    await repo.add_async(doc("a", ok=True))
    calls = 0

    async def reconcile(resource: Any) -> Action:
        nonlocal calls
        calls += 1
        if resource["spec"]["ok"]:
            return Action.done()
        return Action.retry(RuntimeError("cloud says no"), after=60)

    controller = Controller(repo, reconcile, record_status=True)
    async with running(controller):
        await until(controller, lambda s: s["done"] >= 1)
        a = await repo.get_async("a")
        assert a["status"]["observed_generation"] == a["metadata"]["generation"]
        ok = reconciled(a)
        assert (ok["status"], ok["reason"], ok["message"]) == ("True", "Reconciled", None)
        edited = thaw(a)
        edited["spec"]["ok"] = False
        await repo.update_async(edited)
        await until(controller, lambda s: s["retries"] >= 1)
        failed = await repo.get_async("a")
        assert failed["status"]["observed_generation"] == a["metadata"]["generation"], (
            "a failure observes nothing"
        )
        bad = reconciled(failed)
        assert (bad["status"], bad["reason"], bad["message"]) == (
            "False",
            "Retrying",
            "cloud says no",
        )
        assert bad["last_transition"] != ok["last_transition"]
        fixed = thaw(failed)
        fixed["spec"]["ok"] = True
        await repo.update_async(fixed)
        stats = await until(controller, lambda s: s["done"] >= 2)
    # The feed saw this spec edit, so the two status writes before it too: held back, none
    # of them ran a reconcile.
    assert stats["filtered"] >= 2
    assert calls == 3 and stats["reconciles"] == 3


async def test_recorded_conditions_fit_the_services_classes(
    client: EtcdClient, prefix: str
) -> None:
    workers = EtcdLabWorkerResourceRepository(client, prefix, cache=True)
    await workers.add_async(LabWorker.create("w1", "ccna"))

    async def reconcile(worker: LabWorker) -> Action:
        return Action.done()

    controller = Controller(workers, reconcile, record_status=True)
    async with running(controller):
        await until(controller, lambda s: s["done"] >= 1)
    w1 = await workers.get_async("w1")
    assert isinstance(w1, LabWorker)
    assert w1.status.observed_generation == w1.metadata.generation
    [condition] = w1.status.conditions
    assert (condition.type, condition.status, condition.reason) == (
        "Reconciled",
        "True",
        "Reconciled",
    )


async def test_finalizer_guards_deletion_until_cleanup_succeeds(
    client: EtcdClient, prefix: str
) -> None:
    repo = ResourceRepository(client, prefix)
    await repo.add_async(doc("a"))
    log: list[tuple[str, list[str]]] = []
    cleanups = 0

    async def apply(resource: Any) -> Action:
        log.append(("apply", list(resource["metadata"].get("finalizers") or [])))
        return Action.done()

    async def cleanup(resource: Any) -> Action:
        nonlocal cleanups
        cleanups += 1
        log.append(("cleanup", list(resource["metadata"]["finalizers"])))
        return Action.retry("cloud still deleting", after=0) if cleanups == 1 else Action.done()

    async def reconcile(resource: Any) -> Action:
        return await finalizer(controller, FINALIZER, resource, apply=apply, cleanup=cleanup)

    controller = Controller(repo, reconcile)
    async with running(controller):
        await until(controller, lambda s: s["done"] >= 1)
        assert (await repo.get_async("a"))["metadata"]["finalizers"] == [FINALIZER]
        await repo.remove_async("a")
        assert (await repo.get_async("a"))["metadata"]["deletion_timestamp"] is not None, "held"
        await until(controller, lambda s: s["done"] >= 2)
        assert await repo.get_async("a") is None, "gone once cleanup succeeded"
    assert log == [("apply", [FINALIZER]), ("cleanup", [FINALIZER]), ("cleanup", [FINALIZER])]


async def test_write_status_keeps_a_spec_edit_made_meanwhile(
    client: EtcdClient, prefix: str
) -> None:
    repo = ResourceRepository(client, prefix)
    await repo.add_async(doc("a", size=1))
    edited_meanwhile = asyncio.Event()

    async def reconcile(resource: Any) -> Action:
        mine = thaw(resource)
        mine["status"]["phase"] = "Ready"
        if not edited_meanwhile.is_set():  # someone edits the spec during the reconcile
            other = thaw(await repo.get_async("a"))
            other["spec"]["size"] = 2
            await repo.update_async(other)
            edited_meanwhile.set()
        stored = await controller.write_status(mine)  # its resource_version is stale: re-read
        assert stored["status"]["phase"] == "Ready"
        return Action.done()

    controller = Controller(repo, reconcile)
    async with running(controller):
        await until(controller, lambda s: s["done"] >= 2)  # the spec edit runs it once more
    a = await repo.get_async("a")
    assert (a["spec"]["size"], a["status"]["phase"]) == (2, "Ready")
