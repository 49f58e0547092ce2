"""Fork safety (gunicorn ``--preload``, ``multiprocessing``'s "fork" start method, prefork
workers): a process that used the package forks after real etcd traffic, with a watch open, an
informer cache loaded and a lease kept alive. In the child a new client works (create, get,
list, watch, cached count); everything of the parent's client raises ``ForkedError`` at once,
never hangs; the child exits promptly, however it exits. The parent's client, watch, cache and
lease keep working during and after the child's life.

Children report through pipes; every wait is bounded, and a child that overstays is killed by
its pid."""

from __future__ import annotations

import asyncio
import inspect
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import pytest

from etcd_resources import (
    ClosedError,
    EtcdClient,
    EtcdStorageBackend,
    EventType,
    ForkedError,
    ResourceEvent,
    ResourceRepository,
    WatchEvent,
)

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="pidfd_open: Linux"),
    # Python 3.12+ warns about fork() in a process with threads (ours: the runtime's).
    pytest.mark.filterwarnings("ignore:.*use of fork\\(\\) may lead to deadlocks"),
]

TIMEOUT = 5.0  # the clients' request timeout
AT_ONCE = 1.0  # "at once": well under TIMEOUT (a hang would take at least TIMEOUT)
BOUND = 30.0  # a generous bound on any wait, so that a regression fails instead of hanging
LEASE_TTL = 1


def doc(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Thing", "metadata": {"name": name}, "spec": {}}


async def readable(fd: int, within: float) -> None:
    """Wait until `fd` is readable (a pipe with data or closed, a pidfd of an exited process)."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await asyncio.wait_for(ready, within)
    finally:
        loop.remove_reader(fd)


async def read_all(fd: int, within: float) -> bytes:
    """Everything written to the pipe `fd` until its writer closes it."""
    deadline = time.monotonic() + within
    chunks = []
    while True:
        await readable(fd, max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


async def outcome(call: Callable[[], Any]) -> dict[str, Any]:
    """Call `call` (sync, or returning an awaitable), bounded: what it raised and how long it
    took."""
    started = time.monotonic()
    try:

        async def run() -> Any:
            result = call()
            return (await result) if inspect.isawaitable(result) else result

        await asyncio.wait_for(run(), BOUND)
        error, message, fields = None, "", {}
    except BaseException as e:
        error, message = type(e).__name__, str(e)
        fields = {
            "forked": isinstance(e, ForkedError),
            "closed": isinstance(e, ClosedError),
            "runtime": isinstance(e, RuntimeError),
            "pid": getattr(e, "pid", None),
            "current_pid": getattr(e, "current_pid", None),
        }
    return {"error": error, "message": message, "seconds": time.monotonic() - started, **fields}


class Parent:
    """What the parent has before it forks: a client with traffic behind it, a cache loaded
    after a read, a watch (`repo.watch()`) and a callback watch open, a lease kept alive with a
    key on it, and a client on the embedded store."""

    client: EtcdClient
    repo: ResourceRepository[dict[str, Any]]
    backend: EtcdStorageBackend
    lease: Any
    memory: EtcdClient

    async def start(self, endpoints: list[str], prefix: str) -> Parent:
        self.prefix = prefix
        self.side = prefix.rstrip("/") + "-side/"  # keys outside the watched prefix
        self.client = EtcdClient(endpoints, timeout=TIMEOUT)
        self.repo = ResourceRepository(self.client, prefix, cache=True)
        for name in ("a", "b"):
            await self.repo.add_async(doc(name))
        assert (await self.repo.get_async("a"))["metadata"]["name"] == "a"
        assert await self.repo.count_async() == 2  # the cache is loaded
        self.lease = await self.client.grant_lease(LEASE_TTL)
        self.leased_key = f"{self.side}leased"
        await self.client.create_raw(self.leased_key, b"1", lease=self.lease.id)

        self.events: asyncio.Queue[ResourceEvent] = asyncio.Queue()
        self.watching = asyncio.ensure_future(self._watch(await self.client.current_revision()))
        self.puts: asyncio.Queue[WatchEvent] = asyncio.Queue()
        self.backend = EtcdStorageBackend(self.client, prefix)
        self.handle = self.backend.watch(self.puts.put_nowait)
        await asyncio.wait_for(self.handle.started(), BOUND)
        # Both watches are open once both see a write made after them.
        await self.repo.add_async(doc("c"))
        assert await self.added(self.events, "c")
        assert await self.added(self.puts, "c")

        self.memory = EtcdClient("memory://")
        await self.memory.put_raw("k", b"v")
        return self

    async def _watch(self, after: int) -> None:
        async for event in self.repo.watch(resource_version=after):
            self.events.put_nowait(event)

    @staticmethod
    async def added(queue: asyncio.Queue[Any], name: str) -> bool:
        """Wait (bounded) until `queue` yields the creation of `name`."""

        async def find() -> bool:
            while True:
                event = await queue.get()
                if isinstance(event, ResourceEvent):
                    if event.type is EventType.ADDED and event.resource["metadata"]["name"] == name:
                        return True
                elif event.name == name and event.type == "put":
                    return True

        return await asyncio.wait_for(find(), BOUND)

    async def keep_busy(self, done: asyncio.Future[Any]) -> int:
        """Use the client (writes and reads, outside the watched prefix) until `done`."""
        n = 0
        while not done.done() and n < 500:
            await self.client.put_raw(f"{self.side}busy", str(n).encode())
            assert await self.client.get_raw(f"{self.side}busy") == str(n).encode()
            n += 1
        return n

    async def check_after(self, forked_at: float) -> None:
        """Everything still works: the watches saw the child's writes, the cache counts them,
        the lease was kept alive, and new calls work."""
        for name in ("from-child", "from-child-2"):
            assert await self.added(self.events, name)
            assert await self.added(self.puts, name)
        assert await self.repo.count_async(consistent=True) == 5
        await self.repo.add_async(doc("after"))
        assert await self.added(self.events, "after")
        assert await self.repo.count_async() == 6
        assert [r["metadata"]["name"] for r in await self.repo.list_async()] == [
            "a", "after", "b", "c", "from-child", "from-child-2",
        ]  # fmt: skip
        # The lease must outlive its TTL twice over from the fork: a keep-alive that died with
        # the fork would have let it expire. (A span of time to measure, not a wait for an
        # event.)
        await asyncio.sleep(max(0.0, forked_at + 2.5 * LEASE_TTL - time.monotonic()))
        assert not self.lease.lost
        assert await self.client.get_raw(self.leased_key) == b"1"
        assert await self.memory.get_raw("k") == b"v"
        assert not self.client.closed

    async def close(self) -> None:
        self.handle.cancel()
        self.watching.cancel()
        await asyncio.gather(self.watching, return_exceptions=True)
        await self.lease.revoke()
        assert await self.client.get_raw(self.leased_key) is None
        await self.client.close()


async def child_main(parent: Parent, endpoints: list[str], prefix: str) -> dict[str, Any]:
    """In the child: a new client first (create, get, list, watch, cached count), then every
    object of the parent's."""
    out: dict[str, Any] = {"pid": os.getpid()}
    client = EtcdClient(endpoints, timeout=TIMEOUT)
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix, cache=True)
    await asyncio.wait_for(repo.add_async(doc("from-child")), BOUND)
    out["get"] = (await asyncio.wait_for(repo.get_async("from-child"), BOUND))["metadata"]["name"]
    names = await asyncio.wait_for(repo.list_async(), BOUND)
    out["list"] = [r["metadata"]["name"] for r in names]
    after = await client.current_revision()
    await repo.add_async(doc("from-child-2"))
    watch = repo.watch(resource_version=after)
    event: ResourceEvent = await asyncio.wait_for(anext(watch), BOUND)
    out["watch"] = f"{event.type.value} {event.resource['metadata']['name']}"
    await watch.aclose()
    out["count"] = await asyncio.wait_for(repo.count_async(consistent=True), BOUND)
    out["count_default"] = await asyncio.wait_for(repo.count_async(), BOUND)
    await client.close()

    p = parent
    stream = p.handle._stream
    assert stream is not None
    out["parent"] = {
        "get_raw": await outcome(lambda: p.client.get_raw("x")),
        "current_revision": await outcome(lambda: p.client.current_revision()),
        "metrics": await outcome(lambda: p.client.metrics()),
        "grant_lease": await outcome(lambda: p.client.grant_lease(5)),
        "repo.get_async": await outcome(lambda: p.repo.get_async("a")),
        "repo.add_async": await outcome(lambda: p.repo.add_async(doc("nope"))),
        "repo.list_async (cache)": await outcome(lambda: p.repo.list_async()),
        "repo.count_async (cache)": await outcome(lambda: p.repo.count_async()),
        "repo.count_async (consistent)": await outcome(lambda: p.repo.count_async(consistent=True)),
        "repo.watch()": await outcome(lambda: anext(p.repo.watch())),
        "watch stream next_batch (pending in the parent)": await outcome(stream.next_batch),
        "backend.get": await outcome(lambda: p.backend.get("a")),
        "lease.revoke": await outcome(p.lease.revoke),
        "lease.wait_lost": await outcome(p.lease.wait_lost),
        "new ResourceRepository": await outcome(lambda: ResourceRepository(p.client, prefix)),
        "new EtcdStorageBackend": await outcome(lambda: EtcdStorageBackend(p.client, prefix)),
        "memory client": await outcome(lambda: p.memory.get_raw("k")),
    }
    # Teardown does nothing to the parent's connections, and raises nothing.
    out["teardown"] = {
        "watch stream close": await outcome(stream.close),
        "lease.cancel": await outcome(p.lease.cancel),
        "client.close": await outcome(p.client.close),
    }
    out["closed"] = p.client.closed
    out["repr"] = repr(p.client)
    return out


def run_child(parent: Parent, endpoints: list[str], prefix: str, write_fd: int) -> None:
    """The child's whole life (it exits by `os._exit`, or `multiprocessing` does)."""
    try:
        result = asyncio.run(child_main(parent, endpoints, prefix))
    except BaseException as e:
        result = {"failed": f"{type(e).__name__}: {e}"}
    with os.fdopen(write_fd, "w") as w:
        json.dump(result, w)


def check_child(result: dict[str, Any], parent_pid: int) -> None:
    assert "failed" not in result, result["failed"]
    assert result["pid"] != parent_pid
    assert result["get"] == "from-child"
    assert result["list"] == ["a", "b", "c", "from-child"]
    assert result["watch"] == "ADDED from-child-2"
    assert result["count"] == result["count_default"] == 5
    for what, o in result["parent"].items():
        assert o["error"] == "ForkedError", (what, o)
        assert o["forked"] and o["closed"] and o["runtime"], (what, o)
        assert o["pid"] == parent_pid and o["current_pid"] == result["pid"], (what, o)
        assert o["seconds"] < AT_ONCE, (what, o)
        assert o["message"] == (
            f"EtcdClient made in process {parent_pid} before a fork, used in process "
            f"{result['pid']}: make a new client in this process"
        ), (what, o)
    for what, o in result["teardown"].items():
        assert o["error"] is None and o["seconds"] < AT_ONCE, (what, o)
    assert result["closed"] is True
    assert f"made in process {parent_pid} before a fork" in result["repr"]


def exit_code(pid: int) -> int:
    """The exit code of the child `pid`, which has exited (its pidfd was readable)."""
    waited, status = os.waitpid(pid, os.WNOHANG)
    assert waited == pid
    return os.waitstatus_to_exitcode(status)


def kill(pid: int) -> None:
    """Kill and reap the child `pid`, which overstayed (never a pid already reaped: it could
    be another process's by now)."""
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


async def test_os_fork_child_gets_its_own_runtime_and_the_parent_keeps_its_own(
    etcd_endpoints: list[str], prefix: str
) -> None:
    parent = await Parent().start(etcd_endpoints, prefix)
    read_fd, write_fd = os.pipe()
    forked_at = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_fd)
        code = 1
        try:
            run_child(parent, etcd_endpoints, prefix, write_fd)
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    pidfd = os.pidfd_open(pid)
    try:
        # The parent keeps using its client while the child uses its own.
        result_read = asyncio.ensure_future(read_all(read_fd, BOUND))
        busy = await parent.keep_busy(result_read)
        result = json.loads(await result_read)
        await readable(pidfd, BOUND)
        code = exit_code(pid)
    except BaseException:
        kill(pid)
        raise
    finally:
        os.close(read_fd)
        os.close(pidfd)
    assert code == 0
    check_child(result, os.getpid())
    assert busy > 0
    await parent.check_after(forked_at)
    await parent.close()


async def test_multiprocessing_fork_child(etcd_endpoints: list[str], prefix: str) -> None:
    parent = await Parent().start(etcd_endpoints, prefix)
    read_fd, write_fd = os.pipe()
    ctx = multiprocessing.get_context("fork")
    forked_at = time.monotonic()
    process = ctx.Process(target=run_child, args=(parent, etcd_endpoints, prefix, write_fd))
    process.start()
    os.close(write_fd)
    try:
        result_read = asyncio.ensure_future(read_all(read_fd, BOUND))
        busy = await parent.keep_busy(result_read)
        result = json.loads(await result_read)
        await readable(process.sentinel, BOUND)
        # The sentinel closes as the child exits, a moment before the kernel can report its
        # status: wait for that (bounded), as for any exiting process.
        process.join(BOUND)
    except BaseException:
        process.kill()  # by its pid
        process.join(BOUND)
        raise
    finally:
        os.close(read_fd)
    assert process.exitcode == 0
    check_child(result, os.getpid())
    assert busy > 0
    await parent.check_after(forked_at)
    await parent.close()


# A process that used the package forks, with a watch open, a cache, a lease and a call in
# flight; the child uses a new client and the parent's, then exits the way argv[3] says. The
# parent keeps using its client meanwhile, times the child's exit, checks its own client still
# works, and prints a JSON summary.
EXIT_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    from etcd_resources import EtcdClient, ForkedError, ResourceRepository

    endpoint, prefix, mode = sys.argv[1:4]
    DOC = {"apiVersion": "v1", "kind": "Thing", "spec": {}, "status": {}}

    async def setup():
        client = EtcdClient(endpoint, timeout=5)
        repo = ResourceRepository(client, prefix, cache=True)
        await repo.add_async({**DOC, "metadata": {"name": "a"}})
        assert await repo.count_async() == 1
        lease = await client.grant_lease(5)
        # A watch that delivered a change and has its next batch pending, and a call in
        # flight (futures, not tasks: asyncio.run leaves them be).
        stream = await repo._core.watch_stream(await client.current_revision() + 1)
        await repo.add_async({**DOC, "metadata": {"name": "w"}})
        assert len(await asyncio.wait_for(stream.next_batch(), 30)) == 1
        pending = stream.next_batch()
        in_flight = client.get_raw(prefix + "a")
        return client, repo, lease, stream, pending, in_flight

    state = asyncio.run(setup())
    client, repo, lease, stream = state[:4]
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)

        async def child():
            own = EtcdClient(endpoint, timeout=5)
            assert (await own.get_raw(prefix + "a")) is not None
            took = []
            for call in (lambda: client.get_raw(prefix + "a"), stream.next_batch):
                started = time.monotonic()
                try:
                    await asyncio.wait_for(call(), 30)
                    return "no error"
                except ForkedError:
                    took.append(time.monotonic() - started)
            return max(took)

        took = asyncio.run(child())
        with os.fdopen(write_fd, "w") as w:
            json.dump({"took": took, "exiting_at": time.monotonic()}, w)
        if mode == "os._exit":
            os._exit(0)
        if mode == "sys.exit":
            sys.exit(0)
        # "end": fall off the end of the script
    else:
        os.close(write_fd)

        async def parent():
            loop = asyncio.get_running_loop()
            pidfd = os.pidfd_open(pid)
            exited = loop.create_future()
            loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(time.monotonic()))
            busy = 0
            while not exited.done() and busy < 2000:
                await client.put_raw(prefix.rstrip("/") + "-side/busy", b"1")
                busy += 1
            exited_at = await asyncio.wait_for(exited, 30)
            _, status = os.waitpid(pid, 0)
            report = json.loads(os.read(read_fd, 65536))
            await repo.add_async({**DOC, "metadata": {"name": "b"}})
            assert await repo.count_async(consistent=True) == 3
            assert await client.get_raw(prefix + "b") is not None
            assert not lease.lost
            await lease.revoke()
            return {
                "status": os.waitstatus_to_exitcode(status),
                "took": report["took"],
                "exit_seconds": exited_at - report["exiting_at"],
                "busy": busy,
            }

        print(json.dumps(asyncio.run(parent())))
    """
)


@pytest.mark.parametrize("mode", ["sys.exit", "end", "os._exit"])
def test_a_forked_child_exits_promptly(mode: str, etcd_endpoints: list[str], prefix: str) -> None:
    run = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, etcd_endpoints[0], prefix, mode],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr and "Fatal" not in run.stderr, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["status"] == 0
    assert isinstance(report["took"], float) and report["took"] < AT_ONCE, report
    # An interpreter's exit takes 0.2-0.7 s here (finalization, on a loaded machine). Waiting
    # for the parent's tasks would add the 2 s that `_shutdown` allows them; hanging on the
    # parent's state, the 30 s bound.
    assert report["exit_seconds"] < 1.9, report
    assert report["busy"] > 0
