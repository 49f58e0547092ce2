"""Run the benchmarks against a real etcd started for the run (or ETCD_ENDPOINTS).

make bench                       # builds the release extension first; 3 rounds
make bench ARGS="--rounds 1"     # quicker; ARGS go to compare.py (--quick, --only pkg,rust)
python benches/run.py
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import compare
import concurrency
import query
import watch

from etcd_resources.testing import EtcdServer


def main() -> None:
    server = None
    if os.environ.get("ETCD_ENDPOINTS"):
        endpoints = os.environ["ETCD_ENDPOINTS"].split(",")
    else:
        server = EtcdServer().start()
        endpoints = server.endpoints
    try:
        print(
            f"# machine: {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, etcd on loopback\n"
        )
        print(concurrency.run(endpoints))
        print()
        print(query.run(endpoints))
        print()
        print(watch.run(endpoints))
        print()
        print(compare.run(endpoints, sys.argv[1:]))
    finally:
        if server is not None:
            server.close()


if __name__ == "__main__":
    main()
