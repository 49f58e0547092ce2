"""``label`` and ``annotate``: change metadata.labels or metadata.annotations, each resource
with a compare-and-swap (re-read and re-checked on a concurrent change)."""

from __future__ import annotations

import re
from typing import Any

import click

from .. import ConflictError, EtcdResourcesError
from . import documents, output
from .connection import Repository, connection_options, run
from .errors import BadUsage, CommandError, Failed, explain
from .selection import Selection, plain_name, selection_options

__all__ = ["annotate", "label"]

Document = dict[str, Any]
_RETRIES = 5
_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _check_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if (
        not _NAME.match(name)
        or len(name) > 63
        or (prefix and (len(prefix) > 253 or not _PREFIX.match(prefix)))
        or (not prefix and "/" in key)
    ):
        raise BadUsage(
            f"invalid key {key!r}",
            "keys are [prefix/]name, name up to 63 letters, digits, '-', '_', '.'",
        )


def _check_label_value(key: str, value: str) -> None:
    if value and (len(value) > 63 or not _NAME.match(value)):
        raise BadUsage(
            f"invalid value {value!r} of label {key!r}",
            "label values are up to 63 letters, digits, '-', '_', '.'",
        )


def _split(args: tuple[str, ...], labels: bool) -> tuple[list[str], dict[str, str], list[str]]:
    """Names first, then ``key=value`` and ``key-``, as kubectl takes them."""
    names: list[str] = []
    sets: dict[str, str] = {}
    removes: list[str] = []
    for arg in args:
        if "=" in arg:
            key, _, value = arg.partition("=")
            _check_key(key)
            if labels:
                _check_label_value(key, value)
            sets[key] = value
        elif arg.endswith("-") and len(arg) > 1:
            _check_key(arg[:-1])
            removes.append(arg[:-1])
        elif sets or removes:
            raise BadUsage(
                f"{arg!r} after the changes is neither key=value nor key-",
                "give the names first, then the changes",
            )
        else:
            names.append(plain_name(arg))
    if not sets and not removes:
        raise BadUsage("no changes given", "add key=value or key-")
    both = set(sets) & set(removes)
    if both:
        raise BadUsage(f"{', '.join(sorted(both))} both set and removed")
    return names, sets, removes


def _command(name: str, field: str, verb: str) -> click.Command:
    labels = field == "labels"
    what = "label" if labels else "annotation"

    @click.command(
        name,
        help=(
            f"Set (KEY=VALUE) or remove (KEY-) {what}s of resources, each with a "
            f"compare-and-swap. Changing an existing value needs --overwrite.\n\n"
            f"\b\n  etcd-resources {name} worker-1 "
            + ("tier=gold lab-track-" if labels else "note='kernel upgrade due' owner-")
            + f"\n  etcd-resources {name} -l lab-track=ccna "
            + ("tier=silver --overwrite" if labels else "checked=2026-12-01 --overwrite")
        ),
    )
    @click.argument("args", nargs=-1, required=True, metavar="[NAME]... KEY=VALUE... KEY-...")
    @selection_options
    @click.option("--all", "all_", is_flag=True, help="Every resource under the prefix.")
    @click.option(
        "--overwrite", is_flag=True, help=f"Allow changing the value of an existing {what}."
    )
    @click.option(
        "--resource-version",
        metavar="VERSION",
        help="Only if the resource is still at this version (one resource).",
    )
    @click.option("--dry-run", is_flag=True, help="Print what would change, write nothing.")
    @connection_options
    @click.pass_context
    def command(
        ctx: click.Context,
        args: tuple[str, ...],
        selector: str | None,
        field_selector: str | None,
        namespace: str | None,
        all_namespaces: bool,
        all_: bool,
        overwrite: bool,
        resource_version: str | None,
        dry_run: bool,
    ) -> None:
        names, sets, removes = _split(args, labels)
        if not names and not (selector or field_selector or all_):
            raise BadUsage("say which resources", "give names, -l/--field-selector, or --all")
        if resource_version and len(names) != 1:
            raise BadUsage("--resource-version needs exactly one name")
        selection = Selection.of(names, selector, field_selector, namespace, all_namespaces)

        async def work(repo: Repository) -> None:
            docs, missing = await selection.resolve(repo)
            failed = bool(missing)
            for doc in docs:
                try:
                    changed = await _change(
                        repo,
                        selection,
                        doc,
                        field,
                        sets,
                        removes,
                        overwrite,
                        resource_version,
                        dry_run,
                    )
                except EtcdResourcesError as e:
                    output.error(f"{documents.ref(doc)}: {explain(e, '').format_message()}")
                    failed = True
                    continue
                except CommandError as e:
                    output.error(e.format_message())
                    failed = True
                    continue
                state = verb if changed else f"not {verb}"
                output.write(f"{documents.ref(doc)} {state}{' (dry run)' if dry_run else ''}\n")
            if failed:
                raise Failed()

        run(ctx, work)

    return command


async def _change(
    repo: Repository,
    selection: Selection,
    doc: Document,
    field: str,
    sets: dict[str, str],
    removes: list[str],
    overwrite: bool,
    pinned: str | None,
    dry_run: bool,
) -> bool:
    """Apply the changes to one resource; whether anything changed."""
    for attempt in range(_RETRIES):
        if attempt:
            fresh = await selection.get(repo, documents.name_of(doc))
            if fresh is None:
                raise CommandError(f"{documents.ref(doc)}: deleted meanwhile")
            doc = fresh
        meta = dict(doc.get("metadata") or {})
        current = dict(meta.get(field) or {})
        for key, value in sets.items():
            if key in current and current[key] != value and not overwrite:
                raise CommandError(
                    f"{documents.ref(doc)}: {key!r} already has a value ({current[key]}), and "
                    "--overwrite is false",
                    "pass --overwrite to change it; nothing was written",
                )
        wanted = {k: v for k, v in current.items() if k not in removes}
        wanted.update(sets)
        if wanted == current:
            return False
        if dry_run:
            return True
        meta[field] = wanted
        if pinned is not None:
            meta["resource_version"] = pinned
        try:
            await repo.update_async({**doc, "metadata": meta})
            return True
        except ConflictError:
            if pinned is not None:
                raise
    raise CommandError(f"{documents.ref(doc)} kept changing", "run the command again")


label = _command("label", "labels", "labeled")
annotate = _command("annotate", "annotations", "annotated")
