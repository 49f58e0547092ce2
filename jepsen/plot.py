"""A history as pictures, after Jepsen's performance graphs (``latency-raw`` and ``rate``):
one SVG per history, two panels sharing the time axis (seconds since the first invocation),
the fault's window shaded on both.

- Latency: every operation a point at its invocation, its latency (until ``returned``, the
  client's answer or giving up) on a log scale, coloured by outcome: ok, failed (a definite
  refusal) and unknown.
- Throughput: operations completed per second in each ``bucket`` of time, one line per
  outcome.

matplotlib draws them (installed by the Makefile into the venv, not a dependency of the
package; imported here only). The SVG keeps its text as text and names its parts with ids
(``fault-window-latency``, ``fault-window-rate``, ``latency-ok``, ``rate-unknown``...), so a
test reads it without looking at pixels; it carries no date of its own (the caption says
when), so the same history gives the same file."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .history import History, Operation, Outcome

__all__ = ["OUTCOMES", "Window", "plot_history"]

OUTCOMES: dict[Outcome, tuple[str, str]] = {
    "ok": ("ok", "#3c7fc0"),
    "fail": ("failed", "#e0307a"),
    "unknown": ("unknown", "#f0a000"),
}
"""Each outcome's label and colour (Jepsen's blue, pink and orange)."""


@dataclass(frozen=True)
class Window:
    """When a fault was held (``History.now()`` times), and its name."""

    start: float
    stop: float
    name: str


def _latency(op: Operation) -> float | None:
    end = op.returned if op.returned is not None else op.complete
    return None if math.isinf(end) else max(end - op.invoke, 1e-6)


def _rate(ops: Sequence[Operation], t0: float, bucket: float, buckets: int) -> list[float]:
    counts = [0] * buckets
    for op in ops:
        latency = _latency(op)
        if latency is not None:
            i = min(int((op.invoke + latency - t0) / bucket), buckets - 1)
            counts[i] += 1
    return [c / bucket for c in counts]


def plot_history(
    history: History,
    window: Window,
    path: Path,
    *,
    title: str,
    caption: str = "",
    bucket: float = 0.25,
) -> Path:
    """Write ``history``'s latency and throughput over time, ``window`` shaded, to ``path``
    (an SVG, or what its suffix names: ``.png``); returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = list(history)
    t0 = min([*(op.invoke for op in ops), window.start])
    ends = [op.invoke + (_latency(op) or 0.0) for op in ops]
    span = max([*ends, window.stop]) - t0
    buckets = max(1, math.ceil(span / bucket))
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "jepsen"}):
        fig, (lat, rate) = plt.subplots(2, 1, sharex=True, figsize=(8, 5.5))
        for ax, what in ((lat, "latency"), (rate, "rate")):
            ax.axvspan(
                window.start - t0,
                window.stop - t0,
                color="#999999",
                alpha=0.25,
                label=window.name,
                gid=f"fault-window-{what}",
            )
        times = [bucket * (i + 0.5) for i in range(buckets)]
        for outcome, (label, colour) in OUTCOMES.items():
            mine = [op for op in ops if op.outcome == outcome]
            points = [(op.invoke - t0, _latency(op)) for op in mine]
            shown = [(t, lt * 1000) for t, lt in points if lt is not None]
            lat.scatter(
                [t for t, _ in shown],
                [ms for _, ms in shown],
                s=6,
                color=colour,
                label=f"{label} ({len(mine)})",
                gid=f"latency-{outcome}",
                linewidths=0,
            )
            rate.plot(
                times,
                _rate(mine, t0, bucket, buckets),
                color=colour,
                label=label,
                gid=f"rate-{outcome}",
            )
        lat.set_yscale("log")
        lat.set_ylabel("latency (ms)")
        lat.set_title(title)
        lat.legend(loc="upper right", fontsize="small", markerscale=2)
        rate.set_ylabel(f"ops/s ({bucket:g} s buckets)")
        rate.set_xlabel("seconds")
        rate.legend(loc="upper right", fontsize="small")
        if caption:
            fig.text(0.01, 0.01, caption, fontsize="x-small", color="#555555", gid="caption")
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        path.parent.mkdir(parents=True, exist_ok=True)
        kind = path.suffix.lstrip(".") or "svg"
        fig.savefig(path, format=kind, metadata={"Date": None} if kind == "svg" else None)
        plt.close(fig)
    return path
