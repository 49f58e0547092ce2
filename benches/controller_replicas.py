"""Controller replicas (issue 21, item 8): a no-op controller over N LabWorkers run as 1, 2
and 4 replica processes sharing 16 shards (`Controller(..., sharding=16)`), against one etcd.

For each count of replicas: the processes start, connect and import, then are told to go at
once; each runs the controller and notes, per key, when it first reconciled it. The row is
N over the time from the go to the moment every key had been reconciled by some replica
(keys a replica gave back after reconciling are counted once, at their first reconcile), and
the RSS a replica grew by from before its controller was made to the end, per resource (each
replica caches the whole prefix: the cache is what lets it take any shard over at once).
Then, with the shards shared out and the replicas idle, the queue latency of live changes:
300 spec changes written one after another (each to another key, so to every replica in
turn), from the write sent (in this process) to its reconcile beginning (in the replica that
holds the key's shard), p50 and p99; both ends read the machine's monotonic clock.

    python benches/controller_replicas.py [N ...]     # default: 10000 100000

On a 2-core machine four processes share two cores with etcd: the rows say what replicas cost
there, not how they scale on a bigger one.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from common import lab_worker

from etcd_resources import EtcdClient, ResourceRepository, thaw

SHARDS = 16
REPLICAS = (1, 2, 4)
CONCURRENCY = 8
CHANGES = 300
LIVE = range(-1, 0)  # the mark of the live change written while the listing waits

REPLICA = """
import asyncio, json, sys, time
sys.path.insert(0, {benches!r})
from scale_probes import rss
from etcd_resources import EtcdClient, ResourceRepository, thaw
from etcd_resources.controller import Action, Controller, Sharding

async def main() -> None:
    endpoints, prefix, shards_prefix, identity, token = sys.argv[1:6]
    first: dict[str, float] = {{}}
    marks: dict[int, float] = {{}}

    async def reconcile(resource: dict) -> Action:
        now = time.monotonic()
        first.setdefault(resource["metadata"]["name"], now)
        mark = resource["spec"].get("mark")
        if isinstance(mark, list) and mark[0] == token:  # this run's, not an earlier one's
            marks.setdefault(mark[1], now)
        return Action.done()

    async with EtcdClient(endpoints.split(","), timeout=60) as client:
        await client.current_revision()
        repo = ResourceRepository(client, prefix)
        sharding = Sharding(shards={shards}, ttl=5, identity=identity, prefix=shards_prefix)
        controller = Controller(
            repo, reconcile, name="bench", sharding=sharding, max_concurrency={concurrency}
        )
        loop = asyncio.get_running_loop()
        before = rss()
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)  # go
        task = asyncio.ensure_future(controller.run())
        stop = asyncio.ensure_future(loop.run_in_executor(None, sys.stdin.readline))
        while not stop.done():  # a status line every 0.2 s, for the parent to decide
            s = controller.stats()
            idle = bool(s["synced"]) and s["queue_depth"] == 0 and s["in_flight"] == 0
            shards = len(s["shards"] or [])
            status = {{
                "count": len(first), "idle": idle, "shards": shards, "marks": len(marks),
                "synced": bool(s["synced"]), "queued": s["queue_depth"],
            }}
            print(json.dumps(status), flush=True)
            await asyncio.wait([stop], timeout=0.2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        done = {{"first": first, "marks": marks, "rss": rss() - before}}
        print(json.dumps(done), flush=True)

asyncio.run(main())
"""


async def fill(endpoints: list[str], n: int) -> str:
    prefix = f"/bench-replicas-{uuid.uuid4().hex[:8]}/"
    async with EtcdClient(endpoints, timeout=120) as client:
        repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
        for first in range(0, n, 500):
            await asyncio.gather(
                *(repo.add_async(lab_worker(i)) for i in range(first, min(n, first + 500)))
            )
    return prefix


def write_changes(
    endpoints: list[str], prefix: str, n: int, token: str, marks: range
) -> dict[int, float]:
    """Write a spec change per mark, one after another, each to another key; when each was
    sent. (In a thread of its own: the caller's event loop is busy waiting for the replicas.)"""
    began: dict[int, float] = {}

    async def write() -> None:
        async with EtcdClient(endpoints, timeout=60) as client:
            repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
            for mark in marks:
                name = f"worker-{(mark * 7919) % n:05}"  # spread over the shards
                doc = thaw(await repo.get_async(name, "lab-workers"))
                doc["spec"]["mark"] = [token, mark]
                began[mark] = time.monotonic()
                await repo.update_async(doc)

    writer = threading.Thread(target=lambda: asyncio.run(write()))
    writer.start()
    writer.join()
    return began


def replicas(
    endpoints: list[str], prefix: str, n: int, count: int
) -> tuple[float, float, list[float], tuple[float, int] | None]:
    """(keys reconciled per second until every key was, the RSS a replica grew by, MiB, the
    sorted queue latencies of CHANGES live changes, s, and with one replica, a live change
    written while the listing waits: (its first reconcile, s after the write, keys queued))."""
    script = REPLICA.format(
        benches=str(Path(__file__).parent), shards=SHARDS, concurrency=CONCURRENCY
    )
    token = uuid.uuid4().hex[:8]
    shards_prefix = f"/bench-replicas-shards-{token}/"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                script,
                ",".join(endpoints),
                prefix,
                shards_prefix,
                f"r{i}",
                token,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        go = time.monotonic()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        # Each replica notes its first reconcile of each key, and says every 0.2 s how many
        # keys it has reconciled, whether it is idle and how many shards it holds. They are
        # stopped once all are idle with the shards shared out and every key counted.
        lines: queue.Queue[tuple[int, str]] = queue.Queue()

        def read(i: int, p: subprocess.Popen[str]) -> None:
            assert p.stdout is not None
            for line in p.stdout:
                lines.put((i, line))

        readers = [
            threading.Thread(target=read, args=(i, p), daemon=True) for i, p in enumerate(procs)
        ]
        for t in readers:
            t.start()
        status: dict[int, dict[str, Any]] = {}
        deadline = go + 600
        live: tuple[dict[int, float], int] | None = None
        while True:
            i, line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            status[i] = json.loads(line)
            st = status[i]
            if count == 1 and live is None and st["synced"] and st["queued"] >= n // 2:
                # One live change while at least half of the listing still waits.
                live = write_changes(endpoints, prefix, n, token, LIVE), st["queued"]
            held = [st["shards"] for st in status.values()]
            if (
                len(status) == count
                and all(st["idle"] for st in status.values())
                and sum(held) == SHARDS
                and max(held) - min(held) <= 1
                and sum(st["count"] for st in status.values()) >= n
            ):
                break
        began = write_changes(endpoints, prefix, n, token, range(CHANGES))
        while sum(st["marks"] for st in status.values()) < CHANGES + (live is not None):
            i, line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            status[i] = json.loads(line)
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("stop\n")
            p.stdin.flush()
        results: dict[int, dict[str, Any]] = {}
        while len(results) < count:
            i, line = lines.get(timeout=60)
            got = json.loads(line)
            if "first" in got:
                results[i] = got
        firsts: dict[str, float] = {}
        for r in results.values():
            for name, at in r["first"].items():
                firsts[name] = min(at, firsts.get(name, at))
        if len(firsts) < n:
            raise AssertionError(f"{len(firsts)} of {n} keys reconciled")
        done = max(firsts.values())
        rss = statistics.mean(r["rss"] for r in results.values()) / 2**20
        seen: dict[int, float] = {}
        for r in results.values():
            for mark, at in r["marks"].items():
                seen[int(mark)] = min(at, seen.get(int(mark), at))
        latencies = sorted(seen[m] - began[m] for m in range(CHANGES))
        first_live = None
        if live is not None:
            first_live = seen[LIVE[0]] - live[0][LIVE[0]], live[1]
        return n / (done - go), rss, latencies, first_live
    finally:
        for p in procs:
            p.wait(timeout=60)


async def measure(endpoints: list[str], sizes: list[int]) -> list[str]:
    lines: list[str] = []
    notes: list[str] = []
    for n in sizes:
        prefix = await fill(endpoints, n)
        for count in REPLICAS:
            rate, rss, latency, live = replicas(endpoints, prefix, n, count)
            if live is not None:
                notes.append(
                    f"{n:,} LabWorkers, 1 replica: a live change written while {live[1]:,} keys "
                    f"of the listing were queued was reconciled {live[0] * 1e3:.1f} ms after "
                    "its write"
                )
            lines.append(
                f"{f'{n:,} LabWorkers, {count} replica(s)':<36}{rate:>14,.0f}{rss:>12,.0f}"
                f"{rss * 2**20 / n / 1024:>12.1f}"
                f"{pct(latency, 0.5) * 1e3:>10.2f}{pct(latency, 0.99) * 1e3:>10.2f}"
            )
    return lines + notes


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def run(endpoints: list[str], sizes: list[int] | None = None) -> str:
    head = [
        f"controller replicas: a no-op reconcile, {SHARDS} shards, {CONCURRENCY} at once per "
        "replica, each replica a process of its own",
        f"{'':<36}{'reconciles/s':>14}{'+RSS MiB':>12}{'KiB/res.':>12}{'p50 ms':>10}{'p99 ms':>10}",
        f"(p50, p99: queue latency of {CHANGES} live changes, write sent -> reconcile begins)",
    ]
    return "\n".join(head + asyncio.run(measure(endpoints, sizes or [10_000, 100_000])))


if __name__ == "__main__":
    from common import etcd_endpoints

    with etcd_endpoints() as endpoints:
        print(
            f"# machine: {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, etcd on loopback\n"
        )
        print(run(endpoints, [int(a) for a in sys.argv[1:]] or None))
