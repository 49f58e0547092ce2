"""aetcd 1.0.0: asyncio over grpcio (grpc.aio), a fork of python-etcd3. Run in
.bench-venvs/aetcd. (Not named aetcd.py: the script's folder comes first on sys.path.)"""

from __future__ import annotations

import json
from typing import Any

import aetcd
from _workload import (
    Config,
    Results,
    bump_errors,
    config,
    key_ops_async,
    query_ops_async,
    run_async,
)

# Lists of 10,000 documents are ~21 MB in one response; grpc's default limit is 4 MiB.
OPTIONS = {"grpc.max_receive_message_length": 256 << 20}


async def main(results: Results) -> None:
    c: Config = config()
    async with aetcd.Client(host=c.host, port=c.port, timeout=60, options=OPTIONS) as client:
        tx = client.transactions
        await client.get(c.prefix_a.encode())  # connect

        async def create_one(doc: dict[str, Any]) -> None:
            key = (c.prefix + doc["metadata"]["name"]).encode()
            ok, _ = await client.transaction(
                compare=[tx.create(key) == 0],
                success=[tx.put(key, json.dumps(doc).encode())],
                failure=[],
            )
            assert ok

        async def get_one(name: str) -> dict[str, Any]:
            got = await client.get((c.prefix + name).encode())
            assert got is not None
            return dict(json.loads(got.value))

        async def compare_and_swap(i: int) -> None:
            key = c.key(i).encode()
            got = await client.get(key)
            assert got is not None
            doc = bump_errors(json.loads(got.value))
            ok, _ = await client.transaction(
                compare=[tx.mod(key) == got.mod_revision],
                success=[tx.put(key, json.dumps(doc).encode())],
                failure=[],
            )
            assert ok

        await key_ops_async(results, c, create_one, get_one, compare_and_swap)

        async def list_docs(prefix: str) -> list[dict[str, Any]]:
            # The raw protobuf kvs: aetcd's documented fastest way to read a range.
            got = await client.get_prefix(prefix.encode())
            return [json.loads(kv.value) for kv in got.kvs]

        await query_ops_async(results, c, lambda prefix, _n: list_docs(prefix), c.n_list)

        async def watch(_: int) -> None:
            seen = 0
            events = await client.watch_prefix(
                c.prefix_watch.encode(), start_revision=c.watch_start + 1
            )
            async for event in events:
                json.loads(event.kv.value)
                seen += 1
                if seen == c.n_watch:
                    break
            await events.cancel()

        await results.each_async(f"watch {c.n_watch}", range(c.n_watch_samples), watch)


if __name__ == "__main__":
    run_async(main)
