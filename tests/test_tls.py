"""TLS with client certificates against a real etcd started with TLS on (certificates made by
the test)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from etcd_resources import EtcdClient, EtcdStorageBackend, InvalidArgumentError, UnavailableError
from etcd_resources.testing import EtcdServer, TlsFiles, make_test_certificates


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_test_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, certs: TlsFiles) -> Iterator[EtcdServer]:
    with EtcdServer(data_dir=tmp_path_factory.mktemp("tls-etcd"), tls=certs) as server:
        yield server


async def test_tls_with_a_client_certificate(tls_server: EtcdServer, certs: TlsFiles) -> None:
    assert tls_server.endpoint.startswith("https://")
    client = EtcdClient(
        tls_server.endpoints,
        ca_cert=certs.ca,
        client_cert=certs.client_cert,
        client_key=certs.client_key,
    )
    backend = EtcdStorageBackend(client, "/tls/")
    await backend.set("w1", {"x": 1})
    stored = await backend.get("w1")
    assert stored is not None and stored["x"] == 1
    assert "key" not in repr(client)
    client.close()


async def test_without_the_client_certificate_etcd_refuses(
    tls_server: EtcdServer, certs: TlsFiles
) -> None:
    client = EtcdClient(tls_server.endpoints, ca_cert=certs.ca, timeout=2.0, retries=0)
    with pytest.raises(UnavailableError):
        await EtcdStorageBackend(client, "/tls/").get("w1")
    client.close()


def test_bad_tls_arguments(certs: TlsFiles, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError):
        EtcdClient("https://127.0.0.1:1", client_cert=certs.client_cert)
    with pytest.raises(InvalidArgumentError, match="cannot read ca_cert"):
        EtcdClient("https://127.0.0.1:1", ca_cert=tmp_path / "missing.pem")


def test_the_command_line_takes_the_tls_flags(tls_server: EtcdServer, certs: TlsFiles) -> None:
    from .test_cli import COMMAND

    flags = [
        "--endpoints",
        tls_server.endpoint,
        "--ca-cert",
        str(certs.ca),
        "--prefix",
        "/tls-cli/",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
    done = subprocess.run(
        [
            *COMMAND,
            "count",
            *flags,
            "--client-cert",
            str(certs.client_cert),
            "--client-key",
            str(certs.client_key),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert (done.returncode, done.stdout) == (0, "0\n"), done.stderr
    refused = subprocess.run(
        [*COMMAND, "count", *flags, "--request-timeout", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert refused.returncode == 1 and refused.stderr.startswith("error: cannot reach etcd")
