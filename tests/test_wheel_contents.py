"""`make wheel-test`'s list of what a wheel may hold (`scripts/check_wheel.py`): the package's
own files pass, a fault harness or a stray file does not, and what a service needs must be there."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "python" / "etcd_resources"


def check_wheel() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_wheel", ROOT / "scripts" / "check_wheel.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_wheel", module)
    spec.loader.exec_module(module)
    return module


def package_files() -> list[str]:
    """The files maturin puts in a wheel from the source tree (its built module named as one)."""
    names = [
        str(p.relative_to(PACKAGE.parent))
        for p in sorted(PACKAGE.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".pyi", ".typed")
    ]
    return [
        *names,
        "etcd_resources/_core.cpython-311-x86_64-linux-gnu.so",
        "etcd_resources-0.1.0.dist-info/METADATA",
        "etcd_resources-0.1.0.dist-info/WHEEL",
        "etcd_resources-0.1.0.dist-info/RECORD",
        "etcd_resources-0.1.0.dist-info/entry_points.txt",
    ]


def test_the_package_as_it_stands_is_allowed() -> None:
    assert check_wheel().wheel_problems(package_files()) == []


def test_a_fault_harness_or_a_stray_file_is_named() -> None:
    names = [
        *package_files(),
        "etcd_resources/jepsen/__init__.py",
        "etcd_resources/tests/test_x.py",
        "benches/decode.py",
    ]
    assert check_wheel().wheel_problems(names) == [
        "not allowed in the wheel: etcd_resources/jepsen/__init__.py",
        "not allowed in the wheel: etcd_resources/tests/test_x.py",
        "not allowed in the wheel: benches/decode.py",
    ]


def test_what_a_service_needs_must_be_there() -> None:
    names = [n for n in package_files() if not n.endswith((".so", "demo.py"))]
    assert check_wheel().wheel_problems(names) == [
        "missing from the wheel: etcd_resources/_core.*.so",
        "missing from the wheel: etcd_resources/demo.py",
    ]


def test_the_fault_harness_is_not_in_the_package() -> None:
    assert not (PACKAGE / "jepsen").exists()
    assert (ROOT / "jepsen" / "__init__.py").exists()
