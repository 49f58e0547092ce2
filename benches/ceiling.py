"""This package against the ceiling: the same operations on a plain Rust etcd-client program
(`benches/ceiling.rs`), on the same etcd, with the same 2.1 KB LabWorker document. Prints the
median per operation and the ratio (ceiling / package: 1.0 means as fast as Rust)."""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from common import lab_worker

from etcd_resources import EtcdClient, ResourceRepository

N = 500
LIST = 3000
ROOT = Path(__file__).resolve().parent.parent


def ceiling(endpoint: str) -> dict[str, float]:
    """Build (release) and run the Rust program; its medians."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(lab_worker(0), f)
    command = ["cargo", "bench", "-q", "--no-default-features", "--bench", "ceiling", "--"]
    prefix = f"/bench-ceiling-{uuid.uuid4().hex[:8]}/"
    run = subprocess.run(
        [*command, endpoint, prefix, f.name], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))


async def each(times: int, op: Callable[[int], Awaitable[Any]]) -> float:
    samples = []
    for i in range(times):
        started = time.perf_counter()
        await op(i)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def package(endpoints: list[str]) -> dict[str, float]:
    prefix = f"/bench-package-{uuid.uuid4().hex[:8]}/"
    async with EtcdClient(endpoints, timeout=60) as client:
        repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)

        async def create(i: int) -> None:
            await repo.add_async(lab_worker(i))

        async def get(i: int) -> None:
            await repo.get_async(f"worker-{i:05}")

        async def swap(i: int) -> None:
            current = await repo.get_async(f"worker-{i:05}")
            assert current is not None
            await repo.update_async(current)

        async def concurrent_gets(_: int) -> None:
            await asyncio.gather(*(repo.get_async(f"worker-{i:05}") for i in range(32)))

        rows = {
            "create": await each(N, create),
            "get": await each(N, get),
            "get + compare_and_swap": await each(N, swap),
            "32 concurrent gets": await each(20, concurrent_gets),
        }
        await asyncio.gather(*(repo.add_async(lab_worker(i)) for i in range(N, LIST)))

        async def list_all(_: int) -> None:
            assert len(await repo.list_async()) == LIST

        rows["list 3000 + parse"] = await each(5, list_all)
        return rows


def run(endpoints: list[str]) -> str:
    ours = asyncio.run(package(endpoints))
    rust = ceiling(endpoints[0])
    lines = [
        "this package against a plain Rust etcd-client program (the ceiling), medians",
        f"{'operation':<26}{'Rust':>11}{'package':>11}{'ratio':>8}",
    ]
    for name, theirs in rust.items():
        mine = ours[name]
        lines.append(f"{name:<26}{theirs * 1e3:>8.3f} ms{mine * 1e3:>8.3f} ms{theirs / mine:>8.2f}")
    return "\n".join(lines)
