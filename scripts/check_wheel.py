"""`make wheel-test`: check that the built wheel holds only what a service uses (`ALLOWED`),
install it into a fresh venv, with no Rust toolchain on PATH, run the demo without Neuroglia,
then with the Neuroglia extra the demo again and every Python example of the README and of the
documentation site.

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
import zipfile
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


# What a wheel may hold (`*` stays within one folder): the package a service imports, its
# stubs and marker, the native module, and the wheel's metadata. No fault harness (`jepsen/`
# lives beside the package), no benchmark, no test. A new file of the package is added here
# on purpose, or the check fails.
ALLOWED = (
    "etcd_resources/*.py",
    "etcd_resources/_core.pyi",
    "etcd_resources/py.typed",
    "etcd_resources/_core.*.so",
    "etcd_resources/cli/*.py",
    "etcd_resources/neuroglia/*.py",
    "etcd_resources/controller/*.py",
    "etcd_resources-*.dist-info/*",
    "etcd_resources-*.dist-info/licenses/*",
    "etcd_resources-*.dist-info/sboms/*",
)
# What it must hold.
REQUIRED = (
    "etcd_resources/__init__.py",
    "etcd_resources/_core.pyi",
    "etcd_resources/py.typed",
    "etcd_resources/_core.*.so",
    "etcd_resources/demo.py",
)


def _pattern(glob: str) -> re.Pattern[str]:
    return re.compile("".join("[^/]*" if c == "*" else re.escape(c) for c in glob) + r"\Z")


def wheel_problems(names: Iterable[str]) -> list[str]:
    """What is wrong with a wheel holding the files `names`: each file `ALLOWED` does not
    cover, each `REQUIRED` pattern no file matches. Empty when it is right."""
    names = [n for n in names if not n.endswith("/")]
    allowed = [_pattern(g) for g in ALLOWED]
    problems = [
        f"not allowed in the wheel: {n}" for n in names if not any(p.match(n) for p in allowed)
    ]
    problems += [
        f"missing from the wheel: {g}"
        for g in REQUIRED
        if not any(_pattern(g).match(n) for n in names)
    ]
    return problems


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
    with zipfile.ZipFile(wheel) as z:
        problems = wheel_problems(z.namelist())
    if problems:
        sys.exit(f"{wheel.name}:\n" + "\n".join(problems))
    print(f"{wheel.name} holds only what a service uses")
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

        def install(requirement: str) -> None:
            subprocess.run(
                [py, "-m", "pip", "install", "-q", "--disable-pip-version-check", requirement],
                check=True, env=env, cwd=tmp,
            )  # fmt: skip

        def demo(expected: str, how: str) -> None:
            run = subprocess.run(
                [py, "-m", "etcd_resources.demo"], env=env, cwd=tmp, capture_output=True,
                text=True, timeout=300,
            )  # fmt: skip
            ended = "in order, none repeated, none lost" in run.stdout
            if run.returncode != 0 or expected not in run.stdout or not ended:
                sys.exit(f"the demo failed from the wheel {how}:\n{run.stdout}\n{run.stderr}")
            print(f"the demo ran from the wheel {how}")

        # First the plain install (no dependencies): the demo runs without Neuroglia.
        install(str(wheel))
        demo("plain asyncio (no Neuroglia installed)", "without Neuroglia")
        install(f"{wheel}[neuroglia]")
        where = subprocess.run(
            [py, "-c", "import etcd_resources, sys; print(etcd_resources.__file__)"],
            check=True, env=env, cwd=tmp, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        assert where.startswith(str(home)), f"imported from {where}, not the wheel"
        print(f"installed {wheel.name} without Rust on PATH; etcd_resources from {where}")
        demo("EtcdLabInstanceResourceRepository as scoped", "with Neuroglia")
        for i, source in enumerate(examples):
            run = subprocess.run(
                [py, "-c", source], env=env, cwd=tmp, capture_output=True, text=True, timeout=120
            )
            if run.returncode != 0:
                sys.exit(
                    f"example {i} of the README and the site failed from the wheel:\n{run.stderr}"
                )
        print(f"the {len(examples)} examples of the README and the site ran from the wheel")
        print(f"wheel: {len(examples) + 3} passed, 0 failed")


if __name__ == "__main__":
    main()
