"""Faults injected for real: a three-member etcd cluster in network namespaces
(``jepsen.netns``), each fault of ``jepsen.faults`` held while
``run_workload`` runs a mixed workload with a 2 s client timeout; every recorded history must
be linearizable, and the cluster must serve again within a bounded time after the fault is
undone. Skipped (saying why) where network namespaces cannot be made; CI runs as root."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from etcd_resources import (
    EtcdClient,
    EtcdStorageBackend,
    ResourceRepository,
)
from etcd_resources.testing import EtcdServerError
from jepsen import History, check, run_workload
from jepsen.faults import Crash, Degrade, Fault, Isolate, Pause, injected
from jepsen.netns import PREFIX, NetnsCluster, NetnsMember, netns_available
from jepsen.observe import Observed, Observer
from jepsen.replicas import ReplicaTotals, replica_history
from jepsen.run import wait_serving

WHY_NOT = netns_available()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=f"no network namespaces: {WHY_NOT}")

KEYS = ("a", "b", "c")
TIMEOUT = 2.0
RECOVERY_BOUND = 10.0
"""Seconds from undoing a fault until a write through the client succeeds again."""


@dataclass
class Run:
    fault: Fault
    history: History
    recovery: float
    window: tuple[float, float]
    """When the fault was started and undone (``History.now()``)."""
    observed: Observed
    """The watcher's events and the informer cache, checked after healing."""
    leader_during: str | None = None
    """The leader the members not faulted had elected by the end of the fault."""

    def ok_per_second(self) -> tuple[float, float, float]:
        """Operations completed ok per second before, during and after the fault."""
        start, stop = self.window
        oks = [op.complete for op in self.history if op.outcome == "ok"]
        first = min(op.invoke for op in self.history)
        last = max(oks)
        return (
            sum(1 for t in oks if t < start) / max(start - first, 1e-9),
            sum(1 for t in oks if start <= t < stop) / (stop - start),
            sum(1 for t in oks if t >= stop) / max(last - stop, 1e-9),
        )


async def run_with_fault(
    cluster: NetnsCluster,
    prefix: str,
    make_fault: Callable[[], Fault],
    *,
    faulted: Callable[[Fault], list[NetnsMember]] = lambda f: [],
    before: float = 0.5,
    hold: float = 3.0,
    after: float = 2.0,
) -> Run:
    """``run_workload`` for ``before + hold + after`` seconds; the fault (made when it is
    injected, so it can pick the leader of that moment) is held from ``before`` for ``hold``
    seconds; then the time until the client is served again is measured. A watcher and an
    informer cache (``Observer``) run alongside, and a second cache starts while the workload
    writes; all are checked once the cluster is healed."""
    async with (
        EtcdClient(cluster.endpoints, timeout=TIMEOUT, breaker_threshold=0) as client,
        EtcdClient(cluster.endpoints, timeout=TIMEOUT, breaker_threshold=0) as late,
    ):
        repo: ResourceRepository[Any] = ResourceRepository(client, prefix)
        probe = EtcdStorageBackend(client, prefix.rstrip("/") + "-probe/")
        await wait_serving(probe, 10)
        observer = Observer(client, prefix)
        await observer.start()
        faults: list[Fault] = []
        window: list[float] = []
        leader: list[str] = []

        async def nemesis() -> float:
            # The fault schedule, not synchronisation; a second cache starts while the
            # workload writes, before the fault.
            await asyncio.sleep(before / 2)
            await observer.start_late(late)
            await asyncio.sleep(before / 2)
            fault = await asyncio.to_thread(make_fault)
            faults.append(fault)
            async with injected(fault):
                window.append(History.now())
                await asyncio.sleep(hold)
                others = [m for m in cluster.members if m not in faulted(fault)]
                with contextlib.suppress(EtcdServerError):
                    leader.append((await asyncio.to_thread(cluster.leader, others)).name)
            window.append(History.now())
            return await wait_serving(probe, RECOVERY_BOUND)

        async with asyncio.TaskGroup() as group:
            work = group.create_task(
                run_workload(
                    repo, keys=KEYS, tasks=4, duration=before + hold + after, max_ops=20_000
                )
            )
            healing = group.create_task(nemesis())
        observed = await observer.finish()
    return Run(
        faults[0],
        work.result(),
        healing.result(),
        (window[0], window[1]),
        observed,
        next(iter(leader), None),
    )


def verify(run: Run) -> None:
    history = run.history
    result = check(history, keys=KEYS)
    rates = "/".join(f"{r:.0f}" for r in run.ok_per_second())
    print(
        f"\n{run.fault.name}: {len(history)} operations, {history.count(outcome='ok')} ok, "
        f"{history.count(outcome='fail')} failed, {history.count(outcome='unknown')} unknown; "
        f"ok/s before/during/after {rates}; leader during {run.leader_during}; "
        f"recovered in {run.recovery:.2f}s; "
        f"states searched {sum(r.states for r in result.keys.values())}; "
        f"watch events {run.observed.events}, missing {run.observed.missing}, "
        f"duplicated {run.observed.duplicated}, out of order {run.observed.out_of_order}; "
        f"cache mismatches {run.observed.cache_mismatches}"
    )
    assert result.linearizable, "\n".join(result.violations)
    assert run.observed.missing == 0, run.observed.details
    assert run.observed.duplicated == 0, run.observed.details
    assert run.observed.out_of_order == 0, run.observed.details
    assert run.observed.cache_mismatches == 0, run.observed.details
    assert run.observed.events > 10
    assert not result.inconclusive
    assert history.count("cas", "ok") > 10
    assert run.recovery < RECOVERY_BOUND


def test_cluster_in_namespaces_serves_and_is_torn_down(tmp_path: Path) -> None:
    c = NetnsCluster(data_dir=tmp_path)
    with c:
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert all(m.netns in names for m in c.members)
        assert all(m.healthy() for m in c.members)
        assert c.leader() in c.members

        async def serve() -> None:
            async with EtcdClient(c.endpoints, timeout=TIMEOUT) as client:
                backend = EtcdStorageBackend(client, "/netns/")
                await backend.set("k", {"n": 1})
                got = await backend.get("k")
                assert got is not None and got["n"] == 1

        asyncio.run(serve())
        pids = [m.pid for m in c.members]
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert c.tag not in names and c.tag not in links
    assert all(pid is not None and not Path(f"/proc/{pid}").exists() for pid in pids)
    assert PREFIX == "erf-"


def members_of(fault: Fault) -> list[NetnsMember]:
    if isinstance(fault, Isolate):
        return fault.members
    assert isinstance(fault, Degrade | Pause | Crash)
    return [fault.member]


async def leader_fault(
    cluster: NetnsCluster, prefix: str, make: Callable[[NetnsMember], Fault]
) -> Run:
    """``make(leader)`` held while the workload runs: the others elect a new leader."""
    old = cluster.leader()
    run = await run_with_fault(cluster, prefix, lambda: make(old), faulted=members_of)
    verify(run)
    assert run.leader_during is not None and run.leader_during != old.name, run.leader_during
    return run


async def test_isolated_follower(healthy: NetnsCluster, etcd_prefix: str) -> None:
    run = await run_with_fault(
        healthy, etcd_prefix, lambda: Isolate(healthy.followers()[:1]), faulted=members_of
    )
    verify(run)
    assert run.ok_per_second()[1] > 0, "the majority served no one during the partition"


async def test_isolated_leader(healthy: NetnsCluster, etcd_prefix: str) -> None:
    await leader_fault(healthy, etcd_prefix, lambda m: Isolate([m]))


async def test_no_quorum(healthy: NetnsCluster, etcd_prefix: str) -> None:
    run = await run_with_fault(
        healthy, etcd_prefix, lambda: Isolate(healthy.followers()), hold=2.5, faulted=members_of
    )
    verify(run)
    assert run.history.count(outcome="unknown") > 0


async def test_delayed_and_lossy_leader(healthy: NetnsCluster, etcd_prefix: str) -> None:
    run = await run_with_fault(
        healthy, etcd_prefix, lambda: Degrade(healthy.leader()), faulted=members_of
    )
    verify(run)


async def test_paused_leader(healthy: NetnsCluster, etcd_prefix: str) -> None:
    await leader_fault(healthy, etcd_prefix, Pause)


async def test_crashed_leader_restarts_on_its_data(healthy: NetnsCluster, etcd_prefix: str) -> None:
    await leader_fault(healthy, etcd_prefix, Crash)


async def test_controller_replicas_without_quorum_never_run_a_key_twice(
    healthy: NetnsCluster,
) -> None:
    """``make jepsen``'s controller history, once: three replicas of a sharded controller while
    etcd has no quorum for 2.5 s (longer than their leases' 2 s): they stop every key on their
    own clock, register again with new leases once etcd answers, and the overlap check finds no
    key reconciled by two at once, no record written outside its writer's holding."""
    totals = ReplicaTotals()
    await replica_history(healthy.endpoints, lambda: Isolate(healthy.followers()), 0, 2.5, totals)
    assert totals.histories == 1 and totals.violations == 0, totals.notes
    assert totals.leases > 3, "the replicas held their shards again under new leases"
    assert totals.records > 0
