"""`make docs-check`: the built site as a reader at 1280 px sees it, in headless Chromium.

For each checked page: a screenshot (OUT/<page>.png), and a measure taken in the page itself. A
copy of the page gets a small script that, once the page has loaded, measures every code block
(wider than its box: cut off on the right) and the table of contents of the right-hand sidebar
(visible, with links), and writes what it found into the DOM; Chromium's ``--dump-dom`` prints
that DOM. Nothing to install from PyPI: the browser is Debian's ``chromium``.

Usage: python scripts/docs_check.py SITE_DIR OUT_DIR. Exits 1 naming each page that fails.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

WIDTH = 1280
PAGES = {
    "home": "index.html",
    "getting-started": "getting-started/index.html",
    "labworkers": "labworkers/index.html",
    "cli": "cli/index.html",
    "api": "api/index.html",
    "controller": "controller/index.html",
}

# Runs in the page once it has loaded; its findings become the attribute data-docs-check.
MEASURE = """
<script>
window.addEventListener("load", () => {
  const wide = [...document.querySelectorAll(".md-content pre > code, .md-content pre")]
    .filter((e) => e.scrollWidth > e.clientWidth + 1)
    .map((e) => `${e.scrollWidth}px in ${e.clientWidth}px: ${e.textContent.split("\\n")[0]}`);
  const toc = document.querySelector(".md-sidebar--secondary nav.md-nav--secondary");
  const shown = toc !== null && toc.getClientRects().length > 0;
  const links = shown ? toc.querySelectorAll("a.md-nav__link").length : 0;
  document.body.setAttribute("data-docs-check", JSON.stringify({wide, toc: links}));
});
</script>
"""


def chromium(*args: str) -> str:
    """Run headless Chromium at WIDTH px; its standard output."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("no chromium on PATH: apt-get install -y chromium")
    sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium refuses root otherwise
    command = [
        browser,
        "--headless",
        *sandbox,
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={WIDTH},1400",
        "--virtual-time-budget=5000",  # let the page's own scripts and fonts settle first
        *args,
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        sys.exit(f"chromium failed ({run.returncode}): {run.stderr[-2000:]}")
    return run.stdout


def measure(page: Path) -> tuple[list[str], int]:
    """Load a copy of ``page`` with the measuring script: the code blocks cut off, and the
    number of links in the table of contents."""
    probe = page.with_name("docs-check.html")
    probe.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    try:
        dom = chromium("--dump-dom", probe.as_uri())
    finally:
        probe.unlink()
    found = re.search(r'data-docs-check="([^"]*)"', dom)
    if found is None:
        sys.exit(f"{page}: the measuring script did not run")
    result = json.loads(html.unescape(found.group(1)))
    return [str(w) for w in result["wide"]], int(result["toc"])


def main(site: Path, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    failures = []
    for name, path in PAGES.items():
        page = (site / path).resolve()
        shot = (out / f"{name}.png").resolve()
        chromium(f"--screenshot={shot}", page.as_uri())
        wide, toc = measure(page)
        where = os.path.relpath(shot)
        print(f"{name:16} toc links {toc:3}  code blocks cut off {len(wide)}  {where}")
        failures += [f"{name}: code block cut off, {w}" for w in wide]
        if not toc:
            failures.append(f"{name}: the table of contents is empty")
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
