"""``etcd-resources status`` (issue #22): each endpoint's health, version, leader, database
size and alarms, the revisions, and what the prefix holds, checked against what ``etcdctl``
says of the same etcd. (During a ``NOSPACE`` alarm: tests/test_nospace.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from typing import Any

from etcd_resources import ResourceRepository
from etcd_resources.testing import EtcdServer, TlsFiles

from .etcdtools import etcdctl
from .helpers import worker
from .test_cli import COMMAND, cli, docs, env  # noqa: F401  (the fixtures)
from .test_tls import certs, tls_server  # noqa: F401  (the fixtures)


async def test_status_shows_the_members_the_revisions_and_the_prefix(
    env: dict[str, str],  # noqa: F811
    etcd_endpoints: list[str],
    docs: ResourceRepository[dict[str, Any]],  # noqa: F811
) -> None:
    repo, etcd_prefix, etcd_client = docs, docs.prefix, docs.client
    await repo.add_async(worker("w1", phase="Ready"))
    await repo.add_async(worker("w2", phase="Ready"))
    await repo.add_async(worker("w3", phase="Pending"))
    await repo.add_async({"apiVersion": "v1", "kind": "Other", "metadata": {"name": "o1"}})
    await asyncio.to_thread(etcdctl, etcd_endpoints[0], "put", etcd_prefix + "bad", "{oops")
    written = await etcd_client.current_revision()

    report = json.loads((await asyncio.to_thread(cli, env, "status", "-o", "json")).out)
    theirs = json.loads(
        await asyncio.to_thread(etcdctl, etcd_endpoints[0], "endpoint", "status", "-w", "json")
    )[0]["Status"]
    [member] = report["endpoints"]
    assert member["error"] is None and member["healthy"] and member["is_leader"]
    assert member["version"] == theirs["version"]
    assert int(member["member_id"], 16) == theirs["header"]["member_id"]
    assert member["db_size"] > 0 and 0 < member["db_size_in_use"] <= member["db_size"]
    assert member["db_size_quota"] == 2 * 1024**3, "etcd's default, read from /metrics"
    assert member["alarms"] == [] and report["problems"] == []
    assert report["revision"] >= written
    assert 0 <= report["compacted_revision"] <= written
    assert report["prefix"] == etcd_prefix
    assert report["resources"] == 4
    assert report["kinds"] == {"LabWorker": 3, "Other": 1}
    assert report["phases"] == {"Pending": 1, "Ready": 2}
    assert [u["name"] for u in report["unreadable"]] == ["bad"]

    table = await asyncio.to_thread(cli, env, "status")
    assert "healthy" in table.out and theirs["version"] in table.out
    assert "4 resources (LabWorkers by phase: Pending 1, Ready 2), 1 unreadable" in table.out
    assert "bad  UNREADABLE" in table.out


async def test_status_names_a_member_it_cannot_reach(
    env: dict[str, str],  # noqa: F811
    etcd_endpoints: list[str],
) -> None:
    from etcd_resources.testing import free_port

    gone = f"http://127.0.0.1:{free_port()}"
    endpoints = ",".join([*etcd_endpoints, gone])
    # (Not `cli`: the library also logs the member's ejection on stderr.)
    run = await asyncio.to_thread(
        subprocess.run,
        [*COMMAND, "status", "-o", "json"],
        env={**env, "ETCD_ENDPOINTS": endpoints},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    by_endpoint = {m["endpoint"]: m for m in report["endpoints"]}
    assert by_endpoint[gone]["error"] and not by_endpoint[gone]["healthy"]
    assert by_endpoint[etcd_endpoints[0]]["healthy"]
    assert f"error: {gone}: " in run.stderr


def test_status_over_tls_reads_the_quota_with_the_client_certificate(
    tls_server: EtcdServer,  # noqa: F811
    certs: TlsFiles,  # noqa: F811
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
    tls = ["--ca-cert", str(certs.ca), "--client-cert", str(certs.client_cert)]
    tls += ["--client-key", str(certs.client_key)]
    done = subprocess.run(
        [*COMMAND, "status", "-o", "json", "--endpoints", tls_server.endpoint, *tls],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    [member] = json.loads(done.stdout)["endpoints"]
    assert member["healthy"] and member["db_size_quota"] == 2 * 1024**3
