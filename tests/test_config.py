"""Configuration as a service does it: environment, Neuroglia connection strings, settings."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from etcd_resources import EtcdSettings, InvalidArgumentError


def test_nothing_configured_is_the_embedded_store() -> None:
    s = EtcdSettings.from_env({})
    assert s.endpoints == ["memory://"]
    assert s.prefix == "/lab-workers/"
    assert s.create_client().endpoints == ["memory://"]


def test_environment() -> None:
    s = EtcdSettings.from_env(
        {
            "ETCD_ENDPOINTS": "http://etcd-0:2379, http://etcd-1:2379",
            "ETCD_PREFIX": "/labs/workers/",
            "ETCD_TIMEOUT": "2.5",
            "ETCD_FORMAT": "yaml",
            "ETCD_USERNAME": "svc",
            "ETCD_PASSWORD": "secret",
        }
    )
    assert s.endpoints == ["http://etcd-0:2379", "http://etcd-1:2379"]
    assert (s.prefix, s.timeout, s.format, s.username) == ("/labs/workers/", 2.5, "yaml", "svc")
    assert "secret" not in repr(s)


def test_container_connection_strings() -> None:
    s = EtcdSettings.from_env({"CONNECTION_STRINGS": '{"etcd": "http://etcd:2379", "mongo": "x"}'})
    assert s.endpoints == ["http://etcd:2379"]
    explicit = EtcdSettings.from_env(
        {
            "CONNECTION_STRINGS": '{"etcd": "http://etcd:2379"}',
            "ETCD_ENDPOINTS": "http://other:2379",
        }
    )
    assert explicit.endpoints == ["http://other:2379"]
    with pytest.raises(InvalidArgumentError):
        EtcdSettings.from_env({"CONNECTION_STRINGS": "{not json"})
    with pytest.raises(InvalidArgumentError):
        EtcdSettings.from_env({"ETCD_TIMEOUT": "soon"})


def test_neuroglia_app_settings() -> None:
    app = SimpleNamespace(connection_strings={"etcd": "http://etcd:2379"}, etcd_prefix="/w/")
    s = EtcdSettings.from_app_settings(app, {})
    assert s.endpoints == ["http://etcd:2379"] and s.prefix == "/w/"
    local = SimpleNamespace(etcd_endpoints="http://localhost:2379", connection_strings={})
    assert EtcdSettings.from_app_settings(local, {}).endpoints == ["http://localhost:2379"]
    assert EtcdSettings.from_app_settings(SimpleNamespace(), {}).endpoints == ["memory://"]


def test_tls_settings_from_the_environment_reach_the_client(tmp_path: Path) -> None:
    s = EtcdSettings.from_env(
        {
            "ETCD_ENDPOINTS": "https://etcd:2379",
            "ETCD_CA_CERT": "/certs/ca.pem",
            "ETCD_CLIENT_CERT": "/certs/client.pem",
            "ETCD_CLIENT_KEY": "/certs/client-key.pem",
            "ETCD_TLS_DOMAIN": "etcd.internal",
        }
    )
    assert (s.ca_cert, s.client_cert, s.client_key, s.tls_domain) == (
        "/certs/ca.pem",
        "/certs/client.pem",
        "/certs/client-key.pem",
        "etcd.internal",
    )
    # create_client passes them on: a CA file that is not there is refused by the client.
    s.ca_cert = str(tmp_path / "missing.pem")
    with pytest.raises(InvalidArgumentError, match="cannot read ca_cert"):
        s.create_client()
    app = SimpleNamespace(etcd_ca_cert="/other/ca.pem")
    assert EtcdSettings.from_app_settings(app, {}).ca_cert == "/other/ca.pem"
