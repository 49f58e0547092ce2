"""Paired samples against the Rust ceiling, for `benches/scale.py` and `benches/bench_check.py`.

The Rust ceiling (`benches/ceiling.rs`, jobs in `benches/ceiling/scale.rs`) runs as a server
of single operations: each sample of the Rust program is taken right before or right after a
sample of the package (alternating which goes first), and a row's ratio is the median of the
pairs' ratios. On a machine whose other users come and go (two cores shared with compilers),
a burst then slows both sides of a pair instead of one side of the whole comparison.
"""

from __future__ import annotations

import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from compare import build_ceiling, duration, tail

ROOT = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class RustServer:
    """The ceiling's `serve` job: one command a line in, the seconds of each run back."""

    def __init__(self, process: subprocess.Popen[bytes], stderr: IO[bytes]) -> None:
        self.process = process
        self.stderr = stderr

    def run(self, op: dict[str, Any], repeat: int = 1, timeout: float = 600) -> list[float]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write((json.dumps({**op, "repeat": repeat}) + "\n").encode())
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else b""
        if not line:
            self.stderr.seek(0)
            why = "timed out" if not ready else f"exited {self.process.poll()}"
            raise RuntimeError(
                f"the Rust ceiling {why} on {op['op']}:\n{tail(self.stderr.read().decode())}"
            )
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the Rust ceiling's {op['op']}: {answer['error']}")
        return [float(s) for s in answer["seconds"]]


class Ceiling:
    """`benches/ceiling.rs`, built once (`cargo bench --no-run`)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.executable = build_ceiling()

    def _config(self, job: dict[str, Any]) -> str:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"endpoint": self.endpoint, **job}, f)
        return f.name

    def job(self, job: dict[str, Any], stdin: bytes | None = None, timeout: float = 600) -> Any:
        """A job that prints one JSON line and exits (`load`, `drop`)."""
        config = self._config(job)
        try:
            done = subprocess.run(
                [self.executable, config],
                input=stdin,
                capture_output=True,
                timeout=timeout,
                cwd=ROOT,
            )
        finally:
            os.unlink(config)
        lines = [line for line in done.stdout.decode().splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            raise RuntimeError(
                f"the Rust ceiling's {job['mode']} job failed ({done.returncode}):\n"
                + tail(done.stderr.decode())
            )
        return json.loads(lines[-1])

    @contextmanager
    def serve(self, template: dict[str, Any]) -> Iterator[RustServer]:
        """The `serve` job, running until the block ends."""
        config = self._config({"mode": "serve", "template": template})
        with tempfile.TemporaryFile() as stderr:
            process = subprocess.Popen(
                [self.executable, config],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=ROOT,
            )
            try:
                yield RustServer(process, stderr)
            finally:
                assert process.stdin is not None
                process.stdin.close()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                os.unlink(config)


@dataclass
class Paired:
    """Samples of the Rust ceiling and of the package, taken in pairs."""

    rust: list[float] = field(default_factory=list)
    ours: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)  # per pair: rust median / ours median

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)


async def paired(
    server: RustServer,
    command: dict[str, Any] | Callable[[int], dict[str, Any]],
    ours: Callable[[int], Awaitable[Any]],
    *,
    pairs: int,
    rust_runs: int = 1,
    our_runs: int = 1,
    warm_up: bool = True,
) -> Paired:
    """`pairs` pairs, after one warm-up pair unless `warm_up=False`: `rust_runs` runs of
    `command` (or of `command(pair)`) on the Rust server and `our_runs` of `await ours(k)` (k
    counting every run), the side that goes first alternating. Per pair, the ratio of the two
    medians."""
    out = Paired()
    runs = 0

    def rust_side(pair: int) -> list[float]:
        op = command(pair) if callable(command) else command
        return server.run(op, rust_runs)

    async def our_side() -> list[float]:
        nonlocal runs
        times = []
        for _ in range(our_runs):
            started = time.perf_counter()
            await ours(runs)
            times.append(time.perf_counter() - started)
            runs += 1
        return times

    for pair in range(-1 if warm_up else 0, pairs):  # -1: the warm-up
        if pair % 2 == 0:
            rust = rust_side(pair)
            mine = await our_side()
        else:
            mine = await our_side()
            rust = rust_side(pair)
        if pair >= 0:
            out.rust += rust
            out.ours += mine
            out.ratios.append(statistics.median(rust) / statistics.median(mine))
    return out


@dataclass
class Row:
    """One measurement. `ratio` = reference / ours, higher is better: the median of the paired
    ratios against the Rust ceiling, or (with no Rust reference) the target over ours."""

    key: str  # stable across runs: the baseline's name for it
    label: str
    ours: float  # seconds, or KiB / MiB for the memory rows
    unit: str = "s"
    rust: float | None = None  # the Rust ceiling's median seconds for the same operation
    paired_ratio: float | None = None
    items: int | None = None  # documents returned: for the cost per item
    target: float | None = None  # in `unit` (lower is better), or a floor on `ratio`
    target_is_ratio: bool = False
    target_text: str = ""
    as_multiple: bool = False  # a miss shown as ours / reference (the sync row: "13.6x")

    @classmethod
    def of(cls, key: str, label: str, measured: Paired, **more: Any) -> Row:
        return cls(
            key,
            label,
            statistics.median(measured.ours),
            rust=statistics.median(measured.rust),
            paired_ratio=measured.ratio,
            **more,
        )

    @property
    def ratio(self) -> float | None:
        if self.paired_ratio is not None:
            return self.paired_ratio
        if self.target is not None and not self.target_is_ratio and self.ours > 0:
            return self.target / self.ours
        return None

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if self.target_is_ratio:
            return self.ratio is not None and self.ratio >= self.target
        return self.ours <= self.target

    def verdict(self) -> str:
        if self.met is None:
            return ""
        if self.met:
            return "met"
        assert self.target is not None
        if self.target_is_ratio:
            assert self.ratio is not None
            if self.as_multiple:
                return f"missed ({1 / self.ratio:.1f}x)"
            return f"missed ({self.ratio:.2f})"
        return f"missed ({self.ours / self.target:.1f}x)"


def amount(value: float, unit: str) -> str:
    return duration(value) if unit == "s" else f"{value:.1f}{unit}"


def ratio_text(r: float | None) -> str:
    if r is None:
        return ""
    if r >= 99.5:
        return f"{r:.0f}"
    return f"{r:.1f}" if r >= 9.95 else f"{r:.2f}"


def table(title: str, rows: list[Row]) -> str:
    lines = [
        title,
        f"{'row':<44}{'ours':>9}{'rust':>9}{'ratio':>7}{'per item':>10}  target",
    ]
    for row in rows:
        per_item = duration(row.ours / row.items) if row.items and row.unit == "s" else ""
        rust = duration(row.rust) if row.rust is not None else ""
        target = f"{row.target_text} {row.verdict()}".strip()
        lines.append(
            f"{row.label:<44}{amount(row.ours, row.unit):>9}{rust:>9}"
            f"{ratio_text(row.ratio):>7}{per_item:>10}  {target}".rstrip()
        )
    return "\n".join(lines)
