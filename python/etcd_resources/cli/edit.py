"""``edit``: change one resource in an editor, written back with a compare-and-swap on the
version that was opened."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import click

from .. import ConflictError
from . import documents, output
from .connection import Repository, connection_options, run
from .errors import CommandError
from .selection import Selection

__all__ = ["edit"]

Document = dict[str, Any]

_HEADER = """\
# Please edit the object below. Lines beginning with a '#' will be ignored,
# and an empty file will abort the edit. If the object changed in etcd meanwhile,
# this file will be reopened on the current version, with your text kept as a comment.
#
"""


@click.command()
@click.argument("name")
@click.option("-n", "--namespace", metavar="NAMESPACE", help="The resource's namespace.")
@click.option(
    "-o",
    "--output",
    "output_format",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    help="The format to edit in.",
)
@connection_options
@click.pass_context
def edit(ctx: click.Context, name: str, namespace: str | None, output_format: str) -> None:
    """Edit a resource in $EDITOR (ETCD_RESOURCES_EDITOR, VISUAL or EDITOR; vi otherwise).

    Saving writes it with a compare-and-swap on the version opened. If someone changed it
    meanwhile, the editor reopens on the current version with your text kept as a comment.
    An invalid edit is refused and nothing is written; an unchanged one writes nothing.
    """
    selection = Selection.of([name], None, None, namespace, False)
    run(ctx, lambda repo: _edit(repo, selection, output_format))


def _dump(doc: Document, fmt: str) -> str:
    return documents.dump_json(doc) if fmt == "json" else documents.dump_yaml(doc)


def _open_editor(text: str, fmt: str) -> str:
    """The text after the user's editor has run on it."""
    handle, path = tempfile.mkstemp(prefix="etcd-resources-edit-", suffix=f".{fmt}")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        click.edit(filename=path, editor=os.environ.get("ETCD_RESOURCES_EDITOR") or None)
        return Path(path).read_text(encoding="utf-8")
    finally:
        os.unlink(path)


def _keep(text: str) -> str:
    """Save a refused edit where the user can find it."""
    handle, path = tempfile.mkstemp(prefix="etcd-resources-edit-", suffix=".yaml")
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(text)
    return path


def _parse(text: str, original: Document, origin: str) -> Document | None:
    """The edited resource; ``None`` when the file was emptied. Refuses what cannot be
    written."""
    body = "".join(
        line for line in text.splitlines(keepends=True) if not line.lstrip().startswith("#")
    )
    if not body.strip():
        return None
    try:
        resources = documents.parse(body, origin)
    except CommandError as e:
        raise CommandError(
            f"{e.message}; nothing was written", f"your edit is in {_keep(text)}"
        ) from None
    if len(resources) != 1:
        raise CommandError(
            f"the edit holds {len(resources)} resources, not one; nothing was written",
            f"your edit is in {_keep(text)}",
        )
    edited = resources[0]
    for what, before, after in (
        ("metadata.name", documents.name_of(original), documents.name_of(edited)),
        ("metadata.namespace", documents.namespace_of(original), documents.namespace_of(edited)),
    ):
        if before != after:
            raise CommandError(
                f"{what} cannot change ({before!r} to {after!r}): it names the "
                "key; nothing was written",
                f"create a new one with apply; your edit is in {_keep(text)}",
            )
    return edited


async def _edit(repo: Repository, selection: Selection, fmt: str) -> None:
    name = selection.names[0]
    current = await selection.get(repo, name)
    if current is None:
        raise selection.missing(repo, name)
    text = _HEADER + _dump(current, fmt)
    while True:
        original = current
        saved = _open_editor(text, fmt)
        edited = _parse(saved, original, "the edited file")
        if edited is None:
            output.note("Edit cancelled, saved file was empty.")
            return
        # The saved object replaces the stored one (a key removed is removed), except what the
        # store owns, which stays as it was opened (resource_version: the compare-and-swap).
        result = dict(edited)
        meta = dict(result.get("metadata") or {})
        for field in documents.SERVER_FIELDS:
            meta.pop(field, None)
            if field in original.get("metadata", {}):
                meta[field] = original["metadata"][field]
        result["metadata"] = meta
        if documents.without_version(result) == documents.without_version(original):
            output.note("Edit cancelled, no changes made.")
            return
        try:
            await repo.update_async(result)
        except ConflictError:
            current = await selection.get(repo, name)
            if current is None:
                raise CommandError(
                    f"{documents.ref(original)} was deleted while being edited; "
                    "nothing was written",
                    f"your edit is in {_keep(saved)}",
                ) from None
            output.error(
                f"{documents.ref(original)} was changed in etcd since it was opened "
                f"(version {documents.version_of(original)}, now "
                f"{documents.version_of(current)}); reopening on the current version "
                "with your text as a comment"
            )
            text = _reopened(saved, current, fmt)
            continue
        output.write(f"{documents.ref(result)} edited\n")
        return


def _reopened(saved: str, current: Document, fmt: str) -> str:
    mine = [line for line in saved.splitlines() if not line.lstrip().startswith("#")]
    return (
        _HEADER
        + "# The object changed in etcd while you edited it: below is the current version.\n"
        + "# Your text, which was not written, follows as a comment:\n#\n"
        + "".join(f"#   {line}\n" for line in mine)
        + "#\n"
        + _dump(current, fmt)
    )
