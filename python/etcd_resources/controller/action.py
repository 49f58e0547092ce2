"""``Action``: what a reconcile asks the controller to do next."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..errors import InvalidArgumentError

__all__ = ["Action"]

Kind = Literal["done", "requeue", "retry", "terminal"]


def _seconds(name: str, value: float) -> float:
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidArgumentError(f"{name} must be a finite number of seconds >= 0, not {value!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class Action:
    """The outcome of one reconcile. Build it with the class methods."""

    kind: Kind
    after: float | None = None
    """Seconds until the key runs again (``requeue``; ``retry`` when asked for)."""
    error: BaseException | str | None = None
    """Why a ``retry`` or ``terminal`` failed."""

    @classmethod
    def done(cls) -> Action:
        """Reconciled: nothing more until the next change. Resets the key's backoff."""
        return cls("done")

    @classmethod
    def requeue_after(cls, seconds: float) -> Action:
        """Reconciled, run it again after ``seconds`` (sooner if it changes meanwhile)."""
        return cls("requeue", after=_seconds("seconds", seconds))

    @classmethod
    def retry(cls, error: BaseException | str, after: float | None = None) -> Action:
        """Failed: run it again after ``after`` seconds, or after the key's exponential backoff
        (with jitter) when ``None``. A delay asked for is kept, error or not."""
        return cls("retry", after=None if after is None else _seconds("after", after), error=error)

    @classmethod
    def terminal(cls, reason: BaseException | str) -> Action:
        """Failed in a way retrying will not fix: nothing more until the next change."""
        return cls("terminal", error=reason)

    @property
    def failed(self) -> bool:
        return self.kind in ("retry", "terminal")
