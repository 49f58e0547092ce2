"""``get``: resources as a table, JSON, YAML, names, a JSONPath template or custom columns;
``-w`` to follow the changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .. import EventType
from . import documents, output
from .connection import Repository, connection_options, run
from .errors import BadUsage, Failed
from .jsonpath import JsonPathError
from .kinds import take_kind
from .output import Format, Row
from .selection import Selection, selection_options

__all__ = ["get"]

Document = dict[str, Any]


def output_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-o",
        "--output",
        "output_format",
        metavar="FORMAT",
        help="table (default), wide, json, yaml, name, jsonpath=TEMPLATE "
        "('{.items[*].metadata.name}'), custom-columns=HEADER:PATH,...",
    )(f)


@click.command()
@click.argument("names", nargs=-1, metavar="[KIND] [NAME]...")
@selection_options
@output_option
@click.option("--sort-by", metavar="PATH", help="Sort a listing by a field ('.status.phase').")
@click.option(
    "--chunk-size",
    type=click.IntRange(min=0),
    default=500,
    show_default=True,
    help="Read large prefixes in pages of this many resources (all at one "
    "revision); 0 reads them in one listing.",
)
@click.option(
    "-w",
    "--watch",
    is_flag=True,
    help="After the listing, print each change as it happens, with its type.",
)
@click.option("--watch-only", is_flag=True, help="Print the changes only, not the listing.")
@click.option(
    "--output-watch-events",
    is_flag=True,
    help="With -w and -o json|yaml: each change as {type, object}.",
)
@click.option("--show-labels", is_flag=True, help="Add a LABELS column.")
@click.option("--no-headers", is_flag=True, help="Tables without their header line.")
@connection_options
@click.pass_context
def get(
    ctx: click.Context,
    names: tuple[str, ...],
    selector: str | None,
    field_selector: str | None,
    namespace: str | None,
    all_namespaces: bool,
    output_format: str | None,
    sort_by: str | None,
    chunk_size: int,
    watch: bool,
    watch_only: bool,
    output_watch_events: bool,
    show_labels: bool,
    no_headers: bool,
) -> None:
    """Print resources: the named ones, or every one the selectors match. A first word
    labworkers or labinstancerequests names the kind (lab instance requests are under
    ETCD_LAB_INSTANCE_PREFIX, default /lab-instance-requests/, unless --prefix says).

    \b
      etcd-resources get
      etcd-resources get labinstancerequests
      etcd-resources get worker-1 -o yaml
      etcd-resources get -l lab-track=ccna --field-selector status.phase=Ready -o wide
      etcd-resources get -o jsonpath='{range .items[*]}{.metadata.name}{"\\n"}{end}'
      etcd-resources get -w
    """
    names = take_kind(ctx, names)
    selection = Selection.of(names, selector, field_selector, namespace, all_namespaces)
    fmt = Format.parse(output_format)
    try:
        sort = output.sort_key(sort_by) if sort_by else None
    except JsonPathError as e:
        raise BadUsage(f"invalid --sort-by: {e}") from None
    view = _View(fmt, all_namespaces, show_labels, no_headers, output_watch_events)
    if watch or watch_only:
        run(ctx, lambda repo: _watch(repo, selection, view, sort, watch_only))
        return
    run(ctx, lambda repo: _get(repo, selection, view, sort, chunk_size))


class _View:
    def __init__(
        self, fmt: Format, namespaces: bool, labels: bool, no_headers: bool, events: bool
    ) -> None:
        self.fmt = fmt
        self.namespaces = namespaces
        self.labels = labels
        self.no_headers = no_headers
        self.events = events
        self.rows: Row | None = None
        self.printed = 0

    def columns(self, docs: list[Document]) -> list[output.Column]:
        if self.fmt.kind == "custom-columns":
            return output.custom_columns(self.fmt)
        return output.columns_for(
            docs, wide=self.fmt.kind == "wide", namespaces=self.namespaces, labels=self.labels
        )

    def table(self, docs: list[Document]) -> None:
        columns = self.columns(docs)
        rows = [[f(d) for _, f in columns] for d in docs]
        output.write(output.table([h for h, _ in columns], rows, show_header=not self.no_headers))

    def event(self, kind: str, docs: list[Document], context: list[Document]) -> None:
        """Changes of a watch, one row (or document) each."""
        if self.fmt.is_table:
            if self.rows is None:
                self.rows = Row(self.columns(context or docs), not self.no_headers)
            self.rows.print([self.rows.cells(kind, d) for d in docs])
            return
        for doc in docs:
            value: Any = {"type": kind, "object": doc} if self.events else doc
            if self.fmt.kind == "json":
                text = documents.dump_json(value)
            elif self.fmt.kind == "yaml":
                text = ("---\n" if self.printed else "") + documents.dump_yaml(value)
            elif self.fmt.kind == "name":
                text = documents.ref(doc) + "\n"
            else:
                assert self.fmt.template is not None
                text = self.fmt.template.render(doc)
            self.printed += 1
            output.write(text)


async def _get(
    repo: Repository,
    selection: Selection,
    view: _View,
    sort: Callable[[Document], Any] | None,
    chunk_size: int,
) -> None:
    missing: list[str] = []
    if selection.names:
        docs, missing = await selection.named(repo)
    else:
        docs = await selection.listed(repo, chunk_size)
    if sort is not None:
        docs.sort(key=sort)
    single = len(selection.names) == 1
    if view.fmt.is_table:
        if docs:
            view.table(docs)
        elif not selection.names:
            selection.nothing_found(repo)
    elif docs or not single:
        output.write(output.render_documents(view.fmt, docs, single=single))
    if not selection.names:
        await _mark_unreadable(repo)
    if missing:
        raise Failed()


async def _mark_unreadable(repo: Repository) -> None:
    """Name, on stderr, each stored document under the prefix that cannot be read: lists skip
    them, so without this they would be invisible."""
    for bad in await repo.find_unreadable_async():
        output.note(
            f"{bad.name}  UNREADABLE at resource_version {bad.resource_version}: {bad.reason} "
            f"(delete it with: etcd-resources delete {bad.name} --unreadable)"
        )


async def _watch(
    repo: Repository,
    selection: Selection,
    view: _View,
    sort: Callable[[Document], Any] | None,
    watch_only: bool,
) -> None:
    initial: list[Document] | None = None if watch_only else []
    async for event in repo.watch(
        namespace=selection.namespace,
        label_selector=selection.selector,
        field_selector=selection.watch_fields(),
        send_initial=not watch_only,
    ):
        if event.type is EventType.BOOKMARK:
            if initial is not None:
                if sort is not None:
                    initial.sort(key=sort)
                if initial:
                    view.event(EventType.ADDED.value, initial, initial)
                initial = None
            continue
        doc = dict(event.resource)
        if initial is not None:
            initial.append(doc)
        else:
            view.event(event.type.value, [doc], [])
