"""From Neuroglia's ``ReconciliationResult`` to the runtime's ``Action``.

Neuroglia's ``ResourceControllerBase.reconcile()`` returns ``None``: the result of
``_do_reconcile`` (or the error it raised) only reaches ``_handle_reconciliation_result`` /
``_handle_reconciliation_error``, which log it and publish CloudEvents. :func:`capturing` wraps
those two methods on the controller instance (keeping whatever they do) to also keep the
result in a context variable, so the host reads what each reconcile returned, key by key,
while ``reconcile()`` itself runs as written.
"""

from __future__ import annotations

import contextvars
from typing import Any

from neuroglia.data.resources.controller import ReconciliationResult, ReconciliationStatus

from ..controller import Action

__all__ = ["capture", "capturing", "to_action"]

_RESULT: contextvars.ContextVar[list[ReconciliationResult]] = contextvars.ContextVar(
    "etcd_resources_reconciliation_result"
)


def capturing(controller: Any) -> None:
    """Wrap ``controller``'s result and error handlers (once) to keep what they are given."""
    if getattr(controller, "_etcd_resources_capturing", False):
        return
    on_result = controller._handle_reconciliation_result
    on_error = controller._handle_reconciliation_error

    async def handle_result(resource: Any, result: ReconciliationResult, start: Any) -> None:
        _keep(result)
        await on_result(resource, result, start)

    async def handle_error(resource: Any, error: Exception, start: Any) -> None:
        _keep(ReconciliationResult.failed(error, str(error)))
        await on_error(resource, error, start)

    controller._handle_reconciliation_result = handle_result
    controller._handle_reconciliation_error = handle_error
    controller._etcd_resources_capturing = True


def _keep(result: ReconciliationResult) -> None:
    box = _RESULT.get(None)
    if box is not None:
        box.append(result)


def capture() -> list[ReconciliationResult]:
    """A box that receives the results handled in the current context (call it in the task
    that runs ``reconcile``)."""
    box: list[ReconciliationResult] = []
    _RESULT.set(box)
    return box


def to_action(result: ReconciliationResult | None, status_changed: bool) -> Action:
    """The ``Action`` for a reconcile's result (``None``: ``reconcile()`` handled none, as when
    the resource does not need reconciliation).

    - ``success``: ``done``, or ``requeue_after(0)`` when the run changed the status (Neuroglia's
      watcher reconciles again on a status change while ``needs_reconciliation()``: the
      service's controllers move one phase per run and return ``success``);
    - ``requeue_after(delay)``: ``requeue_after(delay seconds)``;
    - ``requeue``: ``retry`` after the key's backoff, as controller-runtime's ``Requeue: true``
      goes through its rate limiter;
    - ``failed``: ``retry`` with the error, after the key's backoff.
    """
    if result is None:
        return Action.done()
    status = result.status
    if status is ReconciliationStatus.SUCCESS:
        return Action.requeue_after(0) if status_changed else Action.done()
    if status is ReconciliationStatus.REQUEUE_AFTER:
        delay = 0.0 if result.delay is None else max(0.0, result.delay.total_seconds())
        return Action.requeue_after(delay)
    if status is ReconciliationStatus.REQUEUE:
        return Action.retry(result.message or "requeue requested")
    error = result.error if result.error is not None else (result.message or "failed")
    return Action.retry(error)
