"""The demo (the README's first command) runs on the embedded store and on a real etcd."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys

import pytest

from etcd_resources import EtcdClient, EtcdStorageBackend
from etcd_resources.demo import instances_prefix

# The demo as `python -m etcd_resources.demo` runs it, in an interpreter where Neuroglia cannot
# be imported (as after a plain `pip install etcd-resources`).
WITHOUT_NEUROGLIA = (
    "import runpy, sys; sys.modules['neuroglia'] = None; "
    "runpy.run_module('etcd_resources.demo', run_name='__main__')"
)


@pytest.mark.parametrize("neuroglia", [True, False], ids=["neuroglia", "plain"])
@pytest.mark.parametrize("store_kind", ["memory", "etcd"])
def test_the_demo_runs(
    store_kind: str, neuroglia: bool, etcd_endpoints: list[str], prefix: str
) -> None:
    args = [
        sys.executable,
        *(["-m", "etcd_resources.demo"] if neuroglia else ["-c", WITHOUT_NEUROGLIA]),
    ]
    args += ["--prefix", prefix]
    if store_kind == "etcd":
        args += ["--endpoints", ",".join(etcd_endpoints)]
    run = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    if neuroglia:
        assert "EtcdLabInstanceResourceRepository as scoped" in out
        assert "through the mediator" in out
    else:
        assert "plain asyncio (no Neuroglia installed)" in out
        assert "through the mediator" not in out
    assert "refused atomically" in out
    assert re.search(r"find_active_workers_async\(\)\s+worker-0, worker-1, worker-2", out)
    assert re.search(r"count_by_phase_async\(Ready\)\s+2", out)
    assert re.search(r"find_expired_instances_async\(\)\s+lab-3\n", out)
    assert re.search(r"find_scheduled_pending_async\(\)\s+lab-2, lab-5\n", out)
    assert re.search(r"count_by_phase_async\(Running\)\s+2\n", out)
    assert "is refused: the stored one is" in out
    assert "error_count=1 (A's change kept)" in out
    assert "in order, none repeated, none lost" in out
    # Two replicas, two shards each, and each worker stepped by one of them only.
    held = re.search(r"shards held: replica-a \[(\d), (\d)\], replica-b \[(\d), (\d)\]", out)
    assert held is not None and sorted(held.groups()) == ["0", "1", "2", "3"]
    # One new worker for each replica (named for a shard it holds), each stepped by it only.
    ready = re.search(
        r"requeues while the cloud started the instances; (worker-\d+), (worker-\d+) Ready", out
    )
    assert ready is not None
    stepped_by = set()
    for worker in ready.groups():
        steps = re.findall(rf"controller: {worker:<9} (\w+) -> (\w+)  \((replica-\w)\)", out)
        assert [s[:2] for s in steps] == [
            ("Pending", "ProvisioningEC2"),
            ("ProvisioningEC2", "Ready"),
        ]
        assert len({s[2] for s in steps}) == 1
        stepped_by.add(steps[0][2])
    assert stepped_by == {"replica-a", "replica-b"}, "the two replicas shared the work"
    # 22 before the controller, then its two creations and four phase changes.
    assert len(re.findall(r"watch: rev", out)) == 28
    if store_kind == "etcd":  # it removed what it wrote (the replicas revoked their records)
        for where in (prefix, instances_prefix(prefix), prefix.rstrip("/") + "-controllers/"):
            assert asyncio.run(keys_under(etcd_endpoints, where)) == []


async def keys_under(endpoints: list[str], prefix: str) -> list[str]:
    async with EtcdClient(endpoints) as client:
        return await EtcdStorageBackend(client, prefix).keys()
