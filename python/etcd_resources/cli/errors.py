"""What the command line says when something fails: one line on stderr, ``error: what
happened (what to do)``, and the exit code (1 when the operation failed or was refused, 2 when
the command line itself is wrong)."""

from __future__ import annotations

import click

from .. import (
    AlreadyExistsError,
    ConflictError,
    EtcdResourcesError,
    EtcdTimeoutError,
    ExpiredError,
    InvalidNameError,
    InvalidSelectorError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    SerializationError,
    UnavailableError,
    WatchFellBehindError,
)

__all__ = ["USAGE", "BadUsage", "CommandError", "Failed", "explain", "one_line"]

USAGE = 2


class CommandError(click.ClickException):
    """An error the command reports and exits on (1): ``error: message (hint)``."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def format_message(self) -> str:
        return one_line(self.message if self.hint is None else f"{self.message} ({self.hint})")


class BadUsage(CommandError):
    """The command line is wrong (2): a flag's value, names with a selector, ..."""

    exit_code = USAGE


class Failed(click.ClickException):
    """Some of the resources failed; each failure was reported already. Exit 1, no message."""

    exit_code = 1

    def __init__(self) -> None:
        super().__init__("")


def one_line(text: str) -> str:
    return " ".join(text.split())


def explain(error: EtcdResourcesError, endpoints: str) -> CommandError:
    """A library error as the command line reports it."""
    text = one_line(str(error)) or type(error).__name__
    if isinstance(error, InvalidSelectorError):
        return BadUsage(f"invalid selector: {text}", "see --help for the grammar")
    if isinstance(error, InvalidNameError):
        return BadUsage(f"invalid name: {text}", "etcd-resources get -o name lists the names")
    if isinstance(error, ConflictError):
        return CommandError(
            f"conflict: {text}", "someone else changed it meanwhile: read it again and retry"
        )
    if isinstance(error, AlreadyExistsError):
        return CommandError(f"already exists: {text}", "use apply or edit to change it")
    if isinstance(error, NotFoundError):
        return CommandError(f"not found: {text}", "etcd-resources get lists what is there")
    if isinstance(error, UnavailableError):
        return CommandError(
            f"cannot reach etcd at {endpoints or 'its endpoints'}: {text}",
            "check --endpoints / ETCD_ENDPOINTS and that etcd is up",
        )
    if isinstance(error, QuotaExceededError):
        return CommandError(
            f"etcd's database is full: {text}",
            "etcd-resources status shows the size and the alarm; see docs/operations.md",
        )
    if isinstance(error, EtcdTimeoutError):
        return CommandError(
            f"etcd did not answer in time: {text}",
            "it may or may not have been applied; check with get, or raise --request-timeout",
        )
    if isinstance(error, PermissionDeniedError):
        return CommandError(
            f"etcd refused: {text}",
            "check --username/--password (ETCD_USERNAME/ETCD_PASSWORD) and that "
            "the user's role covers the prefix",
        )
    if isinstance(error, ExpiredError):
        return CommandError(f"{text}", "etcd compacted that revision: run the command again")
    if isinstance(error, WatchFellBehindError):
        return CommandError(f"{text}", "the output could not keep up: run the command again")
    if isinstance(error, SerializationError):
        return CommandError(
            f"unreadable document: {text}",
            "delete it with: etcd-resources delete NAME --unreadable",
        )
    return CommandError(text)
