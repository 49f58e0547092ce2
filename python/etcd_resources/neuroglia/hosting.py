"""``add_resource_controller``: a Neuroglia controller registered as a ``HostedService`` that
runs it on etcd (a :class:`ResourceControllerHost`)."""

from __future__ import annotations

from typing import Any

from neuroglia.coordination import LeaderElection, LeaderElectionConfig
from neuroglia.dependency_injection import ServiceCollection, ServiceProviderBase
from neuroglia.hosting.abstractions import HostedService

from .._core import EtcdClient
from ..repository import ResourceRepository
from .controllers import ResourceControllerHost
from .coordination import EtcdCoordinationBackend

__all__ = ["add_resource_controller"]


def add_resource_controller(
    services: ServiceCollection,
    controller_type: type,
    *,
    prefix: str,
    repository_type: type[ResourceRepository[Any]] = ResourceRepository,
    resource_type: type | None = None,
    format: str = "json",
    leader_election: LeaderElectionConfig | None = None,
    lease_prefix: str = "/leases/",
    add_finalizer: bool = True,
    **options: Any,
) -> ServiceCollection:
    """Register ``controller_type`` (a ``ResourceControllerBase`` subclass, built by the
    container from its constructor's annotations) as a singleton, and a
    :class:`ResourceControllerHost` running it on ``repository_type(client, prefix,
    resource_type=..., cache=True)`` as a ``HostedService`` (the host starts and stops it).

    ``leader_election``: a Neuroglia ``LeaderElectionConfig``; its ``LeaderElection`` runs on
    :class:`EtcdCoordinationBackend` (leases under ``lease_prefix``) and only the leader
    reconciles. ``options`` go to the runtime's ``Controller`` (``max_concurrency``, ...).
    The ``EtcdClient`` must be registered (``add_etcd_resources``)."""
    services.try_add_singleton(controller_type)

    def factory(provider: ServiceProviderBase) -> ResourceControllerHost:
        client = provider.get_required_service(EtcdClient)
        repository = repository_type(
            client, prefix, resource_type=resource_type, format=format, cache=True
        )
        election = None
        if leader_election is not None:
            backend = EtcdCoordinationBackend(client, lease_prefix)
            election = LeaderElection(backend, leader_election)
        return ResourceControllerHost(
            provider.get_required_service(controller_type),
            repository,
            leader_election=election,
            add_finalizer=add_finalizer,
            **options,
        )

    services.add_singleton(HostedService, implementation_factory=factory)
    return services
