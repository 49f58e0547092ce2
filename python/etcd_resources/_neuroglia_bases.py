"""The Neuroglia side of the package's repository classes.

With ``neuroglia`` importable, :class:`etcd_resources.ResourceRepository` (and so
:class:`etcd_resources.EtcdLabWorkerResourceRepository`) is built on these bases: it is a
Neuroglia ``Repository`` (``isinstance`` holds, domain events are published through the
mediator after a successful write) traced by Neuroglia's ``TracedRepositoryMixin`` (a span
``Repository.get``, ``Repository.add``, ... and a duration metric per operation). Without it,
the bases are empty and the classes are plain. One class per name either way.

Neuroglia's mixin passes on only the arguments of Neuroglia's own signatures (``get_async(id)``,
``add_async(entity)``); :class:`NeurogliaTracing` sits above it and takes ours
(``namespace=``, ``ttl=``, ``lease=``): a call without them goes through the mixin's span, a call
with them skips the mixin (its span cannot carry them) and keeps the package's own span
(``etcd_resources.get``, ...).

This module imports nothing of ``etcd_resources`` but ``_otel`` (which imports nothing of it),
so the package can import it while it builds its classes; it sits beside the ``neuroglia``
subpackage, not in it, since that subpackage imports the repositories built on these bases.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AFTER", "AVAILABLE", "BEFORE"]

BEFORE: tuple[type, ...] = ()
AFTER: tuple[type, ...] = ()

try:
    from neuroglia.data.infrastructure.abstractions import Repository
    from neuroglia.data.infrastructure.tracing_mixin import TracedRepositoryMixin
except ImportError:
    AVAILABLE = False
else:
    AVAILABLE = True

    from ._otel import provider_set as _observed

    class NeurogliaTracing(TracedRepositoryMixin):
        """Neuroglia's tracing around the repository methods, with their extra arguments;
        skipped while no OpenTelemetry provider is set."""

        async def contains_async(self, id: str, namespace: str | None = None) -> bool:  # type: ignore[override]
            if namespace is None and _observed():
                return await super().contains_async(id)
            return await super(TracedRepositoryMixin, self).contains_async(id, namespace)  # type: ignore[misc, no-any-return]

        async def get_async(self, id: str, namespace: str | None = None) -> Any:  # type: ignore[override]
            if namespace is None and _observed():
                return await super().get_async(id)
            return await super(TracedRepositoryMixin, self).get_async(id, namespace)  # type: ignore[misc]

        async def add_async(self, entity: Any, *, ttl: int | None = None, lease: Any = None) -> Any:
            if ttl is None and lease is None and _observed():
                return await super().add_async(entity)
            return await super(TracedRepositoryMixin, self).add_async(entity, ttl=ttl, lease=lease)  # type: ignore[misc]

        async def update_async(self, entity: Any) -> Any:
            if _observed():
                return await super().update_async(entity)
            return await super(TracedRepositoryMixin, self).update_async(entity)  # type: ignore[misc]

        async def remove_async(  # type: ignore[override]
            self,
            id: str,
            namespace: str | None = None,
            *,
            delete_unreadable: bool = False,
            expected_version: str | int | None = None,
        ) -> None:
            plain = namespace is None and not delete_unreadable and expected_version is None
            if plain and _observed():
                await super().remove_async(id)
            else:
                await super(TracedRepositoryMixin, self).remove_async(  # type: ignore[misc]
                    id,
                    namespace,
                    delete_unreadable=delete_unreadable,
                    expected_version=expected_version,
                )

    BEFORE = (NeurogliaTracing,)
    AFTER = (Repository[Any, str],)
