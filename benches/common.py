"""Documents and helpers shared by the benchmarks."""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

PHASES = ["Pending", "Ready", "Draining", "Active", "Stopping", "Failed", "Terminated", "Licensing"]
TRACKS = ["ccna", "ccnp", "devnet", "ccie", "security"]


def lab_worker(i: int) -> dict[str, Any]:
    """A LabWorker document of about 1.9 KB of JSON, like the service stores."""
    track = TRACKS[i % len(TRACKS)]
    return {
        "apiVersion": "lab.neuroglia.io/v1",
        "kind": "LabWorker",
        "metadata": {
            "name": f"worker-{i:05}",
            "namespace": "lab-workers",
            "uid": f"6f1c2d7e-8a4b-4c3d-9e2f-{i:012}",
            "labels": {"lab-track": track, "region": "eu-west-1", "tier": "standard"},
            "annotations": {"lab.neuroglia.io/owner": "team-platform"},
            "creation_timestamp": "2026-11-20T10:00:00.000000+00:00",
            "finalizers": ["lab.neuroglia.io/cleanup"],
        },
        "spec": {
            "lab_track": track,
            "aws_config": {
                "ami_id": "ami-0c55b159cbfafe1f0",
                "instance_type": "c5.2xlarge",
                "key_name": "lab-workers",
                "vpc_id": "vpc-0a1b2c3d4e5f6a7b8",
                "subnet_id": "subnet-0123456789abcdef0",
                "security_group_ids": ["sg-0123456789abcdef0", "sg-0fedcba9876543210"],
                "assign_public_ip": True,
                "ebs_volume_size_gb": 500,
                "ebs_volume_type": "gp3",
                "ebs_iops": 3000,
                "iam_instance_profile": "lab-worker-profile",
                "tags": {"Project": "labs", "Environment": "production", "CostCenter": "4242"},
            },
            "cml_config": {
                "license_token": "tok-" + "x" * 40,
                "admin_username": "admin",
                "api_base_url": f"https://worker-{i:05}.labs.example.com/api/v0",
                "max_nodes_unlicensed": 5,
                "max_nodes_licensed": 520,
                "enable_telemetry": False,
            },
            "desired_phase": "Ready",
            "auto_license": True,
            "enable_draining": True,
        },
        "status": {
            "phase": PHASES[i % len(PHASES)],
            "conditions": [
                {
                    "type": "EC2Ready",
                    "status": "True",
                    "last_transition": "2026-11-20T10:05:00+00:00",
                    "reason": "InstanceRunning",
                    "message": "The EC2 instance is running and passed its status checks",
                },
                {
                    "type": "Licensed",
                    "status": "True",
                    "last_transition": "2026-11-20T10:09:00+00:00",
                    "reason": "LicenseApplied",
                    "message": "The CML license was registered",
                },
            ],
            "ec2_instance_id": f"i-0abc{i:013}",
            "public_ip": "203.0.113.10",
            "private_ip": "10.0.12.34",
            "ec2_state": "running",
            "cml_version": "2.7.2",
            "cml_ready": True,
            "cml_licensed": True,
            "capacity": {
                "total_cpu_cores": 64,
                "allocated_cpu_cores": 16,
                "total_memory_mb": 262144,
                "allocated_memory_mb": 65536,
                "total_storage_gb": 500,
                "max_concurrent_labs": 8,
            },
            "hosted_lab_ids": ["lab-001", "lab-002"],
            "active_lab_count": 2,
            "error_count": 0,
            "observed_generation": 1,
            "last_updated": "2026-11-20T10:10:00+00:00",
        },
    }


@contextmanager
def etcd_endpoints() -> Iterator[list[str]]:
    """ETCD_ENDPOINTS if set, else the endpoints of an etcd started for the run (and stopped)."""
    if os.environ.get("ETCD_ENDPOINTS"):
        yield os.environ["ETCD_ENDPOINTS"].split(",")
        return
    from etcd_resources.testing import EtcdServer

    server = EtcdServer().start()
    try:
        yield server.endpoints
    finally:
        server.close()


async def median_time(fn: Callable[[], Awaitable[Any]], rounds: int) -> float:
    """Median wall time of `rounds` runs of `fn`, after one warm-up run."""
    await fn()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def percentile(samples: list[float], p: float) -> float:
    """The nearest-rank `p`th percentile (0-100) of `samples`."""
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]
