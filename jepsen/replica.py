"""One replica of a sharded controller, run as its own process by the overlap check
(``jepsen/overlap.py``: tests/test_controller_replicas.py and ``make jepsen``):
``python -m jepsen.replica ENDPOINTS PREFIX COORDINATION HISTORY IDENTITY SHARDS TTL [HOLD]``.

Each reconcile writes ``HISTORY{name}/{identity}-{n}/start``, works a few milliseconds, then
writes ``.../end``; both writes go through the controller's fence, so etcd orders them against
the shard records. SIGTERM cancels ``run()``: the replica finishes what runs, hands its shards
back and exits 0.

With ``HOLD`` (the path of a FIFO), the reconciler is a plain function run in the thread pool,
and its first run after the file ``HOLD.now`` appears, once it has written its start record,
writes ``HISTORY/held`` and blocks reading ``HOLD`` (a call to another system that hangs, deaf
to ``stopping()``): the test pauses the replica meanwhile, lets its shards move, resumes it,
then writes to the FIFO, so that the run's end record is written late, for certain. (Not from
the first run: a replica that started first holds every shard until the others join, and a
shard given back waits for its runs to end.)"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
import sys
import threading
import time
from typing import Any

from etcd_resources import EtcdClient, FencedError, ResourceRepository
from etcd_resources.controller import Action, Controller, Sharding
from etcd_resources.controller.sharding import FENCE


async def main(argv: list[str]) -> int:
    endpoints, prefix, coordination, history, identity, shards, ttl, *hold = argv
    client = EtcdClient(endpoints.split(","), timeout=1.0)
    repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
    runs = itertools.count()
    fenced = 0
    loop = asyncio.get_running_loop()
    held = threading.Lock()

    async def put(key: str, value: bytes) -> None:
        await client.put_raw(key, value)

    def reconcile_in_thread(resource: Any) -> Action:
        nonlocal fenced
        fence = FENCE.get()  # the thread runs in the reconcile's context
        assert fence is not None, "a sharded reconcile runs under its shard's fence"
        record = f"{history}{resource['metadata']['name']}/{identity}-{next(runs)}/"
        value = json.dumps({"replica": identity, "record": fence[0], "lease": fence[1]}).encode()
        try:
            # Written from the thread through the loop: the task it makes copies this
            # context, fence included.
            asyncio.run_coroutine_threadsafe(put(record + "start", value), loop).result()
            if os.path.exists(hold[0] + ".now") and held.acquire(blocking=False):  # once
                asyncio.run_coroutine_threadsafe(put(history + "held", value), loop).result()
                with open(hold[0]) as fifo:
                    fifo.read()
            time.sleep(random.uniform(0.0, 0.05))  # the work
            asyncio.run_coroutine_threadsafe(put(record + "end", value), loop).result()
        except FencedError:
            fenced += 1
            raise
        return Action.requeue_after(0.05)

    async def reconcile(resource: Any) -> Action:
        nonlocal fenced
        fence = FENCE.get()
        assert fence is not None, "a sharded reconcile runs under its shard's fence"
        record = f"{history}{resource['metadata']['name']}/{identity}-{next(runs)}/"
        value = json.dumps({"replica": identity, "record": fence[0], "lease": fence[1]}).encode()
        try:
            await client.put_raw(record + "start", value)
            await asyncio.sleep(random.uniform(0.0, 0.05))  # the work
            await client.put_raw(record + "end", value)
        except FencedError:
            fenced += 1
            raise
        return Action.requeue_after(0.05)

    config = Sharding(shards=int(shards), ttl=int(ttl), identity=identity, prefix=coordination)
    chosen = reconcile_in_thread if hold else reconcile
    controller = Controller(repo, chosen, name="replicas", sharding=config, max_concurrency=2)
    task = asyncio.ensure_future(controller.run())
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        stats = controller.stats()
        done = {"identity": identity, "fenced": fenced, "reconciles": stats["reconciles"]}
        print(json.dumps(done))
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
