"""Where one call's time goes, from `await` to result: the bridge's stamps (cargo feature
`bench`, see src/py/trace.rs) plus this script's own before the call and after the `await`,
on one clock. Medians per stage, in microseconds.

    make release && python benches/breakdown.py [--calls 2000]

Calls measured: a sequential get through `EtcdStorageBackend.get` and through
`ResourceRepository.get_async`, a create, gets 32 in flight (`asyncio.gather`), and the
batches of a watch replaying 5,000 changes (per event).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import statistics
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import etcd_endpoints, lab_worker

from etcd_resources import EtcdClient, EtcdStorageBackend, ResourceRepository, _core

STAGES = ["enter", "handing", "started", "answered", "woken", "built", "set"]
SEGMENTS = [
    ("python, to the bridge", "before", "enter"),
    ("bridge, on the loop's thread", "enter", "handing"),
    ("hand-over to tokio", "handing", "started"),
    ("gRPC and etcd (tokio)", "started", "answered"),
    ("wake the loop", "answered", "woken"),
    ("build the Python value", "woken", "built"),
    ("set_result", "built", "set"),
    ("task wake-up, python back", "set", "after"),
]


def stamped(record: list[int], before: int, after: int) -> dict[str, int]:
    return {"before": before, **dict(zip(STAGES, record, strict=True)), "after": after}


def reader_turns(records: list[list[int]]) -> int:
    """How many turns of the loop's reader delivered `records`: within one turn, a result's
    `woken` follows the previous one's `set` at once (well under a microsecond)."""
    woken, done = STAGES.index("woken"), STAGES.index("set")
    ordered = sorted(records, key=lambda r: r[woken])
    return 1 + sum(1 for a, b in itertools.pairwise(ordered) if b[woken] - a[done] > 1000)


def traced() -> Any:
    if not hasattr(_core, "_trace"):
        sys.exit("the extension lacks the `bench` feature: run `make release` first")
    return _core


async def sequential(call: Callable[[], Awaitable[Any]], calls: int) -> list[dict[str, int]]:
    """Stamps of `calls` calls made one after another."""
    core = traced()
    for _ in range(50):  # warm up
        await call()
    core._trace(True)
    rows = []
    for _ in range(calls):
        before = core._trace_now()
        await call()
        after = core._trace_now()
        [stamps] = core._trace_take()
        rows.append(stamped(stamps, before, after))
    core._trace(False)
    return rows


async def in_flight(
    call: Callable[[int], Awaitable[Any]], batch: int, batches: int
) -> tuple[list[dict[str, int]], float, float]:
    """Stamps of `batches` gathers of `batch` calls; also the median batch time (us) and
    the mean number of results a wake-up of the loop delivered."""
    core = traced()
    for _ in range(5):
        await asyncio.gather(*(call(j) for j in range(batch)))
    core._trace(True)
    rows: list[dict[str, int]] = []
    times = []
    per_wake = []
    for _ in range(batches):
        before = core._trace_now()
        await asyncio.gather(*(call(j) for j in range(batch)))
        after = core._trace_now()
        records = core._trace_take()
        times.append((after - before) / 1000)
        per_wake.append(len(records) / reader_turns(records))
        rows += [stamped(r, before, after) for r in records]
    core._trace(False)
    return rows, statistics.median(times), statistics.mean(per_wake)


def segment_medians(rows: list[dict[str, int]]) -> dict[str, float]:
    return {
        label: statistics.median((r[b] - r[a]) / 1000 for r in rows) for label, a, b in SEGMENTS
    }


def table(columns: dict[str, dict[str, float]]) -> str:
    names = list(columns)
    lines = [
        "| stage (median, us) | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---:" for _ in names) + " |",
    ]
    for label, _, _ in SEGMENTS:
        cells = [f"{columns[n][label]:.1f}" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    totals = [f"**{sum(columns[n].values()):.1f}**" for n in names]
    lines.append("| sum of the medians | " + " | ".join(totals) + " |")
    return "\n".join(lines)


async def main(endpoints: list[str], calls: int) -> str:
    run = uuid.uuid4().hex[:8]
    async with EtcdClient(endpoints, timeout=30) as client:
        prefix = f"/breakdown-{run}/"
        repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
        backend = EtcdStorageBackend(client, prefix)
        for i in range(64):
            await repo.add_async(lab_worker(i))
        name = "worker-00007"

        columns: dict[str, dict[str, float]] = {}
        columns["get, EtcdStorageBackend"] = segment_medians(
            await sequential(lambda: backend.get(name), calls)
        )
        columns["get, ResourceRepository"] = segment_medians(
            await sequential(lambda: repo.get_async(name), calls)
        )
        # The documents are made before: "python, to the bridge" is then the call's own Python
        # frames plus encoding the document (in Rust, before the bridge's first stamp).
        created = iter([lab_worker(i) for i in range(1000, 1000 + calls + 100)])
        columns["create, ResourceRepository"] = segment_medians(
            await sequential(lambda: repo.add_async(next(created)), calls // 2)
        )
        rows, batch_us, per_wake = await in_flight(
            lambda j: backend.get(f"worker-{j:05}"), 32, max(20, calls // 40)
        )
        columns["get x32 (per call)"] = segment_medians(rows)

        # A watch replaying 5,000 changes: the stamps are per batch; shown per event.
        watched = ResourceRepository(client, f"/breakdown-{run}-watch/")
        start = await client.current_revision()
        for i in range(1000):
            await watched.add_async(lab_worker(i))
        for i in range(1000, 5000):
            await watched.update_async(
                {**(await watched.get_async(f"worker-{i % 1000:05}") or {}), "status": {"n": i}}
            )
        core = traced()
        core._trace(True)
        seen = 0
        before = core._trace_now()
        # A backlog as large as the replay: etcd sends history faster than this loop reads.
        async for _event in watched.watch(resource_version=str(start), max_backlog=10_000):
            seen += 1
            if seen == 5000:
                break
        after = core._trace_now()
        batches = core._trace_take()
        core._trace(False)
        events_per_batch = 5000 / max(1, len(batches))
        waited = sum(1 for r in batches if r[1] != r[2])  # ready at once: one stamp for both
        watch_rows = [stamped(r, r[0], r[-1]) for r in batches]
        columns["watch (per event)"] = {  # totals over the batches, per event
            label: sum((r[b] - r[a]) / 1000 for r in watch_rows) / 5000 for label, a, b in SEGMENTS
        }
        watch_total = (after - before) / 1000 / 5000

    return "\n".join(
        [
            f"## Where a call's time goes ({platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, etcd on loopback; `python benches/breakdown.py`)",
            "",
            table(columns),
            "",
            f"get x32: {batch_us:.0f} us per gather of 32 ({batch_us / 32:.1f} us per get); "
            f"{per_wake:.1f} results per wake-up of the loop.",
            f"watch: {len(batches)} batches ({waited} waited for etcd, the others were ready at "
            f"once), {events_per_batch:.0f} events per batch; {watch_total:.1f} us per event in "
            "all (what the stages leave is the `async for` and the event objects).",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    with etcd_endpoints() as endpoints:
        print(asyncio.run(main(endpoints, args.calls)))
