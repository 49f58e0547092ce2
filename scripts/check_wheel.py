"""`make wheel-test`: install the built wheel into a fresh venv, with no Rust toolchain on
PATH, and run the demo and every Python example of the README and of the documentation site
with it.

The venv is made outside the source tree and every program runs from there, so nothing is
imported from the checkout: only what the wheel installed (and its dependencies, from PyPI).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def the_wheel() -> Path:
    """The wheel in dist/ for this interpreter and machine."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    wheels = [
        w
        for w in sorted((ROOT / "dist").glob("*.whl"))
        if f"-{tag}-" in w.name and w.name.endswith(f"_{platform.machine()}.whl")
    ]
    if not wheels:
        sys.exit(f"no {tag} wheel in dist/: run `make wheel` first")
    return wheels[-1]


def without_rust(path: str) -> str:
    """PATH without any folder holding cargo or rustc (nor the project's own venv)."""
    kept = [
        p
        for p in path.split(os.pathsep)
        if p
        and not any((Path(p) / tool).exists() for tool in ("cargo", "rustc", "maturin"))
        and Path(p).resolve() != (ROOT / ".venv" / "bin").resolve()
    ]
    return os.pathsep.join(kept)


def main() -> None:
    wheel = the_wheel()
    pages = [README, *sorted((ROOT / "docs").glob("*.md"))]
    examples = list(
        dict.fromkeys(
            e
            for page in pages
            for e in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
        )
    )
    with tempfile.TemporaryDirectory(prefix="etcd-resources-wheel-") as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        env["PATH"] = without_rust(os.environ.get("PATH", ""))
        for tool in ("cargo", "rustc"):
            assert shutil.which(tool, path=env["PATH"]) is None, f"{tool} is still on PATH"
        base = sysconfig.get_config_var("BINDIR")
        python = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}", path=base)
        home = Path(tmp) / "venv"
        if python is None:  # pragma: no cover - a Python without its versioned binary
            venv.create(home, with_pip=True)
        else:
            subprocess.run([python, "-m", "venv", str(home)], check=True, env=env)
        py = str(home / "bin" / "python")
        subprocess.run(
            [py, "-m", "pip", "install", "-q", "--disable-pip-version-check",
             f"{wheel}[neuroglia]"],
            check=True, env=env, cwd=tmp,
        )  # fmt: skip
        where = subprocess.run(
            [py, "-c", "import etcd_resources, sys; print(etcd_resources.__file__)"],
            check=True, env=env, cwd=tmp, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        assert where.startswith(str(home)), f"imported from {where}, not the wheel"
        print(f"installed {wheel.name} without Rust on PATH; etcd_resources from {where}")
        demo = subprocess.run(
            [py, "-m", "etcd_resources.demo"], env=env, cwd=tmp, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        if demo.returncode != 0 or "in order, none repeated, none lost" not in demo.stdout:
            sys.exit(f"the demo failed from the wheel:\n{demo.stdout}\n{demo.stderr}")
        print("the demo ran from the wheel")
        for i, source in enumerate(examples):
            run = subprocess.run(
                [py, "-c", source], env=env, cwd=tmp, capture_output=True, text=True, timeout=120
            )
            if run.returncode != 0:
                sys.exit(
                    f"example {i} of the README and the site failed from the wheel:\n{run.stderr}"
                )
        print(f"the {len(examples)} examples of the README and the site ran from the wheel")
        print(f"wheel: {len(examples) + 1} passed, 0 failed")


if __name__ == "__main__":
    main()
