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
    "InvalidArgumentError",
    "InvalidNameError",
    "InvalidSelectorError",
    "NotFoundError",
    "PermissionDeniedError",
    "SerializationError",
    "TooLargeError",
    "UnavailableError",
]


class EtcdResourcesError(Exception):
    """Base class of every error raised by etcd-resources."""

    code: str | None = None

    def __init__(self, message: str = "", **fields: Any) -> None:
        super().__init__(message)
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


class UnavailableError(EtcdResourcesError, ConnectionError):
    """etcd could not be reached or cannot serve (no leader, no quorum)."""


class EtcdTimeoutError(EtcdResourcesError, TimeoutError):
    """A call did not complete within its deadline; it may or may not have been applied."""

    operation: str
    seconds: float


class ExpiredError(EtcdResourcesError):
    """The revision asked for was compacted (Kubernetes' 410 Gone): list again, then watch."""

    requested_revision: int
    compacted_revision: int


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
