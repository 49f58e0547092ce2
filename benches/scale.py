"""Benchmarks at scale (issue 13): 10,000 and 100,000 LabWorkers of about 2 KB on one prefix,
read from etcd and from the informer cache, each row with its ratio to the Rust ceiling or to
its stated target.

    make bench-scale                          # release build, then this; about 5 minutes
    make bench-scale ARGS="--sizes 10000"     # one size
    python benches/scale.py [--sizes 10000,100000] [--rounds N] [--json results.json]

- The fleet: `common.lab_worker(i)`, stored as the package stores it (compact JSON,
  `metadata.generation` 1), except that the Licensing phase is made rare so that exactly
  1,250 workers are Licensing at any size of 10,000 or more (the rest of those become
  Terminated); Ready stays 1/8 of the fleet, lab-track=ccna 1/5.
- Loading is the Rust ceiling's `load` job (`benches/ceiling/scale.rs`): transactions of 128
  puts, 8 in flight. Between sizes the prefix is deleted and etcd compacted. The etcd this
  starts has a 4 GiB quota and `--unsafe-no-fsync` (only the load writes; every row reads).
- From etcd: the package's `list_async`, `find_by_phase_async` (Ready: 1/8; Licensing:
  1,250), `count_by_phase_async` and a label-selector list, against the same reads in Rust
  (one range, every value parsed into a `serde_json::Value`, filtered).
- From the cache: a fresh process (`benches/scale_probes.py cache`) makes the cache, times its
  initial sync, and reports its RSS growth per resource minus the stored document's bytes;
  then the same queries from the cache. A second fresh process (`... stream`) reports the
  peak RSS growth of `async for` over `stream_async()`.
- Watch fan-out (`benches/watch_fanout.py`, written apart) runs after, when the file exists.

Ratio = reference / ours, for every row: the Rust ceiling's time over ours (1.00 = as fast as
the Rust program), or the target over ours (memory; at least 1.00 = met).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PHASES, TRACKS, lab_worker
from compare import build_ceiling, duration, machine, tail

from etcd_resources import EtcdClient, EtcdLabWorkerResourceRepository, ResourceRepository

BENCHES = Path(__file__).resolve().parent
ROOT = BENCHES.parent

SIZES = (10_000, 100_000)
FEW = 1_250  # the small find: issue 13's "find_by_phase_async returning 1,250 workers"
MANY_PHASE, FEW_PHASE, RARE_OTHERWISE = "Ready", "Licensing", "Terminated"
LABEL = ("lab-track", "ccna")
QUOTA = 4 << 30  # 100k x 2 KB is ~210 MB per load; room for history between compactions

# Targets (issue 13), each as the reference of its row's ratio.
TARGET_LIST_RATIO = 0.9  # a list of 100,000 into dicts: at least 0.9 of the Rust ceiling
TARGET_SYNC = 1.3  # the cache's initial sync: at most 1.3 times a plain range read
TARGET_KIB_PER_RESOURCE = 3.0  # cache RSS per resource beyond the document's bytes
TARGET_STREAM_MIB = 64.0  # stream_async's peak RSS growth, whatever the size of the prefix
TARGET_CACHED_COUNT = 50e-6  # count_by_phase_async from the cache
TARGET_CACHED_FEW = 2e-3  # find_by_phase_async of 1,250 dicts from the cache


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the fleet ---------------------------------------------------------------------------------


def rare_stride(n: int) -> int:
    """One in `stride` of the workers the generator makes Licensing stays Licensing."""
    return max(1, n // (len(PHASES) * FEW))


def fleet_doc(i: int, n: int) -> dict[str, Any]:
    """Worker `i` of a fleet of `n`, as stored: the generator's document, Licensing made rare."""
    doc = lab_worker(i)
    if doc["status"]["phase"] == FEW_PHASE and (i // len(PHASES)) % rare_stride(n):
        doc["status"]["phase"] = RARE_OTHERWISE
    doc["metadata"]["generation"] = 1  # what a create through the package stores
    return doc


@dataclass(frozen=True)
class Fleet:
    n: int
    prefix: str
    many: int  # Ready
    few: int  # Licensing
    labelled: int  # lab-track=ccna
    doc_bytes: float = 0.0  # mean stored bytes per document (set by the load)

    @classmethod
    def of(cls, n: int, prefix: str) -> Fleet:
        phases = [phase(i, n) for i in range(n)]
        labelled = sum(1 for i in range(n) if TRACKS[i % len(TRACKS)] == LABEL[1])
        return cls(n, prefix, phases.count(MANY_PHASE), phases.count(FEW_PHASE), labelled)


def phase(i: int, n: int) -> str:
    """`fleet_doc(i, n)["status"]["phase"]` without making the document."""
    p = PHASES[i % len(PHASES)]
    if p == FEW_PHASE and (i // len(PHASES)) % rare_stride(n):
        return RARE_OTHERWISE
    return p


# -- the Rust ceiling's jobs -------------------------------------------------------------------


class Ceiling:
    """`benches/ceiling.rs`, built once; each job a subprocess printing one JSON line."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.executable = build_ceiling()

    def job(self, job: dict[str, Any], stdin: bytes | None = None, timeout: float = 600) -> Any:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"endpoint": self.endpoint, **job}, f)
        try:
            done = subprocess.run(
                [self.executable, f.name],
                input=stdin,
                capture_output=True,
                timeout=timeout,
                cwd=ROOT,
            )
        finally:
            os.unlink(f.name)
        lines = [line for line in done.stdout.decode().splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            raise RuntimeError(
                f"the Rust ceiling's {job['mode']} job failed ({done.returncode}):\n"
                + tail(done.stderr.decode())
            )
        return json.loads(lines[-1])

    def load(self, fleet: Fleet) -> Fleet:
        started = time.perf_counter()
        lines = []
        for i in range(fleet.n):
            doc = fleet_doc(i, fleet.n)
            value = json.dumps(doc, separators=(",", ":"))
            lines.append(f"{fleet.prefix}{doc['metadata']['name']}\t{value}\n")
        made = time.perf_counter() - started
        out = self.job({"mode": "load", "batch": 128, "in_flight": 8}, "".join(lines).encode())
        assert out["loaded"] == fleet.n, out
        log(
            f"loaded {fleet.n} documents ({out['bytes'] / 2**20:.0f} MiB) in "
            f"{made + out['seconds']:.1f} s ({made:.1f} s making them in Python)"
        )
        return Fleet(**{**asdict(fleet), "doc_bytes": out["bytes"] / fleet.n})

    def drop(self, fleet: Fleet) -> None:
        out = self.job({"mode": "drop", "prefix": fleet.prefix})
        log(f"dropped {out['deleted']} documents, compacted at revision {out['compacted']}")

    def reads(self, fleet: Fleet, samples: int) -> dict[str, list[float]]:
        job = {
            "mode": "read", "prefix": fleet.prefix, "n": fleet.n, "samples": samples,
            "many_phase": MANY_PHASE, "many": fleet.many,
            "few_phase": FEW_PHASE, "few": fleet.few,
            "label_key": LABEL[0], "label_value": LABEL[1], "labelled": fleet.labelled,
        }  # fmt: skip
        return dict(self.job(job))


# -- the rows ----------------------------------------------------------------------------------


@dataclass
class Row:
    """One measurement. `ratio` = reference / ours: the Rust ceiling's time over ours, or (with
    no Rust reference) the target over ours. Higher is better either way."""

    key: str  # stable across runs: the baseline's name for it
    label: str
    ours: float  # seconds, or KiB / MiB for the memory rows
    unit: str = "s"
    rust: float | None = None  # the Rust ceiling's seconds for the same operation
    rust_op: str = ""
    items: int | None = None  # documents returned: for the cost per item
    target: float | None = None  # in `unit` (lower is better), or a ratio floor (see below)
    target_is_ratio: bool = False  # the target is a floor on `ratio`, not a bound on `ours`
    target_text: str = ""

    @property
    def ratio(self) -> float | None:
        if self.rust is not None:
            return self.rust / self.ours if self.ours else None
        if self.target is not None and not self.target_is_ratio:
            return self.target / self.ours if self.ours else None
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
        if self.target_is_ratio:
            assert self.ratio is not None and self.target is not None
            if self.target < 1:  # a bound on ours / reference, shown as such
                return f"missed ({1 / self.ratio:.1f}x)"
            return "missed"
        assert self.target is not None
        return f"missed ({self.ours / self.target:.1f}x)"


def amount(value: float, unit: str) -> str:
    if unit == "s":
        return duration(value)
    return f"{value:.1f}{unit}"


def ratio_text(r: float | None) -> str:
    if r is None:
        return ""
    if r >= 99.5:
        return f"{r:.0f}"
    return f"{r:.1f}" if r >= 9.95 else f"{r:.2f}"


def table(fleet: Fleet, rows: list[Row]) -> str:
    lines = [
        f"{fleet.n} LabWorkers of ~{fleet.doc_bytes / 1000:.1f} KB ({fleet.many} {MANY_PHASE}, "
        f"{fleet.few} {FEW_PHASE}, {fleet.labelled} {LABEL[0]}={LABEL[1]})",
        f"{'row':<44}{'ours':>9}{'rust':>9}{'ratio':>7}{'per item':>10}  {'target':<26}",
    ]
    for row in rows:
        per_item = ""
        if row.items and row.unit == "s":
            per_item = duration(row.ours / row.items)
        rust = duration(row.rust) if row.rust is not None else ""
        target = f"{row.target_text} {row.verdict()}".strip()
        lines.append(
            f"{row.label:<44}{amount(row.ours, row.unit):>9}{rust:>9}"
            f"{ratio_text(row.ratio):>7}{per_item:>10}  {target}".rstrip()
        )
    return "\n".join(lines)


# -- timing ------------------------------------------------------------------------------------


@dataclass
class Samples:
    by_op: dict[str, list[float]] = field(default_factory=dict)

    def add(self, more: dict[str, list[float]]) -> None:
        for op, samples in more.items():
            self.by_op.setdefault(op, []).extend(samples)

    def median(self, op: str) -> float:
        return statistics.median(self.by_op[op])


async def package_reads(endpoints: list[str], fleet: Fleet, samples: int) -> dict[str, list[float]]:
    """The package's reads straight from etcd, interleaved as the ceiling's are."""
    async with EtcdClient(endpoints, timeout=300) as client:
        repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, fleet.prefix)
        workers = EtcdLabWorkerResourceRepository(client, fleet.prefix, resource_type=dict)

        async def list_all() -> int:
            return len(await repo.list_async())

        async def find_many() -> int:
            return len(await workers.find_by_phase_async(MANY_PHASE))

        async def find_few() -> int:
            return len(await workers.find_by_phase_async(FEW_PHASE))

        async def count() -> int:
            return await workers.count_by_phase_async(MANY_PHASE)

        async def label() -> int:
            return len(await workers.find_by_lab_track_async(LABEL[1]))

        ops: dict[str, tuple[Callable[[], Awaitable[int]], int]] = {
            "list": (list_all, fleet.n),
            "find many": (find_many, fleet.many),
            "find few": (find_few, fleet.few),
            "count": (count, fleet.many),
            "label": (label, fleet.labelled),
        }
        out: dict[str, list[float]] = {op: [] for op in ops}
        await list_all()  # warm-up, as the ceiling's one range
        gc.collect()
        for _ in range(samples):
            for op, (fn, expected) in ops.items():
                started = time.perf_counter()
                got = await fn()
                elapsed = time.perf_counter() - started
                if got != expected:
                    raise AssertionError(f"{op}: {got} documents, expected {expected}")
                out[op].append(elapsed)
                gc.collect()  # the last list's objects go before the next is timed
        return out


def probe(kind: str, endpoints: list[str], fleet: Fleet, timeout: float) -> dict[str, Any]:
    """`benches/scale_probes.py KIND` in a fresh interpreter: one JSON line."""
    config = {"endpoints": endpoints, **asdict(fleet)}
    command = [sys.executable, str(BENCHES / "scale_probes.py"), kind, json.dumps(config)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the {kind} probe failed ({done.returncode}):\n{tail(done.stderr)}")
    return dict(json.loads(lines[-1]))


# -- one size ----------------------------------------------------------------------------------


def measure(
    endpoints: list[str], ceiling: Ceiling, n: int, *, rounds: int = 1, samples: int | None = None
) -> tuple[Fleet, list[Row]]:
    """Load `n` workers, take every row, drop them. `rounds` alternate which of the ceiling
    and the package reads first; `samples` per round (default: 5 up to 20k, else 3)."""
    samples = samples or (5 if n <= 20_000 else 3)
    fleet = ceiling.load(Fleet.of(n, f"/bench-scale-{n}-{uuid.uuid4().hex[:8]}/"))
    timeout = 120 + n * 0.01  # seconds: 1,120 s at 100k, far above what it takes
    try:
        rust, ours = Samples(), Samples()
        for r in range(rounds):
            order = ("rust", "pkg") if r % 2 == 0 else ("pkg", "rust")
            for who in order:
                started = time.perf_counter()
                if who == "rust":
                    rust.add(ceiling.reads(fleet, samples))
                else:
                    ours.add(asyncio.run(package_reads(endpoints, fleet, samples)))
                took = time.perf_counter() - started
                log(f"{n}: round {r + 1}/{rounds}: {who} reads in {took:.0f} s")
        started = time.perf_counter()
        cache = probe("cache", endpoints, fleet, timeout)
        log(f"{n}: cache probe in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        stream = probe("stream", endpoints, fleet, timeout)
        log(f"{n}: stream probe in {time.perf_counter() - started:.0f} s")
    finally:
        ceiling.drop(fleet)
    return fleet, rows(fleet, rust, ours, cache, stream)


def rows(
    fleet: Fleet, rust: Samples, ours: Samples, cache: dict[str, Any], stream: dict[str, Any]
) -> list[Row]:
    n = fleet.n
    many, few, lab = (
        f"find_by_phase {MANY_PHASE} ({fleet.many})",
        f"find_by_phase {FEW_PHASE} ({fleet.few})",
        f"list {LABEL[0]}={LABEL[1]} ({fleet.labelled})",
    )
    reads = [
        ("list", f"list (dicts) ({n})", n),
        ("find many", many, fleet.many),
        ("find few", few, fleet.few),
        ("count", f"count_by_phase {MANY_PHASE}", None),
        ("label", lab, fleet.labelled),
    ]
    out: list[Row] = []
    for op, label, items in reads:
        row = Row(
            f"{n} etcd {op}",
            f"etcd: {label}",
            ours.median(op),
            rust=rust.median(op),
            rust_op=op,
            items=items,
        )
        if op == "list":
            row.target, row.target_is_ratio = TARGET_LIST_RATIO, True
            row.target_text = f">= {TARGET_LIST_RATIO} of rust"
        out.append(row)
    out.append(
        Row(
            f"{n} stream time",
            f"etcd: async for over stream_async ({n})",
            stream["seconds"],
            rust=rust.median("list"),
            rust_op="list",
            items=n,
        )
    )
    out.append(
        Row(
            f"{n} stream peak MiB",
            "etcd: stream_async, peak RSS growth",
            stream["peak_mib"],
            unit="MiB",
            target=TARGET_STREAM_MIB,
            target_text=f"<= {TARGET_STREAM_MIB:.0f} MiB",
        )
    )
    sync = statistics.median(cache["sync"])
    out.append(
        Row(
            f"{n} cache sync",
            f"cache: initial sync ({n}) / rust range",
            sync,
            rust=rust.median("range"),
            rust_op="range",
            target=1 / TARGET_SYNC,
            target_is_ratio=True,
            target_text=f"<= {TARGET_SYNC}x range",
        )
    )
    doc_kib = fleet.doc_bytes / 1024
    for key, label, beyond in (
        ("cache KiB", "cache: RSS per resource", cache["kib_beyond_doc"]),
        ("cache KiB read", "  the same after reading each once", cache["kib_beyond_doc_read"]),
    ):
        # The whole per-resource figure against the document plus the budget: a ratio that
        # stays positive however compact the cache gets.
        out.append(
            Row(
                f"{n} {key}",
                label,
                doc_kib + beyond,
                unit="KiB",
                target=doc_kib + TARGET_KIB_PER_RESOURCE,
                target_text=f"<= doc {doc_kib:.1f} + {TARGET_KIB_PER_RESOURCE:.0f} KiB",
            )
        )
    cached = [
        ("list", f"list (dicts) ({n})", n, None),
        ("find many", many, fleet.many, None),
        ("find few", few, fleet.few, TARGET_CACHED_FEW if fleet.few == FEW else None),
        ("count", f"count_by_phase {MANY_PHASE}", None, TARGET_CACHED_COUNT),
        ("label", lab, fleet.labelled, None),
    ]
    for op, label, items, target in cached:
        row = Row(
            f"{n} cache {op}",
            f"cache: {label}",
            statistics.median(cache["reads"][op]),
            rust=rust.median(op),
            rust_op=op,
            items=items,
        )
        if target is not None:
            row.target, row.target_text = target, f"< {duration(target)}"
        out.append(row)
    return out


# -- the etcd of the run -----------------------------------------------------------------------


@contextmanager
def scale_etcd() -> Iterator[list[str]]:
    """ETCD_ENDPOINTS if set (its quota must hold 2 x 210 MB), else an etcd started for the run
    with a 4 GiB quota."""
    if os.environ.get("ETCD_ENDPOINTS"):
        yield os.environ["ETCD_ENDPOINTS"].split(",")
        return
    from etcd_resources.testing import EtcdServer

    args = ("--quota-backend-bytes", str(QUOTA), "--unsafe-no-fsync")
    with EtcdServer(extra_args=args) as server:
        yield server.endpoints


# -- watch fan-out (another engineer's benches/watch_fanout.py) -------------------------------


def watch_fanout(endpoints: list[str]) -> str | None:
    """HOOK: benches/watch_fanout.py (events/s per watcher for 1, 10 and 100 watchers), when it
    exists, run as a script against this run's etcd (ETCD_ENDPOINTS); its output as printed."""
    script = BENCHES / "watch_fanout.py"
    if not script.exists():
        return None
    env = {**os.environ, "ETCD_ENDPOINTS": ",".join(endpoints)}
    log("watch fan-out: benches/watch_fanout.py")
    try:
        done = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return "watch fan-out: benches/watch_fanout.py timed out after 300 s"
    if done.returncode != 0:
        return f"watch fan-out failed ({done.returncode}):\n{tail(done.stderr)}"
    return done.stdout.rstrip()


# -- the run -----------------------------------------------------------------------------------

NOTES = (
    "ratio = reference / ours: the Rust ceiling's time for the same read over ours (1.00 = as "
    "fast as the Rust program: one range, every value parsed into a serde_json::Value, then "
    "filtered), or for the memory rows the target over ours (>= 1.00: met). The sync row's "
    "reference is one plain range read of the prefix in Rust, values left as bytes. Cache rows "
    "are taken in a fresh process: RSS growth from before the cache was made to after its "
    "initial sync, over the count (then again after one list of every resource, the objects "
    "returned dropped); the target is the mean stored document plus 3 KiB. per item: "
    "ours over the documents returned.",
)


def exit_on_sigterm() -> None:
    """`timeout` (the Makefile's bound) sends SIGTERM: leave through the `with` blocks, so the
    etcd started for the run and the running subprocess are ended too."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(str(n) for n in SIZES))
    parser.add_argument("--rounds", type=int, default=1, help="rounds of the etcd reads")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    began = time.perf_counter()
    results: dict[str, Any] = {"rows": {}}
    with scale_etcd() as endpoints:
        ceiling = Ceiling(endpoints[0])
        print(machine(endpoints[0]), flush=True)
        results["machine"] = machine(endpoints[0])
        for n in sizes:
            fleet, measured = measure(endpoints, ceiling, n, rounds=args.rounds)
            print("\n" + table(fleet, measured), flush=True)
            for row in measured:
                results["rows"][row.key] = {**asdict(row), "ratio": row.ratio, "met": row.met}
        fanout = watch_fanout(endpoints)
        if fanout:
            print("\n" + fanout)
    print()
    for note in NOTES:
        print(textwrap.fill(note, 100))
    print(f"\ntook {time.perf_counter() - began:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
