"""The benchmarks' plots (benches/plots.py) from small synthetic results, no etcd: each SVG
parses, keeps its caption and every client's label as text, and the same input gives the same
bytes (a rerun does not churn the committed files)."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .helpers import bench_module

SVG = "{http://www.w3.org/2000/svg}"
CAPTION = "make bench, 2026-12-04; machine: Test CPU, 2 cores, Python 3.11, etcd 3.5"


@pytest.fixture(scope="module")
def plots() -> ModuleType:
    return bench_module("plots")


def ratios() -> dict[str, dict[str, float | None]]:
    return {
        "create": {"pkg": 0.71, "aetcd": 0.63, "etcd3-py(old)": 0.09},
        "list 10000": {"pkg": 0.83, "aetcd": 0.43, "etcd3-py(old)": 0.005},
        "watch 5000": {"pkg": 1.01, "aetcd": 1.03, "etcd3-py(old)": None},
    }


def latencies() -> dict[str, dict[str, list[float]]]:
    rnd = random.Random(7)
    return {
        client: {
            op: [rnd.lognormvariate(-8 + i * 0.3, 0.4) for _ in range(200)]
            for op in ("create", "get", "compare_and_swap")
        }
        for i, client in enumerate(("rust", "pkg", "aetcd"))
    }


def scale_rows() -> list[dict[str, Any]]:
    """Rows as `benches/scale.py --json` writes them (the fields the plot reads)."""
    rows: list[dict[str, Any]] = []
    for n in (1000, 10_000):
        rows += [
            {"key": f"{n} etcd list", "label": f"etcd: list (dicts) ({n})", "ours": n * 15e-6,
             "unit": "s", "rust": n * 14e-6, "target": 0.9, "target_is_ratio": True},
            {"key": f"{n} stream peak MiB", "label": "etcd: stream_async, peak RSS growth",
             "ours": 20.0, "unit": "MiB", "target": 64.0, "target_is_ratio": False},
            {"key": f"{n} cache sync", "label": f"cache: initial sync ({n}) / rust range",
             "ours": n * 50e-6, "unit": "s", "rust": n * 5e-6, "target": 0.77,
             "target_is_ratio": True},
            {"key": f"{n} cache KiB", "label": "cache: RSS per resource", "ours": 3.5,
             "unit": "KiB", "target": 5.1, "target_is_ratio": False},
            {"key": f"{n} cache count", "label": "cache: count_by_phase Ready", "ours": 8e-6,
             "unit": "s", "rust": n * 14e-6, "target": 5e-5, "target_is_ratio": False},
        ]  # fmt: skip
    return rows


CASES: list[tuple[str, Callable[[], Any], list[str]]] = [
    ("ratios", ratios, ["pkg", "aetcd", "etcd3-py(old)", "create", "watch 5000", "none"]),
    ("latencies", latencies, ["rust", "pkg", "aetcd", "create", "compare_and_swap", "p99.9"]),
    (
        "scale",
        scale_rows,
        [
            "etcd: list (dicts)",
            "rust: one range, parsed",
            "cache: initial sync",
            "cache: RSS per resource",
            "cache: count_by_phase Ready: target",
            "etcd: stream_async, peak RSS growth",
            "10k",
        ],
    ),
]


@pytest.mark.parametrize(("name", "data", "labels"), CASES, ids=[c[0] for c in CASES])
def test_each_plot_is_text_with_its_caption_and_labels_and_the_same_each_time(
    plots: ModuleType, tmp_path: Path, name: str, data: Callable[[], Any], labels: list[str]
) -> None:
    draw = getattr(plots, name)
    path = draw(data(), CAPTION, tmp_path / "plots" / f"{name}.svg")
    assert path.exists()
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    texts = {"".join(t.itertext()).strip() for t in root.iter(f"{SVG}text")}
    for label in [CAPTION, *labels]:
        assert label in texts, (label, sorted(texts))
    again = draw(data(), CAPTION, tmp_path / "again.svg")
    assert again.read_bytes() == path.read_bytes(), "the same input gives the same file"


def test_the_caption_says_the_command_the_date_and_the_machine(plots: ModuleType) -> None:
    text = plots.caption("# machine: Test CPU, 2 cores", "make bench")
    assert text.startswith("make bench, 20")
    assert text.endswith("; machine: Test CPU, 2 cores")
