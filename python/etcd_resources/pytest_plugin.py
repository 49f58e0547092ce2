"""pytest fixtures for suites that use etcd-resources (registered automatically when the
package is installed):

- ``etcd_endpoints`` (session): endpoints of a real etcd. ``ETCD_ENDPOINTS`` (comma
  separated) names a running one; otherwise ``etcd_server`` starts one.
- ``etcd_server`` (session): the :class:`~etcd_resources.testing.EtcdServer` started for the
  session (``None`` when ``ETCD_ENDPOINTS`` is set).
- ``etcd_prefix``: a key prefix of this test's own, e.g. ``/test-3f2a.../``.
- ``etcd_client``: an ``EtcdClient`` on those endpoints, closed after the test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from ._core import EtcdClient
from .testing import EtcdServer


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer | None]:
    if os.environ.get("ETCD_ENDPOINTS"):
        yield None
        return
    server = EtcdServer(data_dir=tmp_path_factory.mktemp("etcd"))
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def etcd_endpoints(etcd_server: EtcdServer | None) -> list[str]:
    if etcd_server is None:
        return [e.strip() for e in os.environ["ETCD_ENDPOINTS"].split(",") if e.strip()]
    return etcd_server.endpoints


@pytest.fixture
def etcd_prefix() -> str:
    return f"/test-{uuid.uuid4().hex[:12]}/"


@pytest.fixture
def etcd_client(etcd_endpoints: list[str]) -> Iterator[EtcdClient]:
    client = EtcdClient(etcd_endpoints)
    try:
        yield client
    finally:
        client.close()
