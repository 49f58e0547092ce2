"""Registering the client and repositories with Neuroglia's dependency injection."""

from __future__ import annotations

from typing import Any

from neuroglia.dependency_injection import ServiceCollection, ServiceProviderBase
from neuroglia.mediation import Mediator

from .._core import EtcdClient
from ..config import EtcdSettings
from ..lab_worker_repository import EtcdLabWorkerResourceRepository
from ..lab_workers import LabWorker
from ..repository import ResourceRepository

__all__ = ["add_etcd_resources", "add_resource_repository"]


def _mediator(provider: ServiceProviderBase) -> Any:
    return provider.get_service(Mediator)


def add_resource_repository(
    services: ServiceCollection,
    repository_type: type[ResourceRepository[Any]],
    prefix: str,
    *,
    resource_type: type | None = None,
    format: str = "json",
    also_as: tuple[type, ...] = (),
) -> ServiceCollection:
    """Register ``repository_type`` as a scoped service on the singleton ``EtcdClient``, with
    the mediator when one is registered. ``also_as`` registers the same factory under more
    types (the service's own abstract repository type, Neuroglia's ``Repository``, ...)."""

    def factory(provider: ServiceProviderBase) -> Any:
        return repository_type(
            provider.get_required_service(EtcdClient),
            prefix,
            resource_type=resource_type,
            format=format,
            mediator=_mediator(provider),
        )

    for service_type in dict.fromkeys((repository_type, *also_as)):
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
    with ``lab_workers``, :class:`etcd_resources.EtcdLabWorkerResourceRepository` as a scoped
    service built by a factory, as the service's ``main.py`` registered its old repository."""
    settings = settings or EtcdSettings.from_env()
    services.try_add_singleton(EtcdClient, singleton=settings.create_client())
    if lab_workers:
        add_resource_repository(
            services,
            EtcdLabWorkerResourceRepository,
            settings.prefix,
            resource_type=resource_type,
            format=settings.format,
        )
    return services
