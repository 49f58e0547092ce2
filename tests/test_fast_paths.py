"""The fast paths keep the semantics: documents decoded straight from their bytes, listings
streamed in chunks, and updates of a version read through the same repository sent as one
compare-and-swap."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from etcd_resources import (
    ConflictError,
    EtcdClient,
    NotFoundError,
    ResourceRepository,
)

from .helpers import worker


async def test_documents_decode_like_json_loads_and_get_normalised(
    client: EtcdClient, prefix: str
) -> None:
    odd = {
        "api_version": "v1",
        "kind": "LabWorker",
        "metadata": {"name": "odd", "resourceVersion": "1", "creationTimestamp": "t", "x": None},
        "spec": {
            "big": 2**63 + 5,
            "neg": -(2**62),
            "pi": 3.25,
            "exp": 1e300,
            "text": 'é "quoted" \\ \u2028 \ud83d\ude00',
            "nested": [[], {}, [1, [2, {"a": [True, False, None]}]]],
            "": "empty key",
        },
    }
    await client.put_raw(f"{prefix}odd", json.dumps(odd).encode())
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    got = await repo.get_async("odd")
    assert got is not None
    assert got["spec"] == json.loads(json.dumps(odd["spec"]))
    assert got["apiVersion"] == "v1" and "api_version" not in got
    meta = got["metadata"]
    assert meta["creation_timestamp"] == "t" and "creationTimestamp" not in meta
    assert meta["resource_version"] != "1", "the stored version never wins"
    assert [d["spec"] for d in await repo.list_async()] == [got["spec"]]


async def test_a_long_listing_arrives_whole_in_order_and_skips_garbage(
    client: EtcdClient, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    names = [f"w{i:04}" for i in range(1210)]  # several chunks of 500
    for name in names:
        await repo.add_async(worker(name, phase="Ready" if name.endswith("7") else "Pending"))
    await client.put_raw(f"{prefix}w0700x", b"{not json")
    with caplog.at_level(logging.WARNING, logger="etcd_resources"):
        listed = await repo.list_async()
    assert [d["metadata"]["name"] for d in listed] == names
    assert any("w0700x" in r.getMessage() for r in caplog.records)
    ready = await repo.list_async(field_selector="status.phase=Ready")
    assert [d["metadata"]["name"] for d in ready] == [n for n in names if n.endswith("7")]


async def test_an_update_of_a_version_read_here_is_one_request(
    etcd_endpoints: list[str], prefix: str
) -> None:
    client = EtcdClient(etcd_endpoints)
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    await repo.add_async(worker("w1"))
    doc = await repo.get_async("w1")
    assert doc is not None
    before = client.metrics()
    doc["spec"]["lab_track"] = "ccnp"
    updated = await repo.update_async(doc)
    after = client.metrics()
    assert after["range"]["count"] == before["range"]["count"], "no second read"
    assert (
        after["compare_and_swap"]["count"]
        == before.get("compare_and_swap", {"count": 0})["count"] + 1
    )
    assert updated["metadata"]["generation"] == 2

    # Another repository (its own memory) moves the resource on: the stale version conflicts.
    other: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    await other.update_async(await other.get_async("w1"))
    with pytest.raises(ConflictError):
        await repo.update_async(updated)
    current = await repo.get_async("w1")
    await other.remove_async("w1")
    with pytest.raises(NotFoundError):
        await repo.update_async(current)
    client.close()
