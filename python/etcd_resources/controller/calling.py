"""Calling a reconciler: a coroutine on the event loop, a plain function in the controller's
thread pool, each with its stop signal (``stopping()``); and its result written to the
resource's status. ``Controller`` (``runtime.py``) decides when; this module only calls."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .. import _core
from ._resource import generation
from .action import Action
from .stopping import CURRENT, Signal

log = logging.getLogger("etcd_resources.controller")

# The status condition's reason for each kind of Action.
REASONS = {"done": "Reconciled", "requeue": "Requeued", "retry": "Retrying", "terminal": "Failed"}


def is_async(fn: Callable[..., Any]) -> bool:
    """A coroutine function, or an object whose class defines ``async def __call__``."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


async def call(
    reconcile: Callable[[Any], Any], executor: ThreadPoolExecutor | None, resource: Any
) -> Action:
    """Run ``reconcile`` on ``resource`` (in ``executor`` when it is sync); its ``Action``."""
    if executor is None:
        signal = Signal()
        CURRENT.set(signal)
        try:
            result = await reconcile(resource)
        except asyncio.CancelledError:
            signal.set()
            raise
    else:
        result = await in_thread(reconcile, executor, resource)
    if not isinstance(result, Action):
        raise TypeError(f"reconcile returned {result!r}, not an Action")
    return result


async def in_thread(
    reconcile: Callable[[Any], Any], executor: ThreadPoolExecutor, resource: Any
) -> Any:
    """Run a sync reconciler in the pool. A thread cannot be cancelled: when this task is,
    the reconcile's stop signal is set and the task waits for the thread to return, so the
    key is not handed out again (nor its shard given back) while the thread still runs."""
    signal = Signal(threading.Event())
    CURRENT.set(signal)
    run = functools.partial(contextvars.copy_context().run, reconcile, resource)
    running = asyncio.wrap_future(executor.submit(run))
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        signal.set()
        while not running.done():
            with contextlib.suppress(asyncio.CancelledError):  # cancelled again: still wait
                await asyncio.wait({running})
        if not running.cancelled():
            running.exception()  # what it raised is superseded by the cancellation
        raise


async def record(core: _core.ControllerCore, key: str, resource: Any, action: Action) -> Action:
    """Write the reconcile's result to the status; a failed write is a retry."""
    message = None if action.error is None else str(action.error) or repr(action.error)
    try:
        await core.record(
            key,
            generation=None if resource is None else generation(resource),
            ok=not action.failed,
            reason=REASONS[action.kind],
            message=message,
        )
    except Exception as exc:
        log.warning("recording the status of %s failed: %r", key, exc)
        return Action.retry(exc) if not action.failed else action
    return action
