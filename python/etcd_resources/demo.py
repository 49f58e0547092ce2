"""A tour of etcd-resources: ``python -m etcd_resources.demo`` (embedded store) or
``python -m etcd_resources.demo --endpoints http://127.0.0.1:2379`` (a real etcd).

It creates lab workers on several tracks, watches them change, moves them through their
phases, queries them, and shows a conflicting update being caught and retried.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from typing import Any

from . import (
    AlreadyExistsError,
    ConflictError,
    EtcdClient,
    ResourceRepository,
    WatchEvent,
)

TRACKS = ["ccna", "ccnp", "devnet"]


def worker(name: str, track: str) -> dict[str, Any]:
    return {
        "apiVersion": "lab.neuroglia.io/v1",
        "kind": "LabWorker",
        "metadata": {"name": name, "namespace": "labs", "labels": {"lab-track": track}},
        "spec": {"lab_track": track, "aws_config": {"instance_type": "c5.2xlarge"}},
        "status": {"phase": "Pending"},
    }


BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def show(title: str) -> None:
    print(f"\n{BOLD}{title}{RESET}")


async def run(endpoints: list[str], prefix: str) -> None:
    async with EtcdClient(endpoints) as client:
        repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
        where = "the embedded store" if endpoints == ["memory://"] else ", ".join(endpoints)
        print(f"etcd-resources demo on {where}, keys under {prefix}")

        show("Watching every change (events print as they arrive, dimmed)")
        events: list[WatchEvent] = []
        caught_up = asyncio.Event()
        target = [0]

        def on_change(event: WatchEvent) -> None:
            events.append(event)
            phase = (event.value or {}).get("status", {}).get("phase", "")
            line = f"watch: rev {event.revision:>3} {event.type:<6} {event.name} {phase}"
            print(f"      {DIM}{line}{RESET}")
            if target[0] and event.revision >= target[0]:
                caught_up.set()

        watch = repo.watch_changes(on_change)
        await watch.started()

        show("Creating six lab workers on three tracks")
        for i in range(6):
            created = await repo.add_async(worker(f"worker-{i}", TRACKS[i % 3]))
            meta = created["metadata"]
            print(
                f"  + {meta['name']:<9} track={TRACKS[i % 3]:<7} "
                f"resource_version={meta['resource_version']} uid={meta['uid'][:8]}…"
            )
        try:
            await repo.add_async(worker("worker-0", "ccna"))
        except AlreadyExistsError as e:
            print(f"  ! a second create of worker-0 is refused atomically: {e}")

        show("Moving workers through their phases")
        for name, phases in {
            "worker-0": ["Provisioning", "Ready"],
            "worker-1": ["Provisioning", "Ready"],
            "worker-2": ["Provisioning", "Ready", "Draining"],
        }.items():
            for phase in phases:
                current = await repo.get_async(name)
                assert current is not None
                updated = await repo.update_async({**current, "status": {"phase": phase}})
                print(
                    f"  ~ {name:<9} -> {phase:<12} resource_version="
                    f"{updated['metadata']['resource_version']} "
                    f"generation={updated['metadata']['generation']}"
                )

        show("Queries (filtered in Rust, one snapshot each)")
        for selector in ["lab-track=ccna", "lab-track in (ccnp,devnet)", "lab-track!=ccna"]:
            names = [w["metadata"]["name"] for w in await repo.list_async(label_selector=selector)]
            print(f"  {selector:<28} {names}")
        ready = [
            w["metadata"]["name"]
            for w in await repo.list_async()
            if w["status"]["phase"] in ("Ready", "Draining")
        ]
        print(f"  {'active (Ready or Draining)':<28} {ready}")

        show("Two writers race on worker-3")
        snapshot = await repo.get_async("worker-3")
        assert snapshot is not None
        await repo.update_async({**snapshot, "status": {"phase": "Ready"}})
        print("  writer A moved worker-3 to Ready")
        try:
            await repo.update_async({**snapshot, "status": {"phase": "Failed"}})
        except ConflictError as e:
            print(
                f"  writer B's stale write is refused: expected version {e.expected_version}, "
                f"stored {e.actual_version}"
            )

        def bump_errors(current: dict[str, Any]) -> dict[str, Any]:
            status = {
                **current["status"],
                "error_count": current["status"].get("error_count", 0) + 1,
            }
            return {**current, "status": status}

        result = await repo.update_with_retry_async(worker("worker-3", "ccna"), mutate=bump_errors)
        print(
            f"  writer B re-read and retried: phase={result['status']['phase']} "
            f"error_count={result['status']['error_count']}"
        )

        show("Deleting worker-5")
        await repo.remove_async("worker-5")
        print(f"  worker-5 exists: {await repo.contains_async('worker-5')}")

        show("Waiting for the watch to catch up with the last write")
        target[0] = await client.current_revision()
        if not events or events[-1].revision < target[0]:
            await asyncio.wait_for(caught_up.wait(), 10)
        watch.cancel()
        revisions = [e.revision for e in events]
        assert revisions == sorted(set(revisions)), "events out of order or repeated"
        print(
            f"  {len(events)} events, revisions {revisions[0]}..{revisions[-1]}, in order, "
            "none repeated. Done."
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
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
