"""OpenTelemetry spans for repository operations, when ``opentelemetry`` is installed (a
no-op otherwise). Spans are named ``etcd_resources.<operation>`` with the repository's prefix
and the resource's name as attributes; the Neuroglia flavour adds Neuroglia's own
``Repository.*`` spans around them."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from ._otel import tracer_set

__all__ = ["traced"]

try:
    from opentelemetry import trace as _trace

    _tracer: Any = _trace.get_tracer("etcd_resources")
except ImportError:  # pragma: no cover - opentelemetry is optional
    _tracer = None


P = ParamSpec("P")
R = TypeVar("R")


class _HasPrefix(Protocol):
    @property
    def prefix(self) -> str: ...


S = TypeVar("S", bound=_HasPrefix)


def traced(
    operation: str,
) -> Callable[
    [Callable[Concatenate[S, P], Awaitable[R]]], Callable[Concatenate[S, P], Awaitable[R]]
]:
    """Run the decorated repository method in a span named ``etcd_resources.<operation>``."""

    def decorate(
        method: Callable[Concatenate[S, P], Awaitable[R]],
    ) -> Callable[Concatenate[S, P], Awaitable[R]]:
        if _tracer is None:
            return method

        @functools.wraps(method)
        async def run(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
            if not tracer_set():
                return await method(self, *args, **kwargs)
            attributes = {"etcd_resources.prefix": self.prefix}
            if args and isinstance(args[0], str):
                attributes["etcd_resources.name"] = args[0]
            with _tracer.start_as_current_span(
                f"etcd_resources.{operation}", attributes=attributes
            ):
                return await method(self, *args, **kwargs)

        return run  # type: ignore[return-value]

    return decorate
