"""python-etcd3 0.12.0 (`import etcd3`): the sync gRPC client, run in .bench-venvs/py-etcd3.

It needs protobuf 3.20.x (protobuf>=4 refuses its generated code). On Python 3.11 there is no
compiled protobuf 3.20.3 wheel, so that is the pure-Python implementation: which is how
python-etcd3 installs on 3.11 today, and why its lists and watches parse slowly."""

from __future__ import annotations

import json
from typing import Any

import etcd3
from _workload import Config, Results, bump_errors, config, key_ops_sync, query_ops_sync, run_sync

# Lists of 10,000 documents are ~21 MB in one response; grpc's default limit is 4 MiB.
OPTIONS = [("grpc.max_receive_message_length", 256 << 20)]


def main(results: Results) -> None:
    c: Config = config()
    client = etcd3.client(host=c.host, port=c.port, timeout=60, grpc_options=OPTIONS)
    tx = client.transactions
    client.get(c.prefix_a)  # connect

    def create_one(doc: dict[str, Any]) -> None:
        key = c.prefix + doc["metadata"]["name"]
        ok, _ = client.transaction(
            compare=[tx.create(key) == 0],
            success=[tx.put(key, json.dumps(doc).encode())],
            failure=[],
        )
        assert ok

    def get_one(name: str) -> dict[str, Any]:
        value, _meta = client.get(c.prefix + name)
        return dict(json.loads(value))

    def compare_and_swap(i: int) -> None:
        key = c.key(i)
        value, meta = client.get(key)
        doc = bump_errors(json.loads(value))
        ok, _ = client.transaction(
            compare=[tx.mod(key) == meta.mod_revision],
            success=[tx.put(key, json.dumps(doc).encode())],
            failure=[],
        )
        assert ok

    key_ops_sync(results, c, create_one, get_one, compare_and_swap)

    def list_docs(prefix: str) -> list[dict[str, Any]]:
        return [json.loads(value) for value, _meta in client.get_prefix(prefix)]

    query_ops_sync(results, c, lambda prefix, _n: list_docs(prefix), c.n_list)

    def watch(_: int) -> None:
        # The watch runs on python-etcd3's own thread (a grpc stream); the iterator reads the
        # events it queues.
        events, cancel = client.watch_prefix(c.prefix_watch, start_revision=c.watch_start + 1)
        seen = 0
        for event in events:
            json.loads(event.value)
            seen += 1
            if seen == c.n_watch:
                break
        cancel()

    results.each_sync(f"watch {c.n_watch}", range(c.n_watch_samples), watch)
    client.close()


if __name__ == "__main__":
    run_sync(main)
