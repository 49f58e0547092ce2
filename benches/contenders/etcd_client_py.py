"""etcd-client-py 0.5.1 (lablup, `import etcd_client`): PyO3 bindings of the same Rust
etcd-client crate as the ceiling, run in .bench-venvs/etcd-client-py.

What its API lacks, and what this script does instead (footnotes of the table):
- responses are capped at tonic's default 4 MiB (not configurable) and get_prefix has no
  limit/paging, so one range of 3,000 documents (6 MB) fails: lists read the prefix in pages
  of 1,000 names (`worker-00`, `worker-01`, ... sub-prefixes), one request after another;
- `get` returns the value only (no mod_revision) and a transaction's response has only
  `succeeded()`: compare_and_swap compares the VALUE read (`Compare.value`), still atomic;
- `watch_prefix` takes no start revision: no replay from history, so no `watch` row.
"""

from __future__ import annotations

import json
from typing import Any

from _workload import (
    Config,
    Results,
    bump_errors,
    config,
    key_ops_async,
    query_ops_async,
    run_async,
)
from etcd_client import Client, Compare, CompareOp, Txn, TxnOp

PAGE = 1000  # names per sub-prefix page: ~2.1 MB, under the 4 MiB cap


async def main(results: Results) -> None:
    c: Config = config()
    async with Client([c.endpoint]).connect() as etcd:
        await etcd.get(c.prefix_a.encode())  # connect

        async def create_one(doc: dict[str, Any]) -> None:
            key = (c.prefix + doc["metadata"]["name"]).encode()
            txn = (
                Txn()
                .when([Compare.create_revision(key, CompareOp.EQUAL, 0)])
                .and_then([TxnOp.put(key, json.dumps(doc).encode())])
            )
            assert (await etcd.txn(txn)).succeeded()

        async def get_one(name: str) -> dict[str, Any]:
            value = await etcd.get((c.prefix + name).encode())
            return dict(json.loads(bytes(value)))

        async def compare_and_swap(i: int) -> None:
            key = c.key(i).encode()
            read = bytes(await etcd.get(key))
            doc = bump_errors(json.loads(read))
            txn = (
                Txn()
                .when([Compare.value(key, CompareOp.EQUAL, read)])
                .and_then([TxnOp.put(key, json.dumps(doc).encode())])
            )
            assert (await etcd.txn(txn)).succeeded()

        await key_ops_async(results, c, create_one, get_one, compare_and_swap)

        async def list_docs(prefix: str, n: int) -> list[dict[str, Any]]:
            docs = []
            for page in range((n + PAGE - 1) // PAGE):
                for _key, value in await etcd.get_prefix(f"{prefix}worker-{page:02}".encode()):
                    docs.append(json.loads(bytes(value)))
            return docs

        await query_ops_async(results, c, list_docs, c.n_list)


if __name__ == "__main__":
    run_async(main)
