"""The controller runtime against the loop a Python user writes by hand (list everything, an
`asyncio.Queue`, 8 worker tasks; then a watch feeding the same queue), on the same 10,000
LabWorker documents in one etcd, the same no-op async reconciler and 8 at once:

- reconciles per second through the initial listing;
- a live change's first reconcile while the listing's 10,000 keys still wait (each reconcile
  of the listing takes 1 ms): the runtime runs live changes first, a FIFO queue does not;
- queue latency of live changes (a write sent -> its reconcile begins), p50 and p99,
  500 changes written one after another;
- the memory the controller adds per resource (RSS, after the listing has been reconciled).

    python benches/controller.py      # make bench runs it too
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from common import lab_worker
from scale_probes import rss

from etcd_resources import EtcdClient, ResourceRepository, thaw
from etcd_resources.controller import Action, Controller

N = 10_000
CONCURRENCY = 8
CHANGES = 500
SLOW = 0.001  # seconds per reconcile of the listing, for the live-change row

Reconcile = Callable[[Any], Awaitable[Any]]


async def fill(client: EtcdClient) -> ResourceRepository:
    repo = ResourceRepository(client, f"/bench-controller-{uuid.uuid4().hex[:8]}/")
    for first in range(0, N, 500):
        await asyncio.gather(*(repo.add_async(lab_worker(i)) for i in range(first, first + 500)))
    return repo


class HandLoop:
    """What a user writes without a runtime: list, queue every resource, N workers; then
    watch and queue each change behind whatever waits (FIFO, no merging, no priorities)."""

    def __init__(self, repo: ResourceRepository, reconcile: Reconcile) -> None:
        self.repo, self.reconcile = repo, reconcile
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.reconciles = 0
        self.listed = asyncio.Event()
        self.ran = asyncio.Event()

    async def worker(self) -> None:
        while True:
            resource = await self.queue.get()
            await self.reconcile(resource)
            self.reconciles += 1
            self.ran.set()
            self.queue.task_done()

    async def wait(self, condition: Callable[[], bool]) -> None:
        """Until ``condition()`` holds, checked after each reconcile."""
        while not condition():
            self.ran.clear()
            await self.ran.wait()

    async def feed(self) -> None:
        watch = self.repo.watch()  # begins now: nothing falls between it and the listing
        for resource in await self.repo.list_async():
            self.queue.put_nowait(resource)
        self.listed.set()
        async for event in watch:
            if event.resource is not None:
                self.queue.put_nowait(event.resource)

    async def __aenter__(self) -> HandLoop:
        self.tasks = [asyncio.ensure_future(self.worker()) for _ in range(CONCURRENCY)]
        self.tasks.append(asyncio.ensure_future(self.feed()))
        await self.listed.wait()
        return self

    async def __aexit__(self, *_: object) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class Runtime:
    """The same through `Controller`."""

    def __init__(self, repo: ResourceRepository, reconcile: Reconcile) -> None:
        async def run(resource: Any) -> Action:
            await reconcile(resource)
            return Action.done()

        self.controller = Controller(repo, run, max_concurrency=CONCURRENCY, aging=3600)

    @property
    def reconciles(self) -> int:
        return self.controller.stats()["reconciles"]

    async def wait(self, condition: Callable[[], bool]) -> None:
        await self.controller.wait_for(lambda _: condition())

    async def __aenter__(self) -> Runtime:
        self.task = asyncio.ensure_future(self.controller.run())
        await self.controller.wait_for(lambda s: s["synced"])
        return self

    async def __aexit__(self, *_: object) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def until(runner: Any, condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(120):
        await runner.wait(condition)


async def throughput(repo: ResourceRepository, kind: type[Any]) -> tuple[float, float]:
    """(reconciles per second through the listing, RSS KiB added per resource)."""

    async def noop(resource: Any) -> None:
        return None

    gc.collect()
    before = rss()
    began = time.perf_counter()
    async with kind(repo, noop) as runner:
        await until(runner, lambda: runner.reconciles >= N)
        elapsed = time.perf_counter() - began
        gc.collect()
        grown = rss() - before
    return N / elapsed, grown / N / 1024


async def live_first(repo: ResourceRepository, kind: type[Any]) -> float:
    """Seconds from a live change's write to its reconcile, with the listing still queued."""
    seen: dict[str, float] = {}

    async def slow(resource: Any) -> None:
        if resource["spec"].get("bench") == "live":
            seen.setdefault("live", time.perf_counter())
        await asyncio.sleep(SLOW)

    async with kind(repo, slow) as runner:
        changed = thaw(await repo.get_async("worker-09999", "lab-workers"))
        changed["spec"]["bench"] = "live"
        written = time.perf_counter()
        await repo.update_async(changed)
        await until(runner, lambda: "live" in seen)
    return seen["live"] - written


async def latencies(repo: ResourceRepository, kind: type[Any]) -> list[float]:
    """Write sent -> reconcile of each of CHANGES changes, one after another, once listed."""
    began: dict[int, float] = {}
    seen: dict[int, float] = {}

    async def note(resource: Any) -> None:
        mark = resource["spec"].get("mark")
        if isinstance(mark, int) and mark in began:
            seen.setdefault(mark, time.perf_counter())

    async with kind(repo, note) as runner:
        await until(runner, lambda: runner.reconciles >= N)
        for mark in range(CHANGES):
            doc = thaw(await repo.get_async(f"worker-{mark:05}", "lab-workers"))
            doc["spec"]["mark"] = mark
            began[mark] = time.perf_counter()  # the write's round trip counts, on both sides
            await repo.update_async(doc)
        await until(runner, lambda: len(seen) == CHANGES)
    return sorted(seen[m] - began[m] for m in range(CHANGES))


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


async def measure(endpoints: list[str]) -> list[str]:
    async with EtcdClient(endpoints, timeout=60) as client:
        repo = await fill(client)
        ours, ours_kib = await throughput(repo, Runtime)
        hand, hand_kib = await throughput(repo, HandLoop)
        ours_live = await live_first(repo, Runtime)
        hand_live = await live_first(repo, HandLoop)
        ours_lat = await latencies(repo, Runtime)
        hand_lat = await latencies(repo, HandLoop)
    ms = 1000.0
    return [
        f"{'listing reconciled, per second':<44}{ours:>12,.0f}{hand:>12,.0f}{ours / hand:>8.2f}",
        f"{'live change while listing waits, ms':<44}{ours_live * ms:>12.1f}"
        f"{hand_live * ms:>12.1f}{hand_live / ours_live:>8.1f}",
        f"{'queue latency p50, ms':<44}{pct(ours_lat, 0.5) * ms:>12.2f}"
        f"{pct(hand_lat, 0.5) * ms:>12.2f}{pct(hand_lat, 0.5) / pct(ours_lat, 0.5):>8.2f}",
        f"{'queue latency p99, ms':<44}{pct(ours_lat, 0.99) * ms:>12.2f}"
        f"{pct(hand_lat, 0.99) * ms:>12.2f}{pct(hand_lat, 0.99) / pct(ours_lat, 0.99):>8.2f}",
        f"{'RSS per resource, KiB (cache + queue)':<44}{ours_kib:>12.1f}{hand_kib:>12.1f}",
        f"(median latency of {statistics.median(ours_lat) * ms:.2f} ms over {CHANGES} changes)",
    ]


def run(endpoints: list[str]) -> str:
    lines = [
        f"controller: {N:,} LabWorkers, {CONCURRENCY} at once; the runtime against a hand-written "
        "asyncio loop (list + watch + FIFO queue); ratio > 1: the runtime is better",
        f"{'':<44}{'runtime':>12}{'hand loop':>12}{'ratio':>8}",
    ]
    return "\n".join(lines + asyncio.run(measure(endpoints)))


if __name__ == "__main__":
    from common import etcd_endpoints

    with etcd_endpoints() as endpoints:
        print(run(endpoints))
