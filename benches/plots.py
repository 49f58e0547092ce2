"""The benchmarks as pictures for docs/benchmarks.md: SVGs written with matplotlib (installed by
the Makefile into the venv, like jepsen/plot.py's; not a dependency of the package).

- `ratios`: `make bench`'s comparison, each operation's ratio to the Rust program per client.
- `latencies`: the sequential operations' p50, p90, p99 and p99.9 per client.
- `scale`: `make bench-scale`'s rows against the number of resources: time and memory.

Each figure carries a caption (`caption()`: the command, the date, the machine) and keeps its
text as text. Nothing else in the file changes from one run to the next (a fixed hash salt for
the ids, no date in the metadata): the same results drawn the same day give the same bytes.
The figures are drawn without pyplot (no backend, no global state)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import matplotlib
from common import percentile
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

REFERENCE = "rust"  # the client every ratio is taken against
WIDTH = 8.0  # inches: 768 CSS px, about the content column of a 1280 px page
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
SEQUENTIAL = ("create", "get", "compare_and_swap")


def caption(machine: str, command: str) -> str:
    """The caption of a figure made today by `command` on `machine` (`compare.machine()`)."""
    return f"{command}, {date.today().isoformat()}; {machine.removeprefix('# ')}"


def colours(labels: Iterable[str]) -> dict[str, str]:
    """A colour per client: the reference grey, the others tab10 in their order (the same
    client gets the same colour in every figure drawn from the same run)."""
    others = iter(f"C{i}" for i in range(10))
    return {label: "#444444" if label == REFERENCE else next(others) for label in labels}


def _style() -> AbstractContextManager[None]:
    """Text kept as text (the page's font), ids from a fixed salt: the same figure, the same
    file."""
    return matplotlib.rc_context(
        {"svg.fonttype": "none", "svg.hashsalt": "etcd-resources benches", "font.size": 9.0}
    )


def _plain_log(axis: Axis) -> None:
    """A log axis labelled in plain numbers (0.5, 2, 100): at each power of ten, and at 2 and 5
    times one when the axis spans less than two powers of ten."""

    def minor(x: float, _: object) -> str:
        low, high = axis.get_view_interval()
        leading = round(x / 10 ** math.floor(math.log10(x)))
        return f"{x:g}" if high < 100 * low and leading in (2, 5) else ""

    axis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    axis.set_minor_formatter(FuncFormatter(minor))


def _figure(height: float) -> Figure:
    """A figure without pyplot (no backend, no global state)."""
    return Figure(figsize=(WIDTH, height), layout="constrained")


def _save(fig: Figure, text: str, path: Path) -> Path:
    fig.supxlabel(text, x=0.0, ha="left", fontsize="small", color="#555555")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", metadata={"Date": None})
    return path


def ratios(
    results_by_operation: Mapping[str, Mapping[str, float | None]], text: str, path: Path
) -> Path:
    """Grouped horizontal bars: one group per operation (top to bottom in the mapping's order),
    one bar per client, its ratio to the Rust program (rust median / client median, log scale,
    1.0 drawn). A client without a figure for an operation (failed, or its API cannot) gets
    "none" instead of a bar."""
    ops = list(results_by_operation)
    clients = list(dict.fromkeys(c for row in results_by_operation.values() for c in row))
    colour = colours(clients)
    step = 0.8 / max(1, len(clients))
    with _style():
        fig = _figure(1.3 + 0.14 * len(ops) * len(clients))
        ax = fig.add_subplot()
        for i, client in enumerate(clients):
            ys = [g + (i - (len(clients) - 1) / 2) * step for g in range(len(ops))]
            values = [results_by_operation[op].get(client) for op in ops]
            shown = [(y, v) for y, v in zip(ys, values, strict=True) if v is not None]
            ax.barh(
                [y for y, _ in shown],
                [v for _, v in shown],
                height=step * 0.9,
                color=colour[client],
                label=client,
                log=True,
            )
            edge = ax.get_yaxis_transform()  # x in the axes (0: the left edge), y in the data
            for y, v in zip(ys, values, strict=True):
                # The value past the bar's end, or "none" at the left edge.
                x, word, at = (
                    (v, f" {v:.3g}", ax.transData) if v is not None else (0, " none", edge)
                )
                ax.text(x, y, word, va="center", fontsize="x-small", transform=at)
        ax.axvline(1.0, color=colour.get(REFERENCE, "#444444"), linewidth=1)
        ax.set_yticks(range(len(ops)), ops)
        ax.set_ylim(len(ops) - 0.5, -0.5)
        ax.set_xlabel("ratio to the Rust program (1.00 = as fast; higher is faster; log scale)")
        _plain_log(ax.xaxis)
        ax.margins(x=0.08)
        ax.grid(axis="x", color="#dddddd", linewidth=0.5)
        ax.set_axisbelow(True)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=len(clients), frameon=False)
        return _save(fig, text, path)


def latencies(samples: Mapping[str, Mapping[str, list[float]]], text: str, path: Path) -> Path:
    """One panel per sequential operation (create, get, compare_and_swap): each client's p50,
    p90, p99 and p99.9 in ms (log scale). `samples` is client -> operation -> seconds."""
    clients = [c for c in samples if any(samples[c].get(op) for op in SEQUENTIAL)]
    colour = colours(clients)
    names = [f"p{p:g}" for p in PERCENTILES]
    with _style():
        fig = _figure(3.6)
        axes = fig.subplots(1, len(SEQUENTIAL), sharey=True)
        for ax, op in zip(axes, SEQUENTIAL, strict=True):
            for client in clients:
                got = samples[client].get(op)
                if got:
                    ms = [percentile(got, p) * 1e3 for p in PERCENTILES]
                    ax.plot(names, ms, marker="o", markersize=3, color=colour[client], label=client)
            ax.set_title(op)
            ax.set_yscale("log")
            ax.grid(color="#dddddd", linewidth=0.5)
        axes[0].set_ylabel("latency (ms, log scale)")
        _plain_log(axes[0].yaxis)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside upper center", ncols=len(clients), frameon=False)
        return _save(fig, text, path)


# scale.py's rows have the key "<n> <name>"; each name's panel is chosen by its unit and where
# it reads from. The Rust ceiling's time is drawn for two of them (the other reads' reference is
# the same range as the list's, filtered).
PANELS = {
    "etcd": "reads from etcd: time (ms)",
    "cache": "reads from the cache: time (ms)",
    "KiB": "cache RSS per resource (KiB)",
    "MiB": "stream_async peak RSS growth (MiB)",
}
RUST = {"etcd list": "rust: one range, parsed", "cache sync": "rust: one range, values as bytes"}


@dataclass
class Series:
    label: str
    unit: str
    ours: dict[int, float] = field(default_factory=dict)
    rust: dict[int, float] = field(default_factory=dict)
    target: dict[int, float] = field(default_factory=dict)  # in `unit`

    def panel(self, name: str) -> str:
        if self.unit != "s":
            return self.unit
        return "cache" if name.startswith("cache ") and name != "cache sync" else "etcd"


def series_of(rows: Iterable[Mapping[str, Any]]) -> dict[str, Series]:
    """Each row name's values by resource count, labelled without the count."""
    series: dict[str, Series] = {}
    previous = ""
    for row in rows:
        n, name = row["key"].split(" ", 1)
        label = re.sub(r" \(\d+\)| / rust range", "", row["label"])
        if label.startswith(" "):  # continues the row before ("  the same after reading...")
            label = f"{previous}, {label.strip()}"
        previous = label
        s = series.setdefault(name, Series(label, row["unit"]))
        s.ours[int(n)] = row["ours"]
        if name in RUST and row.get("rust") is not None:
            s.rust[int(n)] = row["rust"]
        if row.get("target") is not None and not row.get("target_is_ratio"):
            s.target[int(n)] = row["target"]
    return series


def scale(rows: Iterable[Mapping[str, Any]], text: str, path: Path) -> Path:
    """`make bench-scale`'s rows (the values of `scale.py --json`'s "rows") against the number
    of resources (log scale): the reads from etcd and from the cache (time, log scale; the Rust
    ceiling's dashed), the cache's memory per resource and the streamed listing's peak; a
    row's target, when it has one in its unit, dotted."""
    series = series_of(rows)
    sizes = sorted({n for s in series.values() for n in s.ours})
    panels = [p for p in PANELS if any(s.panel(k) == p for k, s in series.items())]
    lines = (len(panels) + 1) // 2
    with _style():
        fig = _figure(4.2 * lines + 0.3)
        grid = fig.subplots(lines, 2, squeeze=False)
        for ax in grid.flat[len(panels) :]:
            ax.set_visible(False)
        for ax, panel in zip(grid.flat, panels, strict=False):
            mine = {k: s for k, s in series.items() if s.panel(k) == panel}
            scale_panel(ax, panel, mine, sizes)
        return _save(fig, text, path)


def scale_panel(ax: Axes, panel: str, series: Mapping[str, Series], sizes: list[int]) -> None:
    timed = panel in ("etcd", "cache")
    factor = 1e3 if timed else 1.0  # seconds shown as ms
    targets: list[dict[int, float]] = []  # drawn once each (two rows can share one)
    for i, (name, s) in enumerate(series.items()):
        target = s.target if s.target not in targets else {}
        targets.append(target)
        drawn: list[tuple[dict[int, float], str | None, dict[str, Any]]] = [
            (s.ours, s.label, {"linestyle": "-", "marker": "o", "markersize": 3}),
            (s.rust, RUST.get(name), {"linestyle": "--"}),
            # "_": a target at one size only still shows.
            (target, f"{s.label}: target", {"linestyle": ":", "marker": "_", "markersize": 10}),
        ]
        for values, label, style in drawn:
            points = sorted(values.items())
            if points:
                xs, ys = [n for n, _ in points], [v * factor for _, v in points]
                ax.plot(xs, ys, color=f"C{i}", label=label, **style)
    ax.set_title(PANELS[panel])
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(sizes))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _count(x)))
    if timed:
        ax.set_yscale("log")
        _plain_log(ax.yaxis)
    else:
        ax.set_ylim(bottom=0, top=ax.get_ylim()[1] * 1.1)
    ax.set_xlabel("resources")
    ax.grid(color="#dddddd", linewidth=0.5)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize="small", frameon=False)


def _count(n: float) -> str:
    return f"{n / 1000:g}k" if n >= 1000 else f"{n:g}"
