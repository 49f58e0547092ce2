"""``make jepsen``'s controller histories: three replicas of a sharded controller
(``replica.py``, each a process of its own) reconcile twelve resources on the cluster while one
of the cluster's own faults is held (a member isolated, paused, crashed, no quorum, ...); then
every replica is stopped by SIGTERM and the overlap check (``overlap.py``) reads etcd's history:
no record committed outside its writer's holding of the shard, no key reconciled by two
replicas at once.

The replicas' leases run out while etcd has no quorum (a lease cannot be renewed then): they
stop every key on their own clock, register again once etcd answers, and share the shards
out anew; a history also counts how many leases its replicas held.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from etcd_resources import EtcdClient, ResourceRepository

from .faults import Fault, injected
from .overlap import Records, Replica, check, shard_history

__all__ = ["ReplicaTotals", "replica_history"]

SHARDS = 6
TTL = 2
RESOURCES = 12
PROGRESS = 20  # reconciles that start before the fault, and again after it


@dataclass
class ReplicaTotals:
    histories: int = 0
    records: int = 0
    leases: int = 0
    refused: int = 0
    """Late writes refused by the fence (the replicas' own count)."""
    violations: int = 0
    notes: list[str] = field(default_factory=list)


async def replica_history(
    endpoints: list[str],
    make: Callable[[], Fault],
    seed: int,
    hold: float,
    totals: ReplicaTotals,
) -> None:
    """One history: the replicas settle, the fault made by ``make`` is held ``hold`` seconds,
    the replicas settle again and are stopped; then the check."""
    prefix, coordination, history = (f"/jr-{seed}-{part}/" for part in ("w", "c", "h"))
    async with EtcdClient(endpoints, timeout=2.0) as client:
        repo: ResourceRepository[dict[str, object]] = ResourceRepository(client, prefix)
        for i in range(RESOURCES):
            await repo.add_async({"metadata": {"name": f"w{i}"}, "spec": {}, "status": {}})
        since = await client.current_revision() + 1
        records = Records(client, coordination + "replicas/", history, SHARDS)
        names = {f"r{i}" for i in range(3)}
        args = [prefix, coordination, history]
        replicas = [Replica(n, endpoints, args, shards=SHARDS, ttl=TTL) for n in sorted(names)]
        outputs: list[str] = []
        try:
            for replica in replicas:
                replica.start()
            await records.held_by(names)
            await records.progress(PROGRESS)
            async with injected(await asyncio.to_thread(make)):
                await asyncio.sleep(hold)  # the fault's schedule, not synchronisation
            await records.held_by(names)
            await records.progress(PROGRESS)
            for replica in replicas:
                code, out, err = replica.stop(signal.SIGTERM)
                if code != 0:
                    raise AssertionError(f"{replica.identity} exited {code}: {err[-1000:]}")
                outputs.append(out)
        finally:
            for replica in replicas:
                replica.close()
        holdings = await shard_history(client, coordination + "replicas/", since)
        _, written = await client.list_raw(history)
    violations = check(written, history, holdings)
    totals.histories += 1
    totals.records += len(written)
    totals.leases += len({h[0] for held in holdings.values() for h in held})
    totals.refused += sum(json.loads(o.strip().splitlines()[-1])["fenced"] for o in outputs)
    totals.violations += len(violations)
    totals.notes += violations
