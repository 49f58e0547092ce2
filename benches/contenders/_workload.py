"""What every Python contender shares: the config, the documents, the timing loops and the
output. Standard library only: the contenders run in the peers' own venvs, where
etcd_resources is not installed.

A contender script is run as `python benches/contenders/NAME.py CONFIG.json` and prints ONE
JSON line on stdout: `{"operation": [seconds, ...], ..., "_errors": {"operation": "why"}}`.
An operation that raises is reported in `_errors` and the others still run.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import PHASES, lab_worker

__all__ = ["PHASES", "Config", "Results", "lab_worker"]

READY = "Ready"


def ready_count(n: int) -> int:
    return sum(1 for i in range(n) if PHASES[i % len(PHASES)] == READY)


class Config:
    """CONFIG.json, written by benches/compare.py for one run of one contender."""

    def __init__(self, path: str) -> None:
        raw: dict[str, Any] = json.loads(Path(path).read_text())
        self.raw = raw
        self.endpoint: str = raw["endpoint"]
        host, port = self.endpoint.removeprefix("http://").rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.prefix: str = raw["prefix"]  # fresh for this run: create, get, compare_and_swap
        self.prefix_a: str = raw["prefix_a"]
        self.n_a: int = raw["n_a"]
        self.prefix_b: str = raw["prefix_b"]
        self.n_b: int = raw["n_b"]
        self.prefix_watch: str = raw["prefix_watch"]
        self.n_watch: int = raw["n_watch"]
        # The revision before the first of the watch prefix's writes: the watch starts after it.
        self.watch_start: int = raw["watch_start"]
        self.n_seq: int = raw["n_seq"]
        self.n_batches: int = raw["n_batches"]
        self.batch: int = raw["batch"]
        self.n_list: int = raw["n_list"]
        self.n_watch_samples: int = raw["n_watch_samples"]
        self.n_cached: int = raw["n_cached"]
        self.n_slow_list: int = raw["n_slow_list"]
        # Computed once: checks inside timed loops must not cost a 10k-step count.
        self.ready_a = ready_count(self.n_a)
        self.ready_b = ready_count(self.n_b)

    def name(self, i: int) -> str:
        return f"worker-{i:05}"

    def key(self, i: int) -> str:
        return self.prefix + self.name(i)

    def seq_docs(self) -> list[dict[str, Any]]:
        """The documents of the sequential creates: names 0 .. n_seq-1."""
        return [lab_worker(i) for i in range(self.n_seq)]

    def batch_docs(self) -> list[list[dict[str, Any]]]:
        """The documents of the concurrent creates, per batch: names after the sequential."""
        first = self.n_seq
        return [
            [lab_worker(first + b * self.batch + j) for j in range(self.batch)]
            for b in range(self.n_batches)
        ]

    def batch_names(self, b: int) -> list[str]:
        """The names one concurrent-get batch reads (created by the sequential creates)."""
        return [self.name((b * self.batch + j) % self.n_seq) for j in range(self.batch)]


def key_ops_sync(
    results: Results,
    c: Config,
    create_one: Callable[[dict[str, Any]], Any],
    get_one: Callable[[str], Any],
    compare_and_swap: Callable[[int], Any],
) -> None:
    """create, get and compare_and_swap, one at a time and (create, get) `c.batch` at once on a
    thread pool, from a sync client's way of doing one of each."""
    with thread_pool(c.batch) as pool:
        results.each_sync("create", c.seq_docs(), create_one)
        results.each_sync(
            f"create x{c.batch}", c.batch_docs(), lambda docs: list(pool.map(create_one, docs))
        )
        results.each_sync("get", range(c.n_seq), lambda i: get_one(c.name(i)))
        results.each_sync(
            f"get x{c.batch}",
            range(c.n_batches),
            lambda b: list(pool.map(get_one, c.batch_names(b))),
        )
        results.each_sync("compare_and_swap", range(c.n_seq), compare_and_swap)


async def key_ops_async(
    results: Results,
    c: Config,
    create_one: Callable[[dict[str, Any]], Awaitable[Any]],
    get_one: Callable[[str], Awaitable[Any]],
    compare_and_swap: Callable[[int], Awaitable[Any]],
) -> None:
    """`key_ops_sync` for an async client (the batches are `asyncio.gather`ed)."""

    async def create_batch(docs: list[dict[str, Any]]) -> None:
        await asyncio.gather(*(create_one(doc) for doc in docs))

    async def get_batch(b: int) -> None:
        await asyncio.gather(*(get_one(name) for name in c.batch_names(b)))

    await results.each_async("create", c.seq_docs(), create_one)
    await results.each_async(f"create x{c.batch}", c.batch_docs(), create_batch)
    await results.each_async("get", range(c.n_seq), lambda i: get_one(c.name(i)))
    await results.each_async(f"get x{c.batch}", range(c.n_batches), get_batch)
    await results.each_async("compare_and_swap", range(c.n_seq), compare_and_swap)


def query_ops_sync(
    results: Results, c: Config, list_docs: Callable[[str, int], list[Any]], samples: int
) -> None:
    """list, find_by_phase (A and B) and count_by_phase (B), from a client's way of reading
    every document of a prefix into dicts (`list_docs(prefix, n)`), filtered in Python."""
    for n, ready, prefix in ((c.n_a, c.ready_a, c.prefix_a), (c.n_b, c.ready_b, c.prefix_b)):
        results.each_sync(
            f"list {n}", range(samples), lambda _, p=prefix, n=n: _check(len(list_docs(p, n)) == n)
        )
        results.each_sync(
            f"find_by_phase {n}",
            range(samples),
            lambda _, p=prefix, n=n, r=ready: _check(
                len([d for d in list_docs(p, n) if is_ready(d)]) == r
            ),
        )
    results.each_sync(
        f"count_by_phase {c.n_b}",
        range(samples),
        lambda _: _check(sum(1 for d in list_docs(c.prefix_b, c.n_b) if is_ready(d)) == c.ready_b),
    )


async def query_ops_async(
    results: Results,
    c: Config,
    list_docs: Callable[[str, int], Awaitable[list[Any]]],
    samples: int,
) -> None:
    """`query_ops_sync` for an async client."""

    async def check_list(p: str, n: int) -> None:
        _check(len(await list_docs(p, n)) == n)

    async def check_find(p: str, n: int, ready: int) -> None:
        _check(len([d for d in await list_docs(p, n) if is_ready(d)]) == ready)

    async def check_count() -> None:
        docs = await list_docs(c.prefix_b, c.n_b)
        _check(sum(1 for d in docs if is_ready(d)) == c.ready_b)

    for n, ready, prefix in ((c.n_a, c.ready_a, c.prefix_a), (c.n_b, c.ready_b, c.prefix_b)):
        await results.each_async(
            f"list {n}", range(samples), lambda _, p=prefix, n=n: check_list(p, n)
        )
        await results.each_async(
            f"find_by_phase {n}",
            range(samples),
            lambda _, p=prefix, n=n, r=ready: check_find(p, n, r),
        )
    await results.each_async(f"count_by_phase {c.n_b}", range(samples), lambda _: check_count())


def _check(ok: bool) -> None:
    if not ok:
        raise AssertionError("a contender's answer has the wrong size")


def config() -> Config:
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} CONFIG.json")
    return Config(sys.argv[1])


def range_end(prefix: str) -> str:
    """The end of the key range of everything under `prefix`."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def is_ready(doc: dict[str, Any]) -> bool:
    return bool(doc["status"]["phase"] == READY)


def bump_errors(doc: dict[str, Any]) -> dict[str, Any]:
    """The change compare_and_swap makes."""
    doc["status"]["error_count"] = doc["status"].get("error_count", 0) + 1
    return doc


class Results:
    """Samples per operation, printed as one JSON line at the end."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}
        self.errors: dict[str, str] = {}

    def _failed(self, op: str, error: BaseException) -> None:
        self.errors[op] = f"{type(error).__name__}: {error}"[:300]
        traceback.print_exc(file=sys.stderr)

    async def each_async(
        self, op: str, items: Iterable[Any], fn: Callable[[Any], Awaitable[Any]]
    ) -> None:
        """One sample per item: the time of `await fn(item)`."""
        samples: list[float] = []
        try:
            for item in items:
                started = time.perf_counter()
                await fn(item)
                samples.append(time.perf_counter() - started)
        except Exception as e:
            self._failed(op, e)
            return
        self.samples[op] = samples

    def each_sync(self, op: str, items: Iterable[Any], fn: Callable[[Any], Any]) -> None:
        """One sample per item: the time of `fn(item)`."""
        samples: list[float] = []
        try:
            for item in items:
                started = time.perf_counter()
                fn(item)
                samples.append(time.perf_counter() - started)
        except Exception as e:
            self._failed(op, e)
            return
        self.samples[op] = samples

    def emit(self) -> None:
        out: dict[str, Any] = dict(self.samples)
        if self.errors:
            out["_errors"] = self.errors
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


def run_async(main: Callable[[Results], Awaitable[None]]) -> None:
    """Run an async contender and print its results (even when it fails half-way)."""
    results = Results()
    try:
        asyncio.run(main(results))
    finally:
        results.emit()


def run_sync(main: Callable[[Results], None]) -> None:
    results = Results()
    try:
        main(results)
    finally:
        results.emit()


def thread_pool(size: int) -> ThreadPoolExecutor:
    """The sync clients' way of doing `size` requests at once."""
    return ThreadPoolExecutor(size)
