"""Every ``python`` example in the README and on the documentation site runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def examples(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


# Each distinct example once (the README's first one is also on the site).
EXAMPLES = {source: f"{page.stem}-{i}" for page in PAGES for i, source in enumerate(examples(page))}


def test_the_pages_have_examples() -> None:
    assert len(EXAMPLES) >= 8
    assert examples(ROOT / "README.md")


@pytest.mark.parametrize("source", list(EXAMPLES), ids=list(EXAMPLES.values()))
def test_example_runs(source: str) -> None:
    run = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
