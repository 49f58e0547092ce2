"""Typed reads against dict reads, on one etcd: a get and a list of 3,000 LabWorkers.

Two typed models: the package's own LabWorker (plain dataclasses), and classes shaped like the
Lab Resource Manager's (`tests/service_model.py`: Neuroglia `Resource` subclasses whose
`__init__` builds a state machine, a `@dataclass` status with a hand-written `__init__`, enums,
datetimes, conditions, an optional capacity). Each reads the same stored documents; the last
column is typed time over dict time. The last row is the floor the service's classes set by
themselves: a dict list plus making the same 3,000 objects by hand in Python (their own
`__init__`s, the collector paused as a typed read pauses it, no decoding).
"""

from __future__ import annotations

import asyncio
import sys
import timeit
import uuid
from pathlib import Path
from typing import Any

from common import median_time

from etcd_resources import EtcdClient, EtcdLabWorkerResourceRepository

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests import service_model as svc
from tests.test_typed import active_worker

N = 3_000


def by_hand(worker: svc.LabWorker) -> Any:
    """The same objects made by their own constructors (what no decoder can go below)."""
    m, s, st = worker.metadata, worker.spec, worker.status
    status = svc.LabWorkerStatus()
    status.__dict__.update(vars(st))
    status.conditions = [svc.LabWorkerCondition(**vars(c)) for c in st.conditions]
    status.capacity = svc.ResourceCapacity(**vars(st.capacity)) if st.capacity else None
    spec = svc.LabWorkerSpec(
        **{**vars(s), "aws_config": svc.AwsEc2Config(**vars(s.aws_config)),
           "cml_config": svc.CmlConfig(**vars(s.cml_config))}
    )  # fmt: skip
    metadata = type(m)(**vars(m))
    return svc.LabWorker(metadata, spec, status)


async def measure(endpoint: str) -> list[tuple[str, float, float]]:
    async with EtcdClient([endpoint], timeout=60) as client:
        prefix = f"/bench-typed-{uuid.uuid4().hex[:8]}/"
        service = EtcdLabWorkerResourceRepository(client, prefix, resource_type=svc.LabWorker)
        package = EtcdLabWorkerResourceRepository(client, prefix)
        dicts = EtcdLabWorkerResourceRepository(client, prefix, resource_type=dict)
        for start in range(0, N, 100):
            await asyncio.gather(
                *(service.add_async(active_worker(f"w{i:05}")) for i in range(start, start + 100))
            )
        rows = []
        get_dict = await median_time(lambda: dicts.get_async("w00001"), 201)
        list_dict = await median_time(dicts.list_async, 9)
        for label, repo in (("package LabWorker", package), ("service-shaped LabWorker", service)):
            rows.append(
                (
                    f"get, {label}",
                    get_dict,
                    await median_time(lambda r=repo: r.get_async("w00001"), 201),
                )
            )  # type: ignore[misc]
            rows.append((f"list {N}, {label}", list_dict, await median_time(repo.list_async, 9)))
        workers = await service.list_async()
        # The collector paused, as a typed read pauses it while it builds.
        floor = min(timeit.repeat(lambda: [by_hand(w) for w in workers], number=1, repeat=5))
        rows.append((f"by hand, service-shaped, x{N}", list_dict, list_dict + floor))
        return rows


def run(endpoints: list[str]) -> str:
    rows = asyncio.run(measure(endpoints[0]))
    lines = [
        f"typed reads against dict reads ({N} documents in the list), medians",
        f"{'read':<44}{'dicts':>10}{'typed':>10}{'typed / dicts':>15}",
    ]
    for label, plain, typed in rows:
        lines.append(f"{label:<44}{plain * 1e3:>8.2f}ms{typed * 1e3:>8.2f}ms{typed / plain:>15.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    from common import etcd_endpoints

    with etcd_endpoints() as endpoints:
        print(run(endpoints))
