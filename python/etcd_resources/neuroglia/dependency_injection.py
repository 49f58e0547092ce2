"""Registering the client and repositories with Neuroglia's dependency injection.

Each repository is registered under its own class, under Neuroglia's generic
``ResourceRepository[Spec, Status]`` of its ``resource_type`` (the type the service's handlers
ask for; Neuroglia's container matches types exactly), and under any types given in
``also_as`` (the service's own repository class): one instance per scope, whatever type asks.
"""

from __future__ import annotations

from typing import Any, TypeVar, get_args, get_origin

from neuroglia.data.infrastructure.resources import ResourceRepository as FrameworkRepository
from neuroglia.data.resources.abstractions import Resource
from neuroglia.dependency_injection import ServiceCollection, ServiceProviderBase
from neuroglia.mediation import Mediator

from .._core import EtcdClient
from ..config import EtcdSettings
from ..lab_instance_repository import EtcdLabInstanceResourceRepository
from ..lab_worker_repository import EtcdLabWorkerResourceRepository
from ..lab_workers import LabWorker
from ..repository import ResourceRepository

__all__ = ["add_etcd_resources", "add_resource_repository", "framework_repository_type"]


def _mediator(provider: ServiceProviderBase) -> Any:
    return provider.get_service(Mediator)


def framework_repository_type(resource_type: type | None) -> Any | None:
    """Neuroglia's ``ResourceRepository[Spec, Status]`` for a class whose generic base is
    ``Resource[Spec, Status]`` (along its MRO); ``None`` for dicts or a class without one."""
    for klass in getattr(resource_type, "__mro__", ()):
        for base in getattr(klass, "__orig_bases__", ()):
            args = get_args(base)
            if get_origin(base) is Resource and not any(isinstance(a, TypeVar) for a in args):
                generic: Any = FrameworkRepository
                return generic[args]
    return None


def add_resource_repository(
    services: ServiceCollection,
    repository_type: type[ResourceRepository[Any]],
    prefix: str,
    *,
    resource_type: type | None = None,
    format: str = "json",
    also_as: tuple[Any, ...] = (),
) -> ServiceCollection:
    """Register ``repository_type`` as a scoped service on the singleton ``EtcdClient``, with
    the mediator when one is registered; the same scoped instance also under Neuroglia's
    ``ResourceRepository[Spec, Status]`` of ``resource_type`` and under each of ``also_as``
    (the service's own abstract repository type, Neuroglia's ``Repository``, ...)."""

    def factory(provider: ServiceProviderBase) -> Any:
        return repository_type(
            provider.get_required_service(EtcdClient),
            prefix,
            resource_type=resource_type,
            format=format,
            mediator=_mediator(provider),
        )

    def same_instance(provider: ServiceProviderBase) -> Any:
        return provider.get_required_service(repository_type)

    services.add_scoped(repository_type, implementation_factory=factory)
    aliases = (framework_repository_type(resource_type), *also_as)
    for service_type in dict.fromkeys(a for a in aliases if a not in (None, repository_type)):
        services.add_scoped(service_type, implementation_factory=same_instance)
    return services


def add_etcd_resources(
    services: ServiceCollection,
    settings: EtcdSettings | None = None,
    *,
    resource_type: type | None = LabWorker,
    lab_workers: bool = True,
    lab_workers_also_as: tuple[Any, ...] = (),
    lab_instance_type: type | None = None,
    lab_instance_prefix: str = EtcdLabInstanceResourceRepository.DEFAULT_PREFIX,
    lab_instances_also_as: tuple[Any, ...] = (),
) -> ServiceCollection:
    """Register the ``EtcdClient`` (a singleton, from ``settings`` or the environment) and,
    with ``lab_workers``, :class:`etcd_resources.EtcdLabWorkerResourceRepository` as a scoped
    service built by a factory, as the service's ``main.py`` registered its old repository.
    With ``lab_instance_type`` (the service's ``LabInstanceRequest``),
    :class:`etcd_resources.EtcdLabInstanceResourceRepository` too, at
    ``lab_instance_prefix``. Each is also registered under Neuroglia's
    ``ResourceRepository[Spec, Status]`` of its resource type and under the types in its
    ``..._also_as`` (the service's own repository classes)."""
    settings = settings or EtcdSettings.from_env()
    services.try_add_singleton(EtcdClient, singleton=settings.create_client())
    if lab_workers:
        add_resource_repository(
            services,
            EtcdLabWorkerResourceRepository,
            settings.prefix,
            resource_type=resource_type,
            format=settings.format,
            also_as=lab_workers_also_as,
        )
    if lab_instance_type is not None:
        add_resource_repository(
            services,
            EtcdLabInstanceResourceRepository,
            lab_instance_prefix,
            resource_type=lab_instance_type,
            format=settings.format,
            also_as=lab_instances_also_as,
        )
    return services
