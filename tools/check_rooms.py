#!/usr/bin/env python3
"""Check the import rules between the rooms inside `gateway/` (docs: ARCHITECTURE.md, "Rooms").

    python3 tools/check_rooms.py [PROJECT_ROOT]

A room is a sub-package of `gateway/` (a folder with an `__init__.py`). The rules:

1. Another room is imported only through its package, which names its public API in `__all__`:
   `from gateway.storage import SealedOutbox`, never `from gateway.storage.outbox import SealedOutbox`.
   Inside a room, its own modules import each other freely.
2. No cycles between rooms: if `readings` imports `storage`, nothing in `storage` imports `readings`,
   directly or through other rooms. The command line (`ENTRY_POINTS`) wires every room together and
   is left out of the cycle check, not out of rule 1.
3. Every room's `__init__.py` has a docstring and an `__all__`.
4. `bench/` does not import `tests/`: a benchmark measures the product, and what both need lives in bench/.

Exit 0 when every rule holds; 1 with one line per problem otherwise. Standard library only, so it runs
before anything is installed; the layer rules between top-level packages are ../shared/tools/check_layers.py.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "gateway"
# Modules that only wire rooms together for a process; their imports are not a room's dependencies.
ENTRY_POINTS = {"gateway/service/cli.py"}


def rooms_of(root: Path) -> list[str]:
    package = root / PACKAGE
    return sorted(p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists())


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(root: Path, path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module_name(root, path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names = [alias.name for alias in node.names]
            if node.level and not node.module:  # `from . import x`: x may be a module
                found += [(node.lineno, f"{module}.{name}", []) for name in names]
            else:
                found.append((node.lineno, module, names))
    return found


def room_of(module: str, rooms: list[str]) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == PACKAGE and parts[1] in rooms else None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one room (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def check(root: Path) -> list[str]:
    rooms = rooms_of(root)
    problems: list[str] = []
    graph: dict[str, set[str]] = {room: set() for room in rooms}
    evidence: dict[tuple[str, str], str] = {}
    for room in rooms:
        init = root / PACKAGE / room / "__init__.py"
        tree = ast.parse(init.read_text(encoding="utf-8"))
        if ast.get_docstring(tree) is None:
            problems.append(f"{init.relative_to(root)}: a room's __init__.py says what the room holds (docstring)")
        if not any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in n.targets)
                   for n in tree.body):
            problems.append(f"{init.relative_to(root)}: a room's __init__.py names its public API in __all__")
    for path in sorted((root / PACKAGE).rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        own = room_of(module_name(root, path), rooms)
        for line, module, names in imports(root, path):
            target = room_of(module, rooms)
            if target is None or target == own:
                continue
            where = f"{relative}:{line}"
            deep = module.split(".")[2:]
            if deep:
                wanted = ", ".join(names) or deep[0]
                problems.append(f"{where}: import {module} through its room: from {PACKAGE}.{target} import "
                                f"{wanted} (and add it to {PACKAGE}/{target}/__init__.py's __all__)")
            if own is not None and relative not in ENTRY_POINTS:
                graph[own].add(target)
                evidence.setdefault((own, target), where)
    bench = root / "bench"
    for path in sorted(bench.rglob("*.py")) if bench.is_dir() else []:
        for line, module, _ in imports(root, path):
            if module.split(".")[0] == "tests":
                problems.append(f"{path.relative_to(root).as_posix()}:{line}: bench/ must not import tests ({module})")
    for component in cycles(graph):
        links = [f"{a} -> {b} ({evidence[(a, b)]})" for a in component for b in sorted(graph[a]) if b in component]
        problems.append(f"rooms import each other in a circle: {'; '.join(links)}")
    return problems


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    if not (root / PACKAGE).is_dir():
        print(f"room check: no {PACKAGE}/ under {root}")
        return 1
    problems = check(root)
    for problem in problems:
        print(problem)
    print(f"room check: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
