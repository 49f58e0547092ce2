"""Print one CPython interpreter per minor version this package supports (3.11 and later)
found on this machine: on PATH, or installed by pyenv. `make wheel` builds a wheel for each and
`make wheel-test` tests each."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

MINORS = range(11, 20)


def candidates() -> list[str]:
    found = [shutil.which(f"python3.{m}") for m in MINORS]
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found += [str(p) for m in MINORS for p in sorted(root.glob(f"3.{m}.*/bin/python3.{m}"))]
    return [c for c in found if c]


def main() -> None:
    seen: dict[str, str] = {}
    for exe in candidates():
        run = subprocess.run(
            [exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2], sys.executable)"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if run.returncode == 0 and run.stdout.strip():
            version, real = run.stdout.split(maxsplit=1)
            seen.setdefault(version, real.strip())
    print(" ".join(seen[v] for v in sorted(seen, key=lambda v: int(v.split(".")[1]))))


if __name__ == "__main__":
    main()
