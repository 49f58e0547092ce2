"""A full database (issue #22): etcd started with a small ``--quota-backend-bytes``, filled by
the package until etcd raises its ``NOSPACE`` alarm. Writes raise ``QuotaExceededError`` at
once; reads, lists, counts, the cache, watches and every removal that is a delete in etcd keep
working; after the operator compacts, defragments and disarms (with ``etcdctl``), writes resume
on the same client, and nothing acknowledged before the alarm is lost."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from etcd_resources import (
    ConflictError,
    EtcdClient,
    QuotaExceededError,
    ResourceRepository,
    UnavailableError,
)
from etcd_resources.testing import EtcdServer

from .etcdtools import free_space, status
from .helpers import worker
from .test_cli import COMMAND

QUOTA = 2 * 1024 * 1024
PAD = "x" * 16_000


@pytest.fixture
def small_etcd() -> Iterator[EtcdServer]:
    """etcd whose database may hold 2 MiB, its own server (the alarm is cluster-wide)."""
    with EtcdServer(extra_args=("--quota-backend-bytes", str(QUOTA))) as server:
        yield server


@dataclass
class Full:
    server: EtcdServer
    client: EtcdClient
    repo: ResourceRepository[dict[str, Any]]
    acknowledged: dict[str, int] = field(default_factory=dict)
    """name -> resource_version of every add that returned."""
    refused: QuotaExceededError | None = None
    refused_name: str = ""
    refused_after: float = 0.0


def padded(name: str, **meta: Any) -> dict[str, Any]:
    doc = worker(name, **meta)
    doc["spec"]["pad"] = PAD
    return doc


async def fill(full: Full, first: int = 0) -> None:
    """Add resources until etcd refuses one (bounded)."""
    for i in range(first, first + 2000):
        started = time.monotonic()
        try:
            stored = await full.repo.add_async(padded(f"w{i}"))
        except QuotaExceededError as e:
            full.refused, full.refused_after = e, time.monotonic() - started
            full.refused_name = f"w{i}"
            return
        full.acknowledged[f"w{i}"] = int(stored["metadata"]["resource_version"])
    raise AssertionError("etcd never refused a write")


async def command(server: EtcdServer, *args: str) -> subprocess.CompletedProcess[str]:
    """The command line on ``server``'s prefix /full/."""
    env = {**os.environ, "ETCD_ENDPOINTS": server.endpoint, "ETCD_PREFIX": "/full/"}
    return await asyncio.to_thread(
        subprocess.run, [*COMMAND, *args], env=env, capture_output=True, text=True, timeout=60
    )


async def status_cli(server: EtcdServer) -> subprocess.CompletedProcess[str]:
    return await command(server, "status", "-o", "json")


@pytest.fixture
async def full(small_etcd: EtcdServer) -> AsyncIterator[Full]:
    client = EtcdClient(small_etcd.endpoints, timeout=5.0)
    try:
        yield Full(small_etcd, client, ResourceRepository(client, "/full/"))
    finally:
        client.close()


async def test_a_full_database_refuses_writes_at_once_and_keeps_serving_the_rest(
    full: Full,
) -> None:
    repo = full.repo
    # Before the alarm: a resource held by a finalizer, already marked for deletion.
    await repo.add_async(padded("held", finalizers=["lab/cleanup"]))
    await repo.remove_async("held")
    cached = ResourceRepository(full.client, "/full/", cache=True)
    assert await cached.count_async() == 1
    events: list[tuple[str, str]] = []
    start = await full.client.current_revision()

    async def watch() -> None:
        async for event in repo.watch(resource_version=str(start)):
            if event.resource is not None:
                events.append((event.type.value, event.resource["metadata"]["name"]))

    watcher = asyncio.create_task(watch())
    await fill(full)

    # Its own error, at once, telling the operator what to do; not a lost connection.
    refused = full.refused
    assert refused is not None and not isinstance(refused, (UnavailableError, ConnectionError))
    assert full.refused_after < 1.0, "raised at once, not retried until the timeout"
    assert "alarm disarm" in str(refused) and "defragment" in str(refused)
    assert refused.code == "ResourceExhausted"
    assert any("NOSPACE" in e for e in status(full.server)["errors"])
    with pytest.raises(QuotaExceededError):
        await repo.update_async(await repo.get_async("w0"))

    # Reads, lists, counts and the cache keep serving. The write that crossed the quota may
    # be stored all the same: etcd checks the quota before a request goes to raft (refused,
    # not applied) and again when applying it (applied, then answered NOSPACE: quotaApplierV3),
    # so which of the two refused it is a race with the database's growth.
    names = set(full.acknowledged)
    if await repo.get_async(full.refused_name) is not None:
        names.add(full.refused_name)
    assert {d["metadata"]["name"] for d in await repo.list_async()} == names | {"held"}
    assert await repo.count_async() == len(names) + 1
    assert await cached.count_async(consistent=True) == len(names) + 1

    # `etcd-resources status` shows the alarm (and exits 1).
    during = await status_cli(full.server)
    assert during.returncode == 1 and "alarm NOSPACE" in during.stderr, during.stderr
    [member] = json.loads(during.stdout)["endpoints"]
    assert [alarm for _, alarm in member["alarms"]] == ["NOSPACE"] and not member["healthy"]
    # etcd raises the alarm when the file plus the refused request would pass the quota: the
    # file itself may stay a page or a document's worth under it.
    assert member["db_size_quota"] == QUOTA
    assert QUOTA - 2 * len(PAD) < member["db_size"], member

    # Every removal that is a delete in etcd works during the alarm.
    await repo.remove_async("w0")
    held = await repo.get_async("held")
    assert held is not None
    held["metadata"]["finalizers"] = []
    await repo.update_async(held)  # the last finalizer removed: a delete
    assert await repo.get_async("held") is None and await repo.get_async("w0") is None
    done = await command(full.server, "delete", "w1")
    assert done.returncode == 0, done.stderr
    assert await repo.get_async("w1") is None

    # The watch and the cache saw the deletes.
    deadline = time.monotonic() + 10
    while {("DELETED", "w0"), ("DELETED", "held"), ("DELETED", "w1")} - set(events):
        assert time.monotonic() < deadline, events
        await asyncio.sleep(0.02)  # polling the watch's output
    assert await cached.count_async(consistent=True) == len(names) - 2
    with pytest.raises(QuotaExceededError):
        await repo.add_async(padded("still-full"))

    # The service frees room, the operator compacts, defragments and disarms: writes resume on
    # the same client, no restart. etcd checks the quota against the file's size as of its last
    # batch commit, so a fast writer gets well past it before the alarm (up to 3 MB of live
    # data under this 2 MiB quota, seen): keep what fills a third of the quota, free the rest.
    ordered = sorted(names, key=lambda name: int(name[1:]))
    keep = QUOTA // (3 * len(PAD))
    deleted = {"w0", "w1", *ordered[2 : len(ordered) - keep]}
    for name in sorted(deleted - {"w0", "w1"}):
        await repo.remove_async(name)
    compacted = free_space(full.server)
    assert not status(full.server).get("errors")
    await repo.add_async(padded("after"))
    after = await status_cli(full.server)
    assert after.returncode == 0, after.stderr
    report = json.loads(after.stdout)
    assert report["endpoints"][0]["alarms"] == [] and report["endpoints"][0]["healthy"]
    assert report["compacted_revision"] == compacted < report["revision"]
    watcher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watcher

    # Nothing acknowledged before the alarm is lost (but what was deleted on purpose).
    stored = {d["metadata"]["name"]: d for d in await repo.list_async()}
    for name, version in full.acknowledged.items():
        if name in deleted:
            continue
        assert int(stored[name]["metadata"]["resource_version"]) == version, name
        assert stored[name]["spec"]["pad"] == PAD
    assert set(stored) == names - deleted | {"after"}


async def test_a_compared_delete_during_the_alarm_still_compares(full: Full) -> None:
    await fill(full)
    version = full.acknowledged["w2"]
    with pytest.raises(ConflictError):
        await full.client.delete_raw("/full/w2", expected=version - 1)
    assert await full.repo.get_async("w2") is not None, "a stale version deletes nothing"
    assert await full.client.delete_raw("/full/w2", expected=version)
    assert not await full.client.delete_raw("/full/w2")
    assert await full.repo.get_async("w2") is None
