"""Neuroglia integration (``pip install etcd-resources[neuroglia]``).

Importing this module:

- gives repositories that are Neuroglia ``Repository`` subclasses, traced the way Neuroglia
  traces repositories (its ``TracedRepositoryMixin``: a span and a duration metric per
  operation), publishing each written entity's domain events through the mediator after the
  write succeeded;
- makes conflicts raise a class that is both :class:`etcd_resources.ConflictError` and
  Neuroglia's ``ResourceConflictError``;
- offers :func:`add_etcd_resources`, which registers the ``EtcdClient`` as a singleton and the
  LabWorker repository as a scoped service built by a factory, as the service's ``main.py``
  registered its old repository.

```python
builder = WebApplicationBuilder()
add_etcd_resources(builder.services, EtcdSettings.from_app_settings(app_settings),
                   resource_type=LabWorker)
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from neuroglia.data.infrastructure.abstractions import Repository
from neuroglia.data.infrastructure.tracing_mixin import TracedRepositoryMixin
from neuroglia.dependency_injection import ServiceCollection, ServiceProviderBase
from neuroglia.mediation import Mediator

from .. import lab_worker_repository, repository
from .._core import EtcdClient
from ..config import EtcdSettings
from ..errors import use_neuroglia_conflict_error
from ..lab_workers import LabWorker
from .coordination import EtcdCoordinationBackend
from .watcher import EtcdResourceWatcher

__all__ = [
    "EtcdCoordinationBackend",
    "EtcdLabWorkerResourceRepository",
    "EtcdResourceRepository",
    "EtcdResourceWatcher",
    "NeurogliaConflictError",
    "add_etcd_resources",
    "add_resource_repository",
]

NeurogliaConflictError = use_neuroglia_conflict_error()

T = TypeVar("T")


if TYPE_CHECKING:
    # For type checkers, our signatures (TracedRepositoryMixin's are looser, and typed on
    # Neuroglia's entity types); at run time, the MRO below.

    class EtcdResourceRepository(repository.ResourceRepository[T]):
        """:class:`etcd_resources.ResourceRepository` as a Neuroglia ``Repository``."""

    class EtcdLabWorkerResourceRepository(lab_worker_repository.EtcdLabWorkerResourceRepository):
        """:class:`etcd_resources.EtcdLabWorkerResourceRepository` as a Neuroglia
        ``Repository``."""

else:

    class EtcdResourceRepository(
        TracedRepositoryMixin,
        repository.ResourceRepository[T],
        Repository[Any, str],
        Generic[T],
    ):
        """:class:`etcd_resources.ResourceRepository` as a Neuroglia ``Repository``."""

    class EtcdLabWorkerResourceRepository(
        TracedRepositoryMixin,
        lab_worker_repository.EtcdLabWorkerResourceRepository,
        Repository[Any, str],
    ):
        """:class:`etcd_resources.EtcdLabWorkerResourceRepository` as a Neuroglia
        ``Repository`` (so also an instance of the plain class)."""


def _mediator(provider: ServiceProviderBase) -> Any:
    return provider.get_service(Mediator)


def add_resource_repository(
    services: ServiceCollection,
    repository_type: type[repository.ResourceRepository[Any]],
    prefix: str,
    *,
    resource_type: type | None = None,
    format: str = "json",
    also_as: tuple[type, ...] = (),
) -> ServiceCollection:
    """Register ``repository_type`` as a scoped service on the singleton ``EtcdClient``, with
    the mediator when one is registered. ``also_as`` registers the same factory under more
    types (the plain class, the service's own abstract repository type, ...)."""

    def factory(provider: ServiceProviderBase) -> Any:
        return repository_type(
            provider.get_required_service(EtcdClient),
            prefix,
            resource_type=resource_type,
            format=format,
            mediator=_mediator(provider),
        )

    for service_type in (repository_type, *also_as):
        services.add_scoped(service_type, implementation_factory=factory)
    return services


def add_etcd_resources(
    services: ServiceCollection,
    settings: EtcdSettings | None = None,
    *,
    resource_type: type | None = LabWorker,
    lab_workers: bool = True,
) -> ServiceCollection:
    """Register the ``EtcdClient`` (a singleton, from ``settings`` or the environment) and,
    with ``lab_workers``, the LabWorker repository as a scoped service, under both the
    Neuroglia class and the plain :class:`etcd_resources.EtcdLabWorkerResourceRepository`."""
    settings = settings or EtcdSettings.from_env()
    services.try_add_singleton(EtcdClient, singleton=settings.create_client())
    if lab_workers:
        add_resource_repository(
            services,
            EtcdLabWorkerResourceRepository,
            settings.prefix,
            resource_type=resource_type,
            format=settings.format,
            also_as=(lab_worker_repository.EtcdLabWorkerResourceRepository,),
        )
    return services
