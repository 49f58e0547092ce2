"""Bad input: each case of the README's table gets a clear, typed error and leaves the stored
data as it was."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from etcd_resources import (
    ClosedError,
    EtcdClient,
    EtcdLabWorkerResourceRepository,
    EtcdStorageBackend,
    InvalidArgumentError,
    InvalidNameError,
    InvalidSelectorError,
    ResourceRepository,
    SerializationError,
    TooLargeError,
)

from .helpers import worker

BAD_NAMES = ["", "x" * 254, "..", "a/b", "Worker", "a b", "wörker"]


@pytest.fixture
async def seeded(client: EtcdClient, prefix: str) -> ResourceRepository[dict[str, Any]]:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    await repo.add_async(worker("keep"))
    return repo


async def snapshot(repo: ResourceRepository[dict[str, Any]]) -> list[dict[str, Any]]:
    return await repo.list_async()


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_invalid_names(seeded: ResourceRepository[dict[str, Any]], name: str) -> None:
    before = await snapshot(seeded)
    backend = EtcdStorageBackend(seeded.client, seeded.prefix)
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: seeded.add_async(worker(name)),
        lambda: seeded.update_async(worker(name)),
        lambda: seeded.get_async(name),
        lambda: seeded.contains_async(name),
        lambda: seeded.remove_async(name),
        lambda: backend.set(name, {}),
        lambda: backend.get(name),
        lambda: backend.delete(name),
        lambda: backend.compare_and_swap(name, 1, {}),
    ]
    for call in calls:
        with pytest.raises(InvalidNameError) as info:
            await call()
        assert info.value.name == name and info.value.reason
    assert await snapshot(seeded) == before


async def test_oversized_documents(seeded: ResourceRepository[dict[str, Any]]) -> None:
    before = await snapshot(seeded)
    big = {**worker("keep"), "spec": {"blob": "x" * (2 * 1024 * 1024)}}
    with pytest.raises(TooLargeError):
        await seeded.update_async(big)
    with pytest.raises(TooLargeError):
        await seeded.add_async({**big, "metadata": {"name": "big"}})
    assert await snapshot(seeded) == before


async def test_values_that_cannot_be_stored(seeded: ResourceRepository[dict[str, Any]]) -> None:
    before = await snapshot(seeded)
    for bad in [object(), b"bytes", {1, 2}, float("inf")]:
        with pytest.raises(SerializationError):
            await seeded.update_async({**worker("keep"), "status": {"x": bad}})
    assert await snapshot(seeded) == before


async def test_another_tools_garbage_never_breaks_a_list_or_a_watch(
    seeded: ResourceRepository[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    client = seeded.client
    rv = await client.current_revision()
    await client.put_raw(seeded.prefix + "garbage", b"\x00\xff not a document")
    await seeded.add_async(worker("after"))
    with caplog.at_level("WARNING", logger="etcd_resources"):
        names = [d["metadata"]["name"] for d in await seeded.list_async()]
        assert names == ["after", "keep"]
        assert await seeded.count_async() == 3  # the key is there; counting reads no values

        async def first_event() -> Any:
            async for event in seeded.watch(resource_version=rv):
                return event

        event = await asyncio.wait_for(first_event(), 10)
    assert event.resource["metadata"]["name"] == "after"
    # The list and the watch met it at the same revision: logged once (issue #22).
    assert sum(seeded.prefix + "garbage" in r.getMessage() for r in caplog.records) == 1


async def test_wrong_argument_types(client: EtcdClient, prefix: str) -> None:
    repo = EtcdLabWorkerResourceRepository(client, prefix)
    backend = EtcdStorageBackend(client, prefix)
    calls: list[Callable[[], Any]] = [
        lambda: repo.get_async(42),  # type: ignore[arg-type]
        lambda: repo.contains_async(None),  # type: ignore[arg-type]
        lambda: repo.remove_async(3.5),  # type: ignore[arg-type]
        lambda: repo.list_async(namespace=7),  # type: ignore[arg-type]
        lambda: repo.list_page_async(limit="ten"),  # type: ignore[arg-type]
        lambda: repo.find_by_lab_track_async(["ccna"]),  # type: ignore[arg-type]
        lambda: repo.find_by_phase_async(3),  # type: ignore[arg-type]
        lambda: backend.get(b"bytes"),  # type: ignore[arg-type]
        lambda: backend.keys(1),  # type: ignore[arg-type]
        lambda: client.grant_lease("10"),  # type: ignore[arg-type]
        lambda: repo.add_async("not a resource"),
        lambda: repo.list_async(label_selector=42),  # type: ignore[arg-type]
        lambda: repo.list_async(field_selector=["status.phase"]),  # type: ignore[arg-type]
        lambda: backend.set("a", 42),
    ]
    for call in calls:
        with pytest.raises(TypeError):
            await call()
    for value_call in [
        lambda: client.grant_lease(0),
        lambda: repo.list_page_async(continue_token="forged"),
    ]:
        with pytest.raises(ValueError):
            await value_call()
    with pytest.raises(InvalidArgumentError):
        EtcdClient(["memory://"], timeout=-1)


async def test_malformed_selectors(seeded: ResourceRepository[dict[str, Any]]) -> None:
    for selector in ["a in (b", "=x", "a==b=c", "a notin b"]:
        with pytest.raises(InvalidSelectorError) as info:
            await seeded.list_async(label_selector=selector)
        assert info.value.position >= 0 and info.value.expected
    with pytest.raises(InvalidSelectorError):
        await seeded.count_async(field_selector="status..phase=x")


async def test_a_closed_client(seeded: ResourceRepository[dict[str, Any]]) -> None:
    client = seeded.client
    await client.close()
    for call in [
        lambda: seeded.get_async("keep"),
        lambda: seeded.list_async(),
        lambda: seeded.add_async(worker("new")),
        lambda: client.grant_lease(5),
        lambda: client.current_revision(),
    ]:
        with pytest.raises(ClosedError):
            await call()
