"""Do concurrent calls on one client overlap? 200 gets (and creates) issued at once against
200 issued one after another, on a real etcd; prints the speed-up. A lock that serialised
requests would show a ratio near 1."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
import uuid
from typing import Any

from etcd_resources import EtcdClient, ResourceRepository

N = 200
ROUNDS = 5


def doc(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "lab.neuroglia.io/v1",
        "kind": "LabWorker",
        "metadata": {"name": name, "labels": {"lab-track": "ccna"}},
        "spec": {"lab_track": "ccna", "notes": "x" * 1500},
        "status": {"phase": "Ready"},
    }


async def timed(make: Any, concurrent: bool) -> float:
    started = time.perf_counter()
    if concurrent:
        await asyncio.gather(*(make(i) for i in range(N)))
    else:
        for i in range(N):
            await make(i)
    return time.perf_counter() - started


async def measure(endpoints: list[str]) -> list[tuple[str, float, float]]:
    rows = []
    serial = itertools.count()
    async with EtcdClient(endpoints) as client:
        for op in ("get", "create"):
            seq, conc = [], []
            for r in range(ROUNDS):
                repo: ResourceRepository[dict[str, Any]] = ResourceRepository(
                    client, f"/bench-{uuid.uuid4().hex[:8]}/"
                )
                if op == "get":
                    await asyncio.gather(*(repo.add_async(doc(f"w{i}")) for i in range(N)))

                    async def make(i: int, repo: Any = repo) -> Any:
                        return await repo.get_async(f"w{i}")
                else:

                    async def make(i: int, repo: Any = repo) -> Any:
                        return await repo.add_async(doc(f"w{next(serial)}"))

                # Alternate the order so neither mode always runs on a warmer server.
                for concurrent in (False, True) if r % 2 == 0 else (True, False):
                    (conc if concurrent else seq).append(await timed(make, concurrent))
            rows.append((op, statistics.median(seq), statistics.median(conc)))
    return rows


def report(rows: list[tuple[str, float, float]]) -> str:
    lines = [
        f"{N} operations on one client, median of {ROUNDS} rounds",
        f"{'operation':<10}{'sequential':>14}{'concurrent':>14}{'speed-up':>10}",
    ]
    for op, seq, conc in rows:
        lines.append(f"{op:<10}{seq * 1000:>11.1f} ms{conc * 1000:>11.1f} ms{seq / conc:>9.1f}x")
    return "\n".join(lines)


def run(endpoints: list[str]) -> str:
    return report(asyncio.run(measure(endpoints)))
