"""``python -m etcd_resources.jepsen.run`` (``make jepsen``): many short histories, each a
workload under one fault of ``faults`` (cycling through every kind) on a three-member cluster
in network namespaces (``netns``, needs root), with a watcher and an informer cache alongside
(``observe``). Prints per fault kind: operations, acknowledged, unknown, violations, watch
events missing/duplicated, cache mismatches and the time to recover; exits 1 on any violation
or mismatch. Every loop and wait is bounded."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import EtcdClient, EtcdStorageBackend, EtcdTimeoutError, ResourceRepository
from ..errors import UnavailableError
from .checker import check
from .faults import Crash, Degrade, Fault, Isolate, Pause, injected
from .netns import NetnsCluster, netns_available
from .observe import Observer
from .workload import run_workload

KEYS = ("a", "b", "c")
TIMEOUT = 2.0
RECOVERY_BOUND = 15.0

KINDS: dict[str, Callable[[NetnsCluster], Fault]] = {
    "isolate follower": lambda c: Isolate(c.followers()[:1]),
    "isolate leader": lambda c: Isolate([c.leader()]),
    "no quorum": lambda c: Isolate(c.followers()),
    "degrade leader": lambda c: Degrade(c.leader()),
    "pause leader": lambda c: Pause(c.leader()),
    "crash leader": lambda c: Crash(c.leader()),
}


@dataclass
class Totals:
    histories: int = 0
    operations: int = 0
    acknowledged: int = 0
    unknown: int = 0
    violations: int = 0
    watch_events: int = 0
    missing: int = 0
    duplicated: int = 0
    cache_mismatches: int = 0
    recoveries: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def wait_serving(backend: EtcdStorageBackend, within: float) -> float:
    """Seconds until a write and a read through the client succeed (polled, bounded)."""
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            await backend.set("probe", {"n": attempt})
            got = await backend.get("probe")
            if got is None or got.get("n") != attempt:
                raise AssertionError(f"read {got!r} after writing n={attempt}")
            return time.monotonic() - started
        except (UnavailableError, EtcdTimeoutError):
            if time.monotonic() - started > within:
                raise
            await asyncio.sleep(0.05)  # poll interval


async def one(
    cluster: NetnsCluster, kind: str, seed: int, totals: Totals, *, hold: float, after: float
) -> None:
    prefix = f"/jepsen-{seed}/"
    before = 0.3
    async with EtcdClient(cluster.endpoints, timeout=TIMEOUT, breaker_threshold=0) as client:
        repo: ResourceRepository[Any] = ResourceRepository(client, prefix)
        probe = EtcdStorageBackend(client, f"/jepsen-{seed}-probe/")
        await wait_serving(probe, RECOVERY_BOUND)
        observer = Observer(client, prefix)
        await observer.start()

        async def nemesis() -> float:
            await asyncio.sleep(before)  # the fault schedule, not synchronisation
            fault = await asyncio.to_thread(KINDS[kind], cluster)
            async with injected(fault):
                await asyncio.sleep(hold)
            return await wait_serving(probe, RECOVERY_BOUND)

        async with asyncio.TaskGroup() as group:
            work = group.create_task(
                run_workload(
                    repo,
                    keys=KEYS,
                    tasks=4,
                    duration=before + hold + after,
                    max_ops=20_000,
                    seed=seed,
                )
            )
            healing = group.create_task(nemesis())
        observed = await observer.finish()
    history = work.result()
    result = check(history, keys=KEYS)
    totals.histories += 1
    totals.operations += len(history)
    totals.acknowledged += history.count(outcome="ok")
    totals.unknown += history.count(outcome="unknown")
    totals.violations += len(result.violations) + len(result.inconclusive)
    totals.watch_events += observed.events
    totals.missing += observed.missing + observed.out_of_order
    totals.duplicated += observed.duplicated
    totals.cache_mismatches += observed.cache_mismatches
    totals.recoveries.append(healing.result())
    totals.notes += result.violations + result.inconclusive + observed.details


def heal(cluster: NetnsCluster) -> None:
    for member in cluster.members:
        if not member.running:
            member.start()
    cluster.wait_healthy(30)


def report(by_kind: dict[str, Totals]) -> str:
    head = (
        f"{'fault':<17} {'runs':>4} {'ops':>6} {'acked':>6} {'unknown':>7} {'violations':>10} "
        f"{'events':>6} {'missing':>7} {'dup':>3} {'cache≠':>6} {'recover max/mean':>16}"
    )
    lines = [head]
    for kind, t in by_kind.items():
        rec = t.recoveries or [0.0]
        lines.append(
            f"{kind:<17} {t.histories:>4} {t.operations:>6} {t.acknowledged:>6} {t.unknown:>7} "
            f"{t.violations:>10} {t.watch_events:>6} {t.missing:>7} {t.duplicated:>3} "
            f"{t.cache_mismatches:>6} {max(rec):>7.2f}s/{sum(rec) / len(rec):.2f}s"
        )
    return "\n".join(lines)


async def main_async(histories: int, hold: float, after: float) -> int:
    by_kind = {kind: Totals() for kind in KINDS}
    kinds = list(KINDS)
    started = time.monotonic()
    with NetnsCluster() as cluster:
        for i in range(histories):
            kind = kinds[i % len(kinds)]
            await asyncio.to_thread(heal, cluster)
            try:
                await one(cluster, kind, i, by_kind[kind], hold=hold, after=after)
            except Exception as e:  # a run that could not finish counts as a violation
                by_kind[kind].violations += 1
                by_kind[kind].notes.append(f"history {i}: {e!r}")
            elapsed = time.monotonic() - started
            print(f"history {i + 1}/{histories}: {kind}, {elapsed:.0f}s", flush=True)
    print(report(by_kind))
    failed = False
    for kind, t in by_kind.items():
        for note in t.notes:
            print(f"{kind}: {note}")
        failed |= bool(t.violations or t.missing or t.duplicated or t.cache_mismatches)
    print(
        f"{histories} histories in {time.monotonic() - started:.0f}s: {'FAIL' if failed else 'ok'}"
    )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--histories", type=int, default=24)
    parser.add_argument("--hold", type=float, default=2.5, help="seconds each fault is held")
    parser.add_argument("--after", type=float, default=1.0, help="workload seconds after it")
    args = parser.parse_args(argv)
    why = netns_available()
    if why is not None:
        print(f"no network namespaces: {why}", file=sys.stderr)
        return 2
    return asyncio.run(main_async(args.histories, args.hold, args.after))


if __name__ == "__main__":
    sys.exit(main())
