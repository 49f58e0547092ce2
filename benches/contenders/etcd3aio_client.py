"""etcd3aio 0.3.0: asyncio over grpcio (grpc.aio), a thin facade over etcd's API. Run in
.bench-venvs/etcd3aio. (Not named etcd3aio.py: the script's folder comes first on sys.path.)"""

from __future__ import annotations

import json
from typing import Any

import _workload as w
from etcd3aio import Etcd3Client
from etcd3aio._protobuf import Compare  # no public helper compares a mod_revision

PAGE = 1000  # grpc's default 4 MiB receive limit: a list is read a page of keys at a time


async def main(results: w.Results) -> None:
    c: w.Config = w.config()
    async with Etcd3Client([f"{c.host}:{c.port}"]) as client:
        kv = client.kv
        assert kv is not None and client.watch is not None
        watcher = client.watch
        await kv.get(c.prefix_a)  # connect

        async def create_one(doc: dict[str, Any]) -> None:
            key = c.prefix + doc["metadata"]["name"]
            done = await kv.txn(
                compare=[kv.txn_compare_create_revision(key, 0)],
                success=[kv.txn_op_put(key, json.dumps(doc))],
                failure=[],
            )
            assert done.succeeded

        async def get_one(name: str) -> dict[str, Any]:
            got = await kv.get(c.prefix + name)
            assert got.kvs
            return dict(json.loads(got.kvs[0].value))

        async def compare_and_swap(i: int) -> None:
            key = c.key(i)
            got = await kv.get(key)
            assert got.kvs
            doc = w.bump_errors(json.loads(got.kvs[0].value))
            same = Compare(
                result=Compare.EQUAL,
                target=Compare.MOD,
                key=key.encode(),
                mod_revision=got.kvs[0].mod_revision,
            )
            done = await kv.txn(
                compare=[same], success=[kv.txn_op_put(key, json.dumps(doc))], failure=[]
            )
            assert done.succeeded

        await w.key_ops_async(results, c, create_one, get_one, compare_and_swap)

        async def list_docs(prefix: str) -> list[dict[str, Any]]:
            docs: list[dict[str, Any]] = []
            start, end, revision = prefix.encode(), w.range_end(prefix).encode(), 0
            while True:
                page = await kv.get(start, end, revision=revision, limit=PAGE)
                revision = revision or page.header.revision
                docs += [json.loads(item.value) for item in page.kvs]
                if not page.more:
                    return docs
                start = page.kvs[-1].key + b"\0"

        await w.query_ops_async(results, c, lambda prefix, _n: list_docs(prefix), c.n_list)

        async def watch(_: int) -> None:
            seen = 0
            stream = watcher.watch(
                c.prefix_watch, w.range_end(c.prefix_watch), start_revision=c.watch_start + 1
            )
            async for response in stream:
                for event in response.events:
                    json.loads(event.kv.value)
                    seen += 1
                if seen >= c.n_watch:
                    break
            await stream.aclose()  # type: ignore[attr-defined]

        await results.each_async(f"watch {c.n_watch}", range(c.n_watch_samples), watch)


if __name__ == "__main__":
    w.run_async(main)
