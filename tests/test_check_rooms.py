"""`make lint`'s room check: rooms inside gateway/ import each other through their packages, in no circle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

CHECK = ROOT / "tools" / "check_rooms.py"


def room_check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHECK), str(root)], capture_output=True, text=True, timeout=30)


def project(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in {"gateway/__init__.py": '"""x"""\n', **files}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


ROOM = '"""A room."""\n__all__ = ["Thing"]\nfrom gateway.{name}.inner import Thing\n'


def test_this_repository_keeps_the_rules() -> None:
    run = room_check(ROOT)
    assert run.returncode == 0, run.stdout
    assert "room check: 0 problem(s)" in run.stdout


def test_a_deep_import_into_another_room_is_named_with_its_fix(tmp_path: Path) -> None:
    root = project(tmp_path, {
        "gateway/storage/__init__.py": ROOM.format(name="storage"),
        "gateway/storage/inner.py": "class Thing: ...\n",
        "gateway/storage/other.py": "from gateway.storage.inner import Thing\n",  # same room: fine
        "gateway/readings/__init__.py": ROOM.format(name="readings"),
        "gateway/readings/inner.py": "from gateway.storage.inner import Thing\n",
    })
    run = room_check(root)
    assert run.returncode == 1
    assert run.stdout.splitlines()[0] == (
        "gateway/readings/inner.py:1: import gateway.storage.inner through its room: from gateway.storage import "
        "Thing (and add it to gateway/storage/__init__.py's __all__)")
    assert "room check: 1 problem(s)" in run.stdout


def test_rooms_in_a_circle_are_refused_even_through_relative_imports(tmp_path: Path) -> None:
    root = project(tmp_path, {
        "gateway/a/__init__.py": '"""A."""\n__all__ = ["x"]\nx = 1\n',
        "gateway/a/m.py": "from gateway.b import y\n",
        "gateway/b/__init__.py": '"""B."""\n__all__ = ["y"]\ny = 2\n',
        "gateway/b/m.py": "def late():\n    from ..c import z\n    return z\n",
        "gateway/c/__init__.py": '"""C."""\n__all__ = ["z"]\nz = 3\n',
        "gateway/c/m.py": "from gateway.a import x\n",
    })
    run = room_check(root)
    assert run.returncode == 1
    assert "rooms import each other in a circle: a -> b (gateway/a/m.py:1); b -> c (gateway/b/m.py:2); " \
           "c -> a (gateway/c/m.py:1)" in run.stdout


def test_a_room_without_docstring_or_all_is_named(tmp_path: Path) -> None:
    root = project(tmp_path, {"gateway/bare/__init__.py": "x = 1\n"})
    run = room_check(root)
    assert "gateway/bare/__init__.py: a room's __init__.py says what the room holds" in run.stdout
    assert "gateway/bare/__init__.py: a room's __init__.py names its public API in __all__" in run.stdout


def test_a_benchmark_importing_the_tests_is_refused(tmp_path: Path) -> None:
    root = project(tmp_path, {"bench/speed.py": "from tests.support import ROOT\n"})
    run = room_check(root)
    assert "bench/speed.py:1: bench/ must not import tests (tests.support)" in run.stdout
