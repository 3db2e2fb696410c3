"""The error trees drawn in gateway/errors.py and central/errors.py name every subclass of their root, in place."""

from __future__ import annotations

import ast
import re

import pytest

from tests.support import ROOT

TREE_LINE = re.compile(r"^(?P<indent> *)[*+-] (?P<name>[A-Z]\w+) +(?P<path>[\w/]+\.py)")


def drawn(module: str) -> dict[str, tuple[str | None, str]]:
    """class -> (parent, file) as the module's docstring draws the tree."""
    docstring = ast.get_docstring(ast.parse((ROOT / module).read_text())) or ""
    tree: dict[str, tuple[str | None, str]] = {}
    parents: list[tuple[int, str]] = []
    for line in docstring.splitlines():
        match = TREE_LINE.match(line)
        if match is None:
            continue
        depth = len(match["indent"])
        while parents and parents[-1][0] >= depth:
            parents.pop()
        tree[match["name"]] = (parents[-1][1] if parents else None, match["path"])
        parents.append((depth, match["name"]))
    return tree


def found(package: str, root: str) -> dict[str, tuple[str | None, str]]:
    """class -> (parent, file) for the root and every class deriving from it, directly or not, in the package."""
    bases: dict[str, tuple[list[str], str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                names = [ast.unparse(b).rpartition(".")[2] for b in node.bases]
                bases[node.name] = (names, path.relative_to(ROOT).as_posix())
    tree = {root: (None, bases[root][1])}
    grew = True
    while grew:
        grew = False
        for name, (parents, path) in bases.items():
            parent = next((p for p in parents if p in tree), None)
            if parent is not None and name not in tree:
                tree[name] = (parent, path)
                grew = True
    return tree


@pytest.mark.parametrize(("module", "package", "root"), [
    ("gateway/errors.py", "gateway", "GatewayError"),
    ("central/errors.py", "central", "CentralError"),
])
def test_the_error_tree_in_the_docstring_is_complete(module: str, package: str, root: str) -> None:
    assert drawn(module) == found(package, root), f"redraw the tree in {module}'s docstring"
