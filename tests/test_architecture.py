"""The seams of the code base, checked on its source: which package may import which, and no
import circles (counting imports inside functions too: a circle through a lazy import is still a
circle, it only fails later)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules(package: str) -> dict[str, Path]:
    found = {}
    for path in (ROOT / package).rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Every module ``path`` imports, at any depth; ``from pkg import mod`` counts as ``mod``
    (not as the package) when ``mod`` is a module of ours."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [f"{node.module}.{a.name}" for a in node.names
                    if f"{node.module}.{a.name}" in known]
            out.update(subs)
            if len(subs) < len(node.names):
                out.add(node.module)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_circles() -> None:
    known = {**_modules("models"), **_modules("app")}
    graph = {m: {t for t in _imports(p, known) if t in known and t != m} for m, p in known.items()}
    assert _cycles(graph) == []
    # the check sees a circle when there is one
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_core_never_imports_the_app_or_qt() -> None:
    known = _modules("models")
    for name, path in known.items():
        bad = {t for t in _imports(path, known)
               if t.split(".")[0] in ("app", "PySide6", "shiboken6")}
        assert not bad, f"{name} imports {sorted(bad)}"


def test_the_app_never_imports_the_backend_itself() -> None:
    """Keras and TensorFlow are imported by models/ code on the worker thread only."""
    known = _modules("app")
    for name, path in known.items():
        bad = {t for t in _imports(path, known)
               if t.split(".")[0] in ("keras", "tensorflow", "jax", "torch")}
        assert not bad, f"{name} imports {sorted(bad)}"


def test_gui_code_reaches_into_no_other_objects_private_attributes() -> None:
    """Windows, widgets and workspaces use each other's public API only: ``x._name`` is
    allowed on ``self`` and ``cls`` alone."""
    gui = [ROOT / "app" / "main_window.py", *sorted((ROOT / "app" / "widgets").glob("*.py")),
           *sorted((ROOT / "app" / "workspaces").glob("*.py"))]
    found = []
    for path in gui:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls", "atexit", "os"):
                continue
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
    assert found == []
