#!/usr/bin/env python3
"""Check the import rules between rooms and the front doors of shared packages (docs: ARCHITECTURE.md, "Rooms").

    python3 tools/check_rooms.py [--show-allowed] [PROJECT_ROOT]

A room is a sub-package of `gateway/` or of `central/` (a folder with an `__init__.py`). The rules:

1. Another room is imported only through its package, which names its public API in `__all__`:
   `from gateway.storage import SealedOutbox`, never `from gateway.storage.outbox import SealedOutbox`,
   and a name imported from a room is one of its `__all__`. Inside a room, its own modules import each
   other freely (but see rule 6).
2. No cycles between rooms: if `readings` imports `storage`, nothing in `storage` imports `readings`,
   directly or through other rooms. The command lines (`ENTRY_POINTS`) wire every room together and
   are left out of the cycle check, not out of rule 1.
3. Every room's `__init__.py` has a docstring and an `__all__`, and every name in that `__all__` is
   documented: a class or function by its docstring, any other name (a constant, an alias) by a string
   right after its assignment or a comment right above it.
4. `bench/` does not import `tests/`: a benchmark measures the product, and what both need lives in bench/.
5. Front doors (`FRONT_DOORS`: `zoning`, `protocol`): no module outside such a package, wherever it is
   (product code, tests/, bench/, tools/), imports one of its modules: `from zoning import Profile`, never
   `from zoning.models import Profile` or `import zoning.models`; a name imported is one of its `__all__`.
6. No file-level circles inside a room (`gateway/<room>`, `central/<room>`, and the packages `protocol`,
   `zoning`, `drivers`): if module a imports module b of the same room, b does not import a, directly or
   through other modules of the room. An import inside a function counts: moving an import into a
   function dodges the circle at import time but keeps it in the design.
7. No function is longer than `MAX_FUNCTION_LINES` lines (in the product packages, `PRODUCT`); a longer
   one is split into named steps. ruff's C901 and PLR0915 count branches and statements; this counts lines.

Exit 0 when every rule holds; 1 with one line per problem otherwise. Standard library only, so it runs
before anything is installed; the layer rules between top-level packages are ../shared/tools/check_layers.py.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

# The packages whose sub-packages are rooms (rules 1-3, 6).
PACKAGES = ("gateway", "central")
# Modules that only wire rooms together for a process; their imports are not a room's dependencies.
ENTRY_POINTS = {"gateway/service/cli.py", "central/cli.py"}
# Packages that everyone else enters through `__init__` (rule 5).
FRONT_DOORS = ("zoning", "protocol")
# Whole packages checked for circles between their own modules (rule 6), besides every room.
WHOLE_ROOMS = ("protocol", "zoning", "drivers")
# Product packages: function length (rule 7).
PRODUCT = ("gateway", "central", "protocol", "zoning", "drivers", "hardware_sims")
MAX_FUNCTION_LINES = 80

# Known exceptions, each with its reason: (the file a problem line starts with, a piece of the line, why).
# An allowance that no longer matches anything is itself reported, so that the list only shrinks.
ALLOWED: list[tuple[str, str, str]] = [
    # Rule 5, for good: the latency benchmark switches TCP_NODELAY off (a private of protocol.mqtt) to
    # measure what it buys; it needs the module itself.
    ("bench/latency.py", "import protocol.mqtt through", "the benchmark patches protocol.mqtt._send_without_delay"),
    # Rule 1, for good: the central command line collects each room's `commands` module (its argparse
    # sub-commands), the way gateway/service/cli.py collects gateway.kit's `add_commands`.
    ("central/cli.py", "does not offer commands", "the command line wires each room's commands module"),
]
SKIPPED_DIRS = {"build", "dist", "node_modules", "__pycache__"}

Import = tuple[int, str, list[str]]


def project_files(root: Path) -> Iterator[Path]:
    """Every .py file of the checkout, hidden folders, virtual environments and build output left out."""
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts[:-1]
        if any(p.startswith(".") or p in SKIPPED_DIRS or p.endswith(".egg-info") or p == "venv" for p in parts):
            continue
        yield path


def rooms_of(root: Path, package: str) -> list[str]:
    folder = root / package
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and (p / "__init__.py").exists())


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imports(root: Path, path: Path, tree: ast.Module | None = None) -> list[Import]:
    """(line, absolute module, imported names) for every import in the file, relative ones resolved.

    Imports anywhere count: in functions, under `if TYPE_CHECKING:`, in `try`.
    """
    tree = tree or parse(path)
    here = module_name(root, path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: list[Import] = []
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


def is_module(root: Path, module: str) -> bool:
    path = root.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def targets(root: Path, module: str, names: list[str]) -> list[str]:
    """The modules an import loads: `from pkg import sub` loads pkg.sub when sub is a module of pkg."""
    submodules = [f"{module}.{name}" for name in names if is_module(root, f"{module}.{name}")]
    if names and len(submodules) == len(names):
        return submodules
    return [module, *submodules]


def exported(root: Path, package: str) -> list[str] | None:
    """The names in `package/__init__.py`'s `__all__` (a literal list or tuple), None without one."""
    init = root.joinpath(*package.split("."), "__init__.py")
    if not init.is_file():
        return None
    for node in parse(init).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            try:
                return [str(name) for name in ast.literal_eval(node.value)]
            except ValueError:
                return None
    return None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
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


def circle(graph: dict[str, set[str]], evidence: dict[tuple[str, str], str], component: list[str]) -> str:
    return "; ".join(f"{a} -> {b} ({evidence[(a, b)]})" for a in component for b in sorted(graph[a]) if b in component)


def check_inits(root: Path, package: str, rooms: list[str]) -> list[str]:
    """Rule 3: a room's __init__ has a docstring and an __all__ whose every name is documented."""
    problems: list[str] = []
    for room in rooms:
        init = root / package / room / "__init__.py"
        where = init.relative_to(root).as_posix()
        tree = parse(init)
        if ast.get_docstring(tree) is None:
            problems.append(f"{where}: a room's __init__.py says what the room holds (docstring)")
        names = exported(root, f"{package}.{room}")
        if names is None:
            problems.append(f"{where}: a room's __init__.py names its public API in __all__")
            continue
        for name in names:
            definition = undocumented(root, f"{package}.{room}", name)
            if definition is not None:
                problems.append(f"{where}: {name} (in __all__, defined in {definition}) has no docstring")
    return problems


def undocumented(root: Path, module: str, name: str, seen: frozenset[str] = frozenset()) -> str | None:
    """Where `name`, as `module` offers it, is defined without a docstring (imports followed); None if documented."""
    if module in seen or not is_module(root, module):
        return None  # outside this checkout (or a loop): not ours to judge
    path = module_path(root, module)
    where = path.relative_to(root).as_posix()
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    body = ast.parse(source).body
    for position, node in enumerate(body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return None if ast.get_docstring(node) is not None else f"{where}:{node.lineno}"
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and name in assigned(node):
            following = body[position + 1] if position + 1 < len(body) else None
            if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant) \
                    and isinstance(following.value.value, str):
                return None
            return None if commented(body, position, lines) else f"{where}:{node.lineno}"
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    source_module = resolve(root, path, node)
                    submodule = f"{source_module}.{alias.name}"
                    if is_module(root, submodule):
                        documented = ast.get_docstring(parse(module_path(root, submodule))) is not None
                        return None if documented else module_path(root, submodule).relative_to(root).as_posix()
                    return undocumented(root, source_module, alias.name, seen | {module})
    return None  # not defined at the top level (made at run time): nothing to point at


def commented(body: list[ast.stmt], position: int, lines: list[str]) -> bool:
    """Whether a comment stands right above the assignment, or above the run of assignments it ends."""
    while position > 0 and isinstance(body[position - 1], (ast.Assign, ast.AnnAssign)) \
            and body[position - 1].end_lineno == body[position].lineno - 1:
        position -= 1
    node = body[position]
    return node.lineno >= 2 and lines[node.lineno - 2].lstrip().startswith("#")


def assigned(node: ast.Assign | ast.AnnAssign) -> set[str]:
    found: set[str] = set()
    for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
        found |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return found


def resolve(root: Path, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    here = module_name(root, path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def module_path(root: Path, module: str) -> Path:
    path = root.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def check_rooms(root: Path, package: str, rooms: list[str], files: dict[Path, list[Import]]) -> list[str]:
    """Rules 1 and 2 for the rooms of one package."""
    problems: list[str] = []
    graph: dict[str, set[str]] = {room: set() for room in rooms}
    evidence: dict[tuple[str, str], str] = {}

    def room_of(module: str) -> str | None:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 and parts[0] == package and parts[1] in rooms else None

    for path, found in files.items():
        relative = path.relative_to(root).as_posix()
        if not relative.startswith(f"{package}/"):
            continue
        own = room_of(module_name(root, path))
        for line, module, names in found:
            target = room_of(module)
            if target is None or target == own:
                continue
            where = f"{relative}:{line}"
            deep = module.split(".")[2:]
            if deep:
                wanted = ", ".join(names) or deep[0]
                problems.append(f"{where}: import {module} through its room: from {package}.{target} import "
                                f"{wanted} (and add it to {package}/{target}/__init__.py's __all__)")
            else:
                problems += unexported(where, f"{package}.{target}", names, exported(root, f"{package}.{target}"))
            if own is not None and relative not in ENTRY_POINTS:
                graph[own].add(target)
                evidence.setdefault((own, target), where)
    for component in cycles(graph):
        problems.append(f"rooms of {package}/ import each other in a circle: {circle(graph, evidence, component)}")
    return problems


def unexported(where: str, package: str, names: list[str], offered: list[str] | None) -> list[str]:
    if offered is None:
        return []
    return [f"{where}: {package} does not offer {name} (not in its __all__)"
            for name in names if name != "*" and name not in offered]


def check_front_doors(root: Path, files: dict[Path, list[Import]]) -> list[str]:
    """Rule 5: outside zoning/ and protocol/, only their __init__ and only names in its __all__."""
    problems: list[str] = []
    for door in FRONT_DOORS:
        offered = exported(root, door)
        for path, found in files.items():
            relative = path.relative_to(root).as_posix()
            if relative.startswith(f"{door}/"):
                continue
            for line, module, names in found:
                if module.split(".")[0] != door:
                    continue
                where = f"{relative}:{line}"
                if module != door:
                    wanted = ", ".join(names) or "what it needs"
                    problems.append(f"{where}: import {module} through the front door: from {door} import "
                                    f"{wanted} (and add it to {door}/__init__.py's __all__)")
                else:
                    problems += unexported(where, door, names, offered)
    return problems


def check_circles_inside(root: Path, files: dict[Path, list[Import]]) -> list[str]:
    """Rule 6: the modules of one room do not import each other in a circle."""
    rooms = [f"{package}.{room}" for package in PACKAGES for room in rooms_of(root, package)]
    rooms += [package for package in WHOLE_ROOMS if (root / package / "__init__.py").is_file()]
    problems: list[str] = []
    for room in sorted(rooms):
        graph: dict[str, set[str]] = {}
        evidence: dict[tuple[str, str], str] = {}
        for path, found in files.items():
            here = module_name(root, path)
            if here != room and not here.startswith(f"{room}."):
                continue
            graph.setdefault(here, set())
            for line, module, names in found:
                for target in targets(root, module, names):
                    if target != here and (target == room or target.startswith(f"{room}.")):
                        graph[here].add(target)
                        evidence.setdefault((here, target), f"{path.relative_to(root).as_posix()}:{line}")
        for component in cycles(graph):
            problems.append(f"in {room.replace('.', '/')}, modules import each other in a circle: "
                            f"{circle(graph, evidence, component)}")
    return problems


def check_lengths(root: Path, trees: dict[Path, ast.Module]) -> list[str]:
    """Rule 7: no function longer than MAX_FUNCTION_LINES (from `def` to its last line, decorators left out)."""
    problems: list[str] = []
    for path, tree in trees.items():
        relative = path.relative_to(root).as_posix()
        if relative.split("/")[0] not in PRODUCT:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    problems.append(f"{relative}:{node.lineno}: {node.name} is {length} lines long "
                                    f"(at most {MAX_FUNCTION_LINES}): split it into named steps")
    return problems


def check_bench(root: Path, files: dict[Path, list[Import]]) -> list[str]:
    """Rule 4: bench/ does not import tests/."""
    return [f"{path.relative_to(root).as_posix()}:{line}: bench/ must not import tests ({module})"
            for path, found in files.items() if path.relative_to(root).parts[0] == "bench"
            for line, module, _ in found if module.split(".")[0] == "tests"]


def allowed(problem: str) -> int | None:
    """The index in ALLOWED of the allowance that covers this problem, if any."""
    for index, (start, piece, _) in enumerate(ALLOWED):
        if problem.startswith(start) and piece in problem:
            return index
    return None


def check(root: Path, show_allowed: bool = False) -> list[str]:
    trees = {path: parse(path) for path in project_files(root)}
    files = {path: imports(root, path, tree) for path, tree in trees.items()}
    problems: list[str] = []
    for package in PACKAGES:
        rooms = rooms_of(root, package)
        problems += check_inits(root, package, rooms)
        problems += check_rooms(root, package, rooms, files)
    problems += check_bench(root, files)
    problems += check_front_doors(root, files)
    problems += check_circles_inside(root, files)
    problems += check_lengths(root, trees)
    used = {allowed(problem) for problem in problems}
    kept = [problem for problem in problems if allowed(problem) is None]
    if show_allowed:
        print("\n".join(f"allowed ({ALLOWED[index][2]}): {problem}" for problem in problems
                        if (index := allowed(problem)) is not None))
    # The allowances are written for the checkout this file is in (not for the fake trees of the tests).
    if root == Path(__file__).resolve().parent.parent:
        kept += [f"tools/check_rooms.py: the allowance {start!r}, {piece!r} matches nothing any more: remove it"
                 for index, (start, piece, _) in enumerate(ALLOWED) if index not in used]
    return kept


def main() -> int:
    arguments = [a for a in sys.argv[1:] if a != "--show-allowed"]
    root = Path(arguments[0] if arguments else ".").resolve()
    if not any((root / package).is_dir() for package in PACKAGES):
        print(f"room check: no {' or '.join(PACKAGES)}/ under {root}")
        return 1
    problems = check(root, show_allowed="--show-allowed" in sys.argv[1:])
    for problem in problems:
        print(problem)
    print(f"room check: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
