"""Stored documents become the application's own classes, typed as declared."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from etcd_resources import (
    EtcdClient,
    EtcdLabWorkerResourceRepository,
    LabWorker,
    LabWorkerPhase,
    from_document,
)
from etcd_resources import lab_workers as model
from etcd_resources.typed import type_hints

from . import service_model as svc


def test_annotations_inside_init_are_recovered() -> None:
    hints = type_hints(svc.LabWorkerStatus)
    assert hints["phase"] is svc.LabWorkerPhase
    assert hints["conditions"] == list[svc.LabWorkerCondition]
    assert hints["observed_generation"] is int  # from Neuroglia's ResourceStatus.__init__
    assert hints["last_updated"] is datetime
    spec_hints = type_hints(svc.LabWorkerSpec)
    assert spec_hints["aws_config"] is svc.AwsEc2Config  # from the typed parameter


async def test_the_service_model_round_trips(client: EtcdClient, prefix: str) -> None:
    repo = EtcdLabWorkerResourceRepository.create_with_json_serializer(
        client, prefix, resource_type=svc.LabWorker
    )
    worker = svc.new_worker("w1")
    worker.status.phase = svc.LabWorkerPhase.READY
    worker.status.conditions.append(
        svc.LabWorkerCondition("EC2Ready", True, datetime(2026, 1, 2, 3, 4, tzinfo=UTC), "ok")
    )
    worker.status.capacity = svc.LabWorkerResourceCapacity(64, 16)
    worker.status.hosted_lab_ids = ["lab-1"]
    stored = await repo.add_async(worker)
    assert stored is worker
    assert worker.metadata.resource_version and worker.metadata.generation == 1

    got = await repo.get_async("w1")
    assert isinstance(got, svc.LabWorker)
    assert got.id == worker.metadata.uid
    assert got.api_version == "lab.neuroglia.io/v1" and got.kind == "LabWorker"
    assert got.metadata.resource_version == worker.metadata.resource_version
    assert isinstance(got.metadata.creation_timestamp, datetime)
    assert got.metadata.labels == {"lab-track": "ccna"}
    assert isinstance(got.spec, svc.LabWorkerSpec)
    assert isinstance(got.spec.aws_config, svc.AwsEc2Config)
    assert got.spec.aws_config.security_group_ids == ["sg-1"]
    assert got.spec.validate() == []
    assert isinstance(got.status, svc.LabWorkerStatus)
    assert got.status.phase is svc.LabWorkerPhase.READY
    (condition,) = got.status.conditions
    assert isinstance(condition, svc.LabWorkerCondition)
    assert condition.last_transition == datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    assert condition.status is True
    assert isinstance(got.status.capacity, svc.LabWorkerResourceCapacity)
    assert got.status.capacity.total_cpu_cores == 64
    assert got.status.error_message is None and got.status.last_health_check is None
    assert isinstance(got.status.last_updated, datetime)

    # And back: an update of the typed object is a compare-and-swap like any other.
    got.status.phase = svc.LabWorkerPhase.DRAINING
    await repo.update_async(got)
    assert (await repo.find_draining_workers_async())[0].metadata.name == "w1"


async def test_the_package_model_round_trips(client: EtcdClient, prefix: str) -> None:
    repo = EtcdLabWorkerResourceRepository.create_with_yaml_serializer(client, prefix)
    worker = LabWorker.create("w1", "ccnp")
    worker.spec.aws_config.tags = {"team": "labs"}
    worker.status.phase = LabWorkerPhase.LICENSING
    worker.status.conditions = [model.LabWorkerCondition("Licensed", "False", reason="pending")]
    await repo.add_async(worker)
    got = await repo.get_async("w1")
    assert isinstance(got, LabWorker)
    assert got.spec == worker.spec
    assert got.status.phase is LabWorkerPhase.LICENSING
    assert got.status.conditions == worker.status.conditions
    assert got.metadata.uid == worker.metadata.uid
    assert got.metadata.generation == 1
    assert got.to_dict()["spec"] == worker.to_dict()["spec"]


class Color(enum.Enum):
    RED = 1


@dataclass
class Paint:
    color: Color
    mixed: list[Color | None]


def test_plain_enums_stored_by_name_are_read() -> None:
    # Neuroglia's JsonEncoder wrote plain (non-str) enums by name.
    assert from_document(Paint, {"color": "RED", "mixed": [None, 1]}).mixed == [None, Color.RED]
    assert from_document(Paint, {"color": "RED"}).color is Color.RED
    assert from_document(Paint, {"color": 1, "mixed": []}).color is Color.RED


async def test_dict_repositories_stay_dicts(client: EtcdClient, prefix: str) -> None:
    repo = EtcdLabWorkerResourceRepository(client, prefix, resource_type=dict)
    await repo.add_async(LabWorker.create("w1", "ccna"))
    got: Any = await repo.get_async("w1")
    assert isinstance(got, dict) and got["status"]["phase"] == "Pending"
