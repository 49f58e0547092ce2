"""``etcd-resources get labinstancerequests``: the kind's prefix and columns, against the
session's real etcd, on lab instance requests written as the service writes them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from etcd_resources import (
    EtcdClient,
    EtcdLabInstanceResourceRepository,
    EtcdLabWorkerResourceRepository,
)

from . import service_model as svc
from .test_cli import cli, env, seed, workers

__all__ = ["env", "workers"]  # fixtures, used by name


async def test_get_labinstancerequests(
    env: dict[str, str],
    etcd_client: EtcdClient,
    etcd_prefix: str,
    workers: EtcdLabWorkerResourceRepository,
) -> None:
    prefix = etcd_prefix.rstrip("/") + "-instances/"  # a sibling: workers never see it
    repo = EtcdLabInstanceResourceRepository(
        etcd_client, prefix, resource_type=svc.LabInstanceRequest
    )
    running = svc.new_instance("req-a", "ada@university.edu")
    running.status.phase = svc.LabInstancePhase.RUNNING
    running.status.start_time = datetime.now() - timedelta(minutes=30)  # naive, local
    scheduled = svc.new_instance(
        "req-b", "bob@university.edu", scheduled_start=datetime.now(UTC) + timedelta(hours=2)
    )
    waiting = svc.new_instance("req-c", "cy@university.edu")
    for r in (running, scheduled, waiting):
        await repo.add_async(r)
    await seed(workers)  # LabWorkers under ETCD_PREFIX, beside them

    table = cli(env, "get", "labinstancerequests", ETCD_LAB_INSTANCE_PREFIX=prefix)
    assert table.lines[0] == ["NAME", "PHASE", "STUDENT", "START", "AGE"]
    rows = {row[0]: row for row in table.lines[1:]}
    assert sorted(rows) == ["req-a", "req-b", "req-c"]
    assert rows["req-a"][1:4] == ["Running", "ada@university.edu", "30m"]
    assert rows["req-a"][4] == "ago"
    assert rows["req-b"][1:5] == ["Pending", "bob@university.edu", "in", rows["req-b"][4]]
    assert rows["req-b"][4].startswith(("119m", "1h", "2h"))
    assert rows["req-c"][1:4] == ["Pending", "cy@university.edu", "<none>"]

    # --prefix wins over the kind's variable; the kind word is not a name.
    by_flag = cli(env, "get", "lir", "req-a", "-o", "json", "--prefix", prefix)
    assert json.loads(by_flag.out)["spec"]["student_email"] == "ada@university.edu"
    # The scheduler's expiry query, from the command line.
    expired = cli(
        env,
        "get",
        "labinstancerequests",
        "--field-selector",
        "status.phase=Running,status.start_time+minutes(spec.duration_minutes)"
        f"<{(datetime.now() + timedelta(hours=2)).astimezone().isoformat()}",
        "-o",
        "name",
        ETCD_LAB_INSTANCE_PREFIX=prefix,
    )
    assert expired.out.split() == ["labinstancerequest/req-a"]
    # labworkers keeps the connection's prefix (ETCD_PREFIX).
    listed = cli(env, "get", "labworkers", "-o", "name")
    assert listed.out.split() == ["labworker/w1", "labworker/w2", "labworker/w3"]
