"""The floors hold: every import of ``src/`` goes down the plan in ``src/lib.rs`` (or across a
floor without a circle), ``docs/development.md`` shows that plan, and the Python package has
no import circle between its modules and subpackages. See ``tests/layering.py``."""

from __future__ import annotations

from tests.layering import (
    ROOT,
    Import,
    check_python,
    check_rust,
    parse_plan,
    plan_block,
    pyo3_in_the_core,
    python_imports,
    read_crate,
    rust_imports,
)


def test_the_core_and_the_bindings_import_only_downward_and_in_no_circle() -> None:
    plan, modules, imports = read_crate(ROOT / "src")
    assert len(imports) > 100  # the reader finds the imports (it is not checking nothing)
    assert check_rust(plan, modules, imports) == []


def test_the_core_names_no_pyo3() -> None:
    assert pyo3_in_the_core(ROOT / "src") == []


def test_the_development_page_shows_the_plan_of_src_lib_rs() -> None:
    code = plan_block((ROOT / "src" / "lib.rs").read_text())
    docs = plan_block((ROOT / "docs" / "development.md").read_text())
    assert docs == code, "docs/development.md's floor plan differs from src/lib.rs's"


def test_the_python_package_has_no_import_circle() -> None:
    imports = python_imports(ROOT / "python" / "etcd_resources")
    assert any(i.target == "etcd_resources.repository" for i in imports)
    assert check_python(imports) == []


PLAN = parse_plan(
    """
top     | top
middle  | middle
ground  | ground other
"""
)
SOURCES = {
    "": "pub mod ground; pub mod other; pub mod middle; pub mod top;",
    "ground": "use crate::other::Thing;\npub struct Base;\n",
    "other": "pub struct Thing;\n",
    "middle": "use crate::ground::Base;\nuse super::other::Thing;\n",
    "top": "use crate::{middle, ground::Base};\n",
}


def _problems(sources: dict[str, str]) -> list[str]:
    return check_rust(PLAN, sources, rust_imports(sources))


def test_a_plan_that_holds_reports_nothing() -> None:
    assert _problems(SOURCES) == []


def test_an_upward_import_is_named() -> None:
    sources = {**SOURCES, "ground": SOURCES["ground"] + "fn f() { crate::middle::g(); }\n"}
    problems = _problems(sources)
    assert len(problems) == 2, problems  # the upward import, and the circle it closes
    assert problems[0].startswith("ground:3: ground -> middle: 'middle' is on a higher floor")
    assert problems[1].startswith("import circle: ground -> middle -> ground")


def test_a_circle_on_one_floor_is_named() -> None:
    sources = {**SOURCES, "other": "use crate::ground::Base;\npub struct Thing;\n"}
    assert _problems(sources) == [
        "import circle: ground -> other -> ground -> (all of ground, other)"
    ]


def test_comments_strings_and_test_modules_are_not_imports() -> None:
    sources = {
        **SOURCES,
        "ground": SOURCES["ground"]
        + '//! see [`crate::top`]\nconst S: &str = "crate::top::x";\n'
        + "#[cfg(test)]\nmod tests {\n    use crate::top;\n}\n",
    }
    assert _problems(sources) == []


def test_a_module_outside_the_plan_is_named() -> None:
    sources = {**SOURCES, "attic": "pub struct Box;\n"}
    assert _problems(sources) == ["module 'attic' is on no floor: add it to src/lib.rs's plan"]


def test_use_trees_and_child_modules_resolve() -> None:
    sources = {
        "": "",
        "a": "mod b;\nuse b::X;\n",
        "a::b": "use super::super::c::{self, d::{E, F as G}};\n",
    }
    sources["c"] = sources["c::d"] = ""
    found = {(i.source, i.target) for i in rust_imports(sources)}
    assert found == {("a", "a::b"), ("a::b", "c"), ("a::b", "c::d")}


def test_a_python_circle_through_a_subpackage_is_named() -> None:
    imports = [
        Import("etcd_resources.repository", "etcd_resources.neuroglia", "repository.py", 1),
        Import("etcd_resources.neuroglia", "etcd_resources.repository", "neuroglia/watcher.py", 2),
    ]
    assert check_python(imports) == [
        "import circle: etcd_resources.neuroglia -> etcd_resources.repository"
        " -> etcd_resources.neuroglia"
        " -> (all of etcd_resources.neuroglia, etcd_resources.repository)"
    ]
