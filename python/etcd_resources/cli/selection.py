"""Which resources a command acts on: names (``worker-1`` or ``labworker/worker-1``), label
and field selectors, a namespace."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from . import documents, output
from .connection import Repository
from .errors import BadUsage, CommandError

__all__ = ["Selection", "selection_options"]

F = TypeVar("F", bound=Callable[..., Any])
Document = dict[str, Any]


def selection_options(f: F) -> F:
    """``-l``, ``--field-selector``, ``-n``, ``-A``."""
    for option in reversed(
        [
            click.option(
                "-l",
                "--selector",
                "selector",
                metavar="SELECTOR",
                help="Label selector, Kubernetes' grammar (lab-track=ccna, "
                "'lab-track in (ccna,ccnp)', !draining, tier>2; comma = and).",
            ),
            click.option(
                "--field-selector",
                metavar="SELECTOR",
                help="Field selector on document paths (status.phase=Ready, "
                "status.active_lab_count<20, 'status.phase in (Ready,Draining)').",
            ),
            click.option(
                "-n",
                "--namespace",
                metavar="NAMESPACE",
                help="Only resources of this namespace (metadata.namespace).",
            ),
            click.option(
                "-A",
                "--all-namespaces",
                is_flag=True,
                help="Every namespace (the default), with a NAMESPACE column.",
            ),
        ]
    ):
        f = option(f)
    return f


def plain_name(arg: str) -> str:
    """``labworker/worker-1`` (what ``-o name`` prints) or ``worker-1``."""
    return arg.rsplit("/", 1)[-1] if "/" in arg else arg


@dataclass(frozen=True)
class Selection:
    names: tuple[str, ...]
    selector: str | None
    field_selector: str | None
    namespace: str | None
    all_namespaces: bool

    @classmethod
    def of(
        cls,
        names: Sequence[str],
        selector: str | None,
        field_selector: str | None,
        namespace: str | None,
        all_namespaces: bool,
    ) -> Selection:
        if names and (selector or field_selector):
            raise BadUsage(
                "give names or a selector, not both",
                "names select exactly those resources",
            )
        return cls(
            tuple(plain_name(n) for n in names),
            selector or None,
            field_selector or None,
            None if all_namespaces else (namespace or None),
            all_namespaces,
        )

    def in_namespace(self, doc: Document) -> bool:
        return self.namespace is None or documents.namespace_of(doc) == self.namespace

    def missing(self, repo: Repository, name: str) -> CommandError:
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return CommandError(
            f'"{name}" not found under {repo.prefix}{where}',
            "etcd-resources get lists what is there",
        )

    async def get(self, repo: Repository, name: str) -> Document | None:
        """One resource by name (in the namespace, when given)."""
        doc = await repo.get_async(name, self.namespace)
        if doc is None or not self.in_namespace(doc):
            return None
        return dict(doc)

    async def named(self, repo: Repository) -> tuple[list[Document], list[str]]:
        """The named resources that exist, and the names that do not (each reported)."""
        found, missing = [], []
        for name in self.names:
            doc = await self.get(repo, name)
            if doc is None:
                output.error(str(self.missing(repo, name).format_message()))
                missing.append(name)
            else:
                found.append(doc)
        return found, missing

    async def listed(self, repo: Repository, chunk_size: int = 500) -> list[Document]:
        """Every resource the selectors match, read in pages of ``chunk_size`` (all at one
        revision), or in one listing with 0."""
        if chunk_size <= 0:
            return [
                dict(d)
                for d in await repo.list_async(self.namespace, self.selector, self.field_selector)
            ]
        items: list[Document] = []
        token: str | None = None
        with output.progress("reading") as advance:
            while True:
                page = await repo.list_page_async(
                    self.namespace,
                    self.selector,
                    self.field_selector,
                    limit=chunk_size,
                    continue_token=token,
                )
                items += [dict(d) for d in page.items]
                advance(len(page.items))
                token = page.continue_token
                if token is None:
                    return items

    async def resolve(self, repo: Repository) -> tuple[list[Document], list[str]]:
        """The named resources and the missing names (each reported), or every resource the
        selectors match (saying so when there is none)."""
        if self.names:
            return await self.named(repo)
        docs = await self.listed(repo)
        if not docs:
            self.nothing_found(repo)
        return docs, []

    def watch_fields(self) -> str | None:
        """The field selector of a watch: the given one, and the names when given."""
        parts = [self.field_selector] if self.field_selector else []
        if self.names:
            parts.append(f"metadata.name in ({','.join(self.names)})")
        return ",".join(parts) or None

    def nothing_found(self, repo: Repository) -> None:
        where = f" in namespace {self.namespace}" if self.namespace else ""
        output.note(f"No resources found under {repo.prefix}{where}.")
