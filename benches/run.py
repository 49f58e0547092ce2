"""Run the benchmarks against a real etcd started for the run (or ETCD_ENDPOINTS).

make bench                       # builds the release extension first; 3 rounds
make bench ARGS="--rounds 1"     # quicker; ARGS go to compare.py (--quick, --only pkg,rust)
python benches/run.py

compare.py also draws its plots into docs/assets/benchmarks/ (ARGS="--plots DIR": elsewhere).
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import compare
import concurrency
import controller_replicas
import decode
import query
import typed
import watch
from common import etcd_endpoints

import controller

PLOTS = Path(__file__).resolve().parent.parent / "docs" / "assets" / "benchmarks"


def main() -> None:
    with etcd_endpoints() as endpoints:
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
        print(decode.run())
        print()
        print(typed.run(endpoints))
        print()
        print(controller.run(endpoints))
        print()
        print(controller_replicas.run(endpoints))
        print()
        print(compare.run(endpoints, ["--plots", str(PLOTS), *sys.argv[1:]]))


if __name__ == "__main__":
    main()
