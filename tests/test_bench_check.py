"""The logic of `make bench-check` (benches/bench_check.py) on fabricated runs: a row whose
ratio drops beyond its recorded noise fails, named; within the noise passes. The benchmark
itself is not run here (it is its own make target)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .helpers import BENCHES, bench_module


@pytest.fixture(scope="module")
def bc() -> ModuleType:
    return bench_module("bench_check")


RUNS = [
    {"compare get": 0.80, "5000 etcd list": 1.00, "5000 cache KiB": 0.30, "noisy": 1.0},
    {"compare get": 0.84, "5000 etcd list": 1.02, "5000 cache KiB": 0.30, "noisy": 2.0},
    {"compare get": 0.82, "5000 etcd list": 0.98, "5000 cache KiB": 0.31, "noisy": 0.5},
    {"compare get": 0.78, "5000 etcd list": 1.01, "5000 cache KiB": 0.30, "noisy": 1.4},
    {"compare get": 0.83, "5000 etcd list": 0.99, "5000 cache KiB": 0.29, "noisy": 0.9},
]


def baseline(bc: ModuleType) -> dict[str, Any]:
    return dict(bc.make_baseline(RUNS, {"machine": "test"}))


def test_the_baseline_keeps_each_rows_median_noise_and_tolerance(bc: ModuleType) -> None:
    rows = baseline(bc)["rows"]
    assert rows["compare get"]["ratio"] == pytest.approx(0.82)
    assert rows["compare get"]["noise"] == pytest.approx((0.84 - 0.78) / 0.82, abs=1e-4)
    # NOISE_FACTOR x the spread, or the floor.
    spread = 0.06 / 0.82
    want = max(bc.TOLERANCE_FLOOR, bc.NOISE_FACTOR * spread)
    assert rows["compare get"]["tolerance"] == pytest.approx(want, abs=1e-4)
    # A 4% spread gets the floor.
    assert rows["5000 etcd list"]["tolerance"] == bc.TOLERANCE_FLOOR
    assert all(rows[k]["checked"] for k in ("compare get", "5000 etcd list", "5000 cache KiB"))
    assert rows["noisy"]["checked"] is False


def test_a_baseline_needs_five_runs(bc: ModuleType) -> None:
    with pytest.raises(ValueError, match="at least 5"):
        bc.make_baseline(RUNS[:4], {})


def test_a_run_within_the_noise_passes(bc: ModuleType) -> None:
    run = {"compare get": 0.75, "5000 etcd list": 0.92, "5000 cache KiB": 0.28, "noisy": 0.4}
    verdict = bc.check(run, baseline(bc))
    assert verdict.ok, verdict.failures
    assert any("compare get" in line and "ok" in line for line in verdict.lines)


def test_a_dropped_row_fails_naming_it(bc: ModuleType) -> None:
    # 30% under a row recorded at 1.00 with a 4% spread: past the 25% floor.
    run = {"compare get": 0.82, "5000 etcd list": 0.70, "5000 cache KiB": 0.30, "noisy": 1.0}
    verdict = bc.check(run, baseline(bc))
    assert not verdict.ok
    assert len(verdict.failures) == 1
    assert verdict.failures[0].startswith("5000 etcd list: ratio 0.7 against 1 recorded")
    assert any(line.startswith("5000 etcd list") and "DROPPED" in line for line in verdict.lines)


def test_a_drop_fails_only_when_the_confirming_run_drops_too(bc: ModuleType) -> None:
    first = {"compare get": 0.82, "5000 etcd list": 0.70, "5000 cache KiB": 0.30, "noisy": 1.0}
    # The confirming run: the list row back within its noise, another row lower than before.
    again = {"compare get": 0.70, "5000 etcd list": 0.99, "5000 cache KiB": 0.30, "noisy": 0.2}
    best = bc.best_of(first, again)
    assert best == {"compare get": 0.82, "5000 etcd list": 0.99, "5000 cache KiB": 0.30,
                    "noisy": 1.0}  # fmt: skip
    assert bc.check(best, baseline(bc)).ok
    # A regression drops in both runs: it fails, named.
    verdict = bc.check(bc.best_of(first, {**again, "5000 etcd list": 0.72}), baseline(bc))
    assert [f.split(":")[0] for f in verdict.failures] == ["5000 etcd list"]
    # A row missing from one run keeps the other's ratio.
    assert bc.best_of({"a": 1.0}, {"a": 0.5, "b": 2.0}) == {"a": 1.0, "b": 2.0}


def test_a_too_noisy_row_is_shown_but_never_fails(bc: ModuleType) -> None:
    run = {"compare get": 0.82, "5000 etcd list": 1.0, "5000 cache KiB": 0.30, "noisy": 0.01}
    verdict = bc.check(run, baseline(bc))
    assert verdict.ok
    assert any(line.startswith("noisy") and "too noisy" in line for line in verdict.lines)


def test_an_improvement_passes_and_a_missing_row_fails(bc: ModuleType) -> None:
    run = {"compare get": 2.0, "5000 etcd list": 1.0, "noisy": 1.0, "5000 new row": 3.0}
    verdict = bc.check(run, baseline(bc))
    assert verdict.failures == ["5000 cache KiB: missing from this run"]
    assert any("compare get" in line and "improved" in line for line in verdict.lines)
    assert any(line.startswith("5000 new row") and "not recorded" in line for line in verdict.lines)


def test_the_command_checks_a_saved_run_and_exits_1_naming_the_row(
    bc: ModuleType, tmp_path: Path
) -> None:
    base = tmp_path / "baseline.json"
    base.write_text(json.dumps(baseline(bc)))
    saved = tmp_path / "run.json"
    rows = {"compare get": 0.5, "5000 etcd list": 1.0, "5000 cache KiB": 0.30, "noisy": 1.0}
    saved.write_text(json.dumps({"machine": "test", "rows": rows}))
    command = [sys.executable, str(BENCHES / "bench_check.py"), "--baseline", str(base)]
    done = subprocess.run([*command, "--results", str(saved)], capture_output=True, text=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "bench-check FAILED: 1 row(s)" in done.stdout
    assert "  compare get: ratio 0.5 against 0.82 recorded" in done.stdout
    saved.write_text(json.dumps({"machine": "test", "rows": {**rows, "compare get": 0.8}}))
    done = subprocess.run([*command, "--results", str(saved)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 rows within their noise" in done.stdout


def test_the_recorded_baseline_is_well_formed(bc: ModuleType) -> None:
    recorded = json.loads((BENCHES / "baseline.json").read_text())
    assert recorded["machine"] and recorded["recorded"] and recorded["runs"] >= bc.MIN_RUNS
    for key, row in recorded["rows"].items():
        assert len(row["runs"]) == recorded["runs"], key
        assert row["tolerance"] >= bc.TOLERANCE_FLOOR, key
