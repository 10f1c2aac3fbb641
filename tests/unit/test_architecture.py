"""The house rules, checked on the source: no import cycles, small files, one-way data flow.

Imports are read with ``ast`` (nothing is executed), counting imports inside functions too:
a cycle hidden in a lazy import is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOP_LEVEL = ("main", "model", "config", "weights")


def project_modules() -> dict[str, Path]:
    modules = {name: ROOT / f"{name}.py" for name in TOP_LEVEL}
    for path in (ROOT / "stylebot").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules that ``name`` imports (``from a.b import c`` counts ``a.b.c`` if it is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    edges = {name: imports_of(name, path, known) for name, path in modules.items()}
    # A package's __init__ importing its own submodules is how re-exports work, not a cycle.
    return {name: {t for t in targets if not t.startswith(name + ".")} for name, targets in edges.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_among_the_projects_modules() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_nothing_imports_main() -> None:
    importers = sorted(name for name, targets in graph().items() if "main" in targets)
    assert importers == []


def test_no_source_file_outside_tests_is_over_600_lines() -> None:
    sources = [*ROOT.glob("*.py"), *(ROOT / "stylebot").rglob("*.py"), *(ROOT / "bench").glob("*.py")]
    long = {str(p.relative_to(ROOT)): n for p in sources if (n := len(p.read_text().splitlines())) > 600}
    assert long == {}


@pytest.mark.parametrize("part", ["stylebot.engine"])
def test_the_engine_knows_nothing_of_telegram_or_the_bot(part: str) -> None:
    edges = graph()
    for name, targets in edges.items():
        if name.startswith(part):
            outside = {t for t in targets if t.startswith("stylebot.") and not t.startswith(part)}
            assert outside <= {"stylebot.errors"}, f"{name} imports {outside}"
            source = project_modules()[name].read_text()
            assert "telebot" not in source, f"{name} mentions telebot"


@pytest.mark.parametrize("part", ["stylebot.chat", "stylebot.jobs", "stylebot.store", "stylebot.polling"])
def test_the_bot_knows_nothing_of_tensors(part: str) -> None:
    for name, path in project_modules().items():
        if name.startswith(part):
            tree = ast.parse(path.read_text())
            imported = {
                alias.name.split(".")[0]
                for node in ast.walk(tree)
                if isinstance(node, ast.Import)
                for alias in node.names
            }
            imported |= {
                (node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            }
            assert not imported & {"torch", "torchvision", "numpy"}, f"{name} imports {imported & {'torch'}}"
