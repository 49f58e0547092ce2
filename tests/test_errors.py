"""Failures surface as typed exceptions: never ``None`` or ``False`` for "etcd is down"."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

import etcd_resources as er
from etcd_resources import (
    ClosedError,
    EtcdClient,
    EtcdResourcesError,
    EtcdStorageBackend,
    InvalidArgumentError,
    InvalidSelectorError,
    ResourceRepository,
    UnavailableError,
)
from etcd_resources.testing import EtcdServer, free_port

from .helpers import worker


def test_hierarchy_matches_the_standard_exceptions() -> None:
    assert issubclass(er.UnavailableError, ConnectionError)
    assert issubclass(er.EtcdTimeoutError, TimeoutError)
    assert issubclass(er.PermissionDeniedError, PermissionError)
    assert issubclass(er.NotFoundError, LookupError)
    assert not issubclass(er.QuotaExceededError, ConnectionError)
    for cls in (
        er.InvalidNameError,
        er.InvalidSelectorError,
        er.InvalidArgumentError,
        er.TooLargeError,
        er.SerializationError,
    ):
        assert issubclass(cls, ValueError)
    for name in er.errors.__all__:
        assert issubclass(getattr(er, name), EtcdResourcesError)


async def test_unreachable_etcd_raises_connection_error_fast() -> None:
    client = EtcdClient(f"127.0.0.1:{free_port()}", timeout=2.0)
    backend = EtcdStorageBackend(client, "/x/")
    for call in (
        backend.get("a"),
        backend.exists("a"),
        backend.keys(),
        backend.set("a", {}),
        backend.list_with_labels({}),
        backend.compare_and_swap("a", 1, {}),
    ):
        started = time.monotonic()
        with pytest.raises(UnavailableError) as info:
            await call
        assert time.monotonic() - started < 2.5
        assert "127.0.0.1" in str(info.value)


@pytest.fixture
def mute_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a hung etcd)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


async def test_a_silent_server_raises_connection_error_within_the_timeout(mute_server: int) -> None:
    client = EtcdClient(f"127.0.0.1:{mute_server}", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ConnectionError):
        await EtcdStorageBackend(client, "/x/").get("a")
    assert time.monotonic() - started < 1.5


async def test_etcd_stopping_midway_raises_then_recovers(tmp_path: Any) -> None:
    with EtcdServer(data_dir=tmp_path / "etcd") as server:
        client = EtcdClient(server.endpoints, timeout=1.0)
        repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, "/r/")
        await repo.add_async(worker("w1"))
        server.stop()
        with pytest.raises(ConnectionError):
            await repo.get_async("w1")
        with pytest.raises(ConnectionError):
            await repo.list_async()
        server.start()
        recovered = await repo.get_async("w1")
        assert recovered is not None and recovered["metadata"]["name"] == "w1"


async def test_closed_client(client: EtcdClient, prefix: str) -> None:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    await repo.add_async(worker("w1"))
    await client.close()
    assert client.closed
    await client.close()  # idempotent
    with pytest.raises(ClosedError):
        await repo.get_async("w1")
    with pytest.raises(ClosedError):
        await repo.add_async(worker("w2"))


async def test_context_manager_closes() -> None:
    async with EtcdClient("memory://") as c:
        assert not c.closed
    assert c.closed
    assert "closed" in repr(c)


async def test_closing_ends_calls_in_flight(mute_server: int) -> None:
    client = EtcdClient(f"127.0.0.1:{mute_server}", timeout=30.0)
    call = asyncio.ensure_future(EtcdStorageBackend(client, "/x/").get("a"))
    await asyncio.sleep(0)  # let the call start
    client.close()
    with pytest.raises(ClosedError):
        await asyncio.wait_for(call, 5)


def test_bad_client_arguments() -> None:
    with pytest.raises(InvalidArgumentError):
        EtcdClient([])
    with pytest.raises(InvalidArgumentError):
        EtcdClient("memory://", timeout=0)
    with pytest.raises(InvalidArgumentError):
        EtcdClient("redis://localhost:6379")
    with pytest.raises(InvalidArgumentError):
        EtcdClient("localhost:2379", username="root")
    with pytest.raises(TypeError):
        EtcdClient("memory://", 5.0)  # type: ignore[misc]
    with pytest.raises(InvalidArgumentError):
        EtcdClient(42)  # type: ignore[arg-type]


async def test_bad_method_arguments(client: EtcdClient, prefix: str) -> None:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    backend = EtcdStorageBackend(client, prefix)
    with pytest.raises(TypeError):
        await repo.get_async(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await repo.add_async({"metadata": {}})
    with pytest.raises(ValueError):
        await repo.add_async({"metadata": "not an object"})
    with pytest.raises(TypeError):
        await backend.set("a", ["not", "a", "dict"])
    with pytest.raises(InvalidArgumentError):
        await backend.compare_and_swap("a", "v1", {})
    with pytest.raises(InvalidArgumentError):
        ResourceRepository(client, prefix, format="xml")
    with pytest.raises(InvalidArgumentError):
        ResourceRepository(client, "")
    with pytest.raises(InvalidArgumentError):
        await repo.update_async(
            {**worker("w1"), "metadata": {"name": "w1", "resource_version": "x"}}
        )


@pytest.mark.parametrize(
    ("selector", "position"),
    [("a=b c", 4), ("a in b", 5), ("a in (b", 7), ("=x", 0), ("a=b,", 4)],
)
async def test_malformed_selectors_point_at_the_position(
    client: EtcdClient, prefix: str, selector: str, position: int
) -> None:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    with pytest.raises(InvalidSelectorError) as info:
        await repo.list_async(label_selector=selector)
    assert info.value.position == position
    assert info.value.selector == selector
    assert "expected" in str(info.value)
    with pytest.raises(TypeError):
        await repo.list_async(label_selector=42)  # type: ignore[arg-type]


async def test_the_circuit_breaker_fails_fast_and_recovers(tmp_path: Any) -> None:
    with EtcdServer(data_dir=tmp_path / "etcd") as server:
        client = EtcdClient(server.endpoints, timeout=2.0, breaker_threshold=3, breaker_reset=0.5)
        repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, "/cb/")
        await repo.add_async(worker("w1"))
        server.stop()
        for _ in range(3):
            with pytest.raises(UnavailableError) as info:
                await repo.get_async("w1")
            assert info.value.code != "CircuitOpen"
        started = time.monotonic()
        with pytest.raises(UnavailableError) as info:
            await repo.get_async("w1")
        assert info.value.code == "CircuitOpen"
        assert time.monotonic() - started < 0.05, "an open circuit does not wait"
        server.start()
        # The reset interval is the behaviour under test: after it, one call probes etcd.
        await asyncio.sleep(0.6)
        stored = await repo.get_async("w1")
        assert stored is not None
        assert await repo.contains_async("w1")
        client.close()


async def test_reads_are_retried_through_a_short_outage(tmp_path: Any) -> None:
    with EtcdServer(data_dir=tmp_path / "etcd") as server:
        client = EtcdClient(server.endpoints, timeout=10.0, retries=50)
        repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, "/rt/")
        await repo.add_async(worker("w1"))
        server.stop()
        # Issued while etcd is down (a first attempt fails at once: connection refused), it
        # keeps retrying while etcd starts again.
        read = asyncio.ensure_future(repo.get_async("w1"))
        await asyncio.to_thread(server.start)
        stored = await asyncio.wait_for(read, 10)
        assert stored is not None and stored["metadata"]["name"] == "w1"
        client.close()
