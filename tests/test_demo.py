"""The demo (the README's first command) runs on the embedded store and on a real etcd."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys

import pytest

from etcd_resources import EtcdClient, EtcdStorageBackend


@pytest.mark.parametrize("store_kind", ["memory", "etcd"])
def test_the_demo_runs(store_kind: str, etcd_endpoints: list[str], prefix: str) -> None:
    args = [sys.executable, "-m", "etcd_resources.demo", "--prefix", prefix]
    if store_kind == "etcd":
        args += ["--endpoints", ",".join(etcd_endpoints)]
    run = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "refused atomically" in out
    assert re.search(r"find_active_workers_async\(\)\s+worker-0, worker-1, worker-2", out)
    assert re.search(r"count_by_phase_async\(Ready\)\s+2", out)
    assert "is refused: the stored one is" in out
    assert "error_count=1 (A's change kept)" in out
    assert "in order, none repeated, none lost" in out
    assert len(re.findall(r"watch: rev", out)) == 22
    if store_kind == "etcd":  # it removed what it wrote
        assert asyncio.run(keys_under(etcd_endpoints, prefix)) == []


async def keys_under(endpoints: list[str], prefix: str) -> list[str]:
    async with EtcdClient(endpoints) as client:
        return await EtcdStorageBackend(client, prefix).keys()
