#!/usr/bin/env python3
"""Docstring coverage of public definitions: how many public classes, functions and methods have a docstring.

    python3 tools/docstring_coverage.py [FOLDER ...]      (default: the product packages of this checkout)

Public: a class, function or method whose name does not start with `_`, defined at a module's top level
or in a public class's body (not inside a function), in a module whose dotted path has no part starting
with `_` (an `__init__.py` counts as its package). Left out: dunder methods (`__init__` and the like; the
class docstring covers them), `@overload` stubs and property setters/deleters (the getter carries the
docstring). Modules are counted apart. The same rule measures other projects (`FOLDER` may be an
installed package, e.g. .venv/lib/python3.11/site-packages/aiomqtt), so the numbers compare.

Prints one line per folder and the total. Standard library only.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PRODUCT = ("gateway", "central", "protocol", "zoning", "drivers", "hardware_sims")


def _is_public_module(path: Path, folder: Path) -> bool:
    parts = path.relative_to(folder.parent).with_suffix("").parts
    return not any(p.startswith("_") and p != "__init__" for p in parts)


def _skipped(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in node.decorator_list:
        name = ast.unparse(decorator)
        if name in {"overload", "typing.overload"} or name.endswith((".setter", ".deleter")):
            return True
    return False


def definitions(tree: ast.Module) -> list[tuple[str, bool]]:
    """(qualified name, has a docstring) of every public class, function and method of a module."""
    found: list[tuple[str, bool]] = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                found.append((prefix + node.name, ast.get_docstring(node) is not None))
                visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_") \
                    and not _skipped(node):
                found.append((prefix + node.name, ast.get_docstring(node) is not None))
            elif isinstance(node, (ast.If, ast.Try)):  # `if TYPE_CHECKING:`, `try: import ...` at top level
                for block in (node.body, node.orelse, *(h.body for h in getattr(node, "handlers", []))):
                    visit(block, prefix)

    visit(tree.body, "")
    return found


def measure(folder: Path) -> tuple[int, int, int, int]:
    """(definitions documented, definitions, modules documented, modules) of the public ones under `folder`."""
    documented = total = modules_documented = modules = 0
    for path in sorted(folder.rglob("*.py")):
        if not _is_public_module(path, folder):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        modules += 1
        modules_documented += ast.get_docstring(tree) is not None
        for _, has_docstring in definitions(tree):
            total += 1
            documented += has_docstring
    return documented, total, modules_documented, modules


def _line(name: str, counts: tuple[int, int, int, int]) -> str:
    documented, total, modules_documented, modules = counts
    share = f"{100 * documented / total:.0f} %" if total else "-"
    return (f"{name:<60} {share:>5}  ({documented} of {total} public definitions; "
            f"modules {modules_documented} of {modules})")


def main() -> int:
    folders = [Path(a) for a in sys.argv[1:]] or [Path(p) for p in PRODUCT if Path(p).is_dir()]
    sums = [0, 0, 0, 0]
    for folder in folders:
        counts = measure(folder)
        sums = [a + b for a, b in zip(sums, counts, strict=True)]
        print(_line(folder.as_posix(), counts))
    if len(folders) > 1:
        print(_line("total", (sums[0], sums[1], sums[2], sums[3])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
