"""Neuroglia controllers on the runtime (``ResourceControllerHost``), end to end on etcd and on
memory://, with a controller written in the service's shapes (tests/neuroglia_controllers.py).
Tests wait on the runtime's stats (``wait_for``, checked after each reconcile), never on sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from neuroglia.coordination import LeaderElection, LeaderElectionConfig
from neuroglia.data.resources.controller import ReconciliationResult
from neuroglia.dependency_injection import ServiceCollection
from neuroglia.hosting.abstractions import HostedService

from etcd_resources import (
    ClosedError,
    EtcdClient,
    EtcdLabWorkerResourceRepository,
    EtcdSettings,
    InvalidArgumentError,
    ResourceRepository,
)
from etcd_resources.controller import Action, ControllerStats
from etcd_resources.errors import UnavailableError
from etcd_resources.neuroglia import (
    EtcdCoordinationBackend,
    ResourceControllerHost,
    add_etcd_resources,
    add_resource_controller,
)
from etcd_resources.neuroglia.results import to_action
from jepsen.proxy import TcpProxy

from . import service_model as svc
from .neuroglia_controllers import FINALIZER, FakeCloudProvider, P, WorkerController

WAIT = 30.0


def workers(client: EtcdClient, prefix: str) -> EtcdLabWorkerResourceRepository:
    return EtcdLabWorkerResourceRepository(
        client, prefix + "workers/", resource_type=svc.LabWorker, cache=True
    )


def make_controller(
    provider: FakeCloudProvider, kind: type[WorkerController] = WorkerController
) -> WorkerController:
    return kind(ServiceCollection().build(), provider)


class FinalizingController(WorkerController):
    """Overrides ``finalize`` itself, as the service's ``LabWorkerController`` does."""

    async def finalize(self, resource: svc.LabWorker) -> bool:  # type: ignore[override]
        assert resource.status.ec2_instance_id is not None
        await self.cloud_provider.terminate_instance(resource.status.ec2_instance_id)
        return True


async def one_worker(
    client: EtcdClient,
    prefix: str,
    cloud: FakeCloudProvider | None = None,
    kind: type[WorkerController] = WorkerController,
    **options: Any,
) -> tuple[EtcdLabWorkerResourceRepository, WorkerController, ResourceControllerHost]:
    """A repository holding the worker ``w1`` (namespace ``labs``), a controller, its host."""
    repo = workers(client, prefix)
    await repo.add_async(svc.new_worker("w1"))
    controller = make_controller(cloud or FakeCloudProvider(), kind)
    options.setdefault("backoff_base", 0.01)
    return repo, controller, ResourceControllerHost(controller, repo, **options)


@asynccontextmanager
async def hosting(host: ResourceControllerHost) -> AsyncIterator[ResourceControllerHost]:
    await host.start_async()
    try:
        yield host
    finally:
        await host.stop_async()
    assert not host.stats()["running"]


async def until(
    host: ResourceControllerHost, condition: Callable[[ControllerStats], bool]
) -> ControllerStats:
    async with asyncio.timeout(WAIT):
        return await host.wait_for(condition)


async def read(repo: EtcdLabWorkerResourceRepository, name: str) -> svc.LabWorker:
    worker = await repo.get_async(name, "labs")
    assert isinstance(worker, svc.LabWorker)
    return worker


async def test_a_pending_worker_is_driven_to_ready_and_its_status_persisted(
    client: EtcdClient, prefix: str
) -> None:
    cloud = FakeCloudProvider()
    repo, controller, host = await one_worker(client, prefix, cloud)
    controller.monitor = timedelta(hours=1)
    async with hosting(host):
        stats = await until(host, lambda s: cloud.count("health") >= 1 and s["in_flight"] == 0)
        # Ready, checked once, waiting an hour for its next check: the key is queued, not run.
        assert stats["queue_depth"] == 1 and cloud.count("health") == 1
        # provisioned, then polled twice (pending, running) each after a requeue_after
        assert cloud.calls[:3] == [
            ("provision", "i-w1"),
            ("describe", "i-w1"),
            ("describe", "i-w1"),
        ]
        assert stats["requeues"] >= 3 and stats["errors"] == 0
        assert controller.phases_seen == [
            P.PENDING,
            P.PROVISIONING_EC2,
            P.PROVISIONING_EC2,
            P.PROVISIONING_EC2,
            P.EC2_READY,
            P.STARTING,
            P.LICENSING,
            P.READY,
        ]
    w1 = await read(repo, "w1")
    assert w1.status.phase is P.READY
    assert (w1.status.ec2_instance_id, w1.status.ec2_state) == ("i-w1", "running")
    [condition] = w1.status.conditions
    assert condition.type is svc.LabWorkerConditionType.EC2_PROVISIONED and condition.status
    assert w1.metadata.generation == 1, "status writes do not bump the generation"
    assert w1.metadata.finalizers == [FINALIZER]
    assert w1.status.observed_generation == 0, "a monitored worker is never settled"


async def test_a_settled_run_sets_observed_generation_until_the_spec_changes(
    client: EtcdClient, prefix: str
) -> None:
    repo, controller, host = await one_worker(client, prefix)
    async with hosting(host):
        await until(host, lambda s: s["done"] >= 1)
        w1 = await read(repo, "w1")
        assert w1.status.phase is P.READY
        assert w1.status.observed_generation == w1.metadata.generation == 1
        assert not w1.needs_reconciliation()
        runs = len(controller.phases_seen)
        w1.spec.lab_track = "ccnp"  # a spec edit: the store bumps the generation
        await repo.update_async(w1)
        await until(host, lambda s: s["done"] >= 2)
        assert controller.phases_seen[runs:] == [P.READY]
    again = await read(repo, "w1")
    assert again.metadata.generation == 2
    assert again.status.observed_generation == 2 and not again.needs_reconciliation()


async def test_a_delete_runs_finalize_retries_it_and_the_worker_goes(
    client: EtcdClient, prefix: str
) -> None:
    cloud = FakeCloudProvider(fail_terminate=1)
    repo, _, host = await one_worker(client, prefix, cloud)
    async with hosting(host):
        await until(host, lambda s: s["done"] >= 1)
        assert (await read(repo, "w1")).metadata.finalizers == [FINALIZER]
        await repo.remove_async("w1", "labs")
        marked = await repo.get_async("w1", "labs")
        assert marked is not None and marked.metadata.is_being_deleted(), "held by finalizer"
        # (not `in_flight == 0` too: the delete that follows may be taken, and found gone,
        # without a reconcile to wake the wait)
        stats = await until(host, lambda s: cloud.count("terminate") >= 2)
        assert stats["retries"] >= 1, "a finalize that failed runs again after a backoff"
        assert "finalizer" in (stats["last_error"] or "")
    assert await repo.get_async("w1", "labs") is None
    assert cloud.calls[-2:] == [("terminate", "i-w1"), ("terminate", "i-w1")]


async def test_a_controller_that_overrides_finalize_is_finalized_too(
    client: EtcdClient, prefix: str
) -> None:
    cloud = FakeCloudProvider()
    repo, _, host = await one_worker(client, prefix, cloud, FinalizingController)
    async with hosting(host):
        await until(host, lambda s: s["done"] >= 1)
        await repo.remove_async("w1", "labs")
        await until(host, lambda s: cloud.count("terminate") >= 1)
    assert await repo.get_async("w1", "labs") is None
    assert cloud.count("terminate") == 1


async def test_a_spec_edit_made_during_a_run_is_kept_and_reconciled(
    client: EtcdClient, prefix: str
) -> None:
    repo, controller, host = await one_worker(client, prefix)
    controller.entered, controller.gate = asyncio.Event(), asyncio.Event()
    async with hosting(host):
        async with asyncio.timeout(WAIT):
            await controller.entered.wait()
        w1 = await read(repo, "w1")
        w1.spec.lab_track = "ccnp"
        await repo.update_async(w1)  # between the run's read and its status write
        controller.gate.set()
        await until(host, lambda s: s["done"] >= 1)
    again = await read(repo, "w1")
    assert again.spec.lab_track == "ccnp", "the status write re-read and kept the edit"
    assert again.metadata.generation == 2
    assert again.status.phase is P.READY and again.status.observed_generation == 2


async def test_a_failed_result_is_retried_after_a_backoff(client: EtcdClient, prefix: str) -> None:
    repo = workers(client, prefix)
    broken = svc.new_worker("w1")
    broken.spec.aws_config.ami_id = "not-an-ami"
    await repo.add_async(broken)
    controller = make_controller(FakeCloudProvider())
    host = ResourceControllerHost(controller, repo, backoff_base=0.01, backoff_max=0.05)
    async with hosting(host):
        stats = await until(host, lambda s: s["retries"] >= 3)
        assert stats["errors"] >= 3 and stats["done"] == 0
        assert "valid ami_id is required" in (stats["last_error"] or "")
    w1 = await read(repo, "w1")
    assert w1.status.phase is P.PENDING and w1.status.observed_generation == 0


async def test_results_map_to_actions() -> None:
    later = ReconciliationResult.requeue_after(timedelta(seconds=90))
    assert to_action(later, status_changed=True) == Action.requeue_after(90)
    assert to_action(ReconciliationResult.success(), status_changed=False) == Action.done()
    assert to_action(ReconciliationResult.success(), status_changed=True) == Action.requeue_after(0)
    assert to_action(None, status_changed=False) == Action.done()
    boom = ValueError("boom")
    failed = to_action(ReconciliationResult.failed(boom), status_changed=False)
    assert (failed.kind, failed.after, failed.error) == ("retry", None, boom)
    requeue = to_action(ReconciliationResult.requeue("again"), status_changed=False)
    assert (requeue.kind, requeue.after) == ("retry", None)


class WatchedBackend(EtcdCoordinationBackend):
    """Sets ``refused`` when a candidate was refused the lease."""

    def __init__(self, client: EtcdClient, prefix: str) -> None:
        super().__init__(client, prefix)
        self.refused = asyncio.Event()

    async def acquire_lease(self, key: str, holder_identity: str, ttl_seconds: int) -> bool:
        taken = await super().acquire_lease(key, holder_identity, ttl_seconds)
        if not taken:
            self.refused.set()
        return taken


def candidate(
    client: EtcdClient,
    prefix: str,
    identity: str,
    cloud: FakeCloudProvider,
    lease_seconds: int = 10,
) -> tuple[ResourceControllerHost, WatchedBackend]:
    backend = WatchedBackend(client, prefix + "leases/")
    config = LeaderElectionConfig(
        lease_name="lab-workers",
        identity=identity,
        lease_duration=timedelta(seconds=lease_seconds),
        renew_interval=timedelta(seconds=1),
        retry_period=timedelta(milliseconds=20),
    )
    election = LeaderElection(backend, config)
    host = ResourceControllerHost(
        make_controller(cloud), workers(client, prefix), leader_election=election
    )
    return host, backend


@pytest.fixture
async def other(
    client: EtcdClient, store_kind: str, etcd_endpoints: list[str]
) -> AsyncIterator[EtcdClient]:
    """On etcd another client, as another replica would have (memory:// stores are per
    client: there, the same one)."""
    if store_kind != "etcd":
        yield client
        return
    async with EtcdClient(etcd_endpoints) as c:
        yield c


async def test_a_standby_waits_while_the_leader_reconciles_and_takes_over(
    client: EtcdClient, other: EtcdClient, prefix: str
) -> None:
    first_cloud, second_cloud = FakeCloudProvider(), FakeCloudProvider()
    first, _ = candidate(client, prefix, "first", first_cloud)
    second, second_backend = candidate(other, prefix, "second", second_cloud)
    await first.start_async()
    try:
        await until(first, lambda s: s["running"])
        assert first.is_leader
        await second.start_async()
        async with asyncio.timeout(WAIT):
            await second_backend.refused.wait()
        await workers(client, prefix).add_async(svc.new_worker("w1"))
        await until(first, lambda s: s["done"] >= 1)
        assert first_cloud.count("provision") == 1
        assert not second.is_leader and not second.stats()["running"]
        assert second.stats()["reconciles"] == 0 and second_cloud.calls == []
        assert await second_backend.get_lease_holder("leases:lab-workers") == "first"
    finally:
        await first.stop_async()  # releases the lease
    try:
        await until(second, lambda s: s["reconciles"] >= 1)
        assert second.is_leader
        assert await second_backend.get_lease_holder("leases:lab-workers") == "second"
        assert second_cloud.calls == [], "the new leader finds the worker settled"
    finally:
        await second.stop_async()
    assert await second_backend.get_lease_holder("leases:lab-workers") is None


async def test_a_crashed_leader_holds_the_lease_until_it_expires_then_the_standby_leads(
    etcd_endpoints: list[str], prefix: str
) -> None:
    """A leader that dies without a word (its client gone: no release, no renewal, as a killed
    process) keeps the lease for up to its duration; then the standby takes it and
    reconciles what arrived meanwhile."""
    standby_cloud = FakeCloudProvider()
    async with EtcdClient(etcd_endpoints) as doomed, EtcdClient(etcd_endpoints) as survivor:
        first, _ = candidate(doomed, prefix, "first", FakeCloudProvider(), lease_seconds=2)
        second, backend = candidate(survivor, prefix, "second", standby_cloud, lease_seconds=2)
        await first.start_async()
        await until(first, lambda s: s["running"])
        await second.start_async()
        try:
            async with asyncio.timeout(WAIT):
                await backend.refused.wait()
            crashed = time.monotonic()
            doomed.close()
            # Renewed at most a second ago: the lease outlives the crash by at least a second.
            assert await backend.get_lease_holder("leases:lab-workers") == "first"
            await workers(survivor, prefix).add_async(svc.new_worker("w1"))
            await until(second, lambda s: s["done"] >= 1)
            assert time.monotonic() - crashed >= 1.0
            assert second.is_leader and standby_cloud.count("provision") == 1
            assert await backend.get_lease_holder("leases:lab-workers") == "second"
        finally:
            await second.stop_async()
            with pytest.raises(ClosedError):  # what stopped it, said when it is stopped
                await first.stop_async()
    assert not first.is_leader


async def leader_in_a_call(
    mine: EtcdClient,
    theirs: EtcdClient,
    prefix: str,
    slow: FakeCloudProvider,
    quick: FakeCloudProvider,
    lease_seconds: int = 10,
) -> tuple[ResourceControllerHost, ResourceControllerHost, WatchedBackend]:
    """``first`` leads on ``mine`` and is in the middle of ``slow``'s held cloud call for the
    worker ``w1``; ``second`` (on ``theirs``) stands by."""
    first, _ = candidate(mine, prefix, "first", slow, lease_seconds)
    second, backend = candidate(theirs, prefix, "second", quick, lease_seconds)
    await first.start_async()
    await until(first, lambda s: s["running"])
    await second.start_async()
    async with asyncio.timeout(WAIT):
        await backend.refused.wait()  # second is the standby
        await workers(theirs, prefix).add_async(svc.new_worker("w1"))
        await slow.holding.wait()
    return first, second, backend


async def test_a_leader_that_outlives_its_lease_cannot_write(
    etcd_endpoints: list[str], prefix: str
) -> None:
    """A leader whose reconcile is held up (a cloud call that outlasts its lease, as a paused
    process would): etcd forgets its lease, the standby leads and reconciles the worker; the
    old leader's late status write is refused (``FencedError``), not written over the new
    leader's."""
    slow, quick = FakeCloudProvider(hold=asyncio.Event()), FakeCloudProvider()
    async with EtcdClient(etcd_endpoints) as mine, EtcdClient(etcd_endpoints) as theirs:
        first, second, backend = await leader_in_a_call(mine, theirs, prefix, slow, quick)
        try:
            async with asyncio.timeout(WAIT):
                current = await mine.get_kv(backend.record_key("leases:lab-workers"))
                assert current is not None
                await mine.revoke_lease(current[2])  # etcd forgets first's lease
            await until(second, lambda s: s["done"] >= 1)
            assert second.is_leader and quick.count("provision") == 1
            assert slow.hold is not None
            slow.hold.set()  # first resumes and writes what it decided
            stats = await until(first, lambda s: s["errors"] >= 1)
            assert "FencedError" in str(stats["last_error"])
        finally:
            await second.stop_async()
            await first.stop_async()


async def test_a_leader_cut_off_from_etcd_stops_on_its_own_clock(
    etcd_endpoints: list[str], prefix: str
) -> None:
    """A leader whose network to etcd goes (its proxy blackholed) mid-reconcile: Neuroglia's
    loop waits on renewals that time out and keeps ``is_leader()`` true, but the host stops
    reconciling (the call in flight cancelled) once the lease's TTL has run out since the last
    renewal etcd acknowledged, before the standby can take the lease; the standby then leads
    and drives the worker."""
    slow, quick = FakeCloudProvider(hold=asyncio.Event()), FakeCloudProvider()
    proxy = TcpProxy(etcd_endpoints).start()
    try:
        async with (
            EtcdClient(proxy.endpoints, timeout=0.5) as mine,
            EtcdClient(etcd_endpoints) as theirs,
        ):
            first, second, _ = await leader_in_a_call(mine, theirs, prefix, slow, quick, 2)
            try:
                proxy.blackhole()
                stopped = asyncio.ensure_future(until(first, lambda s: not s["running"]))
                led = asyncio.ensure_future(until(second, lambda s: s["running"]))
                done, _ = await asyncio.wait({stopped, led}, return_when=asyncio.FIRST_COMPLETED)
                assert done == {stopped}, "the old leader stopped before the standby led"
                assert not first.is_leader
                assert first._election is not None and first._election.is_leader(), (
                    "Neuroglia's flag alone still says leading: its renewals hang"
                )
                await led
                await until(second, lambda s: s["done"] >= 1)
                assert quick.count("provision") == 1
                assert slow.count("provision") == 1, "the held call was not made again"
                assert first.stats()["in_flight"] == 0, "the held call was cancelled"
            finally:
                proxy.heal()
                assert slow.hold is not None
                slow.hold.set()  # a host that failed the test must not hang stopping
                await second.stop_async()
                await first.stop_async()
    finally:
        proxy.close()


async def test_a_leader_that_could_not_start_leads_after_the_next_renewal(
    client: EtcdClient, prefix: str
) -> None:
    """Starting to lead reads the lease record; when that fails, Neuroglia still counts the
    replica as leading and never calls again: the host starts its runtime after the next
    acknowledged renewal."""
    host, _ = candidate(client, prefix, "first", FakeCloudProvider())
    real = host._lease_record
    failed: list[int] = []

    async def flaky() -> tuple[str, int] | None:
        if not failed:
            failed.append(1)
            raise UnavailableError("etcd unavailable: the lease record could not be read")
        return await real()

    host._lease_record = flaky  # type: ignore[method-assign]
    await host.start_async()
    try:
        await until(host, lambda s: s["running"])
        assert failed and host.is_leader
    finally:
        await host.stop_async()


async def test_a_leader_whose_runtime_fails_stops_leading_and_says_why(
    client: EtcdClient, prefix: str
) -> None:
    host, _ = candidate(client, prefix, "first", FakeCloudProvider())

    async def close_when_leading() -> None:
        await until(host, lambda s: s["running"])
        await client.close()

    closer = asyncio.ensure_future(close_when_leading())
    with pytest.raises(ClosedError):
        async with asyncio.timeout(WAIT):
            await host.run()
    await closer
    assert not host.is_leader and not host.stats()["running"]


async def test_set_finalizer_adds_and_removes_the_last_one_deletes(
    client: EtcdClient, prefix: str
) -> None:
    repo, _, host = await one_worker(client, prefix)
    w1 = await read(repo, "w1")
    stored = await host.runtime.set_finalizer(w1, "a/b", True)
    assert isinstance(stored, svc.LabWorker) and stored.metadata.finalizers == ["a/b"]
    assert stored.metadata.generation == 1
    await repo.remove_async("w1", "labs")
    assert await host.runtime.set_finalizer(w1, "a/b", False) is None
    assert await repo.get_async("w1", "labs") is None


async def test_registered_through_dependency_injection_as_a_hosted_service(
    endpoints: list[str], prefix: str
) -> None:
    services = ServiceCollection()
    add_etcd_resources(services, EtcdSettings(endpoints=endpoints), lab_workers=False)
    cloud = FakeCloudProvider()
    services.add_singleton(FakeCloudProvider, singleton=cloud)
    add_resource_controller(
        services,
        WorkerController,
        prefix=prefix + "workers/",
        repository_type=EtcdLabWorkerResourceRepository,
        resource_type=svc.LabWorker,
        backoff_base=0.01,
    )
    provider = services.build()
    [host] = provider.get_services(HostedService)
    assert isinstance(host, ResourceControllerHost)
    assert isinstance(host.controller, WorkerController) and host.controller.cloud_provider is cloud
    client: Any = provider.get_required_service(EtcdClient)
    try:
        await workers(client, prefix).add_async(svc.new_worker("w1"))
        async with hosting(host):
            await until(host, lambda s: s["done"] >= 1)
        assert (await read(workers(client, prefix), "w1")).status.phase is P.READY
    finally:
        await client.close()


def test_a_repository_of_dicts_is_refused(client: EtcdClient, prefix: str) -> None:
    with pytest.raises(InvalidArgumentError, match="resource_type="):
        ResourceControllerHost(
            make_controller(FakeCloudProvider()), ResourceRepository(client, prefix)
        )


def test_the_host_names_itself(client: EtcdClient, prefix: str) -> None:
    host = ResourceControllerHost(make_controller(FakeCloudProvider()), workers(client, prefix))
    expected = f"ResourceControllerHost(WorkerController, prefix='{prefix}workers/', unelected)"
    assert repr(host) == expected
