"""Unreadable documents (issue #22): a key under the prefix holding garbage written by another
tool (here ``etcdctl put``). One behaviour on every path: a get raises ``SerializationError``
naming the key and why; lists, pages, streams, counts with a selector, watches and the cache
skip it, log it once per key and revision and count it; ``remove_async`` refuses it, naming
the opt-in, and deletes it with ``delete_unreadable=True``; the command line marks it in
``get`` and deletes it with ``--unreadable``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from etcd_resources import (
    EtcdClient,
    ResourceRepository,
    SerializationError,
    UnreadableDocument,
)
from etcd_resources._core import flush_logs

from .etcdtools import etcdctl
from .helpers import worker
from .test_cli import cli, docs, env  # noqa: F401  (the fixtures)

GARBAGE = "<html>not a resource</html>{"


def warnings_about(caplog: pytest.LogCaptureFixture, key: str) -> int:
    flush_logs()
    return sum(key in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


async def test_every_path_skips_garbage_once_logged_and_counted(
    etcd_endpoints: list[str], etcd_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = EtcdClient(etcd_endpoints)
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, etcd_prefix)
    cached: ResourceRepository[dict[str, Any]] = ResourceRepository(
        client, etcd_prefix, cache=["status.phase"]
    )
    bad = etcd_prefix + "bad"
    try:
        await repo.add_async(worker("good", phase="Ready"))
        events: list[str] = []
        start = await client.current_revision()

        async def watch() -> None:
            async for event in repo.watch(resource_version=str(start)):
                if event.resource is not None:
                    events.append(event.resource["metadata"]["name"])

        watcher = asyncio.create_task(watch())
        await asyncio.to_thread(etcdctl, etcd_endpoints[0], "put", bad, GARBAGE)
        await repo.add_async(worker("after", phase="Ready"))
        before = client.unreadable_stats()

        with pytest.raises(SerializationError) as info:
            await repo.get_async("bad")
        assert info.value.key == bad and "not an object" in str(info.value), str(info.value)

        with caplog.at_level(logging.WARNING, logger="etcd_resources"):
            names = ["after", "good"]
            for _ in range(2):
                assert sorted(d["metadata"]["name"] for d in await repo.list_async()) == names
                page = await repo.list_page_async(limit=10)
                assert sorted(d["metadata"]["name"] for d in page.items) == names
                assert sorted([d["metadata"]["name"] async for d in repo.stream_async()]) == names
                assert await repo.count_async(field_selector="status.phase=Ready") == 2
                assert await cached.count_async(consistent=True) == 2
                assert sorted(d["metadata"]["name"] for d in await cached.list_async()) == names
            deadline = asyncio.get_running_loop().time() + 10
            while "after" not in events:
                assert asyncio.get_running_loop().time() < deadline, events
                await asyncio.sleep(0.02)  # polling the watch's output
            assert events == ["after"], "the watch skipped the garbage"
            assert warnings_about(caplog, bad) == 1, "logged once per key and revision"
            # The same key, broken again at a later revision: logged again.
            await asyncio.to_thread(etcdctl, etcd_endpoints[0], "put", bad, GARBAGE + "2")
            await repo.list_async()
            assert warnings_about(caplog, bad) == 2
        after = client.unreadable_stats()
        assert after["skipped"] >= before["skipped"] + 8
        assert after["distinct"] >= before["distinct"] + 1  # the later revision

        [found] = await repo.find_unreadable_async()
        assert isinstance(found, UnreadableDocument)
        assert (found.key, found.name) == (bad, "bad") and found.reason

        # Removal: refused naming the key and the opt-in; deleted with it.
        with pytest.raises(SerializationError) as refused:
            await repo.remove_async("bad")
        assert bad in str(refused.value) and "delete_unreadable=True" in str(refused.value)
        assert await client.get_raw(bad) is not None
        await repo.remove_async("bad", delete_unreadable=True)
        assert await client.get_raw(bad) is None
        assert await repo.find_unreadable_async() == []
        # The opt-in changes nothing for a readable resource.
        await repo.remove_async("good", delete_unreadable=True)
        assert await repo.get_async("good") is None
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher
    finally:
        client.close()


async def test_the_command_line_marks_garbage_and_deletes_it_when_asked(
    env: dict[str, str],  # noqa: F811
    etcd_endpoints: list[str],
    docs: ResourceRepository[dict[str, Any]],  # noqa: F811
) -> None:
    repo, etcd_prefix, etcd_client = docs, docs.prefix, docs.client
    await repo.add_async(worker("good"))
    await asyncio.to_thread(etcdctl, etcd_endpoints[0], "put", etcd_prefix + "bad", GARBAGE)

    listed = await asyncio.to_thread(cli, env, "get")
    assert [line[0] for line in listed.lines[1:]] == ["good"]
    assert "bad  UNREADABLE" in listed.err and "delete bad --unreadable" in listed.err

    refused = await asyncio.to_thread(cli, env, "delete", "bad", code=1)
    assert "--unreadable" in refused.err
    deleted = await asyncio.to_thread(cli, env, "delete", "bad", "--unreadable")
    assert deleted.out == "bad deleted\n"
    assert await etcd_client.get_raw(etcd_prefix + "bad") is None
    assert await repo.get_async("good") is not None
