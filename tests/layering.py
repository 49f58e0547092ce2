"""The floors of the code base, read from the sources (used by ``tests/test_layering.py``).

Rust: ``src/lib.rs``'s module doc holds the floor plan, a ``text`` block of lines
``floor | unit unit ...``, the top floor first. A unit is a module path (``store::etcd``,
``py::keys``); a module belongs to the closest unit among itself and its ancestors. Every
``use`` and every ``crate::``/``super::``/``self::`` path (and a child module's name used
from its parent) is an import. An import may go to a unit on a lower floor, or to one on the
same floor if it closes no circle; a module may use its own ancestors (a child uses its
parent's items), but siblings must not import each other in a circle. Test modules
(``tests``) may import from above (to set a scene up) and are not counted.

Python: ``python/etcd_resources/``'s modules, with each subpackage counted as one node; an
import in either direction is an edge and the graph has no circle.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Import:
    """One import: ``source`` (a module path) names ``target`` at ``file:line``."""

    source: str
    target: str
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.source} -> {self.target}"


# --- reading Rust -------------------------------------------------------------------------

_RAW = re.compile(r'b?r(#*)"')
_CHAR = re.compile(r"'(\\(x..|u\{[0-9a-fA-F]+\}|.)|[^\\'])'")


def blank(src: str) -> str:
    """``src`` without comments and with empty string and char literals (lines kept)."""
    out: list[str] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
            continue
        if src.startswith("/*", i):
            depth = 0
            while i < n:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    out.append("\n" if src[i] == "\n" else "")
                    i += 1
                if depth == 0:
                    break
            continue
        raw = _RAW.match(src, i)
        if raw and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            end = '"' + raw.group(1)
            j = src.find(end, raw.end())
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * src.count("\n", i, j))
            i = j
            continue
        if c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append('""' + "\n" * src.count("\n", i, j))
            i = j + 1
            continue
        if c == "'":
            char = _CHAR.match(src, i)
            if char:
                out.append("' '")
                i = char.end()
                continue
        out.append(c)
        i += 1
    return "".join(out)


_TOKENS = re.compile(
    r"\b(?:pub(?:\([^)]*\))?\s+)?use\s+(?P<use>[^;]+);"
    r"|\bmod\s+(?P<mod>\w+)\s*\{"
    r"|(?P<open>\{)|(?P<close>\})"
    r"|(?<![\w:])(?P<path>(?:crate|super|self|(?P<head>\w+))(?:\s*::\s*\w+)+)"
)


def _split_top(s: str) -> list[str]:
    depth, cur, parts = 0, "", []
    for ch in s:
        depth += (ch == "{") - (ch == "}")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [*parts, cur] if cur else parts


def _use_paths(tree: str) -> Iterable[list[str]]:
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)
    brace = tree.find("{")
    if brace < 0:
        yield [s for s in tree.split("::") if s]
        return
    head = [s for s in tree[:brace].split("::") if s]
    for part in _split_top(tree[brace + 1 : -1]):
        for rest in _use_paths(part):
            yield head + rest


def module_files(src: Path) -> dict[str, Path]:
    """Module path -> file, for every ``.rs`` file under ``src`` (the crate root is ``""``)."""
    files: dict[str, Path] = {}
    for path in sorted(src.rglob("*.rs")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] in ("mod", "lib"):
            parts = parts[:-1]
        files["::".join(parts)] = path
    return files


def _join(*parts: str) -> str:
    return "::".join(p for p in parts if p)


def rust_imports(
    sources: Mapping[str, str], root_exports: Mapping[str, str] | None = None
) -> list[Import]:
    """Every import between modules of ``sources`` (module path -> source text).

    ``root_exports`` maps names the crate root re-exports to their module (``Result`` ->
    ``error``)."""
    root_exports = root_exports or {}
    known = set(sources)
    imports: list[Import] = []
    for module, src in sources.items():
        text = blank(src)
        stack = [(module, 0)]
        depth = 0
        for m in _TOKENS.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            here = stack[-1][0]
            if m.group("mod"):
                depth += 1
                stack.append((_join(here, m.group("mod")), depth))
                known.add(stack[-1][0])
                continue
            if m.group("open"):
                depth += 1
                continue
            if m.group("close"):
                if stack[-1][1] == depth and len(stack) > 1:
                    stack.pop()
                depth -= 1
                continue
            if m.group("use") is not None:
                paths = list(_use_paths(m.group("use")))
            else:
                paths = [re.sub(r"\s", "", m.group("path")).split("::")]
            for path in paths:
                target = _resolve(here, path, known, root_exports)
                if target is not None:
                    imports.append(Import(here, target, module, line))
    return [i for i in imports if i.target != i.source]


def _resolve(
    here: str, path: list[str], known: set[str], root_exports: Mapping[str, str]
) -> str | None:
    segs = list(path)
    if segs[0] == "crate":
        base: list[str] = []
        segs = segs[1:]
    elif segs[0] in ("super", "self"):
        base = here.split("::") if here else []
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                base = base[:-1]
            segs = segs[1:]
    elif _join(here, segs[0]) in known:  # a child module named from its parent
        base = here.split("::") if here else []
    else:
        return None
    full = base + segs
    for k in range(len(full), -1, -1):
        candidate = "::".join(full[:k])
        if candidate in known:
            if candidate == "" and len(full) > 0 and full[0] in root_exports:
                return root_exports[full[0]]
            return candidate
    return None


# --- the floor plan -------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Floors from the ground up: ``floors[0]`` is the ground floor."""

    floors: list[tuple[str, list[str]]]
    reserved: frozenset[str]

    def floor_of_unit(self) -> dict[str, int]:
        return {unit: i for i, (_, units) in enumerate(self.floors) for unit in units}

    def unit_of(self, module: str) -> str | None:
        units = self.floor_of_unit()
        parts = module.split("::")
        for k in range(len(parts), 0, -1):
            candidate = "::".join(parts[:k])
            if candidate in units:
                return candidate
        return None


def plan_block(text: str) -> str:
    """The floor plan: the first ``text`` block after a ``# Floors`` heading (in a Rust doc
    comment or in Markdown), its lines without the ``//!`` prefix."""
    lines = [re.sub(r"^//! ?", "", line) for line in text.splitlines()]
    start = next(i for i, line in enumerate(lines) if re.match(r"#+ Floors\b", line))
    open_ = next(i for i in range(start, len(lines)) if lines[i].strip() == "```text")
    close = next(i for i in range(open_ + 1, len(lines)) if lines[i].strip() == "```")
    return "\n".join(lines[open_ + 1 : close])


def parse_plan(block: str) -> Plan:
    floors: list[tuple[str, list[str]]] = []
    reserved: set[str] = set()
    for line in block.splitlines():
        if "|" not in line:
            continue
        name, _, rest = line.partition("|")
        units = []
        for token in rest.split():
            if token.endswith("*"):
                token = token[:-1]
                reserved.add(token)
            units.append(token)
        floors.append((name.strip(), units))
    floors.reverse()
    return Plan(floors, frozenset(reserved))


# --- the checks -----------------------------------------------------------------------------


def _is_descendant(module: str, ancestor: str) -> bool:
    return ancestor == "" or module.startswith(ancestor + "::")


def check_rust(plan: Plan, modules: Iterable[str], imports: Iterable[Import]) -> list[str]:
    """What breaks the plan: modules outside it, units that do not exist, imports to a higher
    floor, circles. Empty when the plan holds."""
    modules = set(modules)
    problems: list[str] = []
    floor = plan.floor_of_unit()
    for unit in floor:
        if unit not in modules and unit not in plan.reserved:
            problems.append(f"the plan names {unit!r}, which is no module")
    for module in sorted(modules):
        if module and plan.unit_of(module) is None:
            problems.append(f"module {module!r} is on no floor: add it to src/lib.rs's plan")
    edges: dict[str, set[str]] = defaultdict(set)
    for imp in imports:
        if not imp.source or _is_descendant(imp.source, imp.target):
            continue  # the crate root declares everything; a child may use its ancestors
        if "tests" in imp.source.split("::"):
            continue  # a test module may set its scene up with what sits above it
        source_unit, target_unit = plan.unit_of(imp.source), plan.unit_of(imp.target)
        if source_unit is None or target_unit is None:
            continue
        if floor[target_unit] > floor[source_unit]:
            above, below = plan.floors[floor[target_unit]][0], plan.floors[floor[source_unit]][0]
            problems.append(
                f"{imp}: {target_unit!r} is on a higher floor ({above}) "
                f"than {source_unit!r} ({below})"
            )
        edges[imp.source].add(imp.target)
    problems.extend(f"import circle: {' -> '.join(c)}" for c in circles(edges))
    return list(dict.fromkeys(problems))


def circles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One circle per strongly connected component of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    graph = {k: sorted(v) for k, v in edges.items()}

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(
                    [
                        *_cycle_in(sorted(component), graph),
                        f"(all of {', '.join(sorted(component))})",
                    ]
                )

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _cycle_in(component: list[str], graph: Mapping[str, list[str]]) -> list[str]:
    members = set(component)
    path = [component[0]]
    seen = {component[0]: 0}
    while True:
        nxt = next(w for w in graph.get(path[-1], []) if w in members)
        if nxt in seen:
            return [*path[seen[nxt] :], nxt]
        seen[nxt] = len(path)
        path.append(nxt)


def read_crate(src: Path) -> tuple[Plan, set[str], list[Import]]:
    files = module_files(src)
    sources = {module: path.read_text() for module, path in files.items()}
    root = sources[""]
    exports = {}
    for m in re.finditer(r"^pub use (\w+)::\{?([\w, ]+)\}?;", root, re.M):
        for name in m.group(2).split(","):
            exports[name.strip()] = m.group(1)
    plan = parse_plan(plan_block(root))
    imports = [
        Import(i.source, i.target, str(files[i.file].relative_to(src.parent)), i.line)
        for i in rust_imports(sources, exports)
    ]
    modules = set(files) | {i.source for i in imports}
    return plan, modules, imports


def pyo3_in_the_core(src: Path) -> list[str]:
    """Where a file of the core (``src/`` but ``src/py/`` and the crate root, which declares the
    extension module) names ``pyo3``, as ``file:line``."""
    found = []
    for module, path in module_files(src).items():
        if module == "" or module == "py" or module.startswith("py::"):
            continue
        for n, line in enumerate(blank(path.read_text()).splitlines(), 1):
            if re.search(r"\bpyo3\b", line):
                found.append(f"{path.relative_to(src.parent)}:{n}")
    return found


# --- Python ---------------------------------------------------------------------------------


def python_imports(package: Path, name: str = "etcd_resources") -> list[Import]:
    """Every import between modules of the package, each subpackage counted as one node
    (``etcd_resources.cli``)."""
    imports: list[Import] = []
    existing = set()
    for path in [*package.rglob("*.py"), *package.rglob("*.pyi")]:
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        existing.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        module = ".".join(parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = parts if is_pkg else parts[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    prefix = ".".join(base)
                    mod = f"{prefix}.{node.module}" if node.module else prefix
                else:
                    mod = node.module or ""
                targets = [
                    f"{mod}.{a.name}" if f"{mod}.{a.name}" in existing else mod for a in node.names
                ]
            for target in targets:
                if target == name or target.startswith(name + "."):
                    imports.append(
                        Import(_node(module, name), _node(target, name), str(path), node.lineno)
                    )
    return [i for i in imports if i.source != i.target]


def _node(module: str, name: str) -> str:
    """A module, or the subpackage it belongs to (``etcd_resources.cli.get`` ->
    ``etcd_resources.cli``)."""
    parts = module.split(".")
    return ".".join(parts[:2])


def check_python(imports: Iterable[Import]) -> list[str]:
    edges: dict[str, set[str]] = defaultdict(set)
    for imp in imports:
        edges[imp.source].add(imp.target)
    return [f"import circle: {' -> '.join(c)}" for c in circles(edges)]
