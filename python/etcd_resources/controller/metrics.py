"""A controller's metrics and spans, through OpenTelemetry (a no-op without it, or without a
``MeterProvider``/``TracerProvider`` set up), named as Go's controller-runtime names them, so
dashboards made for Kubernetes operators read them:

- ``controller_runtime_reconcile_total`` (counter; ``controller``, ``result``: ``success``,
  ``requeue_after``, ``error``),
- ``controller_runtime_reconcile_errors_total`` (counter; ``controller``),
- ``controller_runtime_terminal_reconcile_errors_total`` (counter; ``controller``),
- ``controller_runtime_reconcile_time_seconds`` (histogram; ``controller``),
- ``workqueue_depth`` (gauge; ``name``: the controller),
- ``workqueue_queue_duration_seconds`` (histogram; ``name``): how long a due key waited for
  a slot,
- ``workqueue_retries_total`` (counter; ``name``).

A span ``etcd_resources.reconcile`` wraps each reconcile, with the controller, the key, what
brought it (``initial``: the listing; ``live``: a change or a requested requeue; ``retry``: a
failure's backoff) and its result. With OpenTelemetry's Prometheus exporter these are served
as Prometheus metrics (see docs/controller.md).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

try:
    from opentelemetry import metrics as _metrics
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - opentelemetry is optional
    _metrics = None  # type: ignore[assignment]
    _trace = None  # type: ignore[assignment]

__all__ = ["Metrics", "result_of"]

# What controller-runtime's `result` label says for each Action kind.
_RESULTS = {"done": "success", "requeue": "requeue_after", "retry": "error", "terminal": "error"}


# controller-runtime's instruments and their descriptions.
_COUNTERS = {
    "controller_runtime_reconcile_total": "Total number of reconciliations per controller",
    "controller_runtime_reconcile_errors_total": "Total number of reconciliation errors per "
    "controller",
    "controller_runtime_terminal_reconcile_errors_total": "Total number of terminal "
    "reconciliation errors per controller",
    "workqueue_retries_total": "Total number of retries handled by workqueue",
}
_HISTOGRAMS = {
    "controller_runtime_reconcile_time_seconds": "Length of time per reconciliation per controller",
    "workqueue_queue_duration_seconds": "How long in seconds an item stays in workqueue before "
    "being requested",
}


# OpenTelemetry's providers before an SDK is set up: recording into them does nothing.
_UNSET = {"_ProxyMeterProvider", "NoOpMeterProvider", "ProxyTracerProvider", "NoOpTracerProvider"}


def result_of(kind: str) -> str:
    return _RESULTS[kind]


class Metrics:
    """The instruments of one controller, named ``name``; ``depth()`` gives its queue depth."""

    def __init__(self, name: str, depth: Callable[[], int], meter_provider: Any = None) -> None:
        self._name = {"controller": name}
        self._queue = {"name": name}
        self._provider = meter_provider
        self._tracer = None if _trace is None else _trace.get_tracer("etcd_resources.controller")
        self._on = self._tracing = False
        if _metrics is None:
            return
        provider = meter_provider if meter_provider is not None else _metrics.get_meter_provider()
        meter = provider.get_meter("etcd_resources.controller")
        counters = {
            name: meter.create_counter(name, description=text) for name, text in _COUNTERS.items()
        }
        histograms = {
            name: meter.create_histogram(name, description=text)
            for name, text in _HISTOGRAMS.items()
        }
        self._total = counters["controller_runtime_reconcile_total"]
        self._errors = counters["controller_runtime_reconcile_errors_total"]
        self._terminal = counters["controller_runtime_terminal_reconcile_errors_total"]
        self._retries = counters["workqueue_retries_total"]
        self._time = histograms["controller_runtime_reconcile_time_seconds"]
        self._waited = histograms["workqueue_queue_duration_seconds"]
        # The gauge must not keep the controller alive: it reads the depth through a weak
        # reference, and reports nothing once the controller is gone.
        ref = weakref.WeakMethod(depth) if hasattr(depth, "__self__") else (lambda: depth)
        labels = self._queue

        def observe(_options: Any) -> Iterable[Any]:
            read = ref()
            if read is None:
                return []
            return [_metrics.Observation(read(), labels)]

        meter.create_observable_gauge(
            "workqueue_depth", callbacks=[observe], description="Current depth of workqueue"
        )

    def arm(self) -> None:
        """Record only into providers that are set up (checked when a run starts): with
        OpenTelemetry's defaults (no SDK), a reconcile pays for no span and no instrument."""
        if _metrics is None or _trace is None:
            return
        provider = self._provider if self._provider is not None else _metrics.get_meter_provider()
        self._on = type(provider).__name__ not in _UNSET
        self._tracing = type(_trace.get_tracer_provider()).__name__ not in _UNSET

    @property
    def tracing(self) -> bool:
        """Whether reconciles get spans (an OpenTelemetry tracer provider is set up)."""
        return self._tracer is not None and self._tracing

    def waited(self, seconds: float) -> None:
        if self._on:
            self._waited.record(seconds, self._queue)

    def reconciled(self, kind: str, seconds: float) -> None:
        if not self._on:
            return
        self._total.add(1, {**self._name, "result": result_of(kind)})
        self._time.record(seconds, self._name)
        if kind in ("retry", "terminal"):
            self._errors.add(1, self._name)
        if kind == "terminal":
            self._terminal.add(1, self._name)
        if kind == "retry":
            self._retries.add(1, self._queue)

    @contextmanager
    def span(self, key: str, trigger: str) -> Iterator[Callable[[str], None]]:
        """A span around one reconcile; call what it yields with the Action kind."""
        if self._tracer is None or not self._tracing:
            yield lambda _kind: None
            return
        attributes = {
            "etcd_resources.controller": self._name["controller"],
            "etcd_resources.key": key,
            "etcd_resources.trigger": trigger,
        }
        with self._tracer.start_as_current_span(
            "etcd_resources.reconcile", attributes=attributes
        ) as span:
            yield lambda kind: span.set_attribute("etcd_resources.result", result_of(kind))
