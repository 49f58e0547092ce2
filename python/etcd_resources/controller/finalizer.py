"""``finalizer``: cleanup that runs before a resource goes, as kube-runtime's
``finalizer()`` helper does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._resource import key_of, meta
from .action import Action

if TYPE_CHECKING:
    from .runtime import Controller

__all__ = ["finalizer"]

Step = Callable[[Any], Awaitable[Action]]


async def finalizer(
    controller: Controller, name: str, resource: Any, *, apply: Step, cleanup: Step
) -> Action:
    """Run ``apply(resource)`` on a live resource, ``cleanup(resource)`` on one being deleted,
    with the finalizer ``name`` guarding the deletion in between.

    - Live, without the finalizer: it is added first (compare-and-swap, re-read on conflicts),
      and ``apply`` gets the resource as stored with it.
    - Being deleted (``deletion_timestamp`` set), with the finalizer: ``cleanup`` runs; when it
      succeeds (``done`` or ``requeue``) the finalizer is removed, and with it the resource if it
      was the last; a failed cleanup (``retry``, ``terminal``, an exception) keeps it.
    - Being deleted, without it: nothing to do.
    """
    key = key_of(controller.repository._core, resource)
    finalizers = meta(resource, "finalizers") or []
    if meta(resource, "deletion_timestamp") is not None:
        if name not in finalizers:
            return Action.done()
        action = await cleanup(resource)
        if action.failed:
            return action
        await controller._core.set_finalizer(key, name, False)
        return Action.done()
    if name not in finalizers:
        what, stored = await controller._core.set_finalizer(key, name, True)
        if what != "written":  # gone meanwhile: nothing to apply to
            return Action.done()
        resource = stored
    return await apply(resource)
