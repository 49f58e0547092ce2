"""Shared fixtures: every conformance test runs twice, on a real etcd server (started for the
session by the package's pytest plugin) and on the embedded ``memory://`` store."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from etcd_resources import EtcdClient
from jepsen.netns import NetnsCluster


@pytest.fixture(params=["etcd", "memory"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def endpoints(store_kind: str, etcd_endpoints: list[str]) -> list[str]:
    """The parametrised store's endpoints: the real etcd's, or the embedded store."""
    return etcd_endpoints if store_kind == "etcd" else ["memory://"]


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


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsCluster]:
    """A three-member etcd cluster in network namespaces, one per test module that asks
    (tests/test_faults.py, tests/test_endpoint_health.py); checked torn down."""
    with NetnsCluster(data_dir=tmp_path_factory.mktemp("netns")) as c:
        yield c
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert c.tag not in left, f"namespaces left behind: {left}"


@pytest.fixture
def healthy(cluster: NetnsCluster) -> NetnsCluster:
    """The cluster with every member running and healthy (a previous test's fault undone)."""
    for member in cluster.members:
        if not member.running:
            member.start()
    cluster.wait_healthy(30)
    return cluster


@pytest.fixture(scope="session")
def spans() -> Any:
    """An in-memory span exporter behind the process's (set once) tracer provider."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter
