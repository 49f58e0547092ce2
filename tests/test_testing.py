"""The test launcher shipped in the package (``etcd_resources.testing``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from etcd_resources import EtcdClient, EtcdStorageBackend
from etcd_resources.testing import EtcdServer, EtcdServerError, find_etcd_binary


async def test_a_server_survives_a_crash_with_its_data(tmp_path: Path) -> None:
    server = EtcdServer(data_dir=tmp_path / "etcd")
    with server:
        assert server.running and server.healthy()
        client = EtcdClient(server.endpoints, timeout=2.0)
        backend = EtcdStorageBackend(client, "/t/")
        await backend.set("a", {"v": 1})
        server.kill()
        assert not server.running
        server.start()
        stored = await backend.get("a")
        assert stored is not None and stored["v"] == 1
        client.close()
    assert not server.running
    assert (tmp_path / "etcd").exists(), "a data directory the caller gave is left alone"


def test_own_data_directories_are_removed() -> None:
    with EtcdServer() as server:
        data = server.data_dir
        assert data.exists()
    assert not data.exists()


def test_a_bad_binary_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ETCD_BIN", str(tmp_path / "no-such-etcd"))
    with pytest.raises(EtcdServerError, match="ETCD_BIN"):
        find_etcd_binary()
    fake = tmp_path / "etcd"
    fake.write_text("#!/bin/sh\necho 'not really etcd' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(EtcdServerError, match="status 3"):
        EtcdServer(str(fake), data_dir=tmp_path / "d").start(timeout=10)
