"""Shared fixtures: every conformance test runs twice, on a real etcd server (started for the
session by the package's pytest plugin) and on the embedded ``memory://`` store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from etcd_resources import EtcdClient


@pytest.fixture(params=["etcd", "memory"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(store_kind: str, etcd_endpoints: list[str]) -> Iterator[EtcdClient]:
    """A client on etcd or on the embedded store (parametrised)."""
    c = EtcdClient(etcd_endpoints if store_kind == "etcd" else "memory://")
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def prefix(etcd_prefix: str) -> str:
    return etcd_prefix
