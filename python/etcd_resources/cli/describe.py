"""``describe``: one resource laid out for reading."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.text import Text

from . import documents, output
from .connection import Repository, connection_options, run
from .errors import Failed
from .jsonpath import format_value
from .selection import Selection, selection_options

__all__ = ["describe"]

Document = dict[str, Any]
_KEY = "bold"


@click.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
@selection_options
@connection_options
@click.pass_context
def describe(
    ctx: click.Context,
    names: tuple[str, ...],
    selector: str | None,
    field_selector: str | None,
    namespace: str | None,
    all_namespaces: bool,
) -> None:
    """Show resources in detail: metadata, labels, annotations, spec and status, conditions
    as a table, finalizers, resource version.

    \b
      etcd-resources describe worker-1
      etcd-resources describe -l lab-track=ccna
    """
    selection = Selection.of(names, selector, field_selector, namespace, all_namespaces)
    run(ctx, lambda repo: _describe(repo, selection))


async def _describe(repo: Repository, selection: Selection) -> None:
    docs, missing = await selection.resolve(repo)
    for i, doc in enumerate(docs):
        if i:
            output.write("\n")
        output.write(render(doc))
    if missing:
        raise Failed()


def _field(label: str, value: RenderableType | str, width: int = 20) -> Text:
    line = Text.assemble((f"{label}:", _KEY))
    line.append(" " * max(1, width - len(label) - 1))
    line.append_text(value if isinstance(value, Text) else Text(str(value)))
    return line


def _pairs(label: str, mapping: Any) -> list[Text]:
    if not isinstance(mapping, dict) or not mapping:
        return [_field(label, "<none>")]
    lines = []
    for i, (k, v) in enumerate(mapping.items()):
        text = f"{k}={format_value(v)}"
        lines.append(_field(label, text) if i == 0 else Text(" " * 20 + text))
    return lines


def _when(value: Any) -> str:
    moment = output.parse_time(value)
    if moment is None:
        return "<none>" if value in (None, "") else str(value)
    ago = output.human_duration((datetime.now(UTC) - moment).total_seconds())
    return f"{value} ({ago} ago)"


def render(doc: Document) -> RenderableType:
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    parts: list[RenderableType] = [
        _field("Name", documents.name_of(doc)),
        _field("Namespace", documents.namespace_of(doc) or "<none>"),
        _field("Kind", documents.kind_of(doc)),
        _field("API Version", str(doc.get("apiVersion") or "<none>")),
        *_pairs("Labels", meta.get("labels")),
        *_pairs("Annotations", meta.get("annotations")),
        _field("UID", str(meta.get("uid") or "<none>")),
        _field("Resource Version", str(meta.get("resource_version") or "<none>")),
        _field(
            "Generation", "<none>" if meta.get("generation") is None else str(meta["generation"])
        ),
        _field("Created", _when(meta.get("creation_timestamp"))),
    ]
    finalizers = meta.get("finalizers") or []
    parts.append(_field("Finalizers", ", ".join(map(str, finalizers)) or "<none>"))
    if meta.get("deletion_timestamp"):
        waiting = f"; waiting for finalizers: {', '.join(finalizers)}" if finalizers else ""
        parts.append(
            _field("Deleting", Text(_when(meta["deletion_timestamp"]) + waiting, style="yellow"))
        )
    for section in ("spec", "status"):
        value = doc.get(section)
        if isinstance(value, dict) and value:
            parts.append(Text(f"{section.capitalize()}:", style=_KEY))
            parts += _block(value, 2)
        else:
            parts.append(_field(section.capitalize(), "<none>"))
    extra = {
        k: v
        for k, v in doc.items()
        if k not in ("apiVersion", "kind", "metadata", "spec", "status")
    }
    if extra:
        parts.append(Text("Other:", style=_KEY))
        parts += _block(extra, 2)
    return Group(*parts)


def _scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _is_table(value: Any) -> bool:
    """A list of flat mappings (conditions and the like) reads best as a table."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and all(map(_scalar, v.values())) for v in value)
    )


def _block(mapping: dict[str, Any], indent: int) -> list[RenderableType]:
    width = max((len(str(k)) for k in mapping), default=0) + 2
    pad = " " * indent
    parts: list[RenderableType] = []
    for key, value in mapping.items():
        label = Text.assemble(pad, (f"{key}:", _KEY))
        if _is_table(value):
            parts.append(label)
            headers: list[str] = []
            for row in value:
                headers += [h for h in row if h not in headers]
            cells = [[_describe_value(row.get(h)) for h in headers] for row in value]
            grid = output.table([h.upper().replace("_", " ") for h in headers], cells)
            parts.append(Padding(grid, (0, 0, 0, indent + 2)))
        elif isinstance(value, dict) and value:
            parts.append(label)
            parts += _block(value, indent + 2)
        elif isinstance(value, list) and value and not all(map(_scalar, value)):
            parts.append(label)
            for item in value:
                if isinstance(item, dict) and item:
                    inner = _block(item, indent + 4)
                    first = inner[0]
                    if isinstance(first, Text):
                        first = Text(pad + "  - ") + first[indent + 4 :]
                    parts += [first, *inner[1:]]
                else:
                    parts.append(Text(pad + "  - " + _describe_value(item)))
        else:
            label.append(" " * (width - len(str(key)) - 1))
            text = _describe_value(value).rstrip("\n")
            if "\n" in text:
                text = text.replace("\n", "\n" + pad + " " * width)
            label.append(text)
            parts.append(label)
    return parts


def _describe_value(value: Any) -> str:
    if value is None or value == [] or value == {}:
        return "<none>"
    if isinstance(value, list):
        return ", ".join(_describe_value(v) for v in value)
    return format_value(value)
