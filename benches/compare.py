"""This package against five Python etcd clients and a plain Rust etcd-client program (the
ceiling), the same workload against ONE etcd, printed as ratios to the ceiling.

    python benches/compare.py [--rounds N] [--quick] [--only pkg,aetcd,rust] [--plots DIR]

(or COMPARE_ROUNDS, COMPARE_QUICK=1, COMPARE_ONLY in the environment; benches/run.py calls
`run(endpoints)`). Without ETCD_ENDPOINTS it starts its own etcd.

- The shared data is seeded once, with this package: prefix A (3,000 LabWorkers), prefix B
  (10,000) and a watch prefix of 5,000 writes whose start revision every contender's watch
  replays from etcd's history.
- Every contender is a subprocess printing one JSON line of samples
  (benches/contenders/*.py, each in its own venv under .bench-venvs/, made once with pinned
  versions; benches/ceiling.rs for Rust). Each run writes under its own fresh prefix.
- Rounds alternate: round r runs the contenders in an order rotated by r. Samples of every
  round are pooled; the table shows medians and the ratio ceiling / contender (1.00 = as fast
  as the Rust program).
- With `--plots DIR` (`make bench` passes docs/assets/benchmarks), the ratios and the
  sequential operations' latencies are also drawn: DIR/compare-ratios.svg and
  DIR/compare-latency.svg (benches/plots.py).
- A contender that fails (import error, exception, a peer lacking an operation) does not sink
  the run: its stderr tail is printed and its cells read "err" (or "n/a" for an operation its
  API cannot do).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PHASES, etcd_endpoints, lab_worker, percentile

from etcd_resources import EtcdClient, ResourceRepository

BENCHES = Path(__file__).resolve().parent
ROOT = BENCHES.parent
VENVS = ROOT / ".bench-venvs"
MARKER = ".bench-installed"

FULL = {
    "n_a": 3000,
    "n_b": 10_000,
    "n_watch": 5000,
    "n_seq": 300,  # sequential samples: create, get, compare_and_swap
    "n_batches": 20,  # samples of the x32 operations
    "batch": 32,
    "n_list": 5,  # samples of list, find, count
    "n_watch_samples": 3,
    "n_cached": 200,  # samples of the package's cached queries (microseconds each)
    "n_slow_list": 1,  # samples of the old repository's key-then-get-per-key lists
}
QUICK = {
    **FULL,
    "n_a": 300,
    "n_b": 1000,
    "n_watch": 500,
    "n_seq": 30,
    "n_batches": 3,
    "n_list": 2,
    "n_watch_samples": 1,
    "n_cached": 20,
}


@dataclass(frozen=True)
class Contender:
    name: str  # for --only
    label: str  # the column
    script: str | None = None  # benches/contenders/<script>; None: the Rust ceiling
    venv: str | None = None  # .bench-venvs/<venv>; None: this interpreter (.venv)
    pins: tuple[str, ...] = ()


CONTENDERS = [
    Contender("rust", "rust"),
    Contender("package", "pkg", "package.py"),
    Contender("etcd3-py", "etcd3-py(old)", "etcd3_py.py", "etcd3-py", ("etcd3-py==0.1.6",)),
    Contender("aetcd", "aetcd", "aetcd_client.py", "aetcd", ("aetcd==1.0.0",)),
    # python-etcd3 imports as `etcd3`, like etcd3-py: hence a venv per peer. It needs protobuf
    # 3.20.x (protobuf>=4 refuses its generated code); on Python 3.11 protobuf 3.20.3 has no
    # compiled wheel, so this is the pure-Python implementation: which is how python-etcd3
    # installs on 3.11 today.
    Contender(
        "python-etcd3",
        "py-etcd3",
        "python_etcd3.py",
        "py-etcd3",
        ("etcd3==0.12.0", "protobuf==3.20.3"),
    ),
    Contender(
        "etcd-client-py",
        "etcd-client-py",
        "etcd_client_py.py",
        "etcd-client-py",
        ("etcd-client-py==0.5.1",),
    ),
    Contender("etcd3aio", "etcd3aio", "etcd3aio_client.py", "etcd3aio", ("etcd3aio==0.3.0",)),
]
SEQUENTIAL = ["create", "get", "compare_and_swap"]

# (contender whose column it explains, or None for every table; the note)
FOOTNOTES = [
    (
        None,
        "ratio = rust median / contender median: 1.00 is as fast as the Rust program, below is "
        "slower. err: failed (see above); n/a: the client cannot do it.",
    ),
    (
        None,
        "watch: from opening the watch to the last event parsed. etcd replays history to a "
        "watcher 1,000 revisions per pass of its 100 ms sync loop: a floor of ~0.4 s for "
        "5,000 events, whatever the client.",
    ),
    (
        "etcd3-py",
        "etcd3-py(old) is the old repository's client and logic: list/find/count read the keys, "
        "then one get per key (one sample, in the first round only); its compare_and_swap is "
        "get, get again + compare in Python, put: NOT atomic.",
    ),
    (
        "etcd-client-py",
        "etcd-client-py: responses are capped at 4 MiB and get_prefix cannot page, so its lists "
        "read 1,000-name sub-prefixes one after another; get returns no mod_revision, so its "
        "compare_and_swap compares the value; its watch takes no start revision (no replay); "
        "its concurrent calls barely overlap (x32 takes about 30 times one call).",
    ),
    ("python-etcd3", "py-etcd3 (python-etcd3 0.12) runs on protobuf 3.20.3, pure Python on 3.11."),
    (
        "etcd3aio",
        "etcd3aio 0.3.0 (grpc.aio): grpc's 4 MiB receive limit, so its lists read pages of 1,000 "
        "keys at one revision; its compare_and_swap builds the mod_revision Compare from its "
        "protobuf module (no helper for it).",
    ),
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- options -----------------------------------------------------------------------------------


def options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("COMPARE_ROUNDS", "3")))
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("COMPARE_QUICK", "") not in ("", "0"),
        help="tiny sizes, 1 round: a smoke test",
    )
    parser.add_argument(
        "--only",
        default=os.environ.get("COMPARE_ONLY", ""),
        help="comma-separated contenders: " + ", ".join(c.name for c in CONTENDERS),
    )
    parser.add_argument(
        "--plots", type=Path, help="also draw compare-ratios.svg and compare-latency.svg in DIR"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 1
    wanted = {n.strip() for n in args.only.split(",") if n.strip()}
    known = {c.name for c in CONTENDERS} | {c.label for c in CONTENDERS}
    if wanted - known:
        parser.error(f"unknown contenders: {', '.join(sorted(wanted - known))}")
    args.contenders = [c for c in CONTENDERS if not wanted or {c.name, c.label} & wanted]
    return args


# -- seeding -----------------------------------------------------------------------------------


async def seed(endpoints: list[str], sizes: dict[str, int], root: str) -> dict[str, Any]:
    """The shared data, written once with this package; the config every run starts from."""
    config: dict[str, Any] = {
        "endpoint": endpoints[0],
        "prefix_a": root + "a/",
        "prefix_b": root + "b/",
        "prefix_watch": root + "watch/",
        "template": lab_worker(0),  # the Rust ceiling's documents: this one, renamed
        **sizes,
    }
    async with EtcdClient(endpoints, timeout=60) as client:

        async def fill(prefix: str, n: int) -> None:
            repo: ResourceRepository[dict[str, Any]] = ResourceRepository(client, prefix)
            for first in range(0, n, 500):
                await asyncio.gather(
                    *(repo.add_async(lab_worker(i)) for i in range(first, min(n, first + 500)))
                )

        await fill(config["prefix_a"], sizes["n_a"])
        await fill(config["prefix_b"], sizes["n_b"])
        # Every contender's watch replays the same events: those after this revision.
        config["watch_start"] = await client.current_revision()
        await fill(config["prefix_watch"], sizes["n_watch"])
    return config


# -- the contenders ----------------------------------------------------------------------------


@dataclass
class Outcome:
    samples: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # operation (or "*") -> why
    seconds: float = 0.0


def peer_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(name, None)
    return env


def ensure_venv(contender: Contender) -> str:
    """The peer's interpreter, in its own venv, made (once) with the pinned versions."""
    if contender.venv is None:
        return sys.executable
    venv = VENVS / contender.venv
    python = venv / "bin" / "python"
    marker = venv / MARKER
    wanted = "\n".join(contender.pins) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return str(python)
    log(f"creating {venv.relative_to(ROOT)}: {' '.join(contender.pins)}")
    shutil.rmtree(venv, ignore_errors=True)
    VENVS.mkdir(exist_ok=True)
    env = peer_env()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *contender.pins],
        check=True,
        env=env,
    )
    marker.write_text(wanted)
    return str(python)


def build_ceiling() -> str:
    """Build benches/ceiling.rs once (release, `cargo bench --no-run`); its executable. The
    rounds run the executable itself: the same program `cargo bench -q --no-default-features
    --bench ceiling -- CONFIG.json` runs, without a rebuild when src/ changes mid-run."""
    command = [
        "cargo", "bench", "-q", "--no-default-features", "--bench", "ceiling", "--no-run",
        "--message-format=json-render-diagnostics",
    ]  # fmt: skip
    log("building the Rust ceiling (cargo bench --no-run)")
    built = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if built.returncode != 0:
        raise RuntimeError(f"cargo bench --no-run failed:\n{tail(built.stderr)}")
    for line in built.stdout.splitlines():
        message = json.loads(line) if line.startswith("{") else {}
        if message.get("target", {}).get("name") == "ceiling" and message.get("executable"):
            return str(message["executable"])
    raise RuntimeError("cargo built no `ceiling` executable")


def tail(text: str, lines: int = 12) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])


def run_one(label: str, command: list[str], config: dict[str, Any], timeout: float) -> Outcome:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(config, f)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [*command, f.name],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=peer_env(),
        )
        stdout, stderr, code = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired as e:
        stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        stderr = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        stderr += f"\ntimed out after {timeout:.0f} s"
        code = -1
    finally:
        os.unlink(f.name)
    outcome = Outcome(seconds=time.perf_counter() - started)
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if lines:
        data = json.loads(lines[-1])
        outcome.errors.update(data.pop("_errors", {}))
        outcome.samples = {op: list(v) for op, v in data.items()}
    if code != 0 or not lines:
        # It stopped: the operations it did not report failed too ("*").
        outcome.errors["*"] = f"exit status {code}" + ("" if lines else ", no results")
    if outcome.errors:
        why = ", ".join(f"{op}: {e}" for op, e in outcome.errors.items())
        log(f"  {label} failed ({textwrap.shorten(why, 200)}); stderr:\n{tail(stderr)}")
    return outcome


# -- the table ---------------------------------------------------------------------------------


def operations(sizes: dict[str, int]) -> list[str]:
    n_a, n_b = sizes["n_a"], sizes["n_b"]
    batch = f"x{sizes['batch']}"
    return [
        "create", f"create {batch}", "get", f"get {batch}", "compare_and_swap",
        f"list {n_a}", f"list {n_b}", f"find_by_phase {n_a}", f"find_by_phase {n_b}",
        f"count_by_phase {n_b}", f"watch {sizes['n_watch']}",
    ]  # fmt: skip


def package_only(sizes: dict[str, int]) -> list[tuple[str, str]]:
    """The package's extra operations, and the ceiling operation each is compared with."""
    n_a, n_b = sizes["n_a"], sizes["n_b"]
    batch = f"x{sizes['batch']}"
    return [
        ("backend get", "get"),
        (f"backend get {batch}", f"get {batch}"),
        ("backend compare_and_swap", "compare_and_swap"),
        ("get typed LabWorker", "get"),
        (f"list {n_a} typed LabWorker", f"list {n_a}"),
        (f"cached count_by_phase {n_b}", f"count_by_phase {n_b}"),
        (f"cached find_by_phase {n_b}", f"find_by_phase {n_b}"),
    ]


def duration(seconds: float) -> str:
    """Three significant digits, at most 6 characters: 6.80us, 693us, 21.6ms, 64.5s."""
    for unit, scale in (("us", 1e6), ("ms", 1e3), ("s", 1.0)):
        value = seconds * scale
        if value < 999.5 or unit == "s":
            break
    decimals = 2 if value < 9.995 else 1 if value < 99.95 else 0
    return f"{value:.{decimals}f}{unit}"


def ratio(ceiling: float | None, theirs: float | None) -> str:
    """At most 5 characters."""
    if ceiling is None or theirs is None:
        return ""
    r = ceiling / theirs
    if r >= 99.95:
        return f"{r:.0f}"
    if r >= 9.995:
        return f"{r:.1f}"
    if r >= 0.01:
        return f"{r:.2f}"
    return f"{r:.3f}" if r >= 0.001 else f"{r:.0e}"


class Table:
    def __init__(self, contenders: list[Contender], results: dict[str, Outcome]) -> None:
        self.contenders = contenders
        self.results = results

    def median(self, name: str, op: str) -> float | None:
        outcome = self.results.get(name)
        samples = outcome.samples.get(op) if outcome else None
        return statistics.median(samples) if samples else None

    def ratio_to_rust(self, name: str, op: str) -> float | None:
        ceiling, theirs = self.median("rust", op), self.median(name, op)
        return ceiling / theirs if ceiling is not None and theirs else None

    def cell(self, name: str, op: str) -> str:
        """The median, or why there is none."""
        value = self.median(name, op)
        if value is not None:
            return duration(value)
        outcome = self.results.get(name)
        if outcome is None or op in outcome.errors or "*" in outcome.errors:
            return "err"
        return "n/a"  # it ran to the end without this operation

    def ratios(self, ops: list[str]) -> list[str]:
        peers = [c for c in self.contenders if c.name != "rust"]
        widths = [max(14, len(c.label) + 1) for c in peers]  # median, then ratio in 6
        head1 = f"{'operation':<20}{'rust':>8}"
        head2 = f"{'':<20}{'median':>8}"
        for c, w in zip(peers, widths, strict=True):
            head1 += f"{c.label:>{w}}"
            head2 += f"{'median':>{w - 6}}{'ratio':>6}"
        lines = [head1, head2]
        for op in ops:
            ceiling = self.median("rust", op)
            row = f"{op:<20}{self.cell('rust', op):>8}"
            for c, w in zip(peers, widths, strict=True):
                row += (
                    f"{self.cell(c.name, op):>{w - 6}}{ratio(ceiling, self.median(c.name, op)):>6}"
                )
            lines.append(row.rstrip())
        return lines

    def extras(self, pairs: list[tuple[str, str]]) -> list[str]:
        """The package's extra operations: the ratio to the Rust ceiling's operation, and the
        time over the package's own plain operation (typed over dicts, cached over etcd)."""
        head = f"{'package only':<30}{'pkg':>8}{'rust (operation)':>32}{'ratio':>7}{'/ pkg op':>10}"
        lines = [head]
        for op, base in pairs:
            base_text = f"{self.cell('rust', base)} ({base})"
            mine = ratio(self.median("rust", base), self.median("package", op))
            mine_op, plain = self.median("package", op), self.median("package", base)
            over = f"{mine_op / plain:.3g}" if mine_op and plain else ""
            row = f"{op:<30}{self.cell('package', op):>8}{base_text:>32}{mine:>7}{over:>10}"
            lines.append(row)
        return lines

    def latencies(self) -> list[str]:
        head = f"{'p50 / p99 (ms)':<16}" + "".join(f"{op:>24}" for op in SEQUENTIAL)
        lines = [head]
        for c in self.contenders:
            outcome = self.results.get(c.name)
            row = f"{c.label:<16}"
            for op in SEQUENTIAL:
                samples = outcome.samples.get(op) if outcome else None
                if samples:
                    p50, p99 = percentile(samples, 50), percentile(samples, 99)
                    text = f"{p50 * 1e3:.3f} / {p99 * 1e3:.3f}"
                else:
                    text = self.cell(c.name, op)
                row += f"{text:>24}"
            lines.append(row)
        return lines


def machine(endpoint: str) -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        with urllib.request.urlopen(f"{endpoint}/version", timeout=5) as resp:
            etcd = json.load(resp).get("etcdserver", "?")
    except OSError:
        etcd = "?"
    return (
        f"# machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, etcd {etcd}"
    )


def draw(args: argparse.Namespace, table: Table, sizes: dict[str, int], about: str) -> None:
    """--plots: the ratios per operation and the sequential operations' latencies, as SVGs."""
    import plots  # matplotlib: only when drawing

    how = f"benches/compare.py{' --quick' if args.quick else ''}, {args.rounds} round(s)"
    text = plots.caption(about, how)
    peers = [c for c in table.contenders if c.name != "rust"]
    by_op = {
        op: {c.label: table.ratio_to_rust(c.name, op) for c in peers} for op in operations(sizes)
    }
    samples = {
        c.label: table.results[c.name].samples for c in table.contenders if c.name in table.results
    }
    for path in (
        plots.ratios(by_op, text, args.plots / "compare-ratios.svg"),
        plots.latencies(samples, text, args.plots / "compare-latency.svg"),
    ):
        log(f"drew {path}")


# -- the run -----------------------------------------------------------------------------------


def run(endpoints: list[str], argv: list[str] | None = None) -> str:
    args = options(argv or [])
    sizes = QUICK if args.quick else FULL
    contenders: list[Contender] = args.contenders
    results: dict[str, Outcome] = {}
    commands: dict[str, list[str]] = {}
    for c in contenders:
        try:
            if c.script is None:
                commands[c.name] = [build_ceiling()]
            else:
                commands[c.name] = [ensure_venv(c), str(BENCHES / "contenders" / c.script)]
        except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
            log(f"{c.label}: cannot set up: {e}")
            results[c.name] = Outcome(errors={"*": f"setup: {e}"})

    root = f"/bench-compare-{uuid.uuid4().hex[:8]}/"
    log(f"seeding {sizes['n_a']} + {sizes['n_b']} LabWorkers and {sizes['n_watch']} writes")
    started = time.perf_counter()
    config = asyncio.run(seed(endpoints, sizes, root))
    log(f"seeded in {time.perf_counter() - started:.0f} s")

    runnable = [c for c in contenders if c.name in commands]
    timeout = 300.0 if args.quick else 3600.0
    for r in range(args.rounds):
        shift = r % len(runnable) if runnable else 0
        order = runnable[shift:] + runnable[:shift]
        for c in order:
            run_config = {**config, "prefix": f"{root}run-{r}-{c.name}/"}
            if r > 0:
                # The old repository's key-then-get-per-key lists take ~50 s per 10k: measured
                # in the first round only (their medians are then of that round's samples).
                run_config["n_slow_list"] = 0
            outcome = run_one(c.label, commands[c.name], run_config, timeout)
            log(f"round {r + 1}/{args.rounds}: {c.label} in {outcome.seconds:.0f} s")
            pooled = results.setdefault(c.name, Outcome())
            for op, samples in outcome.samples.items():
                pooled.samples.setdefault(op, []).extend(samples)
            for op, why in outcome.errors.items():
                pooled.errors.setdefault(op, why)
            pooled.seconds += outcome.seconds

    table = Table(contenders, results)
    ready_b = sum(1 for i in range(sizes["n_b"]) if PHASES[i % len(PHASES)] == "Ready")
    about = machine(endpoints[0])
    if args.plots:
        draw(args, table, sizes, about)
    lines = [
        about,
        "",
        f"the same workload on one etcd: LabWorkers of ~2.1 KB ({sizes['n_b']} in B, {ready_b} "
        f"Ready); medians of {args.rounds} round(s)",
        *table.ratios(operations(sizes)),
    ]
    if any(c.name == "package" for c in contenders):
        lines += ["", *table.extras(package_only(sizes))]
    lines += ["", *table.latencies(), ""]
    names = {c.name for c in contenders}
    for about, note in FOOTNOTES:
        if about is None or about in names:
            lines += textwrap.wrap(note, 100, subsequent_indent="  ")
    failures = [
        f"{c.label}: {'stopped' if op == '*' else op}: {why}"
        for c in contenders
        for op, why in (results[c.name].errors.items() if c.name in results else [])
    ]
    if failures:
        lines += ["", "failures:", *(textwrap.shorten(f, 100) for f in failures)]
    return "\n".join(lines)


def main() -> None:
    with etcd_endpoints() as endpoints:
        print(run(endpoints, sys.argv[1:]))


if __name__ == "__main__":
    main()
