"""The Neuroglia drop-in, with the real neuroglia-python package: dependency injection,
a command handler through the mediator, domain events after writes, conflicts."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from neuroglia.core import OperationResult
from neuroglia.data.abstractions import DomainEvent
from neuroglia.data.infrastructure.abstractions import Repository
from neuroglia.data.infrastructure.tracing_mixin import TracedRepositoryMixin
from neuroglia.data.resources.abstractions import ResourceConflictError
from neuroglia.dependency_injection import ServiceCollection
from neuroglia.mediation import Command, CommandHandler, Mediator, NotificationHandler

import etcd_resources
from etcd_resources import ConflictError, EtcdClient, EtcdSettings
from etcd_resources.neuroglia import EtcdLabWorkerResourceRepository, add_etcd_resources

from . import service_model as svc


class LabWorkerCreated(DomainEvent[str]):
    def __init__(self, aggregate_id: str, name: str) -> None:
        super().__init__(aggregate_id)
        self.name = name


class EventfulLabWorker(svc.LabWorker):
    """A worker that records a domain event when created, as an aggregate would."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.domain_events: list[DomainEvent[str]] = []

    @classmethod
    def new(cls, name: str, track: str) -> EventfulLabWorker:
        base = svc.new_worker(name, track)
        worker = cls(base.metadata, base.spec)
        worker.domain_events.append(LabWorkerCreated(worker.id, name))
        return worker


class CreateLabWorkerCommand(Command[OperationResult[str]]):
    def __init__(self, name: str, lab_track: str) -> None:
        self.name = name
        self.lab_track = lab_track


class CreateLabWorkerHandler(CommandHandler[CreateLabWorkerCommand, OperationResult[str]]):
    def __init__(self, repository: etcd_resources.EtcdLabWorkerResourceRepository) -> None:
        super().__init__()
        self.repository = repository

    async def handle_async(self, request: CreateLabWorkerCommand) -> OperationResult[str]:
        worker = EventfulLabWorker.new(request.name, request.lab_track)
        await self.repository.add_async(worker)
        return self.created(worker.metadata.resource_version)


PUBLISHED: list[LabWorkerCreated] = []


class LabWorkerCreatedHandler(NotificationHandler[LabWorkerCreated]):
    async def handle_async(self, notification: LabWorkerCreated) -> None:
        PUBLISHED.append(notification)


@pytest.fixture
def services(endpoints: list[str], prefix: str) -> Iterator[ServiceCollection]:
    collection = ServiceCollection()
    add_etcd_resources(
        collection, EtcdSettings(endpoints=endpoints, prefix=prefix), resource_type=svc.LabWorker
    )
    collection.add_singleton(Mediator)
    collection.add_scoped(CreateLabWorkerHandler)
    collection.add_transient(NotificationHandler, LabWorkerCreatedHandler)
    Mediator._handler_registry[CreateLabWorkerCommand] = CreateLabWorkerHandler
    PUBLISHED.clear()
    yield collection
    Mediator._handler_registry.pop(CreateLabWorkerCommand, None)


def test_scopes_get_their_own_repository_on_one_client(services: ServiceCollection) -> None:
    provider = services.build()
    first = provider.create_scope().get_service_provider()
    second = provider.create_scope().get_service_provider()
    a = first.get_required_service(EtcdLabWorkerResourceRepository)
    b = second.get_required_service(EtcdLabWorkerResourceRepository)
    assert a is not b
    assert a.client is b.client is provider.get_required_service(EtcdClient)
    assert isinstance(a, Repository)
    assert type(a) is etcd_resources.EtcdLabWorkerResourceRepository
    provider.get_required_service(EtcdClient).close()


def test_one_class_per_name_and_it_is_neuroglias() -> None:
    import etcd_resources.neuroglia as integration

    assert (
        integration.EtcdLabWorkerResourceRepository
        is etcd_resources.EtcdLabWorkerResourceRepository
    )
    assert integration.EtcdResourceRepository is etcd_resources.ResourceRepository
    for cls in (etcd_resources.ResourceRepository, etcd_resources.EtcdLabWorkerResourceRepository):
        assert issubclass(cls, Repository) and issubclass(cls, TracedRepositoryMixin)
    # No other class anywhere in the package carries either name.
    classes = {
        (name, id(value))
        for module_name, module in list(sys.modules.items())
        if module_name.startswith("etcd_resources")
        for name, value in vars(module).items()
        if name in ("ResourceRepository", "EtcdLabWorkerResourceRepository")
        and isinstance(value, type)
    }
    assert len(classes) == 2


@pytest.mark.parametrize(
    "first",
    [
        "import etcd_resources",
        "import etcd_resources.errors",
        "import neuroglia.data.resources.abstractions",
        "import etcd_resources.neuroglia.watcher",
        "from etcd_resources.neuroglia import NeurogliaConflictError",
        "import etcd_resources._neuroglia_bases",
    ],
)
def test_the_classes_are_the_same_whatever_was_imported_first(first: str) -> None:
    """Which class a conflict is raised as, and what the repositories inherit from, do not
    depend on the order of imports (each order in a fresh interpreter)."""
    program = textwrap.dedent(
        f"""
        {first}
        import etcd_resources
        from etcd_resources import errors
        names = lambda cls: [f"{{c.__module__}}.{{c.__qualname__}}" for c in cls.__mro__]
        print(names(errors._classes["ConflictError"]))
        print(names(etcd_resources.ResourceRepository))
        print(names(etcd_resources.EtcdLabWorkerResourceRepository))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    conflict, repository, lab_workers = done.stdout.splitlines()
    assert conflict.startswith(
        "['etcd_resources.errors.NeurogliaConflictError', 'etcd_resources.errors.ConflictError'"
    )
    assert "neuroglia.data.resources.abstractions.ResourceConflictError" in conflict
    assert "neuroglia.data.infrastructure.abstractions.Repository" in repository
    assert "neuroglia.data.infrastructure.tracing_mixin.TracedRepositoryMixin" in repository
    assert lab_workers.startswith(
        "['etcd_resources.lab_worker_repository.EtcdLabWorkerResourceRepository', "
    )
    assert lab_workers.endswith(repository[1:])


def test_without_neuroglia_the_classes_are_plain() -> None:
    program = textwrap.dedent(
        """
        import asyncio, sys
        sys.modules["neuroglia"] = None  # as if it were not installed
        import etcd_resources
        from etcd_resources import EtcdClient, EtcdLabWorkerResourceRepository, LabWorker

        bases = {c.__module__.split(".")[0] for c in EtcdLabWorkerResourceRepository.__mro__}
        assert bases == {"etcd_resources", "typing", "builtins"}, bases

        async def main():
            async with EtcdClient("memory://") as client:
                repo = EtcdLabWorkerResourceRepository(client)
                await repo.add_async(LabWorker.create("w1", "ccna"))
                print((await repo.get_async("w1")).metadata.name)

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "w1"


async def test_extra_arguments_pass_through_neuroglias_tracing(
    client: EtcdClient, prefix: str, spans: Any
) -> None:
    repo = etcd_resources.ResourceRepository[Any](client, prefix, namespaced=True)
    spans.clear()
    await repo.add_async({"metadata": {"name": "a", "namespace": "labs"}, "spec": {}}, ttl=60)
    assert await repo.contains_async("a", "labs") and not await repo.contains_async("a")
    assert (await repo.get_async("a", "labs"))["metadata"]["namespace"] == "labs"
    assert await repo.get_async("a") is None  # the default namespace
    await repo.remove_async("a", "labs")
    assert not await repo.contains_async("a", "labs")
    names = [s.name for s in spans.get_finished_spans()]
    # Neuroglia's spans where its signatures carry the call, ours always.
    assert "Repository.get" in names and "Repository.contains" in names
    assert names.count("etcd_resources.get") == 2 and "etcd_resources.create" in names


async def test_a_command_handler_runs_through_the_mediator(services: ServiceCollection) -> None:
    provider = services.build()
    mediator = provider.get_required_service(Mediator)
    result = await mediator.execute_async(CreateLabWorkerCommand("w1", "ccna"))
    assert result.is_success, result.detail
    assert result.data  # the new resource_version

    scope = provider.create_scope().get_service_provider()
    repo = scope.get_required_service(EtcdLabWorkerResourceRepository)
    stored = await repo.get_async("w1")
    assert isinstance(stored, svc.LabWorker)
    assert stored.metadata.resource_version == result.data
    # The domain event went through the mediator after the write, and was cleared.
    assert [e.name for e in PUBLISHED] == ["w1"]
    provider.get_required_service(EtcdClient).close()


async def test_no_event_is_published_when_the_write_fails(services: ServiceCollection) -> None:
    provider = services.build()
    mediator = provider.get_required_service(Mediator)
    await mediator.execute_async(CreateLabWorkerCommand("w1", "ccna"))
    PUBLISHED.clear()
    with pytest.raises(etcd_resources.AlreadyExistsError):
        await mediator.execute_async(CreateLabWorkerCommand("w1", "ccna"))
    assert PUBLISHED == []
    provider.get_required_service(EtcdClient).close()


async def test_conflicts_are_neuroglia_conflicts(client: EtcdClient, prefix: str) -> None:
    repo = EtcdLabWorkerResourceRepository(client, prefix, resource_type=svc.LabWorker)
    worker = svc.new_worker("w1")
    await repo.add_async(worker)
    stale = await repo.get_async("w1")
    worker.status.phase = svc.LabWorkerPhase.READY
    await repo.update_async(worker)
    stale.status.phase = svc.LabWorkerPhase.FAILED
    with pytest.raises(ResourceConflictError) as info:
        await repo.update_async(stale)
    assert isinstance(info.value, ConflictError)
    assert info.value.resource_id == "w1"
    assert info.value.expected_version == stale.metadata.resource_version
    assert info.value.actual_version == worker.metadata.resource_version


async def test_operations_are_traced(client: EtcdClient, prefix: str, spans: Any) -> None:
    spans.clear()
    repo = EtcdLabWorkerResourceRepository(client, prefix, resource_type=svc.LabWorker)
    await repo.add_async(svc.new_worker("w1"))
    await repo.get_async("w1")
    names = [s.name for s in spans.get_finished_spans()]
    assert "Repository.add" in names and "Repository.get" in names


class DictStorage:
    """Bookmark storage as Neuroglia's watcher uses it (async get/set)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def get(self, key: str) -> Any:
        return self.values.get(key)

    async def set(self, key: str, value: Any) -> None:
        self.values[key] = value


async def test_the_event_driven_watcher(client: EtcdClient, prefix: str) -> None:
    import asyncio

    from neuroglia.data.resources.watcher import ResourceChangeEvent, ResourceChangeType

    from etcd_resources.neuroglia import EtcdResourceWatcher

    repo = EtcdLabWorkerResourceRepository(client, prefix, resource_type=svc.LabWorker)
    await repo.add_async(svc.new_worker("before"))
    storage = DictStorage()
    seen: list[tuple[ResourceChangeType, str]] = []
    enough = asyncio.Event()

    first = asyncio.Event()

    def on_change(change: ResourceChangeEvent[Any, Any]) -> None:
        seen.append((change.change_type, change.resource.metadata.name))
        first.set()
        if len(seen) == 5:
            enough.set()

    watcher = EtcdResourceWatcher(repo, bookmark_storage=storage, bookmark_key="workers")
    watcher.add_change_handler(on_change)
    running = asyncio.ensure_future(watcher.watch())
    await asyncio.wait_for(first.wait(), 10)  # the initial list is in: the watch is running
    w = await repo.add_async(svc.new_worker("w1"))
    w.status.phase = svc.LabWorkerPhase.READY
    w = await repo.update_async(w)  # status only
    w.spec.lab_track = "ccnp"
    w = await repo.update_async(w)  # spec: generation 2
    await repo.remove_async("w1")
    await asyncio.wait_for(enough.wait(), 10)
    await watcher.stop_watching()
    await asyncio.gather(running, return_exceptions=True)
    assert seen == [
        (ResourceChangeType.CREATED, "before"),
        (ResourceChangeType.CREATED, "w1"),
        (ResourceChangeType.STATUS_UPDATED, "w1"),
        (ResourceChangeType.UPDATED, "w1"),
        (ResourceChangeType.DELETED, "w1"),
    ]
    assert int(storage.values["workers"]) == watcher.revision

    # Restarted from its bookmark: only what happened since.
    seen.clear()
    await repo.add_async(svc.new_worker("w2"))
    again = EtcdResourceWatcher(repo, bookmark_storage=storage, bookmark_key="workers")
    again.add_change_handler(
        lambda change: (
            seen.append((change.change_type, change.resource.metadata.name)) or enough.set()
        )
    )
    enough.clear()
    running = asyncio.ensure_future(again.watch())
    await asyncio.wait_for(enough.wait(), 10)
    await again.stop_watching()
    await asyncio.gather(running, return_exceptions=True)
    assert seen == [(ResourceChangeType.CREATED, "w2")]


async def test_plain_repositories_are_traced_too(
    client: EtcdClient, prefix: str, spans: Any
) -> None:
    from etcd_resources import ResourceRepository

    spans.clear()
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    await repo.add_async({"metadata": {"name": "w1"}, "spec": {}})
    await repo.get_async("w1")
    await repo.count_async()
    finished = {s.name: s for s in spans.get_finished_spans()}
    assert {"etcd_resources.create", "etcd_resources.get", "etcd_resources.count"} <= set(finished)
    assert finished["etcd_resources.get"].attributes["etcd_resources.name"] == "w1"
    assert finished["etcd_resources.get"].attributes["etcd_resources.prefix"] == prefix


SKIP_UNTIL_A_PROVIDER = """
import asyncio
from neuroglia.data.infrastructure.tracing_mixin import TracedRepositoryMixin
from etcd_resources import EtcdClient, ResourceRepository

entered = []
for name in ("get_async", "add_async", "update_async", "remove_async", "contains_async"):
    original = getattr(TracedRepositoryMixin, name)
    def counting(self, *args, _original=original, _name=name, **kwargs):
        entered.append(_name)
        return _original(self, *args, **kwargs)
    setattr(TracedRepositoryMixin, name, counting)

async def calls(repo, name):
    doc = await repo.add_async({"metadata": {"name": name}, "spec": {}})
    await repo.update_async(doc)
    await repo.get_async(name)
    await repo.contains_async(name)
    await repo.remove_async(name)

async def main():
    async with EtcdClient("memory://") as client:
        repo = ResourceRepository(client, "/skip/")
        await calls(repo, "a")
        print(sorted(entered))
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        trace.set_tracer_provider(TracerProvider())
        await calls(repo, "b")
        print(sorted(entered))

asyncio.run(main())
"""


def test_neuroglias_tracing_is_skipped_until_a_provider_is_set() -> None:
    """Neuroglia's span and metric record nothing until an OpenTelemetry SDK sets a provider,
    and cost ~35 us a call: the repository skips the mixin until then (a fresh process: the
    test session sets a provider once)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", SKIP_UNTIL_A_PROVIDER], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    before, after = out.stdout.splitlines()
    assert before == "[]"
    assert after == str(
        sorted(["add_async", "update_async", "get_async", "contains_async", "remove_async"])
    )
