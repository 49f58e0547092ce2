"""``count``: how many resources the selectors match, counted in etcd's engine (no
documents cross into Python)."""

from __future__ import annotations

import click

from . import output
from .connection import Repository, connection_options, run
from .selection import Selection, selection_options

__all__ = ["count"]


@click.command()
@selection_options
@connection_options
@click.pass_context
def count(
    ctx: click.Context,
    selector: str | None,
    field_selector: str | None,
    namespace: str | None,
    all_namespaces: bool,
) -> None:
    """Print how many resources match.

    \b
      etcd-resources count --field-selector status.phase=Ready
      etcd-resources count -l lab-track=ccna
    """
    selection = Selection.of((), selector, field_selector, namespace, all_namespaces)

    async def work(repo: Repository) -> None:
        n = await repo.count_async(
            selection.namespace, selection.selector, selection.field_selector
        )
        output.write(f"{n}\n")

    run(ctx, work)
