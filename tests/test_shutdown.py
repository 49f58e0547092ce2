"""The interpreter exits cleanly (status 0, no crash, no hang) with a watch open, calls in
flight and clients never closed: at-exit crashes of tokio under PyO3 are a known problem of
peer bindings, so this runs the exit many times in a row, in subprocesses."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, uuid
    from etcd_resources import EtcdClient, EtcdStorageBackend, EtcdLabWorkerResourceRepository

    async def main():
        client = EtcdClient(sys.argv[1])
        backend = EtcdStorageBackend(client, sys.argv[2])
        seen = asyncio.Event()
        handle = backend.watch(lambda event: seen.set())
        await handle.started()
        await backend.set("a", {"x": 1})
        await seen.wait()
        # A cache whose documents' Python objects are kept (py/built.rs), and a listing left
        # half-read (its stream of chunks still open).
        cached = EtcdLabWorkerResourceRepository(
            client, f"{sys.argv[2]}{uuid.uuid4().hex}/", resource_type=dict, cache=True
        )
        await cached.add_async({"metadata": {"name": "w1"}, "spec": {}, "status": {}})
        global kept
        kept = await cached.list_async()
        kept.append(await cached._core.list())
        # Leave the watch open, the client unclosed, and a read in flight.
        asyncio.ensure_future(backend.get("a"))
        asyncio.ensure_future(backend.list_with_labels({}))

    asyncio.run(main())
    print("clean")
    """
)

RUNS = 12


@pytest.mark.parametrize("store_kind", ["etcd", "memory"])
def test_exit_with_open_watch_is_clean(
    store_kind: str, etcd_endpoints: list[str], prefix: str
) -> None:
    endpoint = etcd_endpoints[0] if store_kind == "etcd" else "memory://"
    failures = []
    for _ in range(RUNS):
        run = subprocess.run(
            [sys.executable, "-c", SCRIPT, endpoint, prefix],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if run.returncode != 0 or run.stdout.strip() != "clean" or "Fatal" in run.stderr:
            failures.append((run.returncode, run.stderr[-2000:]))
    assert failures == []
