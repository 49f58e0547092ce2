"""TTL resources, leases kept alive in Rust, and leader election on etcd with Neuroglia's
LeaderElection."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from datetime import timedelta
from typing import Any

import pytest

from etcd_resources import EtcdClient, EventType, NotFoundError, ResourceRepository

from .helpers import worker

# etcd refuses TTLs under its minimum (about 2 s with default settings): use 2.
TTL = 2


async def gone(repo: ResourceRepository[Any], name: str, within: float) -> None:
    """Wait for the DELETED event of `name` (the watch starts at the current revision)."""

    async def run() -> None:
        async for event in repo.watch(send_initial=True):
            if event.type is EventType.DELETED and event.resource["metadata"]["name"] == name:
                return

    await asyncio.wait_for(run(), within)


async def test_a_ttl_resource_expires(client: EtcdClient, prefix: str) -> None:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    await repo.add_async(worker("ephemeral"), ttl=TTL)
    await repo.add_async(worker("durable"))
    assert await repo.contains_async("ephemeral")
    await gone(repo, "ephemeral", within=TTL * 4)
    assert not await repo.contains_async("ephemeral")
    assert await repo.contains_async("durable")


async def test_a_kept_lease_holds_until_cancelled(client: EtcdClient, prefix: str) -> None:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    lease = await client.grant_lease(TTL)
    await repo.add_async(worker("held"), lease=lease)
    updated = await repo.update_async({**worker("held"), "status": {"phase": "Ready"}})
    # Waiting out more than two TTLs is what is being tested here, not a synchronisation.
    await asyncio.sleep(TTL * 2.5)
    assert await repo.contains_async("held"), "the keep-alive did not renew the lease"
    assert not lease.lost
    lease.cancel()
    await gone(repo, "held", within=TTL * 4)
    assert updated["status"]["phase"] == "Ready"


async def test_a_revoked_lease_is_reported(client: EtcdClient, prefix: str) -> None:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    lease = await client.grant_lease(TTL)
    await repo.add_async(worker("w1"), lease=lease)
    await client.revoke_lease(lease.id)  # someone else revokes it
    reason = await asyncio.wait_for(lease.wait_lost(), TTL * 3)
    assert isinstance(reason, NotFoundError)
    assert lease.lost
    assert not await repo.contains_async("w1")
    with pytest.raises(NotFoundError):
        await client.keep_alive_once(lease.id)


async def test_coordination_backend(client: EtcdClient, prefix: str) -> None:
    from etcd_resources.neuroglia import EtcdCoordinationBackend

    backend = EtcdCoordinationBackend(client, prefix)
    assert await backend.get_lease_holder("leader") is None
    results = await asyncio.gather(
        *(backend.acquire_lease("leader", f"c{i}", TTL) for i in range(5))
    )
    assert results.count(True) == 1
    holder = f"c{results.index(True)}"
    assert await backend.get_lease_holder("leader") == holder
    assert await backend.renew_lease("leader", holder, TTL)
    assert not await backend.renew_lease("leader", "intruder", TTL)
    assert not await backend.release_lease("leader", "intruder")
    assert await backend.release_lease("leader", holder)
    assert await backend.get_lease_holder("leader") is None
    assert await backend.acquire_lease("leader", "c9", TTL)


async def test_leader_election_on_etcd(client: EtcdClient, prefix: str) -> None:
    from neuroglia.coordination import LeaderElection, LeaderElectionConfig

    from etcd_resources.neuroglia import EtcdCoordinationBackend

    def config(identity: str) -> LeaderElectionConfig:
        return LeaderElectionConfig(
            lease_name="controller",
            identity=identity,
            lease_duration=timedelta(seconds=TTL),
            renew_interval=timedelta(seconds=0.3),
            retry_period=timedelta(seconds=0.2),
        )

    leading: set[str] = set()
    overlap = []
    changed = asyncio.Event()

    def callbacks(name: str) -> tuple[Any, Any]:
        def started() -> None:
            if leading:
                overlap.append((name, set(leading)))
            leading.add(name)
            changed.set()

        def stopped() -> None:
            leading.discard(name)
            changed.set()

        return started, stopped

    electors = {n: LeaderElection(EtcdCoordinationBackend(client, prefix), config(n)) for n in "ab"}
    tasks = {n: asyncio.ensure_future(e.run(*callbacks(n))) for n, e in electors.items()}
    await asyncio.wait_for(changed.wait(), 10)
    (first,) = leading
    changed.clear()
    await electors[first].stop()  # the leader steps down (and releases)
    await asyncio.gather(tasks[first], return_exceptions=True)
    while leading in ({first}, set()):
        changed.clear()
        await asyncio.wait_for(changed.wait(), TTL * 4)
    assert leading == {"b" if first == "a" else "a"}
    assert overlap == []
    other = next(iter(leading))
    await electors[other].stop()
    await asyncio.gather(tasks[other], return_exceptions=True)


ELECTOR = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import timedelta
    from neuroglia.coordination import LeaderElection, LeaderElectionConfig
    from etcd_resources import EtcdClient
    from etcd_resources.neuroglia import EtcdCoordinationBackend

    async def main():
        backend = EtcdCoordinationBackend(EtcdClient(sys.argv[1]), sys.argv[2])
        config = LeaderElectionConfig(lease_name="controller", identity="doomed",
            lease_duration=timedelta(seconds=2), renew_interval=timedelta(seconds=0.3),
            retry_period=timedelta(seconds=0.2))
        await LeaderElection(backend, config).run(lambda: print("LEADING", flush=True),
                                                   lambda: None)

    asyncio.run(main())
    """
)


async def test_killing_the_leader_hands_over_within_the_lease(
    etcd_endpoints: list[str], prefix: str
) -> None:
    from neuroglia.coordination import LeaderElection, LeaderElectionConfig

    from etcd_resources.neuroglia import EtcdCoordinationBackend

    process = subprocess.Popen(  # noqa: ASYNC220 (a process to kill, not awaited)
        [sys.executable, "-c", ELECTOR, etcd_endpoints[0], prefix],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 30)  # type: ignore[union-attr]
        assert line.strip() == "LEADING"
        client = EtcdClient(etcd_endpoints)
        backend = EtcdCoordinationBackend(client, prefix)
        became_leader = asyncio.Event()
        config = LeaderElectionConfig(
            lease_name="controller",
            identity="survivor",
            lease_duration=timedelta(seconds=TTL),
            renew_interval=timedelta(seconds=0.3),
            retry_period=timedelta(seconds=0.2),
        )
        election = LeaderElection(backend, config)
        running = asyncio.ensure_future(election.run(became_leader.set, lambda: None))
        assert await backend.get_lease_holder("leases:controller") == "doomed"
        process.kill()  # no release: only the lease's expiry frees the key
        process.wait()
        loop = asyncio.get_running_loop()
        killed_at = loop.time()
        await asyncio.wait_for(became_leader.wait(), TTL * 4)
        assert loop.time() - killed_at <= TTL + 1.5  # the lease time, plus one retry period
        assert await backend.get_lease_holder("leases:controller") == "survivor"
        await election.stop()
        await asyncio.gather(running, return_exceptions=True)
        client.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


async def test_a_keep_alive_survives_an_etcd_restart(tmp_path: Any) -> None:
    from etcd_resources.testing import EtcdServer

    ttl = 4
    with EtcdServer(data_dir=tmp_path / "etcd") as server:
        client = EtcdClient(server.endpoints, timeout=1.0, breaker_threshold=0)
        repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, "/keep/")
        lease = await client.grant_lease(ttl)
        await repo.add_async(worker("held"), lease=lease)
        server.stop()  # renewals fail while etcd is down...
        await asyncio.to_thread(server.start)  # ...and resume once it is back
        # Outliving two TTLs after the restart is the behaviour under test.
        await asyncio.sleep(ttl * 2)
        assert not lease.lost
        assert await repo.contains_async("held")
        await lease.revoke()
        assert not await repo.contains_async("held")
        client.close()


async def test_a_lease_not_renewed_within_its_ttl_is_lost_while_etcd_cannot_answer(
    tmp_path: Any,
) -> None:
    """etcd frozen (SIGSTOP: connections stay open, nothing answers): the keep-alive cannot
    learn whether the lease lives, so it reports it lost once its TTL has run out since the
    last renewal etcd acknowledged, never later: from then on etcd may have given what it
    guarded to someone else."""
    import os
    import signal
    import time

    from etcd_resources import EtcdTimeoutError
    from etcd_resources.testing import EtcdServer

    ttl = 2
    with EtcdServer(data_dir=tmp_path / "etcd") as server:
        async with EtcdClient(server.endpoints, timeout=1.0, breaker_threshold=0) as client:
            lease = await client.grant_lease(ttl)
            await client.keep_alive_once(lease.id)  # acknowledged: the TTL counts from here
            acknowledged = time.monotonic()
            assert server.pid is not None
            os.kill(server.pid, signal.SIGSTOP)
            try:
                async with asyncio.timeout(ttl * 3):
                    reason = await lease.wait_lost()
                lost_after = time.monotonic() - acknowledged
            finally:
                os.kill(server.pid, signal.SIGCONT)
            assert lease.lost
            assert isinstance(reason, EtcdTimeoutError), reason
            assert "may have expired it" in str(reason)
            # The keep-alive renews every third of the TTL: its last acknowledged renewal was sent
            # at most that long before the freeze.
            assert ttl - ttl / 3 - 0.1 <= lost_after <= ttl + 0.5
