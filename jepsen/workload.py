"""A workload that records a history: asyncio tasks run compare-and-swap increments, creates,
deletes, gets and lists against a handful of keys through the public API
(``ResourceRepository``), each recorded with its outcome (see ``history``)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

from etcd_resources.errors import (
    AlreadyExistsError,
    ConflictError,
    EtcdTimeoutError,
    NotFoundError,
    UnavailableError,
)
from etcd_resources.repository import ResourceRepository

from .history import History, Kind, Operation, Outcome, Value

__all__ = ["DEFINITE", "INDEFINITE", "Recorder", "counter_resource", "run_workload"]

DEFINITE: tuple[type[BaseException], ...] = (ConflictError, AlreadyExistsError, NotFoundError)
"""Refusals: the operation did not take effect."""
INDEFINITE: tuple[type[BaseException], ...] = (EtcdTimeoutError, UnavailableError)
"""The operation may or may not have taken effect."""

KIND = "Counter"


def counter_resource(name: str, n: int, version: int | None = None) -> dict[str, Any]:
    """The resource a counter is stored as (its value in ``status.n``)."""
    metadata: dict[str, Any] = {"name": name}
    if version is not None:
        metadata["resource_version"] = str(version)
    return {
        "apiVersion": "jepsen.etcd-resources/v1",
        "kind": KIND,
        "metadata": metadata,
        "spec": {},
        "status": {"n": n},
    }


def _value_of(resource: Any) -> tuple[int, int]:
    return int(resource["status"]["n"]), int(resource["metadata"]["resource_version"])


class Recorder:
    """Runs operations on one repository and records each in ``history``. Any error other
    than a refusal or an indefinite one propagates (a bug to see, not an outcome)."""

    def __init__(self, repository: ResourceRepository[Any], history: History) -> None:
        self.repository = repository
        self.history = history

    def _failed(
        self, process: int, kind: Kind, key: str, t0: float, e: BaseException, **details: Any
    ) -> Operation:
        outcome: Outcome = "fail" if isinstance(e, DEFINITE) else "unknown"
        return self.history.record(
            process=process,
            kind=kind,
            key=key,
            invoke=t0,
            outcome=outcome,
            error=type(e).__name__,
            **details,
        )

    async def get(self, process: int, key: str) -> Operation:
        t0 = History.now()
        try:
            got = await self.repository.get_async(key)
        except INDEFINITE as e:
            return self._failed(process, "get", key, t0, e)
        read: Value = None if got is None else _value_of(got)
        return self.history.record(
            process=process, kind="get", key=key, invoke=t0, outcome="ok", read=read
        )

    async def create(self, process: int, key: str, n: int = 0) -> Operation:
        t0 = History.now()
        try:
            made = await self.repository.add_async(counter_resource(key, n))
        except DEFINITE + INDEFINITE as e:
            return self._failed(process, "create", key, t0, e, value=n)
        return self.history.record(
            process=process,
            kind="create",
            key=key,
            invoke=t0,
            outcome="ok",
            value=n,
            version=_value_of(made)[1],
        )

    async def cas(self, process: int, key: str, expected: int, n: int) -> Operation:
        t0 = History.now()
        try:
            made = await self.repository.update_async(counter_resource(key, n, expected))
        except DEFINITE + INDEFINITE as e:
            return self._failed(process, "cas", key, t0, e, value=n, expected=expected)
        return self.history.record(
            process=process,
            kind="cas",
            key=key,
            invoke=t0,
            outcome="ok",
            value=n,
            expected=expected,
            version=_value_of(made)[1],
        )

    async def increment(self, process: int, key: str) -> Operation:
        """A compare-and-swap increment: a get, then a CAS from the version read (recorded as
        two operations). Returns the get when the key was absent or the get did not
        complete, the CAS otherwise."""
        got = await self.get(process, key)
        if got.outcome != "ok" or got.read is None:
            return got
        n, version = got.read
        return await self.cas(process, key, version, n + 1)

    async def delete(self, process: int, key: str) -> Operation:
        t0 = History.now()
        try:
            await self.repository.remove_async(key)
        except DEFINITE + INDEFINITE as e:
            return self._failed(process, "delete", key, t0, e)
        return self.history.record(process=process, kind="delete", key=key, invoke=t0, outcome="ok")

    async def list(self, process: int) -> Operation:
        """A list (one page: the workload's keys fit), with its revision."""
        t0 = History.now()
        try:
            page = await self.repository.list_page_async(limit=500)
        except INDEFINITE as e:
            return self._failed(process, "list", "", t0, e)
        if page.continue_token is not None:
            raise RuntimeError("the workload's keys should fit one page")
        listing = {str(r["metadata"]["name"]): _value_of(r) for r in page.items}
        return self.history.record(
            process=process,
            kind="list",
            key="",
            invoke=t0,
            outcome="ok",
            listing=listing,
            revision=int(page.resource_version),
        )


# How often each operation is chosen: mostly increments, so counters climb.
MIX: Sequence[tuple[str, int]] = (
    ("increment", 50),
    ("get", 15),
    ("create", 12),
    ("delete", 5),
    ("list", 18),
)


async def run_workload(
    repository: ResourceRepository[Any],
    *,
    keys: Sequence[str] = ("a", "b", "c"),
    tasks: int = 8,
    duration: float = 2.0,
    max_ops: int = 2_000,
    seed: int = 0,
    mix: Sequence[tuple[str, int]] = MIX,
    process: int = 0,
) -> History:
    """Run ``tasks`` asyncio tasks, each choosing operations at random (``mix``) on ``keys``,
    until ``duration`` seconds have passed or ``max_ops`` operations were started in all.
    Task ``i`` records as process ``process * 1000 + i``. Returns the history."""
    history = History()
    recorder = Recorder(repository, history)
    deadline = History.now() + duration
    started = 0
    names = [name for name, _ in mix]
    weights = [w for _, w in mix]

    async def client(i: int) -> None:
        nonlocal started
        rng = random.Random(seed * 7919 + i)
        pid = process * 1000 + i
        while started < max_ops and History.now() < deadline:
            started += 1
            what = rng.choices(names, weights)[0]
            key = rng.choice(keys)
            if what == "increment":
                await recorder.increment(pid, key)
            elif what == "get":
                await recorder.get(pid, key)
            elif what == "create":
                await recorder.create(pid, key)
            elif what == "delete":
                await recorder.delete(pid, key)
            elif what == "list":
                await recorder.list(pid)
            else:
                raise ValueError(f"unknown operation {what!r}")

    async with asyncio.TaskGroup() as group:
        for i in range(tasks):
            group.create_task(client(i))
    return history
