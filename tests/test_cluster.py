"""A three-member etcd cluster on loopback: under a continuous compare-and-swap load, killing
the leader and then one more member loses no acknowledged write and applies none twice; without
a quorum calls fail with a clear error, and work resumes once it is back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from etcd_resources import EtcdClient, EtcdStorageBackend, EtcdTimeoutError, UnavailableError
from etcd_resources.testing import EtcdCluster

TRANSIENT = (UnavailableError, EtcdTimeoutError)


async def test_failover_loses_nothing_and_applies_nothing_twice(tmp_path: Path) -> None:
    with EtcdCluster(data_dir=tmp_path) as cluster:
        client = EtcdClient(cluster.endpoints, timeout=2.0, breaker_threshold=0)
        backend = EtcdStorageBackend(client, "/failover/")
        await backend.set("counter", {"n": 0})
        acked: list[int] = []
        unknown = 0
        failed_reads = 0

        async def increment() -> None:
            """One compare-and-swap from the value read: +1, exactly once or not at all."""
            nonlocal unknown, failed_reads
            try:
                current = await backend.get("counter")
            except TRANSIENT:
                failed_reads += 1
                return
            assert current is not None
            n, version = current["n"], current["metadata"]["resource_version"]
            try:
                if await backend.compare_and_swap("counter", version, {"n": n + 1}):
                    acked.append(n + 1)
            except TRANSIENT:
                unknown += 1  # applied or not: the final count tells

        async def load(rounds: int) -> None:
            for _ in range(rounds):
                await increment()

        await load(30)
        leader = cluster.leader()
        leader.kill()  # the leader dies mid-load
        await load(60)
        survivors = [m for m in cluster.members if m.running]
        assert len(survivors) == 2
        await load(30)
        assert len(acked) >= 60, f"work did not resume on the remaining quorum ({len(acked)})"

        # One more member down: no quorum. Calls fail with a clear error, not a hang.
        survivors[0].kill()
        started = time.monotonic()
        with pytest.raises(TRANSIENT) as info:
            for _ in range(20):
                await backend.set("counter-probe", {"x": 1})
        assert time.monotonic() - started < 30
        assert "etcd" in str(info.value)

        # Quorum back: work resumes.
        survivors[0].start()
        before = len(acked)
        deadline = time.monotonic() + 30
        while len(acked) < before + 10:
            assert time.monotonic() < deadline, "no write succeeded after the quorum came back"
            await increment()

        final = await backend.get("counter")
        assert final is not None
        n = final["n"]
        assert acked == sorted(set(acked)), "an acknowledged value was applied twice"
        assert set(acked) <= set(range(1, n + 1)), "an acknowledged write is missing"
        assert n - len(acked) <= unknown, "a write was applied that nobody can account for"
        client.close()
