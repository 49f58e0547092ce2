"""The demo's lab instance requests: created against the demo's Ready workers, moved as the
service's scheduler moves them (``save_async``), and found with the scheduler's queries, the
time conditions evaluated in Rust on the stored timestamps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from .lab_instance_repository import EtcdLabInstanceResourceRepository

STUDENTS = ["ada@university.edu", "bob@university.edu", "cy@university.edu"]


def request(name: str, student: str, worker: Any, **spec: Any) -> dict[str, Any]:
    """A LabInstanceRequest document, as the service's ``to_dict()`` writes one."""
    return {
        "apiVersion": "lab.neuroglia.io/v1",
        "kind": "LabInstanceRequest",
        "metadata": {"name": name, "namespace": "labs", "labels": {"lab-track": "ccna"}},
        "spec": {
            "lab_template": "ccna-basics-v2",
            "duration_minutes": 60,
            "student_email": student,
            "scheduled_start": None,
            **spec,
        },
        "status": {
            "phase": "Pending",
            "worker_name": worker.metadata.name,
            "worker_ref": f"{worker.metadata.namespace}/{worker.metadata.name}",
            "start_time": None,
        },
    }


async def tour(
    instances: EtcdLabInstanceResourceRepository,
    workers: list[Any],
    show: Callable[[str], None],
) -> None:
    show(f"Lab instance requests against the Ready workers ({instances.prefix})")
    now = datetime.now()  # naive local time, as the service writes it
    plan: list[tuple[str, dict[str, Any], datetime | None]] = [
        ("lab-1", {}, None),
        ("lab-2", {"scheduled_start": (now + timedelta(minutes=3)).isoformat()}, None),
        ("lab-3", {}, now - timedelta(minutes=90)),  # running past its 60 minutes
        ("lab-4", {"duration_minutes": 120}, now - timedelta(minutes=90)),
        ("lab-5", {"scheduled_start": (now + timedelta(days=1)).isoformat()}, None),
    ]
    for i, (name, spec, started) in enumerate(plan):
        worker = workers[i % len(workers)]
        doc = await instances.add_async(request(name, STUDENTS[i % 3], worker, **spec))
        if started is not None:  # the scheduler starts it: Pending -> Running, save_async
            doc["status"] = {**doc["status"], "phase": "Running", "start_time": started.isoformat()}
            doc = await instances.save_async(doc)
        print(
            f"  + {name} for {STUDENTS[i % 3]:<19} on {worker.metadata.name:<9} "
            f"{doc['status']['phase']:<8} resource_version={doc['metadata']['resource_version']}"
        )

    def names(found: list[dict[str, Any]]) -> str:
        return ", ".join(d["metadata"]["name"] for d in found) or "-"

    show("The scheduler's queries (field selectors evaluated in Rust, time conditions included)")
    queries = {
        "find_scheduled_pending_async()": instances.find_scheduled_pending_async(),
        "find_running_instances_async()": instances.find_running_instances_async(),
        "find_expired_instances_async()": instances.find_expired_instances_async(),
        f"find_by_student_email_async({STUDENTS[0]!r})": instances.find_by_student_email_async(
            STUDENTS[0]
        ),
        "find_by_namespace_async('labs')": instances.find_by_namespace_async("labs"),
    }
    for call, query in queries.items():
        print(f"  {call:<52}{names(await query)}")
    for phase in ("Pending", "Running", "Completed"):
        count = await instances.count_by_phase_async(phase)
        print(f"  count_by_phase_async({phase + ')':<31}{count:>3}")
    count = await instances.count_by_namespace_async("labs")
    print(f"  {'count_by_namespace_async(labs)':<52}{count:>3}")
