"""Resource kinds named on the command line, as kubectl takes them
(``etcd-resources get labinstancerequests``): the word is not a resource name; it picks the
kind's prefix when ``--prefix`` does not."""

from __future__ import annotations

import os
from dataclasses import dataclass

import click

from ..lab_instance_repository import DEFAULT_PREFIX as LAB_INSTANCE_PREFIX
from .connection import _META

__all__ = ["KINDS", "take_kind"]


@dataclass(frozen=True)
class Kind:
    name: str
    env: str | None
    """The variable holding the kind's prefix; ``None``: the connection's (``ETCD_PREFIX``)."""
    default_prefix: str | None


LAB_WORKERS = Kind("LabWorker", None, None)
LAB_INSTANCES = Kind("LabInstanceRequest", "ETCD_LAB_INSTANCE_PREFIX", LAB_INSTANCE_PREFIX)

KINDS = {
    alias: kind
    for kind, aliases in (
        (LAB_WORKERS, ("labworkers", "labworker", "lw")),
        (LAB_INSTANCES, ("labinstancerequests", "labinstancerequest", "labinstances", "lir")),
    )
    for alias in aliases
}


def take_kind(ctx: click.Context, names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` without a leading kind; a kind with a prefix of its own sets the prefix
    (``--prefix`` wins, then the kind's variable, then its default)."""
    if not names or names[0].lower() not in KINDS:
        return names
    kind = KINDS[names[0].lower()]
    flags = ctx.find_root().meta.setdefault(_META, {})
    if kind.default_prefix is not None and "prefix" not in flags:
        assert kind.env is not None
        flags["prefix"] = os.environ.get(kind.env) or kind.default_prefix
    return names[1:]
