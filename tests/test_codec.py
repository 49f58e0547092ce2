"""How Python values are stored (the old repository's encoder, done in Rust) and how stored
documents written by others are read."""

from __future__ import annotations

import dataclasses
import enum
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from etcd_resources import EtcdClient, EtcdStorageBackend, ResourceRepository, SerializationError

from .helpers import worker


class Phase(str, enum.Enum):  # noqa: UP042 (a str mixin, like the service's phases)
    READY = "Ready"


class Plain(enum.Enum):
    ONE = 1


@dataclasses.dataclass
class AwsConfig:
    instance_type: str
    tags: dict[str, str]
    _secret: str = "hidden"
    subnet_id: str | None = None


@dataclasses.dataclass(slots=True)
class Slotted:
    a: int


class Status:
    def __init__(self) -> None:
        self.phase = Phase.READY
        self.last_updated = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        self.error_message: str | None = None
        self._cache = object()


async def test_python_values_are_encoded_like_the_old_encoder(
    client: EtcdClient, prefix: str
) -> None:
    b = EtcdStorageBackend(client, prefix)
    uid = uuid.uuid4()
    await b.set(
        "w1",
        {
            "metadata": {"name": "w1", "uid": uid, "creation_timestamp": datetime(2026, 1, 1)},
            "spec": {
                "aws": AwsConfig("c5.xlarge", {"k": "v"}),
                "slotted": Slotted(3),
                "day": date(2026, 2, 3),
                "price": Decimal("1.50"),
                "plain": Plain.ONE,
                "tuple": (1, 2.5, True, None),
                Phase.READY: "enum key",
                7: "int key",
            },
            "status": Status(),
        },
    )
    raw = await client.get_raw(prefix + "w1")
    assert raw is not None
    stored = json.loads(raw)
    assert stored["metadata"]["uid"] == str(uid)
    assert stored["metadata"]["creation_timestamp"] == "2026-01-01T00:00:00"
    assert stored["spec"]["aws"] == {"instance_type": "c5.xlarge", "tags": {"k": "v"}}
    assert stored["spec"]["slotted"] == {"a": 3}
    assert stored["spec"]["day"] == "2026-02-03"
    assert stored["spec"]["price"] == "1.50"
    assert stored["spec"]["plain"] == 1
    assert stored["spec"]["tuple"] == [1, 2.5, True, None]
    assert stored["spec"]["Ready"] == "enum key"
    assert stored["spec"]["7"] == "int key"
    assert stored["status"] == {"phase": "Ready", "last_updated": "2026-01-02T03:04:05+00:00"}


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"spec": {"blob": b"bytes"}}, "['spec']['blob']"),
        ({"spec": {"tags": {1, 2}}}, "['spec']['tags']"),
        ({"spec": {"x": float("nan")}}, "['spec']['x']"),
        ({"spec": {"big": 2**70}}, "['spec']['big']"),
        ({"spec": {(1, 2): "tuple key"}}, "['spec']"),
    ],
)
async def test_unstorable_values_raise_and_store_nothing(
    client: EtcdClient, prefix: str, value: dict[str, Any], where: str
) -> None:
    b = EtcdStorageBackend(client, prefix)
    with pytest.raises(SerializationError) as info:
        await b.set("w1", value)
    assert where in str(info.value)
    assert await b.exists("w1") is False


async def test_reference_cycles_are_refused(client: EtcdClient, prefix: str) -> None:
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    with pytest.raises(SerializationError, match="deeper than"):
        await EtcdStorageBackend(client, prefix).set("w1", cycle)


async def test_documents_of_the_old_repository_read_unchanged(
    client: EtcdClient, prefix: str
) -> None:
    # What the Python repository wrote: json.dumps(resource.to_dict()) at prefix + name.
    old = worker("w1", uid=str(uuid.uuid4()), generation=3, resource_version="41")
    old["metadata"]["creation_timestamp"] = "2025-06-01T10:00:00.123456"
    old["status"]["last_updated"] = "2025-06-01T10:05:00"
    revision = await client.put_raw(prefix + "w1", json.dumps(old).encode())
    expected = json.loads(json.dumps(old))
    expected["metadata"]["resource_version"] = str(revision)
    assert await ResourceRepository(client, prefix).get_async("w1") == expected
    assert await EtcdStorageBackend(client, prefix).get("w1") == expected


async def test_camel_case_and_yaml_documents_are_read(client: EtcdClient, prefix: str) -> None:
    await client.put_raw(
        prefix + "w1",
        b'{"api_version": "v1", "kind": "LabWorker", "metadata": {"name": "w1", '
        b'"creationTimestamp": "2025-01-01T00:00:00Z", "resourceVersion": "9"}}',
    )
    await client.put_raw(
        prefix + "w2",
        b"apiVersion: v1\nkind: LabWorker\nmetadata:\n  name: w2\n  labels: {lab-track: ccna}\n",
    )
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    w1 = await repo.get_async("w1")
    assert w1 is not None
    assert w1["apiVersion"] == "v1"
    assert w1["metadata"]["creation_timestamp"] == "2025-01-01T00:00:00Z"
    assert w1["metadata"]["resource_version"] != "9"
    assert [
        d["metadata"]["name"] for d in await repo.list_async(label_selector={"lab-track": "ccna"})
    ] == ["w2"]


async def test_unreadable_documents_are_reported_not_fatal(
    client: EtcdClient, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    await repo.add_async(worker("good"))
    await client.put_raw(prefix + "bad", b"{not json")
    with caplog.at_level("WARNING", logger="etcd_resources"):
        items = await repo.list_async()
    assert [d["metadata"]["name"] for d in items] == ["good"]
    assert any(prefix + "bad" in r.getMessage() for r in caplog.records)
    with pytest.raises(SerializationError) as info:
        await repo.get_async("bad")
    assert info.value.key == prefix + "bad"


class ResourceLike:
    """An object with ``to_dict()``, like a Neuroglia ``Resource``."""

    def __init__(self, name: str) -> None:
        self.metadata = type("Meta", (), {})()
        self.metadata.name = name
        self.metadata.resource_version = None
        self.metadata.generation = 0
        self.spec = {"lab_track": "ccna"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "LabWorker",
            "metadata": self.metadata.__dict__,
            "spec": self.spec,
        }


async def test_objects_with_to_dict_get_server_fields_back(client: EtcdClient, prefix: str) -> None:
    repo: ResourceRepository[ResourceLike] = ResourceRepository(client, prefix)
    obj = ResourceLike("w1")
    same = await repo.add_async(obj)
    assert same is obj
    assert obj.metadata.resource_version is not None and obj.metadata.generation == 1
    first = obj.metadata.resource_version
    obj.spec = {"lab_track": "ccnp"}
    await repo.update_async(obj)
    assert obj.metadata.generation == 2
    assert int(obj.metadata.resource_version) > int(first)
