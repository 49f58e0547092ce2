"""What the command line says when something fails: one line on stderr, ``error: what
happened (what to do)``, and the exit code (1 when the operation failed or was refused, 2 when
the command line itself is wrong)."""

from __future__ import annotations

import click

from .. import (
    AlreadyExistsError,
    ClosedError,
    ConflictError,
    EtcdResourcesError,
    EtcdTimeoutError,
    ExpiredError,
    ForkedError,
    InvalidArgumentError,
    InvalidNameError,
    InvalidSelectorError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    SerializationError,
    TooLargeError,
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


# What to do, by kind of error: the first class the error is an instance of gives the hint.
# The library's message says what happened; the command line adds only what to do.
_HINTS: tuple[tuple[type[EtcdResourcesError], str], ...] = (
    (InvalidSelectorError, "see --help for the grammar"),
    (InvalidNameError, "etcd-resources get -o name lists the names"),
    (ConflictError, "someone else changed it meanwhile: read it again and retry"),
    (AlreadyExistsError, "use apply or edit to change it"),
    (NotFoundError, "etcd-resources get lists what is there"),
    (UnavailableError, "check --endpoints / ETCD_ENDPOINTS and that etcd is up"),
    (
        EtcdTimeoutError,
        "it may or may not have been applied; check with get, or raise --request-timeout",
    ),
    (
        PermissionDeniedError,
        "check --username/--password or ETCD_USERNAME/ETCD_PASSWORD, and that "
        "the user's role covers the prefix",
    ),
    (ExpiredError, "etcd compacted that revision: run the command again"),
    (WatchFellBehindError, "the output could not keep up: run the command again"),
    (TooLargeError, "make the document smaller: etcd refuses requests over its limit"),
    (
        QuotaExceededError,
        "etcd-resources status shows the size and the alarm; the Operations page says what to do",
    ),
    (SerializationError, "delete it with: etcd-resources delete NAME --unreadable"),
    (InvalidArgumentError, "see --help"),
    (ForkedError, "run the command again"),
    (ClosedError, "run the command again"),
    (EtcdResourcesError, "etcd answered with an error: etcdctl endpoint status checks it"),
)


def explain(error: EtcdResourcesError, endpoints: str) -> CommandError:
    """A library error as the command line reports it: the library's message, said once,
    and what to do."""
    text = one_line(str(error)) or type(error).__name__
    hint = next(hint for kind, hint in _HINTS if isinstance(error, kind))
    if isinstance(error, UnavailableError):
        where = endpoints or "its endpoints"
        text = f"cannot reach etcd at {where}: {text.removeprefix('etcd unavailable: ')}"
    cls = BadUsage if isinstance(error, InvalidSelectorError | InvalidNameError) else CommandError
    return cls(text, hint)
