"""etcd3-py 0.1.6: the OLD repository's client (sync `etcd3.Client(host, port)` over etcd's
JSON gateway, requests), run in .bench-venvs/etcd3-py, with the old repository's logic:

- list / find_by_phase / count_by_phase: the prefix's keys (`keys_only`), then one `range`
  per key, `json.loads`, filter in Python (benches/query.py `old_repository`). That takes
  seconds for 10,000, so these run `n_slow_list` samples (1) per run;
- compare_and_swap: the old NON-ATOMIC update: get, then read the key again and compare its
  mod_revision in Python, then a plain put. A writer in between is overwritten.
"""

from __future__ import annotations

import json
from typing import Any

import etcd3
from _workload import (
    Config,
    Results,
    bump_errors,
    config,
    key_ops_sync,
    query_ops_sync,
    range_end,
    run_sync,
)


def main(results: Results) -> None:
    c: Config = config()
    client = etcd3.Client(c.host, c.port, timeout=60)
    client.range(c.prefix_a)  # connect

    def create_one(doc: dict[str, Any]) -> None:
        key = c.prefix + doc["metadata"]["name"]
        txn = client.Txn()
        txn.compare(txn.key(key).create == 0)
        txn.success(txn.put(key, json.dumps(doc)))
        assert txn.commit().succeeded

    def get_one(name: str) -> dict[str, Any]:
        return dict(json.loads(client.range(c.prefix + name).kvs[0].value))

    def compare_and_swap(i: int) -> None:
        key = c.key(i)
        kv = client.range(key).kvs[0]
        doc = bump_errors(json.loads(kv.value))
        # The old update: not a transaction. Read again, compare in Python, then put.
        current = client.range(key).kvs[0]
        assert current.mod_revision == kv.mod_revision
        client.put(key, json.dumps(doc))

    key_ops_sync(results, c, create_one, get_one, compare_and_swap)

    def list_docs(prefix: str) -> list[dict[str, Any]]:
        found = client.range(prefix, range_end=range_end(prefix), keys_only=True)
        keys = [kv.key for kv in found.kvs or []]
        return [json.loads(client.range(key).kvs[0].value) for key in keys]

    query_ops_sync(results, c, lambda prefix, _n: list_docs(prefix), c.n_slow_list)

    def watch(_: int) -> None:
        watcher = client.Watcher(key=c.prefix_watch, prefix=True, start_revision=c.watch_start + 1)
        seen = 0
        for event in watcher:
            json.loads(event.value)
            seen += 1
            if seen == c.n_watch:
                break
        watcher.stop()

    results.each_sync(f"watch {c.n_watch}", range(c.n_watch_samples), watch)
    client.close()


if __name__ == "__main__":
    run_sync(main)
