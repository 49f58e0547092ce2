"""Exceptions of etcd-resources.

Every exception derives from :class:`EtcdResourcesError` and, where the meaning matches, from
the standard one (``ConnectionError``, ``TimeoutError``, ``ValueError``, ``LookupError``,
``PermissionError``), so generic handlers keep working. Each carries structured attributes
(``key``, ``expected_version``, ...) besides its message. The native core raises them by name.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlreadyExistsError",
    "ClosedError",
    "ConflictError",
    "EtcdResourcesError",
    "EtcdTimeoutError",
    "ExpiredError",
    "ForkedError",
    "InvalidArgumentError",
    "InvalidNameError",
    "InvalidSelectorError",
    "NotFoundError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "SerializationError",
    "TooLargeError",
    "UnavailableError",
    "WatchFellBehindError",
]


class EtcdResourcesError(Exception):
    """Base class of every error raised by etcd-resources."""

    code: str | None = None

    def __init__(self, message: str = "", **fields: Any) -> None:
        # Not super(): a subclass may also derive from an exception whose __init__ takes other
        # arguments (Neuroglia's ResourceConflictError); its attributes are set as fields.
        Exception.__init__(self, message)
        self.message = message
        for name, value in fields.items():
            setattr(self, name, value)

    def __str__(self) -> str:
        return self.message


class NotFoundError(EtcdResourcesError, LookupError):
    """The resource does not exist (``get_async`` returns ``None`` instead)."""

    key: str


class AlreadyExistsError(EtcdResourcesError):
    """A create found the name taken; nothing was written."""

    key: str


class ConflictError(EtcdResourcesError):
    """An update carried a resource_version that is no longer current; nothing was written."""

    key: str
    expected_version: str
    actual_version: str | None


class FencedError(EtcdResourcesError):
    """A write made for a shard this replica no longer holds (its lease was lost: a pause, a
    partition), refused by etcd in the same transaction; nothing was written. The reconcile
    that made it should stop: the shard's new holder runs the key."""

    key: str
    fence: str


class UnavailableError(EtcdResourcesError, ConnectionError):
    """etcd could not be reached or cannot serve (no leader, no quorum)."""


class QuotaExceededError(EtcdResourcesError):
    """etcd's database is full (its ``NOSPACE`` alarm, ``--quota-backend-bytes`` reached).

    Not a ``ConnectionError`` and never retried: etcd refuses writes until an operator compacts
    and defragments it and disarms the alarm (``etcdctl alarm disarm``), or raises the quota.
    Meanwhile reads, lists, watches, the cache and deletes keep working; once the alarm is
    disarmed, writes succeed again on the same client. See docs/operations.md.

    The one write that crossed the quota may have been stored all the same: etcd checks the
    quota before a request goes to raft (refused, nothing applied) and again when it applies it
    (applied, then answered ``NOSPACE``). Read the resource back before writing it again."""


class EtcdTimeoutError(EtcdResourcesError, TimeoutError):
    """A call did not complete within its deadline; it may or may not have been applied."""

    operation: str
    seconds: float


class ExpiredError(EtcdResourcesError):
    """The revision asked for was compacted (Kubernetes' 410 Gone): list again, then watch."""

    requested_revision: int
    compacted_revision: int


class WatchFellBehindError(EtcdResourcesError):
    """A watcher that stopped reading: more than ``max_backlog`` events waited for it, so it
    was ended (as Kubernetes closes a watcher that cannot keep up), while the other watchers
    sharing its etcd watch went on. Every change up to ``revision`` was delivered to it: watch
    again with ``resource_version=revision`` (or list again)."""

    revision: int
    max_backlog: int


class InvalidNameError(EtcdResourcesError, ValueError):
    """A name or namespace that Kubernetes would refuse (DNS-1123)."""

    name: str
    reason: str


class InvalidSelectorError(EtcdResourcesError, ValueError):
    """A label or field selector that does not parse."""

    selector: str
    position: int
    expected: str


class InvalidArgumentError(EtcdResourcesError, ValueError):
    """An argument the caller got wrong."""


class TooLargeError(EtcdResourcesError, ValueError):
    """A document over etcd's request limit, refused before sending."""

    key: str
    size: int
    limit: int


class SerializationError(EtcdResourcesError, ValueError):
    """A value that cannot be stored, or stored bytes that cannot be read."""

    key: str | None


class PermissionDeniedError(EtcdResourcesError, PermissionError):
    """etcd refused the credentials or the permission."""


class ClosedError(EtcdResourcesError, RuntimeError):
    """The client was closed."""


class ForkedError(ClosedError):
    """A client made in another process, of which this one is a fork (or a repository, watch,
    cache or lease of such a client): its connections and the threads that served them are
    the parent's. Make a new ``EtcdClient`` in this process. ``pid`` is the process that made
    the client, ``current_pid`` this one."""

    pid: int
    current_pid: int


# The class the native core raises for each error kind (by name). With Neuroglia installed,
# conflicts are raised as a subclass that is Neuroglia's too (below).
_classes: dict[str, type[EtcdResourcesError]] = {
    cls.__name__: cls
    for cls in (
        EtcdResourcesError,
        NotFoundError,
        AlreadyExistsError,
        ConflictError,
        FencedError,
        UnavailableError,
        QuotaExceededError,
        EtcdTimeoutError,
        ExpiredError,
        WatchFellBehindError,
        InvalidNameError,
        InvalidSelectorError,
        InvalidArgumentError,
        TooLargeError,
        SerializationError,
        PermissionDeniedError,
        ClosedError,
        ForkedError,
    )
}


def _neuroglia_conflict_error() -> type[ConflictError] | None:
    """A class that is both our :class:`ConflictError` and Neuroglia's ``ResourceConflictError``
    (with its ``resource_id``, ``expected_version`` and ``actual_version``), when Neuroglia is
    installed."""
    try:
        from neuroglia.data.resources.abstractions import ResourceConflictError
    except ImportError:
        return None

    class NeurogliaConflictError(ConflictError, ResourceConflictError):  # type: ignore[misc]
        """A conflict, as etcd-resources and as Neuroglia's ``ResourceConflictError``."""

        def __init__(self, message: str = "", **fields: Any) -> None:
            super().__init__(message, **fields)
            key = str(fields.get("key", ""))
            self.resource_id = key.rstrip("/").rsplit("/", 1)[-1]

    NeurogliaConflictError.__module__ = __name__
    NeurogliaConflictError.__qualname__ = "NeurogliaConflictError"
    return NeurogliaConflictError


# Decided once, when this module is imported, whatever else was imported before: with Neuroglia
# installed, conflicts are raised as Neuroglia's ``ResourceConflictError`` too.
_NEUROGLIA_CONFLICT = _neuroglia_conflict_error()
if _NEUROGLIA_CONFLICT is not None:
    _classes["ConflictError"] = _NEUROGLIA_CONFLICT


def use_neuroglia_conflict_error() -> type[ConflictError]:
    """The class conflicts are raised as with Neuroglia installed: both our
    :class:`ConflictError` and Neuroglia's ``ResourceConflictError``. Raises ``ImportError``
    without Neuroglia."""
    if _NEUROGLIA_CONFLICT is None:
        raise ImportError("Neuroglia is not installed: pip install 'etcd-resources[neuroglia]'")
    return _NEUROGLIA_CONFLICT
