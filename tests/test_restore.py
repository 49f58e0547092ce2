"""A restore from a snapshot (issue #22): the etcd a running client talks to is stopped,
restored with ``etcdutl snapshot restore`` from a snapshot taken earlier (with and without
``--bump-revision --mark-compacted``, Kubernetes' guidance), and started again on the same
ports. The client's cache notices, relists and ends equal to the restored etcd, deletions
included; its watch raises ``ExpiredError`` (never a silent gap)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etcd_resources import EtcdClient, ExpiredError, ResourceRepository, UnavailableError
from etcd_resources.testing import EtcdServer

from .etcdtools import etcdctl, etcdutl, status
from .helpers import worker

Repo = ResourceRepository[dict[str, Any]]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EtcdServer]:
    with EtcdServer(data_dir=tmp_path / "before") as s:
        yield s


def restore(server: EtcdServer, snapshot: Path, into: Path, bump: bool, past: int) -> EtcdServer:
    """Stop ``server``, restore ``snapshot`` into a new data directory, start etcd on it on
    the same ports, as an operator does. ``bump``: with ``--bump-revision --mark-compacted``
    (by hand past revision ``past`` where etcdutl lacks them)."""
    server.stop()
    peer = f"http://127.0.0.1:{server.peer_port}"
    args = [
        "snapshot", "restore", str(snapshot),
        "--data-dir", str(into / "data"),
        "--name", server.name,
        "--initial-cluster", f"{server.name}={peer}",
        "--initial-cluster-token", "etcd-resources-test",
        "--initial-advertise-peer-urls", peer,
    ]  # fmt: skip
    native = bump and "--bump-revision" in etcdutl("snapshot", "restore", "--help")
    if native:
        args += ["--bump-revision", "1000000", "--mark-compacted"]
    etcdutl(*args)
    if bump and not native:
        bump_by_hand(server, into, past)

    restored = EtcdServer(
        data_dir=into,
        name=server.name,
        client_port=server.client_port,
        peer_port=server.peer_port,
    )
    return restored.start()


def bump_by_hand(server: EtcdServer, data: Path, past: int) -> None:
    """What ``--bump-revision --mark-compacted`` do (etcdutl 3.5.1 lacks them), done
    before any client sees the restored etcd: on another client port, write until the
    revision is past ``past`` (every revision a client saw), then compact there."""
    hidden = EtcdServer(data_dir=data, name=server.name, peer_port=server.peer_port)
    hidden.start()
    try:
        while (revision := int(status(hidden)["header"]["revision"])) <= past:
            etcdctl(hidden, "put", "/bump-revision", str(revision))
        etcdctl(hidden, "del", "/bump-revision")
        etcdctl(hidden, "compact", str(revision + 1))
    finally:
        hidden.stop()


async def names_and_versions(repo: Repo, **kwargs: Any) -> dict[str, str]:
    return {
        d["metadata"]["name"]: d["spec"].get("version", "") for d in await repo.list_async(**kwargs)
    }


@pytest.mark.parametrize("bump", [False, True], ids=["plain", "bump-revision"])
async def test_a_restore_is_noticed_by_caches_and_watches(
    server: EtcdServer, tmp_path: Path, bump: bool
) -> None:
    client = EtcdClient(server.endpoints, timeout=3.0)
    repo: Repo = ResourceRepository(client, "/restore/")
    cached: Repo = ResourceRepository(client, "/restore/", cache=True)
    restored: EtcdServer | None = None
    try:
        for i in range(10):
            await repo.add_async(worker(f"w{i}"))
        snapshot = tmp_path / "snap.db"
        await asyncio.to_thread(etcdctl, server, "snapshot", "save", str(snapshot))
        # After the snapshot: changes the restore takes back.
        for i in range(10, 15):
            await repo.add_async(worker(f"w{i}"))
        await repo.remove_async("w0")
        w2 = await repo.get_async("w2")
        assert w2 is not None
        w2["spec"]["version"] = "after-snapshot"
        await repo.update_async(w2)
        assert len(await names_and_versions(cached, consistent=True)) == 14

        events: list[tuple[str, str]] = []
        ended: list[BaseException] = []
        start = await client.current_revision()

        async def watch() -> None:
            try:
                async for event in repo.watch(resource_version=start):
                    if event.resource is not None:
                        events.append((event.type.value, event.resource["metadata"]["name"]))
            except Exception as e:
                ended.append(e)

        watcher = asyncio.create_task(watch())
        await repo.add_async(worker("w15"))
        deadline = time.monotonic() + 10
        while ("ADDED", "w15") not in events:
            assert time.monotonic() < deadline, events
            await asyncio.sleep(0.02)  # polling the watch's output

        seen = await client.current_revision()
        restored = await asyncio.to_thread(
            restore, server, snapshot, tmp_path / "after", bump, seen
        )
        # etcd was down meanwhile: the client's circuit breaker may fail calls fast for a
        # moment after it is back.
        deadline = time.monotonic() + 30
        while True:
            try:
                truth = await names_and_versions(repo)
                break
            except UnavailableError:
                assert time.monotonic() < deadline, "etcd never came back"
                await asyncio.sleep(0.1)  # polling the breaker's reopening
        assert truth == {f"w{i}": "" for i in range(10)}, "the restored etcd"

        # The cache relists and ends equal to the restored etcd, deletions included: the
        # first consistent read after the restore already waits for that.
        assert await names_and_versions(cached, consistent=True) == truth
        deadline = time.monotonic() + 30
        # The watch says it cannot resume: no silent gap.
        while not ended:
            assert time.monotonic() < deadline, f"the watch went on: {events[-3:]}"
            await asyncio.sleep(0.05)  # polling the watch's end
        assert isinstance(ended[0], ExpiredError), repr(ended[0])
        await watcher

        # And writes go on, seen by the cache.
        await repo.add_async(worker("new"))
        assert "new" in await names_and_versions(cached, consistent=True)
    finally:
        client.close()
        if restored is not None:
            restored.close()
