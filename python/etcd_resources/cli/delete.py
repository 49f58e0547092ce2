"""``delete``: remove resources by name or selector. With finalizers, a resource is marked
(deletion_timestamp) and goes when its last finalizer is removed, as the library does."""

from __future__ import annotations

from typing import Any

import click

from .. import EtcdResourcesError, NotFoundError
from . import documents, output
from .connection import Repository, connection_options, run
from .errors import BadUsage, CommandError, Failed, explain
from .selection import Selection, selection_options

__all__ = ["delete"]

Document = dict[str, Any]


@click.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
@selection_options
@click.option("--all", "all_", is_flag=True, help="Every resource under the prefix.")
@click.option("--dry-run", is_flag=True, help="Print what would be deleted, delete nothing.")
@click.option(
    "-y",
    "--yes",
    is_flag=True,
    help="Do not ask when a selector (or --all) matches more than one resource.",
)
@click.option(
    "--unreadable",
    is_flag=True,
    help="Also delete the named resources whose stored document cannot be read (only at the "
    "version read; their finalizers cannot be honoured).",
)
@connection_options
@click.pass_context
def delete(
    ctx: click.Context,
    names: tuple[str, ...],
    selector: str | None,
    field_selector: str | None,
    namespace: str | None,
    all_namespaces: bool,
    all_: bool,
    dry_run: bool,
    yes: bool,
    unreadable: bool,
) -> None:
    """Delete resources by name, by selector (-l, --field-selector) or all of them (--all).

    When a selector matches more than one resource, asks first (--yes does not).

    \b
      etcd-resources delete worker-1 worker-2
      etcd-resources delete -l lab-track=retired --dry-run
      etcd-resources delete broken-worker --unreadable
    """
    if not names and not (selector or field_selector or all_):
        raise BadUsage("say what to delete", "give names, -l/--field-selector, or --all")
    if all_ and (names or selector or field_selector):
        raise BadUsage("--all deletes everything: give no names or selectors with it")
    selection = Selection.of(names, selector, field_selector, namespace, all_namespaces)
    if unreadable:
        if not names or selector or field_selector or dry_run:
            raise BadUsage("--unreadable deletes named resources only: give their names")
        run(ctx, lambda repo: _delete_unreadable(repo, names, namespace))
        return
    run(ctx, lambda repo: _delete(repo, selection, dry_run, yes))


async def _delete_unreadable(
    repo: Repository, names: tuple[str, ...], namespace: str | None
) -> None:
    failed = False
    for name in names:
        try:
            await repo.remove_async(name, namespace, delete_unreadable=True)
        except EtcdResourcesError as e:
            failed = True
            output.error(f"{name}: {explain(e, '').format_message()}")
            continue
        after = await repo.get_async(name, namespace)
        output.write(f"{name} {'deleted' if after is None else _what_happens(dict(after))}\n")
    if failed:
        raise Failed()


async def _delete(repo: Repository, selection: Selection, dry_run: bool, yes: bool) -> None:
    docs, missing = await selection.resolve(repo)
    if not selection.names and len(docs) > 1 and not yes and not dry_run:
        shown = ", ".join(documents.name_of(d) for d in docs[:10])
        more = f" and {len(docs) - 10} more" if len(docs) > 10 else ""
        question = f"Delete {len(docs)} resources under {repo.prefix} ({shown}{more})?"
        try:
            agreed = click.confirm(question, err=True)
        except click.Abort:
            agreed = False
            click.echo(err=True)  # end the question's line
        if not agreed:
            raise CommandError("nothing deleted", "pass --yes to delete without asking")
    failed = bool(missing)
    with output.progress("deleting", total=len(docs)) as advance:
        for doc in docs:
            ref = documents.ref(doc)
            try:
                line = _what_happens(doc) if dry_run else await _remove(repo, doc)
            except EtcdResourcesError as e:
                failed = True
                if isinstance(e, NotFoundError):
                    output.error(f"{ref}: not found (deleted meanwhile)")
                else:
                    output.error(f"{ref}: {explain(e, '').format_message()}")
                continue
            finally:
                advance(1)
            output.write(f"{ref} {line}{' (dry run)' if dry_run else ''}\n")
    if failed:
        raise Failed()


def _what_happens(doc: Document) -> str:
    finalizers = (doc.get("metadata") or {}).get("finalizers") or []
    if finalizers:
        return f"marked for deletion (waiting for finalizers: {', '.join(finalizers)})"
    return "deleted"


async def _remove(repo: Repository, doc: Document) -> str:
    name, namespace = documents.name_of(doc), documents.namespace_of(doc)
    await repo.remove_async(name, namespace)
    after = await repo.get_async(name, namespace)
    if after is None:
        return "deleted"
    return _what_happens(dict(after))
