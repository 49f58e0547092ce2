"""Several client processes in one history (``jepsen.clients``): each process
runs asyncio tasks against the same keys on the session's etcd and records JSON lines; the
merged history checks clean, with and without proxy faults, and a merged history that was
tampered with (a double compare-and-swap win across processes, one process's clock off) is
rejected."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import uuid
from collections.abc import Iterator

import pytest

from jepsen import History, Operation, check
from jepsen.clients import ClientProcesses
from jepsen.faults import injected
from jepsen.proxy import ProxyReset, ProxyStall, TcpProxy

KEYS = ("a", "b", "c")


@pytest.fixture(scope="module")
def three_processes(etcd_endpoints: list[str]) -> Iterator[History]:
    """One merged history of 3 processes x 2 tasks for 2 s (made once for the module)."""
    prefix = f"/test-{uuid.uuid4().hex[:12]}/"
    clients = ClientProcesses(etcd_endpoints, prefix, processes=3, tasks=2, duration=2.0, seed=1)

    async def run() -> History:
        await clients.start()
        return await clients.join()

    yield asyncio.run(run())


def owner(op: Operation) -> int:
    """The client process of an operation (task ``i`` of process ``p`` is ``p * 1000 + i``)."""
    return op.process // 1000


def test_histories_of_three_processes_merge_and_check_clean(three_processes: History) -> None:
    history = three_processes
    assert {owner(op) for op in history} == {1, 2, 3}
    assert [op.id for op in history] == list(range(len(history)))
    assert all(a.invoke <= b.invoke for a, b in itertools.pairwise(history))
    result = check(history, keys=KEYS)
    assert result.linearizable, "\n".join(result.violations)
    assert not result.inconclusive
    assert history.count("cas", "ok") > 30
    # The processes ran at the same time: some operation of one overlaps one of another.
    done = [op for op in history if op.outcome == "ok"]
    assert any(
        a.invoke < b.complete and b.invoke < a.complete and owner(a) != owner(b)
        for a, b in itertools.pairwise(done)
    )
    # And they saw each other's writes: a read of a version another process wrote.
    writer = {op.version: owner(op) for op in done if op.kind in ("create", "cas")}
    assert any(
        op.kind == "get" and op.read is not None and writer.get(op.read[1], owner(op)) != owner(op)
        for op in done
    )
    print(
        f"\n{len(history)} operations from 3 processes, {history.count(outcome='ok')} ok, "
        f"{history.count('cas', 'ok')} increments"
    )


def test_a_double_win_across_processes_is_rejected(three_processes: History) -> None:
    """A CAS that one process won, also claimed as won by another process from the same
    version (a new revision, at the same moment): two CASes from one version cannot both
    succeed."""
    ops = three_processes.operations
    won = next(op for op in ops if op.kind == "cas" and op.outcome == "ok")
    other = next(op.process for op in ops if owner(op) != owner(won))
    last = max(op.version or 0 for op in ops)
    twin = dataclasses.replace(won, id=len(ops), process=other, version=last + 1)
    assert check([*ops, twin], keys=KEYS).linearizable is False


def test_one_process_clock_off_is_rejected(three_processes: History) -> None:
    """Times must come from one clock: one process's operations moved 1000 s earlier read
    values another process had not written yet."""
    ops = three_processes.operations
    done = [op for op in ops if op.outcome == "ok"]
    writer = {op.version: owner(op) for op in done if op.kind in ("create", "cas")}
    reader = next(
        owner(op)
        for op in done
        if op.kind == "get"
        and op.read is not None
        and writer.get(op.read[1], owner(op)) != owner(op)
    )
    shifted = [
        dataclasses.replace(op, invoke=op.invoke - 1000, complete=op.complete - 1000)
        if owner(op) == reader
        else op
        for op in ops
    ]
    assert check(shifted, keys=KEYS).linearizable is False


def test_merging_histories_that_share_a_process_is_refused() -> None:
    a, b = History(), History()
    a.record(process=1000, kind="get", key="a", invoke=1.0, complete=2.0, outcome="ok")
    b.record(process=1000, kind="get", key="a", invoke=1.5, complete=2.5, outcome="ok")
    with pytest.raises(ValueError, match="process 1000"):
        History.merge([a, b])


async def test_two_processes_through_a_faulty_proxy_check_clean(
    etcd_endpoints: list[str], etcd_prefix: str
) -> None:
    """Two processes through the proxy (in this process) while it stalls, then resets,
    connections mid-request: the merged history is linearizable, with unknown outcomes."""
    with TcpProxy(etcd_endpoints) as proxy:
        clients = ClientProcesses(
            proxy.endpoints, etcd_prefix, processes=2, tasks=3, duration=3.0, timeout=1.0
        )
        await clients.start()
        for fault in (ProxyStall(proxy, mid_request=True), ProxyReset(proxy, mid_request=True)):
            await asyncio.sleep(0.4)  # the fault schedule, not synchronisation
            async with injected(fault):
                await asyncio.sleep(0.8)
        history = await clients.join()
        stats = proxy.stats()[0]
    result = check(history, keys=KEYS)
    print(f"\n{len(history)} operations, {history.count(outcome='unknown')} unknown; proxy {stats}")
    assert result.linearizable, "\n".join(result.violations)
    assert {owner(op) for op in history} == {1, 2}
    assert history.count(outcome="unknown") > 0
    assert stats.triggered == 2 and stats.resets > 0
