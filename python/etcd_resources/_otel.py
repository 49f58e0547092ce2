"""Whether an OpenTelemetry SDK is set up: the package's spans and Neuroglia's span and metric
are recorded only then. opentelemetry-api alone (a dependency of many packages, Neuroglia's
among them) answers with proxies until an SDK sets a provider; a span and a histogram through
them record nothing and cost 10-25 us a repository call here (docs/benchmarks.md, "Where a
call's time goes"). Asked per call, so a provider set after import is seen. Imports nothing
of the package (the repository's bases import it while the package is being made)."""

from __future__ import annotations

__all__ = ["provider_set", "tracer_set"]

try:
    from opentelemetry import metrics as _metrics
    from opentelemetry import trace as _trace
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider
except ImportError:  # pragma: no cover - opentelemetry is optional

    def tracer_set() -> bool:
        return False

    def provider_set() -> bool:
        return False

else:
    _NO_TRACES = (ProxyTracerProvider, NoOpTracerProvider)
    _NO_METRICS: tuple[type, ...] = (NoOpMeterProvider,)
    try:  # the provider answered until one is set (private: if it moves, spans are made)
        from opentelemetry.metrics._internal import _ProxyMeterProvider
    except ImportError:  # pragma: no cover
        pass
    else:
        _NO_METRICS += (_ProxyMeterProvider,)

    def tracer_set() -> bool:
        """Whether a tracer provider is set."""
        return not isinstance(_trace.get_tracer_provider(), _NO_TRACES)

    def provider_set() -> bool:
        """Whether a tracer or a meter provider is set."""
        return tracer_set() or not isinstance(_metrics.get_meter_provider(), _NO_METRICS)
