"""Username/password auth against a real etcd with auth on: a user whose role covers only its
own prefix, permission errors that say so, credentials kept out of reprs and messages, and
auth tokens refreshed without the caller noticing."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etcd_resources import EtcdClient, EtcdSettings, EtcdStorageBackend, PermissionDeniedError
from etcd_resources.testing import EtcdServer, find_etcd_binary

PASSWORD = "s3cret-Pa55word"
TOKEN_TTL = 1


def etcdctl(endpoint: str, *args: str) -> None:
    ctl = str(Path(find_etcd_binary()).with_name("etcdctl"))
    run = subprocess.run([ctl, "--endpoints", endpoint, *args], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    args = ("--auth-token", "simple", "--auth-token-ttl", str(TOKEN_TTL))
    with EtcdServer(data_dir=tmp_path_factory.mktemp("auth"), extra_args=args) as server:
        ep = server.endpoint
        etcdctl(ep, "user", "add", "root", "--new-user-password=root-pw", "--interactive=false")
        etcdctl(ep, "user", "grant-role", "root", "root")
        etcdctl(ep, "role", "add", "labs")
        etcdctl(ep, "role", "grant-permission", "labs", "readwrite", "/labs/", "--prefix=true")
        etcdctl(ep, "user", "add", "labs", f"--new-user-password={PASSWORD}", "--interactive=false")
        etcdctl(ep, "user", "grant-role", "labs", "labs")
        etcdctl(ep, "auth", "enable")
        yield server


async def test_a_user_works_inside_its_prefix_only(secured: EtcdServer) -> None:
    client = EtcdClient(secured.endpoints, username="labs", password=PASSWORD)
    mine = EtcdStorageBackend(client, "/labs/")
    await mine.set("w1", {"x": 1})
    assert (await mine.get("w1")) is not None
    theirs = EtcdStorageBackend(client, "/billing/")
    for call in (lambda: theirs.get("w1"), lambda: theirs.set("w1", {}), lambda: theirs.keys()):
        with pytest.raises(PermissionDeniedError, match="permission denied"):
            await call()
    client.close()


async def test_missing_or_wrong_credentials(secured: EtcdServer) -> None:
    with pytest.raises(PermissionDeniedError, match="user name is empty"):
        await EtcdStorageBackend(EtcdClient(secured.endpoints), "/labs/").get("w1")
    wrong = EtcdClient(secured.endpoints, username="labs", password="not-it")
    with pytest.raises(PermissionDeniedError, match="authentication failed") as info:
        await EtcdStorageBackend(wrong, "/labs/").get("w1")
    assert "not-it" not in str(info.value)


def test_credentials_stay_out_of_reprs(secured: EtcdServer) -> None:
    client = EtcdClient(secured.endpoints, username="labs", password=PASSWORD)
    settings = EtcdSettings(endpoints=secured.endpoints, username="labs", password=PASSWORD)
    for text in (repr(client), str(client), repr(settings)):
        assert PASSWORD not in text
    client.close()


async def test_expired_tokens_are_refreshed_transparently(secured: EtcdServer) -> None:
    client = EtcdClient(secured.endpoints, username="labs", password=PASSWORD)
    backend = EtcdStorageBackend(client, "/labs/")
    await backend.set("w2", {"x": 2})
    # Outliving the token's TTL is the behaviour under test, not a synchronisation.
    await asyncio.sleep(TOKEN_TTL * 2.5)
    stored: Any = await backend.get("w2")
    assert stored["x"] == 2
    client.close()
