"""Username/password auth against a real etcd with auth on: a user whose role covers only its
own prefix (how a shared etcd is run) gets everything done inside it (reads, writes, pages,
consistent reads, the cache, watches, leases, the coordination backend) and is refused at once
outside it; permission errors say so, credentials stay out of reprs and messages, and auth
tokens are refreshed without the caller noticing."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from etcd_resources import (
    EtcdClient,
    EtcdSettings,
    EtcdStorageBackend,
    EventType,
    PermissionDeniedError,
    ResourceEvent,
    ResourceRepository,
    WatchEvent,
)
from etcd_resources.testing import EtcdServer, find_etcd_binary

from .helpers import worker

PASSWORD = "s3cret-Pa55word"
ROOT_PASSWORD = "root-pw"
TOKEN_TTL = 1
TIMEOUT = 5.0
# etcd refuses lease TTLs under its minimum (about 2 s with default settings).
LEASE_TTL = 2

Repo = ResourceRepository[dict[str, Any]]


def etcdctl(endpoint: str, *args: str) -> None:
    ctl = str(Path(find_etcd_binary()).with_name("etcdctl"))
    run = subprocess.run([ctl, "--endpoints", endpoint, *args], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    args = ("--auth-token", "simple", "--auth-token-ttl", str(TOKEN_TTL))
    with EtcdServer(data_dir=tmp_path_factory.mktemp("auth"), extra_args=args) as server:
        ep = server.endpoint
        etcdctl(
            ep, "user", "add", "root", f"--new-user-password={ROOT_PASSWORD}", "--interactive=false"
        )
        etcdctl(ep, "user", "grant-role", "root", "root")
        etcdctl(ep, "role", "add", "labs")
        etcdctl(ep, "role", "grant-permission", "labs", "readwrite", "/labs/", "--prefix=true")
        # The service's leader election, under a prefix of its own.
        etcdctl(
            ep, "role", "grant-permission", "labs", "readwrite", "/labs-leases/", "--prefix=true"
        )
        etcdctl(ep, "user", "add", "labs", f"--new-user-password={PASSWORD}", "--interactive=false")
        etcdctl(ep, "user", "grant-role", "labs", "labs")
        etcdctl(ep, "auth", "enable")
        yield server


@pytest.fixture
def labs(secured: EtcdServer) -> Iterator[EtcdClient]:
    """A client of the user whose role covers only /labs/ and /labs-leases/."""
    client = EtcdClient(secured.endpoints, username="labs", password=PASSWORD, timeout=TIMEOUT)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def root(secured: EtcdServer) -> Iterator[EtcdClient]:
    client = EtcdClient(secured.endpoints, username="root", password=ROOT_PASSWORD)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def mine() -> str:
    """A prefix of this test's own inside the user's, typed without its "/"."""
    return f"/labs/{uuid.uuid4().hex[:12]}"


async def test_a_user_works_inside_its_prefix_only(secured: EtcdServer) -> None:
    client = EtcdClient(secured.endpoints, username="labs", password=PASSWORD)
    mine = EtcdStorageBackend(client, "/labs/")
    await mine.set("w1", {"x": 1})
    assert (await mine.get("w1")) is not None
    theirs = EtcdStorageBackend(client, "/billing/")
    for call in (lambda: theirs.get("w1"), lambda: theirs.set("w1", {}), lambda: theirs.keys()):
        with pytest.raises(PermissionDeniedError, match="permission denied"):
            await call()
    client.close()


async def test_missing_or_wrong_credentials(secured: EtcdServer) -> None:
    with pytest.raises(PermissionDeniedError, match="user name is empty"):
        await EtcdStorageBackend(EtcdClient(secured.endpoints), "/labs/").get("w1")
    wrong = EtcdClient(secured.endpoints, username="labs", password="not-it")
    with pytest.raises(PermissionDeniedError, match="authentication failed") as info:
        await EtcdStorageBackend(wrong, "/labs/").get("w1")
    assert "not-it" not in str(info.value)


def test_credentials_stay_out_of_reprs(secured: EtcdServer) -> None:
    client = EtcdClient(secured.endpoints, username="labs", password=PASSWORD)
    settings = EtcdSettings(endpoints=secured.endpoints, username="labs", password=PASSWORD)
    for text in (repr(client), str(client), repr(settings)):
        assert PASSWORD not in text
    client.close()


async def test_expired_tokens_are_refreshed_transparently(secured: EtcdServer) -> None:
    client = EtcdClient(secured.endpoints, username="labs", password=PASSWORD)
    backend = EtcdStorageBackend(client, "/labs/")
    await backend.set("w2", {"x": 2})
    # Outliving the token's TTL is the behaviour under test, not a synchronisation.
    await asyncio.sleep(TOKEN_TTL * 2.5)
    stored: Any = await backend.get("w2")
    assert stored["x"] == 2
    client.close()


# -- everything works inside the prefix ------------------------------------------------------


async def fill(repo: Repo, n: int) -> list[dict[str, Any]]:
    return [
        await repo.add_async(worker(f"w{i}", phase=["Pending", "Ready"][i % 2])) for i in range(n)
    ]


@pytest.mark.parametrize("consistent", [None, True, False])
async def test_the_cache_inside_the_prefix(
    labs: EtcdClient, root: EtcdClient, mine: str, consistent: bool | None
) -> None:
    await fill(ResourceRepository(labs, mine), 4)
    # The first read of a new cache, whatever its consistency, learns the current revision.
    cached: Repo = ResourceRepository(labs, mine, cache=True)
    assert await cached.count_async(consistent=consistent) == 4
    ready = await cached.list_async(field_selector="status.phase=Ready", consistent=consistent)
    assert sorted(d["metadata"]["name"] for d in ready) == ["w1", "w3"]
    # Writes elsewhere move etcd's revision past the prefix's last change: a consistent read
    # waits for the watch's progress report, which a prefix-scoped watch gets too.
    await root.put_raw("/elsewhere/x", b"{}")
    await ResourceRepository(labs, mine).add_async(worker("w4"))
    await root.put_raw("/elsewhere/x", b"{}")
    assert await cached.count_async(consistent=True) == 5
    assert await cached.count_async(consistent=consistent) == 5
    assert len(await cached.list_async(consistent=True)) == 5


async def test_consistent_reads_pages_and_the_current_revision(labs: EtcdClient, mine: str) -> None:
    repo: Repo = ResourceRepository(labs, mine)
    written = await fill(repo, 5)
    last = int(written[-1]["metadata"]["resource_version"])
    # Without a prefix, the client reads under the first prefix it worked under: its own.
    assert await labs.current_revision() >= last
    assert await labs.current_revision(prefix=mine) >= last
    assert await labs.current_revision(prefix="/labs") >= last  # the role's own prefix
    assert await repo.count_async() == 5
    assert len(await repo.list_async(label_selector="lab-track=ccna")) == 5
    names: list[str] = []
    token: str | None = None
    revisions = set()
    for _ in range(3):
        page = await repo.list_page_async(limit=2, continue_token=token)
        names += [d["metadata"]["name"] for d in page.items]
        revisions.add(page.resource_version)
        token = page.continue_token
    assert token is None
    assert names == [f"w{i}" for i in range(5)]
    assert len(revisions) == 1  # every page at the first page's revision


async def next_change(events: Any) -> ResourceEvent:
    async for event in events:
        if event.type is not EventType.BOOKMARK:
            return event
    raise AssertionError("the watch ended")


async def test_watches_inside_the_prefix(labs: EtcdClient, mine: str) -> None:
    repo: Repo = ResourceRepository(labs, mine)
    rv = await labs.current_revision(prefix=mine)
    await repo.add_async(worker("w1"))
    # After a revision.
    event = await asyncio.wait_for(next_change(repo.watch(resource_version=rv)), 10)
    assert (event.type, event.resource["metadata"]["name"]) == (EventType.ADDED, "w1")
    # With the initial listing, then the changes after it.
    events = repo.watch(send_initial=True)
    initial = await asyncio.wait_for(events.__anext__(), 10)
    assert (initial.type, initial.resource["metadata"]["name"]) == (EventType.ADDED, "w1")
    assert (await asyncio.wait_for(events.__anext__(), 10)).type is EventType.BOOKMARK
    await repo.add_async(worker("w2"))
    assert (await asyncio.wait_for(next_change(events), 10)).resource["metadata"]["name"] == "w2"
    await events.aclose()

    # From now on: the watch learns the current revision through the prefix. Once this
    # client has opened one more etcd watch, a write is after the watch's start.
    def watches_opened() -> int:
        return int(labs.metrics().get("watch", {"count": 0})["count"])

    opened = watches_opened()
    now = repo.watch()
    pending = asyncio.ensure_future(next_change(now))
    deadline = time.monotonic() + 10
    while watches_opened() == opened:
        assert time.monotonic() < deadline and not pending.done(), "the watch did not open"
        await asyncio.sleep(0.02)  # polling a counter, not ordering our own tasks
    # The callback form, from now on too: started() means etcd accepted it.
    seen: list[WatchEvent] = []
    arrived = asyncio.Event()

    def on_change(event: WatchEvent) -> None:
        seen.append(event)
        arrived.set()

    handle = EtcdStorageBackend(labs, mine).watch(on_change)
    await asyncio.wait_for(handle.started(), 10)
    await repo.add_async(worker("w3"))
    assert (await asyncio.wait_for(pending, 10)).resource["metadata"]["name"] == "w3"
    await asyncio.wait_for(arrived.wait(), 10)
    assert [e.name for e in seen] == ["w3"]
    handle.cancel()
    await now.aclose()


async def test_leases_inside_the_prefix(labs: EtcdClient, root: EtcdClient, mine: str) -> None:
    repo: Repo = ResourceRepository(labs, mine)
    # A resource with a TTL: a new lease (granting needs no key permission), attached by a
    # write inside the prefix.
    await repo.add_async(worker("ephemeral"), ttl=LEASE_TTL)
    stored = await labs.get_kv(repo.prefix + "ephemeral")
    assert stored is not None and stored[2] != 0
    # A lease kept alive in Rust, renewed under the user's credentials, then revoked.
    lease = await labs.grant_lease(LEASE_TTL)
    await repo.add_async(worker("held"), lease=lease)
    assert await labs.keep_alive_once(lease.id) == LEASE_TTL

    def renewals() -> tuple[int, int]:
        op = labs.metrics().get("lease_keep_alive", {"count": 0, "errors": 0})
        return int(op["count"]), int(op["errors"])

    # The renewal above and four in the background (one per third of the TTL) outlive the
    # TTL: the key is still there.
    deadline = time.monotonic() + LEASE_TTL * 5
    while renewals()[0] < 5:
        assert time.monotonic() < deadline, f"the keep-alive stalled: {renewals()}"
        await asyncio.sleep(0.05)  # polling a counter, not ordering our own tasks
    assert renewals()[1] == 0
    assert not lease.lost
    assert await repo.contains_async("held")
    await lease.revoke()
    assert not await repo.contains_async("held")
    # etcd's rule for revoking: write permission on every key of the lease. A lease that
    # holds a key outside the prefix cannot be revoked by this user (renewing it can be).
    theirs = await root.grant_lease(30, keep_alive=False)
    await root.create_raw("/elsewhere/leased", b"x", lease=theirs.id)
    assert await labs.keep_alive_once(theirs.id) == 30
    with pytest.raises(PermissionDeniedError):
        await labs.revoke_lease(theirs.id)
    await theirs.revoke()


async def test_the_coordination_backend_under_its_own_prefix(labs: EtcdClient) -> None:
    from etcd_resources.neuroglia import EtcdCoordinationBackend

    backend = EtcdCoordinationBackend(labs, f"/labs-leases/{uuid.uuid4().hex[:12]}")
    assert await backend.get_lease_holder("leader") is None
    assert await backend.acquire_lease("leader", "a", LEASE_TTL)
    assert not await backend.acquire_lease("leader", "b", LEASE_TTL)
    assert await backend.get_lease_holder("leader") == "a"
    assert await backend.renew_lease("leader", "a", LEASE_TTL)
    assert await backend.release_lease("leader", "a")
    assert await backend.acquire_lease("leader", "b", LEASE_TTL)
    assert await backend.release_lease("leader", "b")


# -- and nothing outside it, refused at once --------------------------------------------------


async def refused_at_once(call: Callable[[], Awaitable[Any]]) -> None:
    started = time.monotonic()
    with pytest.raises(PermissionDeniedError, match="permission denied"):
        # The bound only catches a call that would hang; refusals come in milliseconds.
        await asyncio.wait_for(call(), TIMEOUT * 3)
    took = time.monotonic() - started
    # Not retried, not waited out: well under one request timeout.
    assert took < TIMEOUT / 5, f"refused after {took:.2f}s"


async def first_cached_count(endpoints: list[str], prefix: str, consistent: bool | None) -> int:
    async with EtcdClient(endpoints, username="labs", password=PASSWORD) as client:
        cached: Repo = ResourceRepository(client, prefix, cache=True)
        return await cached.count_async(consistent=consistent)


async def bare_current_revision(endpoints: list[str]) -> int:
    """The current revision from a client that has worked under no prefix yet: it reads the
    key "\\0", outside every prefix."""
    async with EtcdClient(endpoints, username="labs", password=PASSWORD) as client:
        return await client.current_revision()


async def test_everything_outside_the_prefix_is_refused_at_once(labs: EtcdClient) -> None:
    from etcd_resources.neuroglia import EtcdCoordinationBackend

    theirs: Repo = ResourceRepository(labs, "/billing")
    backend = EtcdStorageBackend(labs, "/billing")
    calls: list[Callable[[], Awaitable[Any]]] = [
        # The first prefix this client worked under ("/billing/" above) is where it reads.
        lambda: labs.current_revision(),
        lambda: labs.current_revision(prefix="/billing"),
        lambda: theirs.get_async("w1"),
        lambda: theirs.add_async(worker("w1")),
        lambda: theirs.list_async(),
        lambda: theirs.count_async(),
        lambda: theirs.list_page_async(limit=2),
        lambda: next_change(theirs.watch()),
        lambda: next_change(theirs.watch(resource_version=1)),
        lambda: next_change(theirs.watch(send_initial=True)),
        lambda: backend.keys(),
        lambda: backend.list_with_labels(),
        lambda: EtcdCoordinationBackend(labs, "/billing-leases").acquire_lease("l", "a", 30),
    ]
    # A new cache for each consistency (one per client and prefix): its first read is refused.
    calls += [
        partial(first_cached_count, labs.endpoints, "/billing", k) for k in (None, True, False)
    ]
    calls.append(partial(bare_current_revision, labs.endpoints))
    for call in calls:
        await refused_at_once(call)
    for start in (
        lambda: backend.watch(lambda _event: None),
        lambda: theirs.watch_changes(lambda _event: None, start_revision=1),
    ):
        handle = start()
        await refused_at_once(handle.started)
        with pytest.raises(PermissionDeniedError):
            await handle.wait()
