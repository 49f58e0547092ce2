"""A tour of etcd-resources as the Lab Resource Manager uses it.

    python -m etcd_resources.demo                                   # the embedded store
    python -m etcd_resources.demo --endpoints http://127.0.0.1:2379 # a real etcd

With Neuroglia installed (``pip install 'etcd-resources[neuroglia]'``), the repository is
registered through Neuroglia's dependency injection (the client as a singleton, the repository
as a scoped service); command handlers get it by constructor injection and run through the
mediator. Without it, the same tour runs on plain asyncio, calling the repository directly. It
creates workers on several lab tracks, moves them through their phases while a watch prints
every change as it arrives, runs every query, creates lab instance requests against the Ready
workers and runs the scheduler's queries on them, and shows a conflicting update being caught
and retried.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from typing import Any

BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")
TRACKS = ["ccna", "ccnp", "devnet"]


def instances_prefix(prefix: str) -> str:
    """Where the lab instance requests go: beside the workers, never under their prefix."""
    base = prefix.rstrip("/")
    if base.endswith("/lab-workers"):
        return base.removesuffix("lab-workers") + "lab-instance-requests/"
    return base + "-lab-instance-requests/"


def show(title: str) -> None:
    print(f"\n{BOLD}{title}{RESET}")


class Service:
    """How the tour reaches the repository: through Neuroglia (dependency injection, commands
    through the mediator) when it is installed, directly otherwise."""

    def __init__(self, endpoints: list[str], prefix: str) -> None:
        from . import EtcdClient
        from .lab_worker_repository import EtcdLabWorkerResourceRepository

        try:
            from ._demo_service import Registered
        except ImportError:  # Neuroglia is not installed: plain asyncio
            self.registered: Any = None
            self.client = EtcdClient(endpoints)
            self.prefix = prefix
            self.how = "plain asyncio (no Neuroglia installed): the repository called directly"
            self._plain = EtcdLabWorkerResourceRepository
        else:
            self.registered = Registered(endpoints, prefix, instances_prefix(prefix))
            self.client = self.registered.client
            self.how = (
                "EtcdClient registered as a singleton, EtcdLabWorkerResourceRepository and "
                "EtcdLabInstanceResourceRepository as scoped"
            )

    def repository(self) -> Any:
        if self.registered is not None:
            return self.registered.repository()
        return self._plain(self.client, self.prefix)

    def instances(self) -> Any:
        from .lab_instance_repository import EtcdLabInstanceResourceRepository

        if self.registered is not None:
            return self.registered.instances()
        return EtcdLabInstanceResourceRepository(
            self.client, instances_prefix(self.prefix), resource_type=dict
        )

    async def create(self, name: str, lab_track: str) -> Any:
        from .lab_workers import LabWorker

        if self.registered is not None:
            return await self.registered.create(name, lab_track)
        return await self.repository().add_async(LabWorker.create(name, lab_track))

    async def move(self, name: str, phase: Any) -> Any:
        if self.registered is not None:
            return await self.registered.move(name, phase)
        repo = self.repository()
        worker = await repo.get_async(name)
        worker.status.phase = phase
        return await repo.update_async(worker)


async def run(endpoints: list[str], prefix: str) -> None:
    from . import ConflictError, LabWorker, LabWorkerPhase, WatchEvent

    service = Service(endpoints, prefix)
    client, repository = service.client, service.repository
    where = "the embedded store" if endpoints == ["memory://"] else ", ".join(endpoints)
    print(f"etcd-resources demo on {where}, LabWorkers under {prefix}")
    print(service.how)

    # -- a watch that prints every change as it arrives -------------------------------------

    show("Watching the workers (changes print as they arrive, dimmed)")
    events: list[WatchEvent] = []
    caught_up = asyncio.Event()
    target = [0]

    def on_change(event: WatchEvent) -> None:
        events.append(event)
        worker = event.resource or event.previous_resource
        phase = event.resource.status.phase.value if event.resource else "(deleted)"
        line = f"watch: rev {event.revision:>3} {event.type:<6} {worker.metadata.name:<9} {phase}"
        print(f"      {DIM}{line}{RESET}")
        if target[0] and event.revision >= target[0]:
            caught_up.set()

    watch = repository().watch_workers(on_change)
    await watch.started()

    show("Creating workers on three tracks" + (", through the mediator" * bool(service.registered)))
    for i in range(7):
        worker = await service.create(f"worker-{i}", TRACKS[i % 3])
        print(
            f"  + {worker.metadata.name:<9} track={worker.spec.lab_track:<7} "
            f"resource_version={worker.metadata.resource_version}"
        )
    try:
        await repository().add_async(LabWorker.create("worker-0", "ccna"))
    except Exception as e:
        print(f"  ! a second create of worker-0 is refused atomically: {type(e).__name__}")

    show("Moving workers through their phases")
    plan = {
        "worker-0": [LabWorkerPhase.PROVISIONING_EC2, LabWorkerPhase.READY],
        "worker-1": [LabWorkerPhase.PROVISIONING_EC2, LabWorkerPhase.READY],
        "worker-2": [
            LabWorkerPhase.PROVISIONING_EC2,
            LabWorkerPhase.READY,
            LabWorkerPhase.DRAINING,
        ],
        "worker-3": [LabWorkerPhase.PROVISIONING_EC2, LabWorkerPhase.FAILED],
        "worker-4": [LabWorkerPhase.PROVISIONING_EC2, LabWorkerPhase.READY, LabWorkerPhase.ACTIVE],
    }
    for name, phases in plan.items():
        for phase in phases:
            meta = (await service.move(name, phase)).metadata
            print(
                f"  ~ {name:<9} -> {phase.value:<16} resource_version={meta.resource_version} "
                f"generation={meta.generation}"
            )

    show("Queries (evaluated in Rust on the stored documents)")
    repo = repository()

    def names(workers: list[Any]) -> str:
        return ", ".join(w.metadata.name for w in workers) or "-"

    queries = {
        "find_by_lab_track_async('ccna')": repo.find_by_lab_track_async("ccna"),
        "find_by_phase_async(READY)": repo.find_by_phase_async(LabWorkerPhase.READY),
        "find_active_workers_async()": repo.find_active_workers_async(),
        "find_ready_workers_async()": repo.find_ready_workers_async(),
        "find_draining_workers_async()": repo.find_draining_workers_async(),
    }
    for call, query in queries.items():
        print(f"  {call:<37}{names(await query)}")
    for phase in (LabWorkerPhase.READY, LabWorkerPhase.PENDING, LabWorkerPhase.FAILED):
        print(
            f"  count_by_phase_async({phase.value + ')':<17}"
            f"{await repo.count_by_phase_async(phase):>3}"
        )
    for track in TRACKS:
        print(
            f"  count_by_lab_track_async({track + ')':<12}"
            f"{await repo.count_by_lab_track_async(track):>3}"
        )
    mixed = await repo.list_async(
        label_selector="lab-track in (ccnp,devnet)", field_selector="status.phase!=Pending"
    )
    print(f"  lab-track in (ccnp,devnet), not Pending  {names(mixed)}")
    page = await repo.list_page_async(limit=3)
    print(
        f"  first page of 3: {names(page.items)} (read at revision {page.resource_version}, "
        f"more: {page.continue_token is not None})"
    )

    from ._demo_instances import tour

    await tour(service.instances(), await repo.find_ready_workers_async(), show)

    show("Two handlers race on worker-5")
    a, b = repository(), repository()
    seen_by_a: Any = await a.get_async("worker-5")
    seen_by_b: Any = await b.get_async("worker-5")
    seen_by_a.status.phase = LabWorkerPhase.READY
    await a.update_async(seen_by_a)
    print(f"  A moved worker-5 to Ready (resource_version {seen_by_a.metadata.resource_version})")
    seen_by_b.status.error_count += 1
    try:
        await b.update_async(seen_by_b)
    except ConflictError as e:
        print(
            f"  B's write from version {e.expected_version} is refused: "
            f"the stored one is {e.actual_version}"
        )

    def count_error(current: Any) -> Any:
        current.status.error_count += 1
        return current

    retried = await b.update_with_retry_async(seen_by_b, mutate=count_error)
    print(
        f"  B re-read and re-applied: phase={retried.status.phase.value}, "
        f"error_count={retried.status.error_count} (A's change kept)"
    )

    show("Removing worker-6")
    await repo.remove_async("worker-6")
    print(f"  worker-6 exists: {await repo.contains_async('worker-6')}")

    from ._demo_controller import lifecycle

    await lifecycle(repository(), service.create, (f"worker-{i}" for i in range(7, 40)), show)

    show("The watch catches up with the last write")
    # The last write under the prefix (the controllers' shard records live elsewhere).
    target[0] = max(int(w.metadata.resource_version) for w in await repo.list_async())
    if not events or events[-1].revision < target[0]:
        await asyncio.wait_for(caught_up.wait(), 10)
    watch.cancel()
    revisions = [e.revision for e in events]
    assert revisions == sorted(set(revisions)), "events out of order or repeated"
    print(
        f"  {len(events)} events, revisions {revisions[0]}..{revisions[-1]}, in order, "
        "none repeated, none lost"
    )

    # What the demo wrote goes: on a real etcd nothing is left behind.
    from . import EtcdStorageBackend

    removed = 0
    for where in (prefix, instances_prefix(prefix)):
        backend = EtcdStorageBackend(client, where)
        for key in await backend.keys():
            await backend.delete(key)
            removed += 1
    print(f"  removed the demo's {removed} keys under {prefix} and {instances_prefix(prefix)}")
    client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--endpoints",
        default="memory://",
        help="etcd endpoints, comma separated (default: the embedded store)",
    )
    parser.add_argument("--prefix", default=None, help="key prefix (default: a fresh one)")
    args = parser.parse_args(argv)
    endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    prefix = args.prefix or f"/etcd-resources-demo/{uuid.uuid4().hex[:8]}/lab-workers/"
    asyncio.run(run(endpoints, prefix))


if __name__ == "__main__":
    main()
