"""Endpoint health (issue #14): with one member of a three-member cluster silent (isolated by
a blackhole, or paused with SIGSTOP), the client keeps serving from the healthy majority: the
silent member's endpoint is ejected, requests go to the others, a watch on it moves, and once
the member answers again it is re-admitted and used. Those tests run on ``NetnsCluster``
(network namespaces) and are skipped, saying why, where namespaces cannot be made; two more
need no privileges: an endpoint that accepts connections and never answers, and one that
refuses them, each beside the session's etcd."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from etcd_resources import EtcdClient, EtcdStorageBackend, ResourceRepository, _core
from etcd_resources.watching import EventType
from jepsen.faults import Fault, Isolate, Pause, injected
from jepsen.netns import NetnsCluster, NetnsMember, netns_available
from jepsen.run import wait_serving
from jepsen.workload import DEFINITE, INDEFINITE, counter_resource

from .helpers import worker

WHY_NOT = netns_available()
needs_netns = pytest.mark.skipif(WHY_NOT is not None, reason=f"no network namespaces: {WHY_NOT}")

TIMEOUT = 2.0
"""The client's request timeout."""
FRACTION = 0.25
"""The share of its fault-free ok throughput the workload keeps with one member silent."""
SLACK = 0.5
"""How much longer than the request timeout an operation may take (scheduling on a busy
2-core machine)."""
TASKS = 4
READMIT_BOUND = 20.0
"""Seconds from undoing the fault until requests reach the member again."""


@dataclass
class Tally:
    """What a workload run did."""

    seconds: float
    ok: int = 0
    failed: int = 0
    unknown: int = 0
    longest: float = 0.0
    """The longest any one operation took."""

    @property
    def rate(self) -> float:
        return self.ok / self.seconds

    def __str__(self) -> str:
        return (
            f"{self.ok} ok, {self.failed} failed, {self.unknown} unknown in {self.seconds:.1f}s "
            f"({self.rate:.0f} ok/s, longest {self.longest:.2f}s)"
        )


async def workload(repo: ResourceRepository[Any], seconds: float, *, tag: str) -> Tally:
    """``TASKS`` asyncio tasks, each doing gets and compare-and-swap increments of a counter
    of its own, for ``seconds`` (bounded by a count too)."""
    tally = Tally(seconds)
    deadline = time.monotonic() + seconds

    async def timed(op: Any) -> Any:
        t0 = time.monotonic()
        try:
            return await op
        finally:
            tally.longest = max(tally.longest, time.monotonic() - t0)

    async def task(i: int) -> None:
        name = f"{tag}-{i}"
        for _ in range(100_000):
            if time.monotonic() >= deadline:
                return
            try:
                got = await timed(repo.get_async(name))
                tally.ok += 1
                if got is None:
                    await timed(repo.add_async(counter_resource(name, 0)))
                else:
                    n = int(got["status"]["n"])
                    version = int(got["metadata"]["resource_version"])
                    await timed(repo.update_async(counter_resource(name, n + 1, version)))
                tally.ok += 1
            except DEFINITE:
                tally.failed += 1
            except INDEFINITE:
                tally.unknown += 1

    async with asyncio.TaskGroup() as group:
        for i in range(TASKS):
            group.create_task(task(i))
    return tally


def health_of(client: EtcdClient, member: NetnsMember) -> dict[str, Any]:
    return client.endpoint_health()[member.endpoint]


async def until_used(
    client: EtcdClient, repo: ResourceRepository[Any], member: NetnsMember, *, tag: str
) -> float:
    """Seconds (bounded) until the member is healthy again and the client's requests reach
    it: the workload runs in short rounds meanwhile."""
    started = time.monotonic()
    sent = health_of(client, member)["requests"]
    for _ in range(1000):
        state = health_of(client, member)
        if state["healthy"] and state["requests"] > sent:
            return time.monotonic() - started
        assert time.monotonic() - started < READMIT_BOUND, f"not used again: {state}"
        await workload(repo, 0.2, tag=tag)
    raise AssertionError("unreachable: the loop is bounded by READMIT_BOUND")


@dataclass
class FaultRun:
    """The workload's tallies around one fault held on one member."""

    before: Tally
    during: Tally
    after: Tally
    state: dict[str, Any]
    """The member's endpoint health at the end of the fault."""
    sent: int
    """Requests sent to the member during the fault."""


async def under_fault(
    cluster: NetnsCluster,
    prefix: str,
    member: NetnsMember,
    fault: Fault,
    settle: Callable[[], Awaitable[str]] | None = None,
) -> FaultRun:
    """The workload's ok throughput with ``fault`` held (once ``settle`` returns, if given:
    it says what it waited for), against the fault-free throughput measured just before;
    then until the member is used again after the fault, and a second after that."""
    async with EtcdClient(cluster.endpoints, timeout=TIMEOUT, breaker_threshold=0) as client:
        repo: ResourceRepository[Any] = ResourceRepository(client, prefix)
        await wait_serving(EtcdStorageBackend(client, prefix.rstrip("/") + "-probe/"), 10)
        await workload(repo, 0.5, tag="warm")
        before = await workload(repo, 2.0, tag="w")
        async with injected(fault):
            settled = await settle() if settle is not None else ""
            sent = health_of(client, member)["requests"]
            during = await workload(repo, 3.0, tag="w")
            state = health_of(client, member)
        readmitted = await until_used(client, repo, member, tag="w")
        after = await workload(repo, 1.0, tag="w")
    run = FaultRun(before, during, after, state, state["requests"] - sent)
    print(
        f"\n{fault.name}{settled}: before {before}\n  during {during}\n  after {after}\n"
        f"  during/before {during.rate / before.rate:.0%}; member during the fault: "
        f"{state} ({run.sent} requests during it); "
        f"used again {readmitted:.2f}s after the fault was undone"
    )
    return run


async def silent_member(
    cluster: NetnsCluster, prefix: str, make: Callable[[NetnsMember], Fault]
) -> None:
    """``under_fault`` with ``make(follower)``: the member found silent and skipped."""
    member = cluster.followers()[0]
    run = await under_fault(cluster, prefix, member, make(member))
    assert run.during.rate >= FRACTION * run.before.rate
    assert run.during.longest <= TIMEOUT + SLACK, run.during
    assert not run.state["healthy"] and run.state["ejections"] >= 1, run.state
    # Only requests sent before it was found silent went there (probes are not counted).
    assert run.sent <= 2 * TASKS, run.state


@needs_netns
async def test_isolated_member_is_skipped_then_used_again(
    healthy: NetnsCluster, etcd_prefix: str
) -> None:
    await silent_member(healthy, etcd_prefix, lambda m: Isolate([m]))


@needs_netns
async def test_paused_member_is_skipped_then_used_again(
    healthy: NetnsCluster, etcd_prefix: str
) -> None:
    await silent_member(healthy, etcd_prefix, Pause)


@needs_netns
async def test_watch_on_a_silent_member_moves(healthy: NetnsCluster, etcd_prefix: str) -> None:
    """A watch whose stream is on the member that goes silent keeps delivering: every write
    acknowledged during the fault arrives while the fault is still held."""
    async with EtcdClient(healthy.endpoints, timeout=TIMEOUT, breaker_threshold=0) as client:
        repo: ResourceRepository[Any] = ResourceRepository(client, etcd_prefix)
        await wait_serving(EtcdStorageBackend(client, etcd_prefix.rstrip("/") + "-probe/"), 10)
        start = int((await repo.list_page_async(limit=1)).resource_version)
        seen: set[str] = set()
        wanted: set[str] = set()
        arrived = asyncio.Event()

        def expect(names: set[str]) -> None:
            wanted.clear()
            wanted.update(names)
            arrived.clear()
            if wanted <= seen:
                arrived.set()

        async def watch() -> None:
            async for event in repo.watch(resource_version=start):
                if event.type is not EventType.BOOKMARK:
                    seen.add(str(event.resource["metadata"]["name"]))
                    if wanted <= seen:
                        arrived.set()

        watcher = asyncio.create_task(watch())
        try:
            await repo.add_async(counter_resource("first", 0))
            expect({"first"})
            await asyncio.wait_for(arrived.wait(), 10)
            carrying = [m for m in healthy.members if health_of(client, m)["watches"] > 0]
            assert len(carrying) == 1, client.endpoint_health()
            member = carrying[0]
            async with injected(Isolate([member])):
                acked: list[str] = []
                for i in range(40):
                    name = f"during-{i}"
                    with contextlib.suppress(*INDEFINITE):
                        await repo.add_async(counter_resource(name, 0))
                        acked.append(name)
                    if len(acked) >= 5:
                        break
                assert len(acked) >= 5, acked
                expect(set(acked))
                await asyncio.wait_for(arrived.wait(), 3 * TIMEOUT)
                moved = [m.name for m in healthy.members if health_of(client, m)["watches"] > 0]
            assert member.name not in moved, moved
            print(f"\nwatch moved from {member.name} to {moved}: {client.endpoint_health()}")
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


@pytest.fixture
def mute_endpoint() -> Iterator[str]:
    """An endpoint that accepts connections and never answers (a hung member)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"127.0.0.1:{s.getsockname()[1]}"


async def test_a_mute_endpoint_beside_a_working_one_is_skipped(
    etcd_endpoints: list[str], etcd_prefix: str, mute_endpoint: str
) -> None:
    """Reads sent to the mute endpoint are answered by the other after their share of the
    timeout (hedged), which ejects it; then nothing more goes there."""
    timeout = 1.0
    async with EtcdClient(
        [mute_endpoint, *etcd_endpoints], timeout=timeout, breaker_threshold=0
    ) as client:
        repo: ResourceRepository[Any] = ResourceRepository(client, etcd_prefix)
        tally = await workload(repo, 2.0, tag="m")
        health = client.endpoint_health()
    print(f"\nmute endpoint beside etcd: {tally}; {health}")
    mute = health[mute_endpoint]
    assert not mute["healthy"] and mute["ejections"] == 1, health
    assert mute["requests"] <= 2 * TASKS, health
    assert all(h["in_flight"] == 0 for h in health.values()), health  # hedges dropped
    assert tally.unknown <= TASKS, tally
    assert tally.ok > 50, tally
    assert tally.longest <= timeout + SLACK, tally


async def test_an_endpoint_that_refuses_beside_a_working_one_is_skipped(
    etcd_endpoints: list[str], etcd_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """It is ejected on the first request sent there (a write that never left is sent to the
    other), and every call succeeds."""
    refused = "127.0.0.1:1"
    with caplog.at_level("WARNING", logger="etcd_resources"):
        async with EtcdClient([refused, *etcd_endpoints], timeout=2.0) as client:
            repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, etcd_prefix)
            for i in range(6):
                await repo.add_async(worker(f"w{i}"))
                assert await repo.get_async(f"w{i}") is not None
            health = client.endpoint_health()
            assert set(health) == {refused, *etcd_endpoints}
            assert not health[refused]["healthy"], health
            assert health[refused]["ejections"] == 1, health
            assert health[refused]["in_flight"] == 0, health
            assert all(health[e]["healthy"] for e in etcd_endpoints), health
            assert sum(health[e]["requests"] for e in etcd_endpoints) >= 12, health
            assert client.metrics()["create"]["errors"] == 0
        _core.flush_logs()
    messages = [r.getMessage() for r in caplog.records if r.name == "etcd_resources"]
    assert any(refused in m and "ejected" in m for m in messages), messages
    assert EtcdClient("memory://").endpoint_health() == {}
