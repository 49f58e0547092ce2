"""Benchmarks at scale (issue 13): 10,000 and 100,000 LabWorkers of about 2 KB on one prefix,
read from etcd and from the informer cache, each row with its ratio to the Rust ceiling or to
its stated target.

    make bench-scale                          # release build, then this; about 5 minutes
    make bench-scale ARGS="--sizes 10000"     # one size (ARGS="--pairs 3": fewer samples)
    python benches/scale.py [--sizes 10000,100000] [--pairs N] [--json results.json] [--plots DIR]

- The fleet: `common.lab_worker(i)`, stored as the package stores it (compact JSON,
  `metadata.generation` 1), except that the Licensing phase is made rare so that exactly
  1,250 workers are Licensing at any size of 10,000 or more (the rest of those become
  Terminated); Ready stays 1/8 of the fleet, lab-track=ccna 1/5.
- Loading is the Rust ceiling's `load` job (`benches/ceiling/scale.rs`): transactions of 128
  puts, 8 in flight. After each size the prefix is deleted and etcd compacted. The etcd this
  starts has a 4 GiB quota and `--unsafe-no-fsync` (only the loads write; every row reads).
- From etcd: the package's `list_async`, `find_by_phase_async` (Ready: 1/8; Licensing:
  1,250), `count_by_phase_async`, a label-selector list and `async for` over `stream_async()`,
  each paired with the same read by the Rust ceiling (one range, every value parsed into a
  `serde_json::Value`, filtered): `benches/paired.py`.
- From the cache: the same queries on a cached repository, paired with the Rust ceiling's
  reads from etcd. In fresh processes (`benches/scale_probes.py`): the cache's initial sync,
  paired with one plain range read in Rust; the RSS the cache adds per resource; the peak RSS
  growth of a streamed listing.
- Watch fan-out (`benches/watch_fanout.py`, written apart) runs after, when the file exists.
- With `--plots DIR` (`make bench-scale` passes docs/assets/benchmarks), the rows are also
  drawn against the number of resources: DIR/scale.svg (benches/plots.py).

Ratio = reference / ours, for every row (higher is better): the median over the pairs of the
Rust ceiling's time over ours (1.00 = as fast as the Rust program), or for the memory rows the
target over ours (1.00 or more: met).
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
import textwrap
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PHASES, TRACKS, lab_worker
from compare import duration, machine, tail
from paired import Ceiling, Row, RustServer, log, paired, table

from etcd_resources import EtcdClient, EtcdLabWorkerResourceRepository

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


# -- the fleet ---------------------------------------------------------------------------------


def rare_stride(n: int) -> int:
    """One in `stride` of the workers the generator makes Licensing stays Licensing."""
    return max(1, n // (len(PHASES) * FEW))


def phase(i: int, n: int) -> str:
    """`fleet_doc(i, n)["status"]["phase"]` without making the document."""
    p = PHASES[i % len(PHASES)]
    if p == FEW_PHASE and (i // len(PHASES)) % rare_stride(n):
        return RARE_OTHERWISE
    return p


def fleet_doc(i: int, n: int) -> dict[str, Any]:
    """Worker `i` of a fleet of `n`, as stored: the generator's document, Licensing made rare."""
    doc = lab_worker(i)
    doc["status"]["phase"] = phase(i, n)
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

    def name(self, i: int) -> str:
        return str(lab_worker(i)["metadata"]["name"])


def load(ceiling: Ceiling, n: int, label: str) -> Fleet:
    """`n` workers under a fresh prefix, put by the Rust ceiling's `load` job."""
    fleet = Fleet.of(n, f"/bench-{label}-{n}-{uuid.uuid4().hex[:8]}/")
    started = time.perf_counter()
    lines = []
    for i in range(n):
        doc = fleet_doc(i, n)
        value = json.dumps(doc, separators=(",", ":"))
        lines.append(f"{fleet.prefix}{doc['metadata']['name']}\t{value}\n")
    made = time.perf_counter() - started
    out = ceiling.job({"mode": "load", "batch": 128, "in_flight": 8}, "".join(lines).encode())
    if out["loaded"] != n:
        raise RuntimeError(f"the load put {out['loaded']} documents, not {n}")
    log(
        f"loaded {n} documents ({out['bytes'] / 2**20:.0f} MiB) in "
        f"{made + out['seconds']:.1f} s ({made:.1f} s making them in Python)"
    )
    return Fleet(**{**asdict(fleet), "doc_bytes": out["bytes"] / n})


def drop(ceiling: Ceiling, fleet: Fleet) -> None:
    out = ceiling.job({"mode": "drop", "prefix": fleet.prefix})
    log(f"dropped {out['deleted']} documents, compacted at revision {out['compacted']}")


# -- the reads ---------------------------------------------------------------------------------


def rust_reads(fleet: Fleet) -> dict[str, dict[str, Any]]:
    """The Rust ceiling's command for each read."""
    p = fleet.prefix
    return {
        "list": {"op": "list", "prefix": p, "n": fleet.n},
        "find many": {"op": "find", "prefix": p, "phase": MANY_PHASE, "n": fleet.many},
        "find few": {"op": "find", "prefix": p, "phase": FEW_PHASE, "n": fleet.few},
        "count": {"op": "count", "prefix": p, "phase": MANY_PHASE, "n": fleet.many},
        "label": {"op": "label", "prefix": p, "key": LABEL[0], "value": LABEL[1],
                  "n": fleet.labelled},
    }  # fmt: skip


def our_reads(
    workers: EtcdLabWorkerResourceRepository, fleet: Fleet
) -> dict[str, Callable[[int], Awaitable[None]]]:
    """The package's reads, each checking its answer."""

    def checked(what: str, expected: int, got: int) -> None:
        if got != expected:
            raise AssertionError(f"{what}: {got} documents, expected {expected}")

    async def list_all(_: int) -> None:
        checked("list", fleet.n, len(await workers.list_async()))

    async def find_many(_: int) -> None:
        checked("find many", fleet.many, len(await workers.find_by_phase_async(MANY_PHASE)))

    async def find_few(_: int) -> None:
        checked("find few", fleet.few, len(await workers.find_by_phase_async(FEW_PHASE)))

    async def count(_: int) -> None:
        checked("count", fleet.many, await workers.count_by_phase_async(MANY_PHASE))

    async def label(_: int) -> None:
        checked("label", fleet.labelled, len(await workers.find_by_lab_track_async(LABEL[1])))

    return {
        "list": list_all,
        "find many": find_many,
        "find few": find_few,
        "count": count,
        "label": label,
    }


def read_labels(fleet: Fleet) -> dict[str, tuple[str, int | None]]:
    """Each read's label in the table, and the documents it returns."""
    return {
        "list": (f"list (dicts) ({fleet.n})", fleet.n),
        "find many": (f"find_by_phase {MANY_PHASE} ({fleet.many})", fleet.many),
        "find few": (f"find_by_phase {FEW_PHASE} ({fleet.few})", fleet.few),
        "count": (f"count_by_phase {MANY_PHASE}", None),
        "label": (f"list {LABEL[0]}={LABEL[1]} ({fleet.labelled})", fleet.labelled),
    }


async def etcd_rows(
    endpoints: list[str], server: RustServer, fleet: Fleet, pairs: int
) -> list[Row]:
    """The package's reads straight from etcd, each paired with the Rust ceiling's."""
    n = fleet.n
    rows = []
    async with EtcdClient(endpoints, timeout=300) as client:
        workers = EtcdLabWorkerResourceRepository(client, fleet.prefix, resource_type=dict)
        rust = rust_reads(fleet)
        for op, ours in our_reads(workers, fleet).items():
            started = time.perf_counter()
            measured = await paired(server, rust[op], ours, pairs=pairs)
            gc.collect()
            log(f"{n}: etcd {op}: {time.perf_counter() - started:.0f} s")
            label, items = read_labels(fleet)[op]
            row = Row.of(f"{n} etcd {op}", f"etcd: {label}", measured, items=items)
            if op == "list":
                row.target, row.target_is_ratio = TARGET_LIST_RATIO, True
                row.target_text = f">= {TARGET_LIST_RATIO} of rust"
            rows.append(row)
    return rows


async def cache_rows(
    endpoints: list[str], server: RustServer, fleet: Fleet, pairs: int
) -> list[Row]:
    """The same reads from a cached repository, each paired with the Rust ceiling's read from
    etcd (a cheap read is run several times per pair: its median is the pair's)."""
    n = fleet.n
    runs = {"list": 1, "find many": 3, "find few": 5, "count": 50, "label": 3}
    targets = {"find few": TARGET_CACHED_FEW if fleet.few == FEW else None}
    targets["count"] = TARGET_CACHED_COUNT
    rows = []
    async with EtcdClient(endpoints, timeout=300) as client:
        cached = EtcdLabWorkerResourceRepository(
            client, fleet.prefix, resource_type=dict, cache=True
        )
        await cached.count_async()  # synced
        rust = rust_reads(fleet)
        for op, ours in our_reads(cached, fleet).items():
            started = time.perf_counter()
            measured = await paired(server, rust[op], ours, pairs=pairs, our_runs=runs[op])
            gc.collect()
            log(f"{n}: cache {op}: {time.perf_counter() - started:.0f} s")
            label, items = read_labels(fleet)[op]
            row = Row.of(f"{n} cache {op}", f"cache: {label}", measured, items=items)
            target = targets.get(op)
            if target is not None:
                row.target, row.target_text = target, f"< {duration(target)}"
            rows.append(row)
    return rows


def probe(kind: str, endpoints: list[str], fleet: Fleet) -> dict[str, Any]:
    """`benches/scale_probes.py KIND` in a fresh interpreter: one JSON line."""
    config = {"endpoints": endpoints, **asdict(fleet)}
    command = [sys.executable, str(BENCHES / "scale_probes.py"), kind, json.dumps(config)]
    timeout = 120 + fleet.n * 0.01  # seconds: 1,120 s at 100k, far above what it takes
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the {kind} probe failed ({done.returncode}):\n{tail(done.stderr)}")
    return dict(json.loads(lines[-1]))


async def probe_rows(
    endpoints: list[str], server: RustServer, fleet: Fleet, pairs: int
) -> list[Row]:
    """Fresh processes: the cache's sync (paired with one plain range read in Rust) and its
    RSS per resource; a streamed listing (paired with the Rust list) and its peak RSS."""
    n = fleet.n
    probes: dict[str, list[dict[str, Any]]] = {"cache": [], "stream": []}

    def side(kind: str) -> Callable[[int], Awaitable[None]]:
        async def run(_: int) -> None:
            started = time.perf_counter()
            probes[kind].append(await asyncio.to_thread(probe, kind, endpoints, fleet))
            log(f"{n}: {kind} probe in {time.perf_counter() - started:.0f} s")

        return run

    # No warm-up pair: the reads before warmed etcd, and each probe is a fresh process anyway.
    range_op = {"op": "range", "prefix": fleet.prefix, "n": n}
    sync = await paired(server, range_op, side("cache"), pairs=pairs, warm_up=False)
    list_op = rust_reads(fleet)["list"]
    stream = await paired(server, list_op, side("stream"), pairs=pairs, warm_up=False)
    # The probes time themselves (not the interpreter's start): the pairs' ratios from those.
    for measured, kind, key in ((sync, "cache", "sync"), (stream, "stream", "seconds")):
        measured.ours = [p[key] for p in probes[kind]]
        measured.ratios = [r / o for r, o in zip(measured.rust, measured.ours, strict=True)]
    doc_kib = fleet.doc_bytes / 1024
    rows = [
        Row.of(f"{n} stream time", f"etcd: async for over stream_async ({n})", stream, items=n),
        Row(
            f"{n} stream peak MiB",
            "etcd: stream_async, peak RSS growth",
            statistics.median(p["peak_mib"] for p in probes["stream"]),
            unit="MiB",
            target=TARGET_STREAM_MIB,
            target_text=f"<= {TARGET_STREAM_MIB:.0f} MiB",
        ),
        Row.of(
            f"{n} cache sync",
            f"cache: initial sync ({n}) / rust range",
            sync,
            target=1 / TARGET_SYNC,
            target_is_ratio=True,
            target_text=f"<= {TARGET_SYNC}x range",
            as_multiple=True,
        ),
    ]
    for key, label, field in (
        ("cache KiB", "cache: RSS per resource", "kib_beyond_doc"),
        ("cache KiB read", "  the same after reading each once", "kib_beyond_doc_read"),
    ):
        # The whole per-resource figure against the document plus the budget: a ratio that
        # stays positive however compact the cache gets.
        rows.append(
            Row(
                f"{n} {key}",
                label,
                doc_kib + statistics.median(p[field] for p in probes["cache"]),
                unit="KiB",
                target=doc_kib + TARGET_KIB_PER_RESOURCE,
                target_text=f"<= doc {doc_kib:.1f} + {TARGET_KIB_PER_RESOURCE:.0f} KiB",
            )
        )
    return rows


def measure(
    endpoints: list[str],
    ceiling: Ceiling,
    n: int,
    *,
    pairs: int | None = None,
    probe_pairs: int | None = None,
) -> tuple[Fleet, list[Row]]:
    """Load `n` workers, take every row, drop them. `pairs` per read (default: 7 up to 20k,
    else 3); `probe_pairs` of the fresh-process probes (default: 3 up to 20k, else 1)."""
    pairs = pairs or (7 if n <= 20_000 else 3)
    probe_pairs = probe_pairs or min(pairs, 3 if n <= 20_000 else 1)
    fleet = load(ceiling, n, "scale")
    try:
        with ceiling.serve(lab_worker(0)) as server:
            rows = asyncio.run(etcd_rows(endpoints, server, fleet, pairs))
            rows += asyncio.run(probe_rows(endpoints, server, fleet, probe_pairs))
            rows += asyncio.run(cache_rows(endpoints, server, fleet, pairs))
    finally:
        drop(ceiling, fleet)
    order = ["etcd", "cache: initial", "cache: RSS", "  the same", "cache:"]
    rows.sort(key=lambda r: next(i for i, o in enumerate(order) if r.label.startswith(o)))
    return fleet, rows


def title(fleet: Fleet) -> str:
    return (
        f"{fleet.n} LabWorkers of ~{fleet.doc_bytes / 1000:.1f} KB ({fleet.many} {MANY_PHASE}, "
        f"{fleet.few} {FEW_PHASE}, {fleet.labelled} {LABEL[0]}={LABEL[1]})"
    )


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
    "ratio = reference / ours, higher is better: the median over pairs of samples of the Rust "
    "ceiling's time for the same read over ours (1.00 = as fast as the Rust program: one range, "
    "every value parsed into a serde_json::Value, then filtered; for the sync row one plain "
    "range read, values left as bytes), or for the memory rows the target over ours (>= 1.00: "
    "met). ours and rust are the medians of each side's samples. Memory rows are taken in "
    "fresh processes: the cache's RSS growth from before it was made to after its initial "
    "sync, over the count (then again after one list of every resource, the objects returned "
    "dropped), against the mean stored document plus 3 KiB; the streamed listing's peak RSS "
    "growth. per item: ours over the documents returned.",
)


def exit_on_sigterm() -> None:
    """`timeout` (the Makefile's bound) sends SIGTERM: leave through the `with` blocks, so the
    etcd started for the run and the running subprocesses are ended too."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(str(n) for n in SIZES))
    parser.add_argument("--pairs", type=int, help="pairs of samples per read (7 / 3)")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--plots", type=Path, help="also draw the rows as DIR/scale.svg")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    began = time.perf_counter()
    results: dict[str, Any] = {"rows": {}}
    with scale_etcd() as endpoints:
        ceiling = Ceiling(endpoints[0])
        results["machine"] = machine(endpoints[0])
        print(results["machine"], flush=True)
        for n in sizes:
            fleet, measured = measure(endpoints, ceiling, n, pairs=args.pairs)
            print("\n" + table(title(fleet), measured), flush=True)
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
    if args.plots:
        import plots  # matplotlib: only when drawing

        text = plots.caption(results["machine"], f"benches/scale.py --sizes {args.sizes}")
        log(f"drew {plots.scale(results['rows'].values(), text, args.plots / 'scale.svg')}")


if __name__ == "__main__":
    main()
