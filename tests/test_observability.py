"""Metrics per operation, and the core's log records delivered to Python's logging."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from etcd_resources import EtcdClient, ResourceRepository, UnavailableError
from etcd_resources.testing import EtcdServer

from .helpers import worker


async def test_metrics_count_calls_errors_and_latencies(
    etcd_endpoints: list[str], prefix: str
) -> None:
    client = EtcdClient(etcd_endpoints)
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    for i in range(5):
        await repo.add_async(worker(f"w{i}"))
    for i in range(5):
        await repo.get_async(f"w{i}")
    await repo.list_async()
    metrics = client.metrics()
    assert metrics["create"]["count"] == 5
    assert metrics["range"]["count"] >= 6
    assert metrics["range"]["errors"] == 0
    assert sum(metrics["range"]["buckets"].values()) == metrics["range"]["count"]
    assert 0 < metrics["create"]["seconds_max"] <= metrics["create"]["seconds_total"]
    assert EtcdClient("memory://").metrics() == {}
    client.close()

    down = EtcdClient("127.0.0.1:1", timeout=0.5, retries=0)
    with pytest.raises(UnavailableError):
        await ResourceRepository(down, "/x/").get_async("a")
    assert down.metrics()["range"]["errors"] == 1


async def test_core_logs_reach_python_logging(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with EtcdServer(data_dir=tmp_path / "etcd") as server:
        client = EtcdClient(server.endpoints, timeout=1.0, breaker_threshold=0)
        repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, "/logs/")
        seen: asyncio.Queue[Any] = asyncio.Queue()
        handle = repo.watch_changes(seen.put_nowait)
        await handle.started()
        with caplog.at_level("INFO", logger="etcd_resources"):
            server.stop()
            await asyncio.to_thread(server.start)
            await repo.add_async(worker("after"))
            event = await asyncio.wait_for(seen.get(), 15)
        assert event.name == "after"
        messages = [r.getMessage() for r in caplog.records if r.name == "etcd_resources"]
        assert any("broke" in m for m in messages), messages
        assert any("resumed after revision" in m for m in messages), messages
        handle.cancel()
        client.close()
