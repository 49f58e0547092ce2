"""``status``: one screen for the people on call. Each endpoint's health, version, leader,
database size in use against the quota, alarms; the current and the compacted revision; and
for the prefix the number of resources (by phase for LabWorkers) and of unreadable keys.
Exit 1 when a member cannot be asked, has no leader, or an alarm is active."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import click

from ..config import EtcdSettings
from . import output
from .connection import Repository, connection_options, run, settings_of
from .errors import Failed
from .quota import quota_from_metrics

__all__ = ["status"]

Report = dict[str, Any]


@click.command()
@click.option(
    "-o",
    "--output",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    help="table (default) or json.",
)
@connection_options
@click.pass_context
def status(ctx: click.Context, output_format: str) -> None:
    """Show etcd's health and what the prefix holds (reads the whole prefix once).

    \b
      etcd-resources status
      etcd-resources status -o json
    """
    settings, _ = settings_of(ctx)
    report = run(ctx, lambda repo: gather(repo, settings))
    if output_format == "json":
        output.write(json.dumps(report, indent=2) + "\n")
    else:
        show(report)
    if report["problems"]:
        for problem in report["problems"]:
            output.error(problem)
        raise Failed()


async def gather(repo: Repository, settings: EtcdSettings) -> Report:
    """Everything ``status`` shows, as plain data (the ``-o json`` document)."""
    client = repo.client
    members = await client.members()
    for m in members:
        if m["error"] is None and m["db_size_quota"] is None:
            m["db_size_quota"] = await asyncio.to_thread(
                quota_from_metrics, m["endpoint"], settings
            )
    unreadable = await repo.find_unreadable_async()
    docs = await repo.list_async()
    kinds = Counter(str(d.get("kind") or "") for d in docs)
    phases = Counter(
        str((d.get("status") or {}).get("phase") or "")
        for d in docs
        if d.get("kind") == "LabWorker"
    )
    problems: list[str] = []
    alarms: set[tuple[str, str]] = set()
    for m in members:
        m["healthy"] = m["error"] is None and m["leader"] != "0" and not m["alarms"]
        alarms.update((member, alarm) for member, alarm in m["alarms"])
        if m["error"] is not None:
            problems.append(f"{m['endpoint']}: {m['error']}")
        elif m["leader"] == "0":
            problems.append(f"{m['endpoint']}: no leader")
        quota = m["db_size_quota"]
        m["db_size_used_of_quota"] = round(m["db_size"] / quota, 3) if quota else None
    for member, alarm in sorted(alarms):
        hint = (
            "compact, defragment, then etcdctl alarm disarm (see docs/operations.md)"
            if alarm == "NOSPACE"
            else "see docs/operations.md"
        )
        problems.append(f"alarm {alarm} on member {member}: {hint}")
    asked = [m for m in members if m["error"] is None]
    return {
        "endpoints": members,
        "revision": max((m["revision"] for m in asked), default=await client.current_revision()),
        "compacted_revision": await client.compacted_revision(repo.prefix),
        "prefix": repo.prefix,
        "resources": len(docs),
        "kinds": dict(sorted(kinds.items())),
        "phases": dict(sorted(phases.items())) if phases else None,
        "unreadable": [
            {"name": u.name, "resource_version": u.resource_version, "reason": u.reason}
            for u in unreadable
        ],
        "problems": problems,
    }


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def show(report: Report) -> None:
    """Print the table form of a report."""
    rows = []
    for m in report["endpoints"]:
        if m["error"] is not None:
            rows.append([m["endpoint"], "UNREACHABLE", "", "", "", "", m["error"]])
            continue
        quota = m["db_size_quota"]
        size = f"{_size(m['db_size_in_use'])} in use / {_size(m['db_size'])} file"
        size += f" / {_size(quota)} quota" if quota else " (quota unknown)"
        leader = "self" if m["is_leader"] else (m["leader"] if m["leader"] != "0" else "NONE")
        alarms = ",".join(a for _, a in m["alarms"]) or "-"
        health = "healthy" if m["healthy"] else "UNHEALTHY"
        rows.append([m["endpoint"], health, m["version"], m["member_id"], leader, size, alarms])
    if rows:
        headers = ["ENDPOINT", "HEALTH", "VERSION", "MEMBER", "LEADER", "DATABASE", "ALARMS"]
        output.write(output.table(headers, rows))
    else:
        output.write("embedded store (memory://): no etcd members\n")
    lines: list[str] = []
    lines.append(f"revision {report['revision']}, compacted to {report['compacted_revision']}\n")
    lines.append(f"prefix {report['prefix']}: {report['resources']} resources")
    if report["phases"]:
        by_phase = ", ".join(f"{p or '(none)'} {n}" for p, n in report["phases"].items())
        lines.append(f" (LabWorkers by phase: {by_phase})")
    lines.append(f", {len(report['unreadable'])} unreadable\n")
    for u in report["unreadable"]:
        lines.append(f"  {u['name']}  UNREADABLE at resource_version {u['resource_version']}\n")
    output.write("".join(lines))
