"""A tour of etcd-resources as the Lab Resource Manager uses it.

    python -m etcd_resources.demo                                   # the embedded store
    python -m etcd_resources.demo --endpoints http://127.0.0.1:2379 # a real etcd

The repository is registered through Neuroglia's dependency injection (the client as a
singleton, the repository as a scoped service); command handlers get it by constructor
injection and run through the mediator. It creates workers on several lab tracks, moves them
through their phases while a watch prints every change as it arrives, runs every query, and
shows a conflicting update being caught and retried.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from typing import Any

BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")
TRACKS = ["ccna", "ccnp", "devnet"]


def show(title: str) -> None:
    print(f"\n{BOLD}{title}{RESET}")


async def run(endpoints: list[str], prefix: str) -> None:
    try:
        from neuroglia.dependency_injection import ServiceCollection
        from neuroglia.mediation import Mediator

        from ._demo_service import (
            CreateLabWorker,
            CreateLabWorkerHandler,
            MoveToPhase,
            MoveToPhaseHandler,
        )
        from .lab_worker_repository import EtcdLabWorkerResourceRepository
        from .neuroglia import add_etcd_resources
    except ImportError:
        sys.exit(
            "the demo shows the Neuroglia integration: pip install 'etcd-resources[neuroglia]'"
        )

    from . import (
        ConflictError,
        EtcdClient,
        EtcdSettings,
        EtcdStorageBackend,
        LabWorker,
        LabWorkerPhase,
        WatchEvent,
    )

    # -- registration, as the service's main.py does it ------------------------------------

    services = ServiceCollection()
    add_etcd_resources(services, EtcdSettings(endpoints=endpoints, prefix=prefix))
    services.add_singleton(Mediator)
    services.add_scoped(CreateLabWorkerHandler)
    services.add_scoped(MoveToPhaseHandler)
    Mediator._handler_registry[CreateLabWorker] = CreateLabWorkerHandler
    Mediator._handler_registry[MoveToPhase] = MoveToPhaseHandler
    provider = services.build()
    mediator: Any = provider.get_required_service(Mediator)
    client: EtcdClient = provider.get_required_service(EtcdClient)
    where = "the embedded store" if endpoints == ["memory://"] else ", ".join(endpoints)
    print(f"etcd-resources demo on {where}, LabWorkers under {prefix}")
    print("EtcdClient registered as a singleton, EtcdLabWorkerResourceRepository as scoped")

    def repository() -> EtcdLabWorkerResourceRepository:
        scope = provider.create_scope().get_service_provider()
        return scope.get_required_service(EtcdLabWorkerResourceRepository)

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

    show("Creating workers on three tracks, through the mediator")
    for i in range(7):
        result = await mediator.execute_async(CreateLabWorker(f"worker-{i}", TRACKS[i % 3]))
        worker = result.data
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
            result = await mediator.execute_async(MoveToPhase(name, phase))
            meta = result.data.metadata
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

    show("The watch catches up with the last write")
    target[0] = await client.current_revision()
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
    backend = EtcdStorageBackend(client, prefix)
    written = await backend.keys()
    for key in written:
        await backend.delete(key)
    print(f"  removed the demo's {len(written)} keys under {prefix}")
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
