"""Everything the command line prints: Rich consoles (colour only on a terminal), tables as
kubectl lays them out, ``-o`` formats, ages, diffs, progress.

Tables are Rich tables rendered at their natural width (never squeezed to the terminal's or
cut to 80 columns in a pipe), trailing blanks removed, three spaces between columns.
"""

from __future__ import annotations

import difflib
import io
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import click
from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table
from rich.text import Text

from . import documents
from .errors import BadUsage, one_line
from .jsonpath import JsonPathError, Template, format_value, parse_path

__all__ = [
    "Format",
    "Row",
    "age",
    "diff",
    "err",
    "out",
    "progress",
    "write",
]

Document = dict[str, Any]


@cache
def out() -> Console:
    """Standard output; colour and styles only on a terminal (and not under NO_COLOR)."""
    return Console(highlight=False, soft_wrap=True, emoji=False)


@cache
def err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def write(renderable: RenderableType | str, *, console: Console | None = None) -> None:
    """Print at the renderable's natural width, blanks at line ends removed, and flush (a
    watch's lines reach a pipe as they happen)."""
    target = console or out()
    if isinstance(renderable, str):
        target.file.write(renderable)
        target.file.flush()
        return
    buffer = Console(
        file=io.StringIO(),
        width=100_000,
        color_system=target.color_system,  # type: ignore[arg-type]
        force_terminal=target.is_terminal,
        no_color=target.no_color,
        highlight=False,
        emoji=False,
    )
    buffer.print(renderable)
    text = buffer.file.getvalue()  # type: ignore[attr-defined]
    target.file.write("".join(line.rstrip() + "\n" for line in text.splitlines()))
    target.file.flush()


def error(message: str) -> None:
    """One line on stderr: ``error: ...``."""
    console = err()
    line = Text.assemble(("error:", "bold red"), " ")
    line.append(one_line(message))
    write(line, console=console)


def note(message: str) -> None:
    """A remark on stderr (``No resources found ...``)."""
    write(Text(message, style="dim"), console=err())


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """A transient progress bar on stderr while work goes on, only when both standard output
    and standard error are terminals; yields ``advance(n)``."""
    if not (out().is_terminal and err().is_terminal):
        yield lambda n: None
        return
    columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn()]
    else:
        columns += [TextColumn("{task.completed}")]
    with Progress(*columns, console=err(), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


# -- ages --------------------------------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    """A stored timestamp (ISO text; one without a zone is read as UTC)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def human_duration(seconds: float) -> str:
    """kubectl's ages: ``45s``, ``5m30s``, ``3h20m``, ``5d``, ``2y30d``."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24 % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def age(doc: Document) -> str:
    created = parse_time(_get(doc, "metadata", "creation_timestamp"))
    if created is None:
        return "<unknown>"
    return human_duration((datetime.now(UTC) - created).total_seconds())


# -- columns -----------------------------------------------------------------------------------


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _text(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "<none>"
    return format_value(value)


_PHASE_STYLES = {
    "Ready": "green",
    "Active": "green",
    "Running": "green",
    "Failed": "bold red",
    "Terminated": "dim",
    "Draining": "yellow",
    "Stopping": "yellow",
    "Pending": "cyan",
}


def _phase(doc: Document) -> Text:
    phase = _get(doc, "status", "phase")
    text = _text(phase)
    if _get(doc, "metadata", "deletion_timestamp"):
        text += " (deleting)"
    return Text(text, style=_PHASE_STYLES.get(str(phase), ""))


def _track(doc: Document) -> str:
    track = _get(doc, "spec", "lab_track") or _get(doc, "metadata", "labels", "lab-track")
    return _text(track)


def _labs(doc: Document) -> str:
    count = _get(doc, "status", "active_lab_count")
    most = _get(doc, "status", "capacity", "max_concurrent_labs")
    if count is None:
        return "<none>"
    return f"{count}/{most}" if most else str(count)


def _ip(doc: Document) -> str:
    return _text(_get(doc, "status", "public_ip") or _get(doc, "status", "private_ip"))


def _labels(doc: Document) -> str:
    labels = _get(doc, "metadata", "labels")
    if not isinstance(labels, dict) or not labels:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in labels.items())


Cell = str | Text
Column = tuple[str, Callable[[Document], Cell]]

NAME: Column = ("NAME", documents.name_of)
NAMESPACE: Column = ("NAMESPACE", lambda d: _text(documents.namespace_of(d)))
PHASE: Column = ("PHASE", _phase)
AGE: Column = ("AGE", age)
LABELS: Column = ("LABELS", _labels)

LAB_WORKER = [NAME, PHASE, ("TRACK", _track), AGE]
LAB_WORKER_WIDE = [
    NAME,
    PHASE,
    ("TRACK", _track),
    ("LABS", _labs),
    ("INSTANCE", lambda d: _text(_get(d, "status", "ec2_instance_id"))),
    ("EC2", lambda d: _text(_get(d, "status", "ec2_state"))),
    ("IP", _ip),
    AGE,
]


def _start(doc: Document) -> str:
    """When the instance started (``5m ago``), or is scheduled to (``in 10m``); a time
    without a zone is local time, as the service writes ``datetime.now()``."""
    started = _get(doc, "status", "start_time")
    value = started or _get(doc, "spec", "scheduled_start")
    if not isinstance(value, str) or not value:
        return "<none>"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return value
    seconds = (datetime.now(UTC) - moment).total_seconds()
    if seconds >= 0 or started:
        return f"{human_duration(max(seconds, 0))} ago"
    return f"in {human_duration(-seconds)}"


LAB_INSTANCE = [
    NAME,
    PHASE,
    ("STUDENT", lambda d: _text(_get(d, "spec", "student_email"))),
    ("START", _start),
    AGE,
]


def columns_for(
    items: Sequence[Document], *, wide: bool, namespaces: bool, labels: bool
) -> list[Column]:
    """LabWorkers: NAME, PHASE, TRACK, AGE (wide: labs, instance, EC2 state, IP).
    LabInstanceRequests: NAME, PHASE, STUDENT, START, AGE. Others: NAME, PHASE where any has
    ``status.phase``, AGE (wide: KIND and GENERATION too)."""
    if items and all(documents.kind_of(d) == "LabWorker" for d in items):
        columns = list(LAB_WORKER_WIDE if wide else LAB_WORKER)
    elif items and all(documents.kind_of(d) == "LabInstanceRequest" for d in items):
        columns = list(LAB_INSTANCE)
    else:
        columns = [NAME]
        if wide:
            columns.append(("KIND", documents.kind_of))
        if any(_get(d, "status", "phase") is not None for d in items):
            columns.append(PHASE)
        if wide:
            columns.append(("GENERATION", lambda d: _text(_get(d, "metadata", "generation"))))
        columns.append(AGE)
    if namespaces:
        columns.insert(0, NAMESPACE)
    if labels:
        columns.append(LABELS)
    return columns


def table(
    headers: Sequence[str], rows: Sequence[Sequence[Cell]], *, show_header: bool = True
) -> Table:
    """A kubectl-style table: no borders, bold headers on a terminal, 3 spaces apart."""
    grid = Table(
        box=None,
        show_header=show_header,
        header_style="bold",
        pad_edge=False,
        show_edge=False,
        padding=(0, 3, 0, 0),
    )
    for header in headers:
        grid.add_column(header, no_wrap=True, overflow="ignore")
    for row in rows:
        grid.add_row(*(cell if isinstance(cell, Text) else Text(cell) for cell in row))
    return grid


# -- output formats ----------------------------------------------------------------------------

FORMATS = ("table", "wide", "json", "yaml", "name", "jsonpath=TEMPLATE", "custom-columns=SPEC")


@dataclass(frozen=True)
class Format:
    """An ``-o`` value."""

    kind: str
    template: Template | None = None
    custom: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, value: str | None) -> Format:
        if value in (None, "", "table"):
            return cls("table")
        assert value is not None
        if value in ("wide", "json", "yaml", "name"):
            return cls(value)
        kind, _, arg = value.partition("=")
        try:
            if kind == "jsonpath" and arg:
                return cls("jsonpath", template=Template(arg))
            if kind == "custom-columns" and arg:
                specs = []
                for spec in arg.split(","):
                    header, sep, path = spec.partition(":")
                    if not sep or not header or not path:
                        raise JsonPathError(f"{spec!r} is not HEADER:PATH")
                    parse_path(path)
                    specs.append((header, path))
                return cls("custom-columns", custom=tuple(specs))
        except JsonPathError as e:
            raise BadUsage(f"invalid -o {kind}: {e}") from None
        raise BadUsage(f"unknown output format {value!r}", f"use one of {', '.join(FORMATS)}")

    @property
    def is_table(self) -> bool:
        return self.kind in ("table", "wide", "custom-columns")


def custom_columns(fmt: Format) -> list[Column]:
    def cell(path: str) -> Callable[[Document], Cell]:
        parsed = parse_path(path)
        return lambda d: ",".join(format_value(v) for v in parsed.find(d, d)) or "<none>"

    return [(header, cell(path)) for header, path in fmt.custom]


def render_documents(fmt: Format, docs: Sequence[Document], *, single: bool) -> str:
    """``-o json|yaml|name|jsonpath``: one resource as itself, several (or a listing) as a
    ``List``."""
    value: Document = docs[0] if single and len(docs) == 1 else documents.to_list(docs)
    if fmt.kind == "json":
        return documents.dump_json(value)
    if fmt.kind == "yaml":
        return documents.dump_yaml(value)
    if fmt.kind == "name":
        return "".join(documents.ref(d) + "\n" for d in docs)
    assert fmt.template is not None
    return fmt.template.render(value)


def sort_key(path: str) -> Callable[[Document], tuple[int, Any]]:
    """``--sort-by``: numbers as numbers, then text; a document without the field first."""
    parsed = parse_path(path)

    def key(doc: Document) -> tuple[int, Any]:
        found = parsed.find(doc, doc)
        if not found or found[0] is None:
            return (0, "")
        value = found[0]
        if isinstance(value, bool):
            return (1, int(value))
        if isinstance(value, int | float):
            return (1, value)
        if isinstance(value, str):
            return (2, value)
        return (3, json.dumps(value, sort_keys=True))

    return key


# -- rows of a watch -----------------------------------------------------------------------


_EVENT_STYLES = {"ADDED": "green", "MODIFIED": "yellow", "DELETED": "red"}


class Row:
    """Table rows printed one at a time (a watch): columns as wide as the first rows need,
    growing when a later value is longer."""

    def __init__(self, columns: list[Column], show_header: bool) -> None:
        self.columns = columns
        self.headers = ["EVENT"] + [h for h, _ in columns]
        # Rows come one at a time: room for common values from the start, so that most rows
        # line up; a longer value widens its column from then on.
        self.widths = [max(len(h), 10) for h in self.headers]
        self.widths[0] = len("MODIFIED")
        self.show_header = show_header
        self.started = False

    def cells(self, event: str, doc: Document) -> list[Cell]:
        return [Text(event, style=_EVENT_STYLES.get(event, ""))] + [f(doc) for _, f in self.columns]

    def print(self, rows: list[list[Cell]]) -> None:
        for row in rows:
            for i, cell in enumerate(row):
                self.widths[i] = max(self.widths[i], len(cell))
        lines: list[Text] = []
        if not self.started and self.show_header:
            lines.append(self._line([Text(h, style="bold") for h in self.headers]))
        self.started = True
        lines += [self._line(row) for row in rows]
        for line in lines:
            write(line)

    def _line(self, row: Sequence[Cell]) -> Text:
        line = Text()
        for i, cell in enumerate(row):
            text = cell if isinstance(cell, Text) else Text(cell)
            line.append_text(text)
            if i < len(row) - 1:
                line.append(" " * (self.widths[i] - len(text) + 3))
        return line


def diff(before: str, after: str, name: str) -> Text:
    """A unified diff of two YAML texts, coloured on a terminal."""
    lines = difflib.unified_diff(
        before.splitlines(),
        after.splitlines(),
        f"{name} (stored)",
        f"{name} (applied)",
        lineterm="",
    )
    text = Text()
    for line in lines:
        style = (
            "bold"
            if line.startswith(("---", "+++"))
            else "cyan"
            if line.startswith("@@")
            else "green"
            if line.startswith("+")
            else "red"
            if line.startswith("-")
            else ""
        )
        text.append(line + "\n", style=style)
    text.rstrip()
    return text


def echo(text: str) -> None:
    """Plain text to standard output, flushed."""
    click.echo(text, nl=False)
    sys.stdout.flush()
