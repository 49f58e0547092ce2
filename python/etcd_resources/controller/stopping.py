"""A reconcile's stop signal: ``stopping()`` inside a reconciler.

The runtime stops a reconcile before it returns when its replica loses the key's shard (the
lease's deadline passed, or etcd ended it) and when ``run()``'s drain times out. An ``async``
reconciler is cancelled (``CancelledError`` at its next ``await``); a plain function running in
the thread pool cannot be: the runtime sets its signal and **waits for it to return** before the
key may run again, here or (once etcd frees the shard) on another replica. A sync reconciler
that does slow work waits on the signal rather than sleeping, and returns soon after it is set::

    def reconcile(worker):
        if stopping().wait(timeout=5.0):    # instead of time.sleep(5.0)
            return Action.retry("stopped")
        ...

What it writes after the signal is set through this package is fenced as any late write
(``FencedError``). The signal is a ``threading.Event``, made on first use (an async reconciler
that never asks pays for nothing).
"""

from __future__ import annotations

import contextvars
import threading

__all__ = ["Signal", "stopping"]


class Signal:
    """One reconcile's stop signal; set by the runtime, read by the reconciler."""

    __slots__ = ("_event", "_set")

    def __init__(self, event: threading.Event | None = None) -> None:
        # Made up front for a sync reconciler (read in its thread); on first use otherwise
        # (the event loop's thread only, where the runtime sets it too).
        self._event = event
        self._set = False

    def event(self) -> threading.Event:
        if self._event is None:
            self._event = threading.Event()
            if self._set:
                self._event.set()
        return self._event

    def set(self) -> None:
        self._set = True
        if self._event is not None:
            self._event.set()


CURRENT: contextvars.ContextVar[Signal | None] = contextvars.ContextVar(
    "etcd_resources_stopping", default=None
)


def stopping() -> threading.Event:
    """The stop signal of the reconcile running in this context (its task, or its thread):
    set once the runtime stops it (its shard lost, or ``run()``'s drain timed out)."""
    signal = CURRENT.get()
    if signal is None:
        raise RuntimeError("stopping() is called from inside a reconcile")
    return signal.event()
