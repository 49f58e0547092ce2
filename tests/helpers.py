"""Documents for tests."""

from __future__ import annotations

from typing import Any


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
