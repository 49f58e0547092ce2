"""Both repositories registered under the types the service's handlers ask for (Neuroglia's
generic ``ResourceRepository[Spec, Status]``, the service's own ``LabInstanceResourceRepository``),
resolved through Neuroglia's real container as the handlers declare their dependencies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from neuroglia.data.infrastructure.abstractions import Repository
from neuroglia.data.infrastructure.resources import ResourceRepository
from neuroglia.data.infrastructure.tracing_mixin import TracedRepositoryMixin
from neuroglia.dependency_injection import ServiceCollection
from neuroglia.mapping.mapper import Mapper, MapperConfiguration

from etcd_resources import (
    EtcdClient,
    EtcdLabInstanceResourceRepository,
    EtcdLabWorkerResourceRepository,
    EtcdSettings,
)
from etcd_resources.neuroglia import add_etcd_resources
from etcd_resources.neuroglia.dependency_injection import framework_repository_type

from . import service_model as svc
from . import service_repositories as service


@pytest.fixture
def services(endpoints: list[str], prefix: str) -> Iterator[ServiceCollection]:
    collection = ServiceCollection()
    add_etcd_resources(
        collection,
        EtcdSettings(endpoints=endpoints, prefix=prefix + "workers/"),
        resource_type=svc.LabWorker,
        lab_instance_type=svc.LabInstanceRequest,
        lab_instance_prefix=prefix + "instances/",
        lab_instances_also_as=(service.LabInstanceResourceRepository,),
    )
    collection.add_singleton(Mapper, singleton=Mapper(MapperConfiguration()))
    for handler in (
        *service.LAB_WORKER_HANDLERS,
        *service.LAB_INSTANCE_HANDLERS,
        service.LabInstanceSchedulerService,
    ):
        collection.add_transient(handler)
    yield collection


def test_the_framework_type_comes_from_the_generic_base() -> None:
    worker_type = framework_repository_type(svc.LabWorker)
    assert worker_type == ResourceRepository[svc.LabWorkerSpec, svc.LabWorkerStatus]
    assert (
        framework_repository_type(svc.LabInstanceRequest)
        == (ResourceRepository[svc.LabInstanceRequestSpec, svc.LabInstanceRequestStatus])
    )

    class Subclass(svc.LabInstanceRequest):  # the base is found along the MRO
        pass

    assert framework_repository_type(Subclass) == framework_repository_type(svc.LabInstanceRequest)
    assert framework_repository_type(None) is None
    assert framework_repository_type(dict) is None


async def test_every_handler_resolves_as_it_declares_its_dependency(
    services: ServiceCollection,
) -> None:
    provider = services.build()
    scope = provider.create_scope().get_service_provider()
    workers = scope.get_required_service(EtcdLabWorkerResourceRepository)
    instances = scope.get_required_service(EtcdLabInstanceResourceRepository)
    assert type(workers) is EtcdLabWorkerResourceRepository
    assert type(instances) is EtcdLabInstanceResourceRepository
    for handler_type in service.LAB_WORKER_HANDLERS:
        handler = scope.get_required_service(handler_type)
        assert handler.repository is workers  # one instance per scope, whatever type asks
        assert isinstance(handler.mapper, Mapper)
    for handler_type in service.LAB_INSTANCE_HANDLERS:
        handler = scope.get_required_service(handler_type)
        assert handler.resource_repository is instances
    scheduler = scope.get_required_service(service.LabInstanceSchedulerService)
    assert scheduler.repository is instances

    # What the handlers then do works: create a worker and an instance, read them back typed.
    create_worker = scope.get_required_service(service.CreateLabWorkerCommandHandler)
    await create_worker.repository.add_async(svc.new_worker("w1"))
    listed = await scope.get_required_service(
        service.ListLabWorkersQueryHandler
    ).repository.list_async(namespace="labs", label_selector={"lab-track": "ccna"})
    assert [type(w) for w in listed] == [svc.LabWorker]
    create_instance = scope.get_required_service(service.CreateLabInstanceCommandHandler)
    request = svc.new_instance("req-1")
    assert await create_instance.resource_repository.get_async(request.id) is None
    await create_instance.resource_repository.add_async(request)
    got = await scheduler.repository.get_async("req-1")
    assert (
        type(got) is svc.LabInstanceRequest and got.spec.student_email == request.spec.student_email
    )
    assert [
        r.metadata.name
        for r in await scheduler.repository.find_by_phase_async(svc.LabInstancePhase.PENDING)
    ] == ["req-1"]

    # Another scope gets its own repositories on the same client.
    other = provider.create_scope().get_service_provider()
    again = other.get_required_service(service.GetLabWorkerQueryHandler).repository
    assert again is not workers and again.client is workers.client
    provider.get_required_service(EtcdClient).close()


def test_without_a_lab_instance_type_only_workers_are_registered(prefix: str) -> None:
    collection = ServiceCollection()
    add_etcd_resources(collection, EtcdSettings(endpoints=["memory://"], prefix=prefix))
    provider = collection.build()
    scope = provider.create_scope().get_service_provider()
    assert scope.get_service(EtcdLabInstanceResourceRepository) is None
    # The package's own LabWorker model has no Neuroglia generic base: no framework type.
    assert scope.get_service(ResourceRepository[svc.LabWorkerSpec, svc.LabWorkerStatus]) is None
    assert scope.get_required_service(EtcdLabWorkerResourceRepository) is not None
    provider.get_required_service(EtcdClient).close()


def test_one_class_per_name_with_and_without_neuroglia() -> None:
    import etcd_resources
    import etcd_resources.neuroglia as integration

    cls = etcd_resources.EtcdLabInstanceResourceRepository
    assert integration.EtcdLabInstanceResourceRepository is cls
    assert issubclass(cls, Repository) and issubclass(cls, TracedRepositoryMixin)
    program = textwrap.dedent(
        """
        import asyncio, sys
        sys.modules["neuroglia"] = None  # as if it were not installed
        from etcd_resources import EtcdClient, EtcdLabInstanceResourceRepository as Repo

        assert {c.__module__.split(".")[0] for c in Repo.__mro__} == {
            "etcd_resources", "typing", "builtins"}

        async def main():
            async with EtcdClient("memory://") as client:
                repo = Repo(client)
                doc = {"metadata": {"name": "r1"}, "spec": {"student_email": "a@b"},
                       "status": {"phase": "Pending"}}
                await repo.save_async(doc)
                print(await repo.count_by_phase_async("Pending"))

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
