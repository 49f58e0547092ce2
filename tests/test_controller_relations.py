"""Related resources: ``owns=`` (owner references, cascading deletion) and ``watches=``
(a mapper), on etcd and on memory://. Tests wait on ``Controller.wait_for``, never on sleeps."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from etcd_resources import (
    ConflictError,
    EtcdClient,
    InvalidArgumentError,
    ResourceRepository,
    thaw,
)
from etcd_resources.controller import Action, Controller, owner_reference, relations
from etcd_resources.controller.collector import Collector

from .test_controller import WAIT, doc, name_of, reached, running, until


def lab(name: str) -> dict[str, Any]:
    return {"kind": "Lab", **doc(name, seats=1)}


def seat(name: str, *owners: Any) -> dict[str, Any]:
    return {
        "kind": "Seat",
        "metadata": {"name": name, "owner_references": [owner_reference(o) for o in owners]},
        "spec": {},
        "status": {},
    }


async def settle(resource: Any) -> Action:
    return Action.done()


def labs_and_seats(
    client: EtcdClient, prefix: str, *, cached: bool = False
) -> tuple[ResourceRepository, ResourceRepository]:
    return ResourceRepository(client, prefix + "labs/"), ResourceRepository(
        client, prefix + "seats/", cache=cached
    )


@asynccontextmanager
async def collecting(
    labs: ResourceRepository, seats: ResourceRepository, listed: int
) -> AsyncIterator[Controller]:
    """A controller of ``labs`` owning ``seats``, running, past its ``listed`` first runs."""
    controller = Controller(labs, settle, owns=seats)
    async with running(controller):
        await until(controller, reached("reconciles", listed))
        yield controller


async def names(repository: ResourceRepository) -> set[str]:
    return {name_of(r) for r in await repository.list_async()}


async def test_an_owned_change_reconciles_its_owner_and_the_run_sees_it(
    client: EtcdClient, prefix: str
) -> None:
    labs, seats = labs_and_seats(client, prefix, cached=True)
    seen: dict[str, list[int]] = defaultdict(list)

    async def reconcile(resource: Any) -> Action:
        name = name_of(resource)
        owned = [
            s
            for s in await seats.list_async()
            if any(r["name"] == name for r in s["metadata"].get("owner_references", []))
        ]
        seen[name].append(len(owned))
        return Action.done()

    lab1 = await labs.add_async(lab("lab1"))
    lab2 = await labs.add_async(lab("lab2"))
    controller = Controller(labs, reconcile, owns=seats)
    async with running(controller):
        await until(controller, reached("reconciles", 2))
        for i in range(3):
            await seats.add_async(seat(f"s{i}", lab1))
            # Each creation reconciles lab1 once more, and that run sees the seat.
            await until(controller, lambda s, i=i: len(seen["lab1"]) >= 2 + i)  # type: ignore[misc]
            assert seen["lab1"][-1] == i + 1
        assert seen["lab2"] == [0]
        # Re-parented: both the old owner and the new one run.
        moved = thaw(await seats.get_async("s0"))
        before = len(seen["lab1"])
        moved["metadata"]["owner_references"] = [owner_reference(lab2)]
        await seats.update_async(moved)
        await until(controller, lambda s: len(seen["lab2"]) >= 2 and len(seen["lab1"]) > before)
        assert seen["lab2"][-1] == 1
        assert seen["lab1"][-1] == 2
        assert controller.stats()["related"] >= 5
        assert controller.stats()["collected"] == 0


async def test_a_mapper_names_what_a_watched_change_reconciles(
    client: EtcdClient, prefix: str
) -> None:
    workers = ResourceRepository(client, prefix + "workers/")
    requests = ResourceRepository(client, prefix + "requests/")
    runs: dict[str, int] = defaultdict(int)

    async def reconcile(resource: Any) -> Action:
        runs[name_of(resource)] += 1
        return Action.done()

    for name in ("w1", "w2"):
        await workers.add_async(doc(name))
    controller = Controller(workers, reconcile, watches=(requests, lambda r: [r["spec"]["worker"]]))
    async with running(controller):
        await until(controller, reached("reconciles", 2))
        await requests.add_async(doc("r1", worker="w2"))
        await until(controller, lambda s: runs["w2"] >= 2)
        await requests.remove_async("r1")  # a deletion maps too
        await until(controller, lambda s: runs["w2"] >= 3)
        assert runs["w1"] == 1
        # A name that is not there is a key that is gone: not reconciled, not an error.
        await requests.add_async(doc("r2", worker="nobody"))
        await requests.add_async(doc("r3", worker="w1"))  # queued after it
        stats = await until(controller, lambda s: runs["w1"] >= 2)
        assert stats["gone"] == 1
        assert stats["errors"] == 0


async def test_a_mapper_that_raises_ends_run_with_its_error(
    client: EtcdClient, prefix: str
) -> None:
    workers = ResourceRepository(client, prefix + "workers/")
    requests = ResourceRepository(client, prefix + "requests/")

    def mapper(resource: Any) -> list[str]:
        raise LookupError(f"no worker field in {name_of(resource)}")

    controller = Controller(workers, settle, watches=[(requests, mapper)])
    task = asyncio.ensure_future(controller.run())
    await until(controller, lambda s: s["running"])
    await requests.add_async(doc("r1"))
    with pytest.raises(LookupError, match="no worker field in r1"):
        async with asyncio.timeout(WAIT):
            await task
    assert not controller.stats()["running"]


def test_relations_are_checked_when_made(client: EtcdClient) -> None:
    labs = ResourceRepository(client, "/labs/")
    reconcile = settle
    with pytest.raises(TypeError, match="owns= takes repositories"):
        Controller(labs, reconcile, owns=["/seats/"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="watches= takes"):
        Controller(labs, reconcile, watches=[labs])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="must be callable"):
        Controller(labs, reconcile, watches=(labs, "spec.worker"))  # type: ignore[arg-type]


async def test_an_owner_deleted_takes_what_it_owns_and_only_that(
    client: EtcdClient, prefix: str
) -> None:
    labs, seats = labs_and_seats(client, prefix, cached=True)
    lab1 = await labs.add_async(lab("lab1"))
    lab2 = await labs.add_async(lab("lab2"))
    await seats.add_async(seat("only1", lab1))
    await seats.add_async(seat("both", lab1, lab2))
    await seats.add_async(seat("only2", lab2))
    await seats.add_async(seat("none"))
    elsewhere = seat("elsewhere", lab1)  # also owned by a kind this controller cannot look up
    elsewhere["metadata"]["owner_references"].append({"name": "x", "kind": "Other", "uid": "u"})
    await seats.add_async(elsewhere)
    async with collecting(labs, seats, 2) as controller:
        await labs.remove_async("lab1")
        await until(controller, reached("collected", 1))
        assert await names(seats) == {"both", "only2", "none", "elsewhere"}
        await labs.remove_async("lab2")
        await until(controller, reached("collected", 3))
        assert await names(seats) == {"none", "elsewhere"}


async def test_what_was_orphaned_while_nothing_ran_goes_at_start(
    client: EtcdClient, prefix: str
) -> None:
    labs, seats = labs_and_seats(client, prefix)
    old = await labs.add_async(lab("lab1"))
    await seats.add_async(seat("of-the-old-lab1", old))
    await labs.remove_async("lab1")
    new = await labs.add_async(lab("lab1"))  # the same name, another uid: another owner
    await seats.add_async(seat("of-the-new-lab1", new))
    # Kubernetes tools write camelCase; a reference without a uid names whoever has the name.
    other = {"metadata": {"name": "kubectl-made", "ownerReferences": [{"name": "gone"}]}}
    await seats.add_async({**other, "spec": {}, "status": {}})

    kept = Controller(labs, settle, owns=seats, collect=False)
    async with running(kept):
        await until(kept, reached("reconciles", 1))
    assert len(await names(seats)) == 3

    controller = Controller(labs, settle, owns=seats)
    async with running(controller):
        await until(controller, reached("collected", 2))
        assert await names(seats) == {"of-the-new-lab1"}


async def test_a_child_created_for_an_owner_already_gone_is_collected(
    client: EtcdClient, prefix: str
) -> None:
    labs, seats = labs_and_seats(client, prefix)
    lab1 = await labs.add_async(lab("lab1"))
    async with collecting(labs, seats, 1) as controller:
        await labs.remove_async("lab1")
        await seats.add_async(seat("late", lab1))
        await until(controller, reached("collected", 1))
        assert await names(seats) == set()


class Reparenting:
    """The owners' repository core, re-parenting ``seat`` to ``to`` in the instant between the
    collector's look at its owners and its delete (the race a plain delete loses)."""

    def __init__(self, labs: Any, seats: ResourceRepository, seat: Any, to: Any) -> None:
        self._labs, self._seats, self._seat, self._to = labs, seats, seat, to
        self.namespaced = labs.namespaced
        self.done = False

    async def get(self, name: str, namespace: str | None = None) -> Any:
        found = await self._labs.get(name, namespace)
        if not self.done:
            self.done = True
            moved = thaw(self._seat)
            moved["metadata"]["owner_references"] = [owner_reference(self._to)]
            await self._seats.update_async(moved)
        return found


class Counting:
    """A repository core that counts the listings and reads made through it."""

    def __init__(self, core: Any) -> None:
        self._core = core
        self.lists = 0
        self.gets: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._core, name)

    async def list(self, *args: Any, **kwargs: Any) -> Any:
        self.lists += 1
        return await self._core.list(*args, **kwargs)

    async def get(self, name: str, namespace: str | None = None) -> Any:
        self.gets.append(name)
        return await self._core.get(name, namespace)


async def test_an_owner_deletion_reads_its_dependents_not_the_prefix(
    client: EtcdClient, prefix: str
) -> None:
    """The collector's index: after the startup sweep (one listing), an owner's deletion
    reads only what names it; a dependent made later is indexed from the owned feed."""
    labs, seats = labs_and_seats(client, prefix)
    lab1 = await labs.add_async(lab("lab1"))
    lab2 = await labs.add_async(lab("lab2"))
    await seats.add_async(seat("s1", lab1))
    for name in ("s2", "s3"):
        await seats.add_async(seat(name, lab2))
    owned = Counting(seats._core.as_dicts())
    collector = Collector(labs._core.as_dicts(), owned)  # type: ignore[arg-type]
    await collector.sweep()
    assert owned.lists == 1
    await labs.remove_async("lab1")
    await collector.owner_gone(lab1)
    assert (owned.lists, owned.gets) == (1, ["s1"]), "it read its dependent, not the prefix"
    assert await names(seats) == {"s2", "s3"}
    late = await seats.add_async(seat("s4", lab2))
    collector.note("ADDED", late, None)  # as the owned feed tells it
    gone = await seats.get_async("s3")
    await seats.remove_async("s3")
    collector.note("DELETED", None, gone)
    owned.gets.clear()
    await labs.remove_async("lab2")
    await collector.owner_gone(lab2)
    assert sorted(owned.gets) == ["s2", "s4"] and owned.lists == 1
    assert await names(seats) == set()
    assert collector.collected == 3


async def test_a_child_re_parented_while_judged_is_not_collected(
    client: EtcdClient, prefix: str
) -> None:
    """The delete holds only at the version whose references were judged: a seat moved to a
    live lab in that instant is read again, judged on its new owner, and kept."""
    labs, seats = labs_and_seats(client, prefix)
    gone = await labs.add_async(lab("gone"))
    alive = await labs.add_async(lab("alive"))
    judged = await seats.add_async(seat("s", gone))
    await labs.remove_async("gone")
    owners = Reparenting(labs._core.as_dicts(), seats, judged, alive)
    collector = Collector(owners, seats._core.as_dicts())  # type: ignore[arg-type]
    collector.learn(alive)
    assert not await collector.consider(judged)
    assert owners.done
    kept = await seats.get_async("s")
    assert kept is not None, "a seat re-parented while judged was deleted"
    assert kept["metadata"]["owner_references"] == [owner_reference(alive)]
    assert collector.collected == 0


async def test_remove_with_an_expected_version_deletes_only_that_version(
    client: EtcdClient, prefix: str
) -> None:
    seats = ResourceRepository(client, prefix)
    first = await seats.add_async(seat("s"))
    version = first["metadata"]["resource_version"]
    await seats.update_async({**thaw(first), "spec": {"n": 1}})
    with pytest.raises(ConflictError):
        await seats.remove_async("s", expected_version=version)
    current = await seats.get_async("s")
    assert current is not None and current["spec"] == {"n": 1}, "nothing was done"
    await seats.remove_async("s", expected_version=current["metadata"]["resource_version"])
    assert await seats.get_async("s") is None


async def test_a_related_feed_that_falls_behind_relists_and_goes_on(
    client: EtcdClient, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A related feed that lets more than its backlog wait (here 5 changes, while a mapper
    holds the event loop) is reopened from now and every key queued again (``relists``), as
    the Rust feed does; ``run()`` goes on, and later changes trigger as before."""
    monkeypatch.setattr(relations, "BACKLOG", 5)
    labs, seats = labs_and_seats(client, prefix)
    await labs.add_async(lab("lab1"))
    await labs.add_async(lab("lab2"))
    held, written = threading.Event(), threading.Event()

    def mapper(resource: Any) -> list[str]:
        if not held.is_set():
            held.set()
            assert written.wait(WAIT), "the writer did not finish"  # the loop stands still
        return [resource["spec"]["lab"]]

    async def burst() -> None:  # another thread's loop, the same client
        for i in range(20):
            await seats.add_async({"metadata": {"name": f"b{i}"}, "spec": {"lab": "lab2"}})
        written.set()

    controller = Controller(labs, settle, watches=(seats, mapper))
    async with running(controller):
        await until(controller, reached("reconciles", 2))
        writer = threading.Thread(target=asyncio.run, args=(burst(),))
        writer.start()
        stats = await until(controller, lambda s: s["relists"] >= 1)
        writer.join()
        assert stats["running"]
        before = controller.stats()["related"]
        await seats.add_async({"metadata": {"name": "after"}, "spec": {"lab": "lab1"}})
        stats = await until(controller, lambda s: s["related"] > before)
        assert stats["running"] and stats["errors"] == 0


async def test_a_finalized_child_is_marked_not_deleted(client: EtcdClient, prefix: str) -> None:
    labs, seats = labs_and_seats(client, prefix)
    lab1 = await labs.add_async(lab("lab1"))
    guarded = seat("guarded", lab1)
    guarded["metadata"]["finalizers"] = ["seats/cleanup"]
    await seats.add_async(guarded)
    async with collecting(labs, seats, 1) as controller:
        await labs.remove_async("lab1")
        await until(controller, reached("collected", 1))
        marked = await seats.get_async("guarded")
        assert marked is not None
        assert marked["metadata"]["deletion_timestamp"] is not None


def test_owner_reference_needs_a_stored_owner() -> None:
    with pytest.raises(TypeError, match=r"metadata\.uid"):
        owner_reference(doc("not-stored"))
    stored = {"kind": "Lab", "api_version": "v1", "metadata": {"name": "a", "uid": "u"}}
    ref = owner_reference(stored)
    assert ref == {
        "name": "a",
        "uid": "u",
        "api_version": "v1",
        "kind": "Lab",
        "controller": True,
        "block_owner_deletion": True,
    }


async def test_a_seen_revision_holds_session_reads_of_the_cache_until_applied(
    etcd_endpoints: list[str], prefix: str
) -> None:
    """What a relation does for the run it triggers: once this client saw a change (a watch
    delivered it), a cached read waits for the cache to have it, even if the change was
    another client's. A list begun before that change is written still returns it."""
    async with EtcdClient(etcd_endpoints) as mine, EtcdClient(etcd_endpoints) as other:
        seats = ResourceRepository(mine, prefix + "seats/", cache=True)
        first = await seats.add_async(seat("first"))
        assert await names(seats) == {"first"}
        revision = int(first["metadata"]["resource_version"])
        seats._core.note_seen(prefix + "seats/late", revision + 1)
        listing = asyncio.ensure_future(names(seats))
        await ResourceRepository(other, prefix + "seats/").add_async(seat("late"))
        async with asyncio.timeout(WAIT):
            assert await listing == {"first", "late"}
        with pytest.raises(InvalidArgumentError, match="not under"):
            seats._core.note_seen("/elsewhere/x", revision)
