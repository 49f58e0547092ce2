"""What a controller tells the outside: controller-runtime's metrics through OpenTelemetry (read
in memory, and scraped from a Prometheus endpoint), a span per reconcile, the probes in
``stats()``, and ``every=`` timers on the same queue. Tests wait on ``wait_for``, never sleeps."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections import defaultdict
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from etcd_resources import EtcdClient, InvalidArgumentError, ResourceRepository, thaw
from etcd_resources.controller import Action, Controller

from .test_controller import doc, name_of, reached, running, until


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    """Each metric's data points, by name."""
    found: dict[str, list[Any]] = defaultdict(list)
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name].extend(metric.data.data_points)
    return found


def total(found: dict[str, list[Any]], metric: str, **labels: str) -> float:
    return sum(
        p.value if hasattr(p, "value") else p.count
        for p in found[metric]
        if all(p.attributes.get(k) == v for k, v in labels.items())
    )


async def failing_once(client: EtcdClient, prefix: str) -> tuple[ResourceRepository, Any]:
    """Three resources: ``ok`` succeeds, ``flaky`` fails once then succeeds, ``bad`` fails
    for good."""
    labs = ResourceRepository(client, prefix)
    for name in ("ok", "flaky", "bad"):
        await labs.add_async(doc(name))
    failed: set[str] = set()

    async def reconcile(resource: Any) -> Action:
        name = name_of(resource)
        if name == "bad":
            return Action.terminal("no such image")
        if name == "flaky" and name not in failed:
            failed.add(name)
            return Action.retry("busy", after=0)
        return Action.done()

    return labs, reconcile


async def test_controller_runtime_metrics(client: EtcdClient, prefix: str) -> None:
    reader = InMemoryMetricReader()
    labs, reconcile = await failing_once(client, prefix)
    controller = Controller(
        labs, reconcile, name="labs", meter_provider=MeterProvider(metric_readers=[reader])
    )
    async with running(controller):
        await until(controller, reached("reconciles", 4))
        found = points(reader)
    assert total(found, "controller_runtime_reconcile_total", result="success") == 2
    assert total(found, "controller_runtime_reconcile_total", result="error") == 2
    assert total(found, "controller_runtime_reconcile_total", controller="labs") == 4
    assert total(found, "controller_runtime_reconcile_errors_total", controller="labs") == 2
    assert total(found, "controller_runtime_terminal_reconcile_errors_total") == 1
    assert total(found, "workqueue_retries_total", name="labs") == 1
    # Histograms: one sample per run, and per key handed out.
    assert total(found, "controller_runtime_reconcile_time_seconds", controller="labs") == 4
    assert total(found, "workqueue_queue_duration_seconds", name="labs") == 4
    assert [p.value for p in found["workqueue_depth"]] == [0]


def scrape(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


async def test_metrics_are_scraped_from_a_prometheus_endpoint(
    etcd_client: EtcdClient, prefix: str
) -> None:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import start_http_server

    labs, reconcile = await failing_once(etcd_client, prefix)
    provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    controller = Controller(labs, reconcile, name="scraped", meter_provider=provider)
    server, thread = start_http_server(0, addr="127.0.0.1")
    try:
        async with running(controller):
            await until(controller, reached("reconciles", 4))
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        page = await asyncio.to_thread(scrape, url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        provider.shutdown()
    text = page.decode()
    assert 'controller_runtime_reconcile_total{controller="scraped",result="success"} 2.0' in text
    assert 'controller_runtime_reconcile_errors_total{controller="scraped"} 2.0' in text
    assert 'workqueue_retries_total{name="scraped"} 1.0' in text
    assert 'controller_runtime_reconcile_time_seconds_count{controller="scraped"} 4.0' in text


async def test_a_span_per_reconcile_says_what_brought_it(
    client: EtcdClient, prefix: str, spans: Any
) -> None:
    labs, reconcile = await failing_once(client, prefix)
    spans.clear()
    controller = Controller(labs, reconcile, name="traced")
    async with running(controller):
        await until(controller, reached("reconciles", 4))
        ok = thaw(await labs.get_async("ok"))
        ok["spec"]["seats"] = 2
        await labs.update_async(ok)
        await until(controller, reached("reconciles", 5))
    runs = [
        (s.attributes["etcd_resources.key"].rsplit("/", 1)[-1], s.attributes[k])
        for s in spans.get_finished_spans()
        if s.name == "etcd_resources.reconcile"
        for k in ("etcd_resources.trigger", "etcd_resources.result")
    ]
    assert {
        s.attributes["etcd_resources.controller"]
        for s in spans.get_finished_spans()
        if s.name == "etcd_resources.reconcile"
    } == {"traced"}
    assert ("bad", "error") in runs and ("bad", "initial") in runs
    assert ("flaky", "retry") in runs  # the second run of flaky came from its backoff
    assert ("ok", "live") in runs  # the spec change


async def test_every_runs_a_settled_resource_again_on_the_same_queue(
    client: EtcdClient, prefix: str
) -> None:
    labs = ResourceRepository(client, prefix)
    await labs.add_async(doc("timed"))
    await labs.add_async(doc("long"))

    async def reconcile(resource: Any) -> Action:
        if name_of(resource) == "long":
            return Action.requeue_after(3600)  # shortened to `every`
        return Action.done()

    controller = Controller(labs, reconcile, every=0.02)
    async with running(controller):
        stats = await until(controller, reached("reconciles", 6))
    assert stats["requeues"] >= 6 and stats["done"] == 0
    assert stats["changes"] == 0  # nothing changed: the timer alone ran them
    with pytest.raises(InvalidArgumentError, match="seconds"):
        Controller(labs, reconcile, every=-1)


async def test_probes_in_stats(client: EtcdClient, prefix: str) -> None:
    labs = ResourceRepository(client, prefix)
    await labs.add_async(doc("a"))

    async def reconcile(resource: Any) -> Action:
        return Action.done()

    controller = Controller(labs, reconcile)
    assert not controller.stats()["synced"]
    async with running(controller):
        await until(controller, lambda s: s["synced"] and s["reconciles"] >= 1)
        written = time.monotonic()
        await labs.add_async(doc("b"))
        stats = await until(controller, reached("reconciles", 2))
        # The feed heard of the creation after it was written.
        assert stats["since_last_event"] <= time.monotonic() - written
    assert not controller.stats()["synced"]
