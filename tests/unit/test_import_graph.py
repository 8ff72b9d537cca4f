"""The import graph of ``src/tidings``: no cycles, and the layers' outside imports.

Every ``import``/``from ... import`` is read from the source with :mod:`ast`,
those inside functions included (an import moved into a function hides a
cycle from Python, not from this test); those under ``if TYPE_CHECKING:``
are left out, since they never run. ``from tidings.a import b`` is an edge to
the module ``tidings.a.b`` when there is one, else to ``tidings.a``.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Iterator
from pathlib import Path

import tidings

SRC = Path(tidings.__file__).parent
ROOT = "tidings"


def module_files(src: Path = SRC) -> dict[str, Path]:
    """Every module under ``src`` by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for path in sorted(src.rglob("*.py")):
        parts = (ROOT, *path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, skipping the body (not the ``else``) of ``if TYPE_CHECKING:``."""
    todo = list(ast.iter_child_nodes(tree))
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        yield node
        todo.extend(ast.iter_child_nodes(node))


def _imports(source: str, *, module: str, is_package: bool) -> Iterator[tuple[str, list[str]]]:
    """``(base, names)`` per import statement: ``("a.b", [])`` for ``import a.b``,
    ``("a.b", ["c", "d"])`` for ``from a.b import c, d``; relative imports are
    resolved against ``module``."""
    package = module if is_package else module.rpartition(".")[0]
    for node in _nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, [alias.name for alias in node.names]


def edges(modules: dict[str, str], *, packages: Iterable[str] = ()) -> dict[str, set[str]]:
    """``{module: modules of the same tree it imports}``, from ``{module: source}``.

    ``from a import b`` is an edge to ``a.b`` when that is a module, else to
    ``a``; ``import a.b`` is an edge to ``a.b``."""
    packages = set(packages)
    graph: dict[str, set[str]] = {}
    for name, source in modules.items():
        targets: set[str] = set()
        for base, names in _imports(source, module=name, is_package=name in packages):
            for imported in [f"{base}.{n}" if f"{base}.{n}" in modules else base for n in names] or [base]:
                if imported in modules and imported != name:
                    targets.add(imported)
        graph[name] = targets
    return graph


def components(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, each sorted:
    every module of one can reach every other, so each is in a cycle (Tarjan's
    algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) through each of :func:`components`."""
    return [_cycle_in(graph, component) for component in components(graph)]


def _cycle_in(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component."""
    members = set(component)
    start = component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle in the component {component}")  # pragma: no cover


@functools.cache
def tidings_graph() -> dict[str, set[str]]:
    files = module_files()
    packages = {name for name, path in files.items() if path.name == "__init__.py"}
    return edges({name: path.read_text() for name, path in files.items()}, packages=packages)


def outside_imports(prefix: str) -> dict[str, set[str]]:
    """``{module: top-level names of the non-tidings packages it imports}`` for
    every module in ``prefix`` (and the package itself)."""
    found: dict[str, set[str]] = {}
    for name, path in module_files().items():
        if name == prefix or name.startswith(prefix + "."):
            imported = _imports(path.read_text(), module=name, is_package=path.name == "__init__.py")
            found[name] = {base.split(".")[0] for base, _ in imported} - {ROOT}
    return found


def _show(graph: dict[str, set[str]], found: list[list[str]]) -> str:
    """Each component as one of its cycles, and the whole component when it is larger."""
    lines = []
    for component in found:
        cycle = _cycle_in(graph, component)
        lines.append(" -> ".join(cycle))
        if len(component) > len(cycle) - 1:
            lines.append(f"  (one tangle with {', '.join(component)})")
    return "\n".join(lines)


# -- the checker itself: it sees what it must see


def test_an_import_inside_a_function_makes_an_edge_and_type_checking_ones_do_not() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import tidings.c\n"
        "if TYPE_CHECKING:\n"
        "    from tidings import d\n"
        "def late():\n"
        "    from tidings.b import thing\n"
        "    from . import e\n"
    )
    modules = {"tidings.a": source, "tidings.b": "", "tidings.c": "", "tidings.d": "", "tidings.e": ""}
    assert edges(modules)["tidings.a"] == {"tidings.b", "tidings.c", "tidings.e"}


def test_a_cycle_hidden_in_a_function_is_found_and_printed_in_order() -> None:
    graph = edges({
        "tidings.a": "from tidings import b\n",
        "tidings.b": "import tidings.c\n",
        "tidings.c": "def f():\n    from tidings.a import x\n",
        "tidings.d": "from tidings.a import y\n",
    })
    assert cycles(graph) == [["tidings.a", "tidings.b", "tidings.c", "tidings.a"]]


def test_importing_a_submodule_is_no_edge_to_its_package() -> None:
    graph = edges({
        "tidings.p": "from tidings.p.m import run\n",
        "tidings.p.m": "from tidings.p import other\n",
        "tidings.q": "from tidings.p import m\n",
    }, packages={"tidings.p"})
    assert graph["tidings.q"] == {"tidings.p.m"}
    assert cycles(graph) == [["tidings.p", "tidings.p.m", "tidings.p"]]


# -- the rules


def test_no_module_of_tidings_is_part_of_an_import_cycle() -> None:
    graph = tidings_graph()
    found = components(graph)
    assert not found, "import cycles:\n" + _show(graph, found)


def test_no_import_cycle_passes_through_the_api() -> None:
    graph = tidings_graph()
    found = [c for c in components(graph) if any(m.split(".")[:2] == ["tidings", "api"] for m in c)]
    assert not found, "import cycles through tidings.api:\n" + _show(graph, found)


def test_the_api_app_imports_and_the_web_ui_does_not_import_it() -> None:
    graph = tidings_graph()
    assert "tidings.services.sending" in graph["tidings.api.app"]  # the graph is not empty
    importers = {m for m, targets in graph.items() if "tidings.api.app" in targets}
    assert importers <= {"tidings.cli"}, importers


def test_no_function_imports_a_module_of_tidings() -> None:
    """Imports of our own modules are at the top of each module, where a cycle
    shows. Only the command line imports lazily, so ``tidings --help`` answers
    at once."""
    found: dict[tuple[str, int], str] = {}
    for name, path in module_files().items():
        if name == "tidings.cli":
            continue
        for function in ast.walk(ast.parse(path.read_text())):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(function):  # outer functions first: the innermost wins
                    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tidings") \
                            or isinstance(node, ast.Import) and any(a.name.startswith("tidings")
                                                                    for a in node.names):
                        found[(name, node.lineno)] = f"{name}.{function.name} (line {node.lineno})"
    assert not found, f"imports inside functions: {sorted(found.values())}"


def test_no_module_of_the_engine_imports_sqlalchemy() -> None:
    found = {m: names for m, names in outside_imports("tidings.engine").items() if "sqlalchemy" in names}
    assert not found, f"the engine imports SQLAlchemy in {sorted(found)}"


def test_the_domain_imports_no_database_or_web_framework() -> None:
    banned = {"sqlalchemy", "fastapi", "starlette"}
    imports = outside_imports("tidings.domain")
    assert imports, "no domain modules found"
    found = {m: sorted(names & banned) for m, names in imports.items() if names & banned}
    assert not found, f"the domain imports {found}"


#: The size past which a module holds more than one noun (issue 11's bound).
MAX_MODULE_LINES = 600


def test_no_module_is_over_600_lines() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in module_files().items()}
    assert sizes, "no modules found"
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}
