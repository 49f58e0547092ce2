"""``apply -f``: make etcd hold what files say. Absent resources are created; present ones get
the sections the file gives (spec, status, labels, annotations, ...; what it omits stays),
written with a compare-and-swap; equal ones are left alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click

from .. import AlreadyExistsError, ConflictError, EtcdResourcesError
from . import documents, output
from .connection import Repository, connection_options, run
from .errors import CommandError, Failed, explain

__all__ = ["apply"]

Document = dict[str, Any]
_RETRIES = 5


@click.command()
@click.option(
    "-f",
    "--filename",
    "files",
    multiple=True,
    required=True,
    metavar="FILE",
    help="A YAML or JSON file (several documents, or a List), a directory of them, "
    "or - for standard input. Repeatable.",
)
@click.option("-R", "--recursive", is_flag=True, help="Read directories' subdirectories too.")
@click.option(
    "--dry-run", is_flag=True, help="Print what would be done, and the difference, without writing."
)
@connection_options
@click.pass_context
def apply(ctx: click.Context, files: tuple[str, ...], recursive: bool, dry_run: bool) -> None:
    """Create or update resources from files.

    A file's metadata.resource_version (as get -o yaml writes it) makes the update a
    compare-and-swap on that version: if the resource changed since, nothing is written.
    Without one, the update is a compare-and-swap on the version just read, retried on a
    concurrent change.

    \b
      etcd-resources apply -f worker-1.yaml
      etcd-resources get -l lab-track=ccna -o yaml > ccna.yaml
      etcd-resources apply -f ccna.yaml --dry-run
    """
    sources = documents.load_files(files, recursive)
    if not sources:
        raise CommandError(
            f"no resources in {', '.join(files)}", "give YAML or JSON files (.yaml, .yml, .json)"
        )
    run(ctx, lambda repo: _apply(ctx, repo, sources, dry_run))


@dataclass
class _Plan:
    desired: Document
    current: Document | None
    result: Document  # what will be stored

    @property
    def action(self) -> str:
        if self.current is None:
            return "created"
        same = documents.without_version(self.result) == documents.without_version(self.current)
        return "unchanged" if same else "configured"


async def _plan(repo: Repository, desired: Document, origin: str) -> _Plan:
    name = documents.name_of(desired)
    current = await repo.get_async(name, documents.namespace_of(desired))
    if current is None:
        if documents.version_of(desired) is not None:
            raise CommandError(
                f"{origin}: {documents.ref(desired)} has metadata.resource_version but does not "
                "exist (deleted since it was read?)",
                "remove resource_version from the file to create it",
            )
        return _Plan(desired, None, documents.for_create(desired))
    current = dict(current)
    result = documents.merged(current, desired)
    pinned = documents.version_of(desired)
    if pinned is not None:
        result["metadata"]["resource_version"] = pinned
    return _Plan(desired, current, result)


async def _apply(
    ctx: click.Context, repo: Repository, sources: list[documents.Source], dry_run: bool
) -> None:
    # Read and check everything first: a bad name or a missing resource stops before writing.
    plans = [await _plan(repo, s.resource, s.origin) for s in sources]
    failed = False
    with output.progress("applying", total=len(plans)) as advance:
        for source, plan in zip(sources, plans, strict=True):
            try:
                action = plan.action if dry_run else await _write(repo, source, plan)
            except EtcdResourcesError as e:
                failed = True
                output.error(f"{documents.ref(plan.desired)}: {explain(e, '').format_message()}")
                continue
            finally:
                advance(1)
            suffix = " (dry run)" if dry_run else ""
            output.write(f"{documents.ref(plan.desired)} {action}{suffix}\n")
            if dry_run and action != "unchanged":
                before = (
                    ""
                    if plan.current is None
                    else documents.dump_yaml(documents.without_version(plan.current))
                )
                after = documents.dump_yaml(documents.without_version(plan.result))
                output.write(output.diff(before, after, documents.ref(plan.desired)))
    if failed:
        raise Failed()


async def _write(repo: Repository, source: documents.Source, plan: _Plan) -> str:
    """Write one plan; on a concurrent change, plan again (unless the file pinned a version)."""
    for _ in range(_RETRIES):
        action = plan.action
        try:
            if action == "created":
                await repo.add_async(plan.result)
            elif action == "configured":
                await repo.update_async(plan.result)
            return action
        except (ConflictError, AlreadyExistsError):
            if documents.version_of(plan.desired) is not None:
                raise
            plan = await _plan(repo, source.resource, source.origin)
    raise CommandError(
        f"{documents.ref(plan.desired)} kept changing while being applied", "run apply again"
    )
