"""Documents for tests, and the benchmarks' modules."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

BENCHES = Path(__file__).resolve().parent.parent / "benches"


def worker(name: str, track: str = "ccna", phase: str = "Pending", **meta: Any) -> dict[str, Any]:
    """A LabWorker document in the ``Resource.to_dict()`` shape."""
    return {
        "apiVersion": "lab.neuroglia.io/v1",
        "kind": "LabWorker",
        "metadata": {"name": name, "labels": {"lab-track": track}, **meta},
        "spec": {"lab_track": track, "aws_config": {"instance_type": "c5.2xlarge"}},
        "status": {"phase": phase},
    }


def doc(name: str, **spec: Any) -> dict[str, Any]:
    """A plain resource with ``spec`` and an empty status (the controller tests' documents)."""
    return {"metadata": {"name": name}, "spec": dict(spec), "status": {}}


def bench_module(name: str) -> ModuleType:
    """`benches/<name>.py`, imported as the benchmarks import each other: by bare name, with
    benches/ on the path (it is not a package)."""
    sys.path.insert(0, str(BENCHES))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHES))
