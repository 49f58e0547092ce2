"""Decoding stored documents into Python objects: this package's decoder against `pythonize`.

DESIGN.md names `pythonize` for moving values between Rust and Python; the package decodes with
its own serde visitor (`src/py/decode.rs`). Both are fed straight from serde_json's parser (for
`pythonize`, its serializer through `serde_transcode`: no intermediate value either), timed in
Rust on the same LabWorker documents (`_core._decode_bench`), and must make equal objects. The
ratio is pythonize's time over ours: above 1, ours is faster.
"""

from __future__ import annotations

import json

from common import lab_worker

from etcd_resources import _core

ROUNDS = 7
N = 2_000


def run() -> str:
    # Only in the benches' build (`make release`: the cargo feature `bench`), not in a wheel.
    bench = getattr(_core, "_decode_bench", None)
    if bench is None:
        return "decoding: skipped (build with `make release`: the cargo feature `bench`)"
    docs = [json.dumps(lab_worker(i), separators=(",", ":")).encode() for i in range(8)]
    size = sum(map(len, docs)) // len(docs)
    times: dict[str, list[float]] = {"ours": [], "pythonize": []}
    for _ in range(ROUNDS):
        for how in ("ours", "pythonize"):  # alternating, so both see the same machine
            total = 0.0
            for doc in docs:
                seconds, made = bench(doc, how, N // len(docs))
                assert made == json.loads(doc), how
                total += seconds
            times[how].append(total / N)
    ours, theirs = (sorted(times[k])[ROUNDS // 2] for k in ("ours", "pythonize"))
    return "\n".join(
        [
            f"decoding a LabWorker document of {size} bytes into dicts, median of {ROUNDS} rounds",
            f"{'decoder':<40}{'per document':>14}",
            f"{'this package (decode.rs)':<40}{ours * 1e6:>11.2f} us",
            f"{'pythonize (serde_transcode)':<40}{theirs * 1e6:>11.2f} us",
            f"{'pythonize / ours':<40}{theirs / ours:>14.2f}",
        ]
    )


if __name__ == "__main__":
    print(run())
