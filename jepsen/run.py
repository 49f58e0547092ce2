"""``python -m jepsen.run`` (``make jepsen``): many short histories, each a
workload of several client processes (``clients``) under one fault (cycling through every
kind: those of ``faults`` on a three-member cluster in network namespaces, ``netns``, needs
root; those of ``proxy`` on a TCP proxy between the clients and that cluster), with a watcher
and an informer cache alongside (``observe``). Prints per fault kind: operations,
acknowledged, unknown, violations, watch events missing/duplicated, cache mismatches and the
time to recover; exits 1 on any violation or mismatch. Then, with namespaces, controller
histories (``replicas``: three replicas of a sharded controller under each of the cluster's
faults, checked for a key reconciled by two at once). With ``--plots DIR``, draws each fault
kind's first history (``plot``: latency and throughput over time, the fault shaded) as
``DIR/<kind>.svg``. Where namespaces cannot be made, runs the proxy's kinds alone on a
loopback cluster (``--proxy-only`` does so anywhere). Every loop and wait is bounded."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import functools
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from etcd_resources import EtcdClient, EtcdStorageBackend, EtcdTimeoutError
from etcd_resources.errors import UnavailableError
from etcd_resources.testing import EtcdCluster

from .checker import check
from .clients import ClientProcesses
from .faults import Crash, CutFromPeers, Degrade, Fault, Isolate, Pause, injected
from .history import History
from .netns import NetnsCluster, netns_available
from .observe import Observer
from .plot import Window, plot_history
from .proxy import ProxyBlackhole, ProxyReset, ProxyStall, TcpProxy
from .replicas import ReplicaTotals, replica_history

KEYS = ("a", "b", "c")
TIMEOUT = 2.0
RECOVERY_BOUND = 15.0


@dataclass
class Target:
    """What the faults act on: the cluster, and the proxy in front of its members."""

    cluster: NetnsCluster | EtcdCluster
    proxy: TcpProxy

    @property
    def netns(self) -> NetnsCluster:
        if not isinstance(self.cluster, NetnsCluster):
            raise RuntimeError("this fault needs the cluster in network namespaces")
        return self.cluster

    def leader_index(self) -> int:
        leader = self.cluster.leader()
        return next(i for i, m in enumerate(self.cluster.members) if m is leader)


@dataclass(frozen=True)
class FaultKind:
    make: Callable[[Target], Fault]
    """Made when it is injected (so it can pick the leader of that moment)."""
    proxy: bool = False
    """The proxy's fault: clients go through the proxy (no namespaces needed)."""


KINDS: dict[str, FaultKind] = {
    "isolate follower": FaultKind(lambda t: Isolate(t.netns.followers()[:1])),
    "isolate leader": FaultKind(lambda t: Isolate([t.netns.leader()])),
    "no quorum": FaultKind(lambda t: Isolate(t.netns.followers())),
    # A follower that reaches the client but not its peers: it answers "no leader".
    "leaderless follower": FaultKind(
        lambda t: CutFromPeers(t.netns.followers()[0], t.netns.members)
    ),
    "degrade leader": FaultKind(lambda t: Degrade(t.netns.leader())),
    "pause leader": FaultKind(lambda t: Pause(t.netns.leader())),
    "crash leader": FaultKind(lambda t: Crash(t.netns.leader())),
    # Every connection stalled as etcd answers a request, then resumed (held bytes delivered).
    "proxy stall": FaultKind(lambda t: ProxyStall(t.proxy, mid_request=True), proxy=True),
    # Every connection reset as etcd answers a request, and every new one until healed.
    "proxy reset": FaultKind(lambda t: ProxyReset(t.proxy, mid_request=True), proxy=True),
    # The leader's endpoint blackholed as it answers a request (the others still forward).
    "proxy blackhole 1": FaultKind(
        lambda t: ProxyBlackhole(t.proxy, [t.leader_index()], mid_request=True), proxy=True
    ),
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
    sample: tuple[History, Window] | None = None
    """The kind's first history and its fault's window (for ``--plots``)."""


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


@dataclass(frozen=True)
class Shape:
    """The shape of every history: client processes and tasks, and the fault's schedule."""

    processes: int = 2
    tasks: int = 3
    before: float = 0.3
    hold: float = 2.5
    after: float = 1.0


async def one(target: Target, kind: str, seed: int, totals: Totals, shape: Shape) -> None:
    """One history: ``shape.processes`` client processes run the workload while the fault of
    ``kind`` is held; the parent runs the watcher and the cache, then checks everything."""
    prefix = f"/jepsen-{seed}/"
    fault_kind = KINDS[kind]
    endpoints = target.proxy.endpoints if fault_kind.proxy else target.cluster.endpoints
    async with (
        EtcdClient(endpoints, timeout=TIMEOUT, breaker_threshold=0) as client,
        EtcdClient(endpoints, timeout=TIMEOUT, breaker_threshold=0) as late,
    ):
        probe = EtcdStorageBackend(client, f"/jepsen-{seed}-probe/")
        await wait_serving(probe, RECOVERY_BOUND)
        observer = Observer(client, prefix)
        await observer.start()
        clients = ClientProcesses(
            endpoints,
            prefix,
            processes=shape.processes,
            tasks=shape.tasks,
            keys=KEYS,
            duration=shape.before + shape.hold + shape.after,
            seed=seed,
            timeout=TIMEOUT,
        )

        async def nemesis() -> tuple[float, Window]:
            # The fault schedule, not synchronisation; a second cache starts while the
            # clients write, before the fault.
            await asyncio.sleep(shape.before / 2)
            await observer.start_late(late)
            await asyncio.sleep(shape.before / 2)
            fault = await asyncio.to_thread(fault_kind.make, target)
            async with injected(fault):
                start = History.now()
                await asyncio.sleep(shape.hold)
            window = Window(start, History.now(), fault.name)
            return await wait_serving(probe, RECOVERY_BOUND), window

        try:
            await clients.start()
            async with asyncio.TaskGroup() as group:
                work = group.create_task(clients.join())
                healing = group.create_task(nemesis())
        finally:
            await clients.close()
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
    recovery, window = healing.result()
    totals.recoveries.append(recovery)
    if totals.sample is None:
        totals.sample = (history, window)
    totals.notes += result.violations + result.inconclusive + observed.details


def heal(target: Target) -> None:
    """Every member running and healthy, every proxy listener forwarding."""
    target.proxy.heal()
    for member in target.cluster.members:
        if not member.running:
            member.start()
    for member in target.cluster.members:
        member.wait_healthy(30)


def machine() -> str:
    """The machine, for the plots' captions: its cores and processor model."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()}-core {model}"


def plots(by_kind: dict[str, Totals], directory: Path, shape: Shape) -> list[Path]:
    """Each kind's first history drawn as ``directory/<kind>.svg``."""
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    caption = (
        f"make jepsen, {today}, on a {machine()}; {shape.processes} client processes x "
        f"{shape.tasks} tasks, the fault held {shape.hold:g} s"
    )
    written = []
    for kind, t in by_kind.items():
        if t.sample is not None:
            history, window = t.sample
            path = directory / f"{kind.replace(' ', '-')}.svg"
            written.append(plot_history(history, window, path, title=kind, caption=caption))
    return written


def report(by_kind: dict[str, Totals]) -> str:
    head = (
        f"{'fault':<19} {'runs':>4} {'ops':>6} {'acked':>6} {'unknown':>7} {'violations':>10} "
        f"{'events':>6} {'missing':>7} {'dup':>3} {'cache≠':>6} {'recover max/mean':>16}"
    )
    lines = [head]
    for kind, t in by_kind.items():
        rec = t.recoveries or [0.0]
        lines.append(
            f"{kind:<19} {t.histories:>4} {t.operations:>6} {t.acknowledged:>6} {t.unknown:>7} "
            f"{t.violations:>10} {t.watch_events:>6} {t.missing:>7} {t.duplicated:>3} "
            f"{t.cache_mismatches:>6} {max(rec):>7.2f}s/{sum(rec) / len(rec):.2f}s"
        )
    return "\n".join(lines)


def report_replicas(by_kind: dict[str, ReplicaTotals]) -> str:
    lines = [
        "controller replicas (3, sharded) under the cluster's faults: no key reconciled by two "
        "at once",
        f"{'fault':<19} {'runs':>4} {'records':>7} {'leases':>6} {'refused':>7} {'violations':>10}",
    ]
    for kind, t in by_kind.items():
        lines.append(
            f"{kind:<19} {t.histories:>4} {t.records:>7} {t.leases:>6} {t.refused:>7} "
            f"{t.violations:>10}"
        )
    return "\n".join(lines)


async def replica_histories(target: Target, count: int, hold: float) -> dict[str, ReplicaTotals]:
    """``count`` controller histories, cycling through the cluster's fault kinds."""
    kinds = [k for k, v in KINDS.items() if not v.proxy]
    by_kind = {kind: ReplicaTotals() for kind in kinds[:count]}
    started = time.monotonic()
    for i in range(count):
        kind = kinds[i % len(kinds)]
        await asyncio.to_thread(heal, target)
        totals = by_kind[kind]
        try:
            make = functools.partial(KINDS[kind].make, target)
            await replica_history(target.cluster.endpoints, make, i, hold, totals)
        except Exception as e:  # a run that could not finish counts as a violation
            totals.violations += 1
            where = traceback.extract_tb(e.__traceback__)[-1]
            totals.notes.append(
                f"replicas {i}: {e!r} (at {Path(where.filename).name}:{where.lineno})"
            )
        elapsed = time.monotonic() - started
        print(f"replica history {i + 1}/{count}: {kind}, {elapsed:.0f}s", flush=True)
    return by_kind


async def main_async(
    histories: int,
    shape: Shape,
    *,
    proxy_only: bool = False,
    only: Sequence[str] = (),
    plot_dir: Path | None = None,
    replicas: int = 0,
) -> int:
    kinds = [k for k, v in KINDS.items() if (v.proxy or not proxy_only) and (not only or k in only)]
    if not kinds:
        raise ValueError(f"no fault kind to run among {only}")
    by_kind = {kind: Totals() for kind in kinds}
    started = time.monotonic()
    cluster = EtcdCluster() if proxy_only else NetnsCluster()
    with cluster, TcpProxy(cluster.endpoints) as proxy:
        target = Target(cluster, proxy)
        for i in range(histories):
            kind = kinds[i % len(kinds)]
            await asyncio.to_thread(heal, target)
            try:
                await one(target, kind, i, by_kind[kind], shape)
            except Exception as e:  # a run that could not finish counts as a violation
                by_kind[kind].violations += 1
                where = traceback.extract_tb(e.__traceback__)[-1]
                by_kind[kind].notes.append(
                    f"history {i}: {e!r} (at {Path(where.filename).name}:{where.lineno})"
                )
            elapsed = time.monotonic() - started
            print(f"history {i + 1}/{histories}: {kind}, {elapsed:.0f}s", flush=True)
        by_replicas = {} if proxy_only else await replica_histories(target, replicas, shape.hold)
    if histories:
        print(report(by_kind))
    if by_replicas:
        print(report_replicas(by_replicas))
    if plot_dir is not None:
        for path in plots(by_kind, plot_dir, shape):
            print(f"wrote {path}")
    failed = False
    for kind, t in by_kind.items():
        for note in t.notes:
            print(f"{kind}: {note}")
        failed |= bool(t.violations or t.missing or t.duplicated or t.cache_mismatches)
    for kind, r in by_replicas.items():
        for note in r.notes:
            print(f"replicas, {kind}: {note}")
        failed |= bool(r.violations)
    controllers = sum(r.histories for r in by_replicas.values())
    print(
        f"{histories} histories ({shape.processes} client processes x {shape.tasks} tasks each) "
        f"and {controllers} of controller replicas in {time.monotonic() - started:.0f}s: "
        f"{'FAIL' if failed else 'ok'}"
    )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--histories", type=int, default=30)
    parser.add_argument("--hold", type=float, default=2.5, help="seconds each fault is held")
    parser.add_argument("--after", type=float, default=1.0, help="workload seconds after it")
    parser.add_argument("--processes", type=int, default=2, help="client processes a history")
    parser.add_argument("--tasks", type=int, default=3, help="asyncio tasks a client process")
    parser.add_argument(
        "--proxy-only",
        action="store_true",
        help="only the proxy's faults, on a loopback cluster (no namespaces, no root)",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=len([k for k in KINDS.values() if not k.proxy]),
        help="controller histories after the others (default: one per cluster fault; 0: none)",
    )
    parser.add_argument(
        "--plots", type=Path, default=None, help="write each kind's first history as DIR/KIND.svg"
    )
    parser.add_argument(
        "--kinds", default="", help=f"comma-separated fault kinds (default all: {', '.join(KINDS)})"
    )
    args = parser.parse_args(argv)
    only = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in only if k not in KINDS]
    if unknown:
        parser.error(f"unknown fault kinds {unknown}")
    shape = Shape(processes=args.processes, tasks=args.tasks, hold=args.hold, after=args.after)
    proxy_only = args.proxy_only
    if not proxy_only:
        why = netns_available()
        if why is not None:
            print(f"no network namespaces ({why}): the proxy's faults only", file=sys.stderr)
            proxy_only = True
    return asyncio.run(
        main_async(
            args.histories,
            shape,
            proxy_only=proxy_only,
            only=only,
            plot_dir=args.plots,
            replicas=args.replicas,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
