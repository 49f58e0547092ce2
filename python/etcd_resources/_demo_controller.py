"""The demo's lifecycle controller: new LabWorkers driven from Pending to Ready by a reconciler,
as the service's LabWorkerController drives them, against a simulated cloud provider."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from . import _core
from .controller import Action, Controller, Sharding
from .lab_workers import LabWorkerPhase

# How many times the simulated provider is asked before an instance is up.
POLLS_UNTIL_UP = 2


class SimulatedCloud:
    """Instances that are up after a few polls, as an EC2 instance is after a while."""

    def __init__(self) -> None:
        self.polls: dict[str, int] = {}

    def launch(self, name: str) -> None:
        self.polls.setdefault(name, 0)

    def is_up(self, name: str) -> bool:
        self.polls[name] += 1
        return self.polls[name] >= POLLS_UNTIL_UP


def one_each(repository: Any, candidates: Iterable[str], held: dict[str, list[int]]) -> list[str]:
    """A worker name for each replica: the first of ``candidates`` whose key falls in a shard
    it holds (keys hash with the demo's random prefix, so fixed names could all land on one)."""
    chosen: dict[str, str] = {}
    shards = sum(len(h) for h in held.values())
    for name in candidates:
        shard = _core.shard_of(repository._core.key(name, "default"), shards)
        replica = next(identity for identity, h in held.items() if shard in h)
        chosen.setdefault(replica, name)
        if len(chosen) == len(held):
            break
    return sorted(chosen.values(), key=lambda n: int(n.rsplit("-", 1)[1]))


async def lifecycle(
    repository: Any,
    create: Callable[[str, str], Awaitable[Any]],
    candidates: Iterable[str],
    show: Callable[[str], None],
) -> None:
    """Run two replicas of a controller on ``repository`` while ``create`` makes a worker for
    each (named from ``candidates``); return once each is Ready."""
    show("Two controller replicas drive new workers from Pending to Ready (a simulated cloud)")
    cloud = SimulatedCloud()
    ready: set[str] = set()
    ran_on: dict[str, str] = {}
    names: list[str] = []

    def reconciler(identity: str) -> Callable[[Any], Awaitable[Action]]:
        async def reconcile(worker: Any) -> Action:
            name, phase = worker.metadata.name, worker.status.phase
            ran_on[name] = identity
            if phase is LabWorkerPhase.PENDING:
                cloud.launch(name)
                worker.status.phase = LabWorkerPhase.PROVISIONING_EC2
            elif phase is LabWorkerPhase.PROVISIONING_EC2:
                if not cloud.is_up(name):
                    return Action.requeue_after(0.01)  # ask the provider again shortly
                worker.status.phase = LabWorkerPhase.READY
            else:
                if phase is LabWorkerPhase.READY and name in names:
                    ready.add(name)
                return Action.done()
            # Compare-and-swap (a spec edit meanwhile is kept), fenced on this replica's shard.
            await replicas[identity].write_status(worker)
            new = worker.status.phase.value
            print(f"  controller: {name:<9} {phase.value} -> {new}  ({identity})")
            return Action.done()  # the phase change triggers the next step (the predicate)

        return reconcile

    # Two replicas, as two processes of the service would be: each runs the workers of the
    # shards it holds (records on etcd leases, under a prefix of their own). Status writes
    # trigger nothing by default; this controller steps on phase changes.
    sharing = repository.prefix.rstrip("/") + "-controllers/"
    replicas = {
        identity: Controller(
            repository,
            reconciler(identity),
            predicates=["field:status.phase"],
            name="lifecycle",
            sharding=Sharding(shards=4, ttl=5, identity=identity, prefix=sharing),
        )
        for identity in ("replica-a", "replica-b")
    }
    runners = [asyncio.ensure_future(c.run()) for c in replicas.values()]
    try:
        async with asyncio.timeout(10):
            for c in replicas.values():  # two shards each
                await c.wait_for(lambda s: s["synced"] and len(s["shards"] or []) == 2)
            shards = {i: list(c.stats()["shards"] or []) for i, c in replicas.items()}
            print(f"  shards held: {', '.join(f'{i} {h}' for i, h in shards.items())}")
            names.extend(one_each(repository, candidates, shards))
            for name in names:
                await create(name, "ccna")
            waits = [
                asyncio.ensure_future(c.wait_for(lambda _: ready >= set(names)))
                for c in replicas.values()
            ]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
    finally:
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)
    stats = [c.stats() for c in replicas.values()]
    print(
        f"  {sum(s['reconciles'] for s in stats)} reconciles, "
        f"{sum(s['requeues'] for s in stats)} requeues while the cloud started the instances; "
        f"{', '.join(names)} Ready"
    )
