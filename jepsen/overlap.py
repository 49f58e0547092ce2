"""The overlap check of controller replicas (issue 21): **no key is reconciled by two replicas
at once**, checked on etcd's own order.

Each replica (``jepsen/replica.py``, a process of its own) writes a start and an end record per
reconcile, under the controller's fence; the shard records' history (creates and deletes, with
their leases) is read back from etcd's watch. ``check`` asserts:

- every history record committed while its writer's lease held the key's shard (fencing);
- per key, the reconciles of different leases never overlap, a reconcile whose end record was
  refused (its replica was paused or cut off mid-way) counting as running until its shard
  record went.

Used by ``tests/test_controller_replicas.py`` (replicas behind TCP proxies: paused, cut off,
killed) and by ``make jepsen`` (``jepsen/run.py --replicas``: the cluster's own faults).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from etcd_resources import EtcdClient, EtcdTimeoutError
from etcd_resources._core import KvBackend
from etcd_resources.errors import UnavailableError

from .proxy import TcpProxy

__all__ = ["FOREVER", "Records", "Replica", "check", "shard_history"]

ROOT = Path(__file__).resolve().parent.parent
WAIT = 60.0
FOREVER = 1 << 62


class Replica:
    """A replica process (``python -m jepsen.replica``) behind its own proxy to etcd.
    ``args``: its prefix, coordination prefix and history prefix; ``extra``: its hold FIFO."""

    def __init__(
        self,
        identity: str,
        etcd: list[str],
        args: list[str],
        extra: list[str] | None = None,
        *,
        shards: int,
        ttl: int,
    ) -> None:
        self.identity = identity
        self.proxy = TcpProxy(etcd).start()
        self.args = args
        self.extra = extra or []
        self.shards, self.ttl = shards, ttl
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        endpoints = ",".join(self.proxy.endpoints)
        args = [endpoints, *self.args, self.identity, str(self.shards), str(self.ttl), *self.extra]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jepsen.replica", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def send(self, sig: signal.Signals) -> None:
        assert self.process is not None
        os.kill(self.process.pid, sig)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> tuple[int, str, str]:
        assert self.process is not None
        if self.process.poll() is None:
            self.send(sig)
        out, err = self.process.communicate(timeout=30)
        return self.process.returncode, out, err

    def close(self) -> None:
        """Kill it if it runs; print what it said on stderr when it had exited by itself (a
        failed run then says why)."""
        if self.process is not None:
            exited = self.process.poll()
            if exited is None:
                self.process.kill()
            _, err = self.process.communicate()
            if exited is not None and exited != 0:
                print(f"{self.identity} exited {exited}: {err[-3000:]}")
        self.proxy.close()


@dataclass
class Records:
    """What the replicas wrote, read while they run (waits are woken by etcd's watch)."""

    client: EtcdClient
    base: str  # the controller's records: coordination + "replicas/"
    history: str
    shards: int

    async def holders(self) -> dict[int, str]:
        _, records = await self.client.list_raw(self.base + "shards/")
        return {int(k.rsplit("/", 1)[1]): json.loads(v)["holder"] for k, v, _, _ in records}

    async def starts(self) -> int:
        _, records = await self.client.list_raw(self.history)
        return sum(1 for k, *_ in records if k.endswith("/start"))

    async def until(self, prefix: str, condition: Callable[[], Awaitable[bool]]) -> None:
        """Wait until ``condition()``, re-checked on every change under ``prefix``; through an
        outage of etcd (a fault just undone, a cluster electing), asked again until it answers."""
        async with asyncio.timeout(WAIT):
            while True:
                try:
                    await self._until(prefix, condition)
                    return
                except (UnavailableError, EtcdTimeoutError):
                    await asyncio.sleep(0.1)  # etcd not answering yet: ask again

    async def _until(self, prefix: str, condition: Callable[[], Awaitable[bool]]) -> None:
        stream = await KvBackend(self.client, prefix).watch_stream()
        try:
            while not await condition():
                await stream.next_batch()
        finally:
            stream.close()

    async def held_by(self, identities: set[str]) -> None:
        async def check() -> bool:
            held = await self.holders()
            return len(held) == self.shards and set(held.values()) == identities

        await self.until(self.base, check)

    async def progress(self, n: int) -> None:
        """Wait for ``n`` more reconciles to start."""
        target = await self.starts() + n

        async def check() -> bool:
            return await self.starts() >= target

        await self.until(self.history, check)


async def shard_history(client: EtcdClient, base: str, since: int) -> dict[str, list[list[int]]]:
    """For each shard record, ``[lease, created, deleted]`` per holding, from etcd's watch."""
    sentinel = base + "zz-sentinel"
    await client.put_raw(sentinel, b"{}")
    stream = await KvBackend(client, base).watch_stream(start_revision=since)
    holdings: dict[str, list[list[int]]] = defaultdict(list)
    try:
        async with asyncio.timeout(WAIT):
            while True:
                batch = await stream.next_batch()
                assert batch is not None
                for change in batch:
                    kind, key, value, _previous, revision = change
                    full = base + key if not key.startswith(base) else key
                    if full == sentinel:
                        return holdings
                    if "/shards/" not in full:
                        continue
                    if value is not None and kind != "DELETED":
                        holdings[full].append([int(value["lease"]), revision, FOREVER])
                    else:
                        holdings[full][-1][2] = revision
    finally:
        stream.close()


def check(records: list[tuple[str, bytes, int, int]], history: str, holdings: Any) -> list[str]:
    """The violations among the history ``records`` (``list_raw`` of ``history``), against the
    shard ``holdings`` (``shard_history``)."""
    violations: list[str] = []
    runs: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # name -> run -> facts
    for key, raw, revision, _ in records:
        name, run, edge = key[len(history) :].split("/")
        value = json.loads(raw)
        fact = runs[name].setdefault(run, {"lease": value["lease"], "record": value["record"]})
        fact[edge] = revision
        held = [h for h in holdings[value["record"]] if h[0] == value["lease"]]
        if not any(created < revision < deleted for _, created, deleted in held):
            violations.append(f"{key} at {revision}: not while lease {value['lease']:x} held it")
    for name, by_run in runs.items():
        spans = []
        for run, fact in by_run.items():
            if "start" not in fact:
                continue  # refused at the start: never ran
            end = fact.get("end")
            if end is None:  # cut short: it ran until its shard went
                held = [h for h in holdings[fact["record"]] if h[0] == fact["lease"]]
                end = next(d for _, c, d in held if c < fact["start"] < d)
            spans.append((fact["start"], end, fact["lease"], run))
        spans.sort()
        for i, (s2, e2, l2, r2) in enumerate(spans):
            for s1, e1, l1, r1 in spans[:i]:
                if l1 != l2 and s2 < e1:
                    violations.append(f"{name}: {r1} [{s1}, {e1}] overlaps {r2} [{s2}, {e2}]")
    return violations
