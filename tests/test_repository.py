"""ResourceRepository semantics, on etcd and on the embedded store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from etcd_resources import (
    AlreadyExistsError,
    ConflictError,
    EtcdClient,
    InvalidNameError,
    NotFoundError,
    ResourceRepository,
    TooLargeError,
)

from .helpers import worker


@pytest.fixture
def repo(client: EtcdClient, prefix: str) -> ResourceRepository[dict[str, Any]]:
    return ResourceRepository(client, prefix)


async def test_add_is_an_atomic_create(repo: ResourceRepository[dict[str, Any]]) -> None:
    created = await repo.add_async(worker("w1"))
    meta = created["metadata"]
    assert meta["generation"] == 1
    assert len(meta["uid"]) == 36
    assert meta["creation_timestamp"]
    assert int(meta["resource_version"]) > 0
    with pytest.raises(AlreadyExistsError) as info:
        await repo.add_async(worker("w1", track="other"))
    assert info.value.key == repo.prefix + "w1"
    stored = await repo.get_async("w1")
    assert stored is not None and stored["spec"]["lab_track"] == "ccna"


async def test_concurrent_creates_one_wins(repo: ResourceRepository[dict[str, Any]]) -> None:
    results = await asyncio.gather(
        *(repo.add_async(worker("w1", track=f"t{i}")) for i in range(10)), return_exceptions=True
    )
    assert sum(isinstance(r, dict) for r in results) == 1
    assert sum(isinstance(r, AlreadyExistsError) for r in results) == 9


async def test_update_is_compare_and_swap(repo: ResourceRepository[dict[str, Any]]) -> None:
    v1 = await repo.add_async(worker("w1"))
    v2 = await repo.update_async({**v1, "status": {"phase": "Ready"}})
    assert int(v2["metadata"]["resource_version"]) > int(v1["metadata"]["resource_version"])
    with pytest.raises(ConflictError) as info:
        await repo.update_async({**v1, "status": {"phase": "Failed"}})
    err = info.value
    assert err.expected_version == v1["metadata"]["resource_version"]
    assert err.actual_version == v2["metadata"]["resource_version"]
    stored = await repo.get_async("w1")
    assert stored is not None and stored["status"]["phase"] == "Ready"


async def test_generation_counts_spec_changes_only(
    repo: ResourceRepository[dict[str, Any]],
) -> None:
    v = await repo.add_async(worker("w1"))
    v = await repo.update_async({**v, "status": {"phase": "Ready"}})
    assert v["metadata"]["generation"] == 1
    v = await repo.update_async({**v, "spec": {**v["spec"], "lab_track": "ccnp"}})
    assert v["metadata"]["generation"] == 2
    forged = {**v, "metadata": {**v["metadata"], "uid": "forged", "generation": 99}}
    v = await repo.update_async(forged)
    assert v["metadata"]["generation"] == 2
    assert v["metadata"]["uid"] != "forged"


async def test_update_without_version_and_of_missing(
    repo: ResourceRepository[dict[str, Any]],
) -> None:
    await repo.add_async(worker("w1"))
    updated = await repo.update_async(worker("w1", phase="Active"))
    assert updated["status"]["phase"] == "Active"
    with pytest.raises(NotFoundError):
        await repo.update_async(worker("ghost"))


async def test_update_with_retry(repo: ResourceRepository[dict[str, Any]]) -> None:
    v1 = await repo.add_async(worker("w1"))
    await repo.update_async({**v1, "status": {"phase": "Ready"}})
    # Neuroglia semantics: a stale entity is written after taking the current version.
    stale = {**v1, "status": {"phase": "Draining"}}
    result = await repo.update_with_retry_async(stale)
    assert result["status"]["phase"] == "Draining"

    # Read-modify-write: twenty concurrent increments, none lost.
    await repo.add_async({**worker("counter"), "status": {"n": 0}})

    def bump(current: dict[str, Any]) -> dict[str, Any]:
        return {**current, "status": {"n": current["status"]["n"] + 1}}

    await asyncio.gather(
        *(repo.update_with_retry_async(worker("counter"), 100, mutate=bump) for _ in range(20))
    )
    stored = await repo.get_async("counter")
    assert stored is not None and stored["status"]["n"] == 20


async def test_finalizers_hold_deletion(repo: ResourceRepository[dict[str, Any]]) -> None:
    await repo.add_async(worker("w1", finalizers=["lab.neuroglia.io/cleanup"]))
    await repo.remove_async("w1")
    marked = await repo.get_async("w1")
    assert marked is not None and marked["metadata"]["deletion_timestamp"]
    assert await repo.contains_async("w1")
    marked["metadata"]["finalizers"] = []
    await repo.update_async(marked)
    assert not await repo.contains_async("w1")
    with pytest.raises(NotFoundError):
        await repo.remove_async("w1")


async def test_plain_delete(repo: ResourceRepository[dict[str, Any]]) -> None:
    await repo.add_async(worker("w1"))
    assert await repo.contains_async("w1")
    await repo.remove_async("w1")
    assert await repo.get_async("w1") is None


async def test_lists_by_namespace_and_labels(repo: ResourceRepository[dict[str, Any]]) -> None:
    for i, (ns, track) in enumerate([("a", "ccna"), ("a", "ccnp"), ("b", "ccna")]):
        await repo.add_async(worker(f"w{i}", track=track, namespace=ns))
    assert len(await repo.list_async()) == 3
    assert {d["metadata"]["name"] for d in await repo.get_by_namespace_async("a")} == {"w0", "w1"}
    assert {
        d["metadata"]["name"] for d in await repo.get_by_labels_async({"lab-track": "ccna"})
    } == {
        "w0",
        "w2",
    }
    both = await repo.list_async(namespace="a", label_selector="lab-track!=ccnp")
    assert [d["metadata"]["name"] for d in both] == ["w0"]


async def test_namespaced_keys(client: EtcdClient, prefix: str) -> None:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix, namespaced=True)
    await repo.add_async(worker("w1", namespace="labs"))
    await repo.add_async(worker("w1", namespace="other"))
    assert await client.get_raw(f"{prefix}labs/w1") is not None
    assert len(await repo.list_async()) == 2
    assert [d["metadata"]["namespace"] for d in await repo.list_async(namespace="labs")] == ["labs"]
    assert await repo.get_async("w1", "other") is not None
    assert await repo.get_async("w1") is None  # the default namespace is "default"


async def test_bad_names_are_refused(repo: ResourceRepository[dict[str, Any]]) -> None:
    for bad in ["", "Worker", "a b", "..", "a/../b", "é", "x" * 254]:
        with pytest.raises(InvalidNameError):
            await repo.add_async(worker(bad))
        with pytest.raises(ValueError):
            await repo.get_async(bad)
    assert await repo.list_async() == []


async def test_oversized_documents_are_refused_before_sending(
    repo: ResourceRepository[dict[str, Any]],
) -> None:
    big = worker("big")
    big["spec"]["blob"] = "x" * (1536 * 1024)
    with pytest.raises(TooLargeError) as info:
        await repo.add_async(big)
    assert info.value.limit == 1536 * 1024
    assert not await repo.contains_async("big")


async def test_yaml_format_reads_like_json(client: EtcdClient, prefix: str) -> None:
    yaml_repo: ResourceRepository[dict[str, Any]] = ResourceRepository(
        client, prefix, format="yaml"
    )
    json_repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    await yaml_repo.add_async(worker("w1"))
    raw = await client.get_raw(prefix + "w1")
    assert raw is not None and raw.startswith(b"apiVersion: ")
    from_json = await json_repo.get_async("w1")
    assert (
        from_json is not None and from_json["spec"]["aws_config"]["instance_type"] == "c5.2xlarge"
    )


async def test_large_documents_list_cache_and_watch(client: EtcdClient, prefix: str) -> None:
    """600 documents of 10 KB: one 500-key chunk is ~5 MB, more than gRPC's default 4 MiB
    message (listings of such a prefix failed before); lists, pages, the cache and a watch
    read them all (the cache through its first list and its watch)."""
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    blob = "x" * 10_000
    await asyncio.gather(
        *(
            repo.add_async({"metadata": {"name": f"b{i:04}"}, "spec": {"blob": blob}})
            for i in range(600)
        )
    )
    listed = await repo.list_async()
    assert len(listed) == 600 and all(d["spec"]["blob"] == blob for d in listed)
    page = await repo.list_page_async(limit=550)
    assert len(page.items) == 550
    cached: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix, cache=True)
    assert await cached.count_async() == 600
    assert [d["metadata"]["name"] for d in await cached.list_async()] == [
        d["metadata"]["name"] for d in listed
    ]
    await repo.add_async({"metadata": {"name": "b9999"}, "spec": {"blob": blob}})
    assert await cached.count_async(consistent=True) == 601
