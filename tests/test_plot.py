"""``jepsen.plot``: a small synthetic history drawn as an SVG with the fault's window shaded on
both panels and the three outcomes' series, read from the SVG's ids and text (not pixels)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from jepsen.history import History
from jepsen.plot import Window, plot_history

SVG = "{http://www.w3.org/2000/svg}"


def synthetic() -> History:
    """12 ok, 5 failed and 3 unknown operations over 3 s; the failed and unknown ones in the
    fault's window (1-2 s)."""
    h = History()
    t0 = 1000.0
    for i in range(12):
        h.record(process=0, kind="get", key="a", invoke=t0 + i * 0.25, outcome="ok",
                 complete=t0 + i * 0.25 + 0.01)  # fmt: skip
    for i in range(5):
        h.record(process=1, kind="cas", key="a", invoke=t0 + 1.0 + i * 0.2, outcome="fail",
                 complete=t0 + 1.05 + i * 0.2)  # fmt: skip
    for i in range(3):
        h.record(process=2, kind="create", key="b", invoke=t0 + 1.1 + i * 0.3,
                 outcome="unknown", complete=t0 + 1.6 + i * 0.3)  # fmt: skip
    return h


def test_the_plot_has_the_window_and_each_outcome(tmp_path: Path) -> None:
    history = synthetic()
    assert history.count(outcome="unknown") == 3
    assert all(op.returned is not None for op in history), "the answer's time is kept"
    path = plot_history(
        history,
        Window(1001.0, 1002.0, "isolate m1"),
        tmp_path / "plots" / "isolate-m1.svg",
        title="isolate m1",
        caption="synthetic history, test machine",
    )
    root = ET.parse(path).getroot()
    by_id = {e.get("id"): e for e in root.iter() if e.get("id")}
    for gid in ("fault-window-latency", "fault-window-rate", "caption"):
        assert gid in by_id, sorted(by_id)
    for outcome, count in (("ok", 12), ("fail", 5), ("unknown", 3)):
        points = by_id[f"latency-{outcome}"].findall(f".//{SVG}use")
        assert len(points) == count, (outcome, len(points))
        assert f"rate-{outcome}" in by_id, sorted(by_id)
    texts = {"".join(t.itertext()).strip() for t in root.iter(f"{SVG}text")}
    for label in ("ok (12)", "failed (5)", "unknown (3)", "isolate m1", "latency (ms)"):
        assert label in texts, texts
    assert "synthetic history, test machine" in texts
    again = plot_history(history, Window(1001.0, 1002.0, "isolate m1"), tmp_path / "b.svg",
                         title="isolate m1", caption="synthetic history, test machine")  # fmt: skip
    assert again.read_bytes() == path.read_bytes(), "the same history gives the same file"
