"""`make lint`'s room check (tools/check_rooms.py): rooms inside gateway/ and central/ import each other through
their packages, in no circle; zoning/ and protocol/ are entered through their front doors; no module circles
inside a room; every name a room offers is documented; no function over 80 lines. One fake tree per rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
        "gateway/storage/inner.py": "class Thing:\n    \"\"\"A thing.\"\"\"\n",
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
    assert "rooms of gateway/ import each other in a circle: a -> b (gateway/a/m.py:1); b -> c (gateway/b/m.py:2); " \
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


def test_a_name_a_room_does_not_offer_is_named(tmp_path: Path) -> None:
    root = project(tmp_path, {
        "gateway/storage/__init__.py": ROOM.format(name="storage"),
        "gateway/storage/inner.py": 'class Thing:\n    """A thing."""\n\nclass Hidden: ...\n',
        "gateway/readings/__init__.py": ROOM.format(name="readings"),
        "gateway/readings/inner.py": 'from gateway.storage import Hidden, Thing\n\nclass Thing:\n    """x"""\n',
    })
    run = room_check(root)
    assert run.stdout.splitlines() == [
        "gateway/readings/inner.py:1: gateway.storage does not offer Hidden (not in its __all__)",
        "room check: 1 problem(s)"]


def test_central_rooms_keep_the_same_rules(tmp_path: Path) -> None:
    root = project(tmp_path, {
        "central/__init__.py": "",
        "central/store/__init__.py": '"""Store."""\n__all__ = ["Database"]\n'
                                     "from central.store.database import Database\n",
        "central/store/database.py": 'class Database:\n    """The database."""\n',
        "central/ingest/__init__.py": '"""Ingest."""\n__all__ = []\n',
        "central/ingest/worker.py": "from central.store.database import Database\nfrom central.store import Database\n",
    })
    run = room_check(root)
    assert run.stdout.splitlines() == [
        "central/ingest/worker.py:1: import central.store.database through its room: from central.store import "
        "Database (and add it to central/store/__init__.py's __all__)",
        "room check: 1 problem(s)"]


def test_every_name_a_room_offers_is_documented_where_it_is_defined(tmp_path: Path) -> None:
    root = project(tmp_path, {
        "gateway/kit/__init__.py": '"""Kit."""\nfrom gateway.kit.steps import LIMIT, Plain, Told, pair, run\n'
                                   '__all__ = ["LIMIT", "Plain", "Told", "pair", "run"]\n',
        "gateway/kit/steps.py": '# How many devices a kit pairs.\nLIMIT = 6\n\nPlain = int\n'
                                'Told = str\n"""What a technician is told."""\n\n'
                                'def pair() -> None:\n    """Pair."""\n\ndef run() -> None:\n    pass\n',
    })
    run = room_check(root)
    assert run.stdout.splitlines() == [
        "gateway/kit/__init__.py: Plain (in __all__, defined in gateway/kit/steps.py:4) has no docstring",
        "gateway/kit/__init__.py: run (in __all__, defined in gateway/kit/steps.py:11) has no docstring",
        "room check: 2 problem(s)"]


DOOR = '"""Zoning."""\nfrom zoning.models import Profile\n__all__ = ["Profile"]\n'


@pytest.mark.parametrize("where", ["gateway/readings.py", "tests/test_x.py", "bench/speed.py", "tools/tool.py"])
def test_zoning_and_protocol_are_entered_only_through_their_front_doors(tmp_path: Path, where: str) -> None:
    root = project(tmp_path, {
        "zoning/__init__.py": DOOR,
        "zoning/models.py": "class Profile: ...\nclass Rule: ...\n",
        "zoning/engine.py": "from zoning.models import Profile, Rule\n",  # inside: fine
        "protocol/__init__.py": '"""Protocol."""\n__all__ = []\n',
        "protocol/wire.py": "",
        where: "from zoning import Profile\nfrom zoning.models import Profile\nimport protocol.wire\n"
               "from zoning import Rule\nfrom protocol import wire\n",
    })
    run = room_check(root)
    assert run.stdout.splitlines() == [
        f"{where}:2: import zoning.models through the front door: from zoning import Profile "
        "(and add it to zoning/__init__.py's __all__)",
        f"{where}:4: zoning does not offer Rule (not in its __all__)",
        f"{where}:3: import protocol.wire through the front door: from protocol import what it needs "
        "(and add it to protocol/__init__.py's __all__)",
        f"{where}:5: protocol does not offer wire (not in its __all__)",
        "room check: 4 problem(s)"]


@pytest.mark.parametrize("room", ["gateway/storage", "central/ingest", "protocol", "zoning", "drivers"])
def test_modules_of_one_room_in_a_circle_are_refused_even_through_a_function_level_import(
        tmp_path: Path, room: str) -> None:
    package = room.replace("/", ".")
    root = project(tmp_path, {
        "central/__init__.py": "",
        f"{room}/__init__.py": f'"""Room."""\nfrom {package}.box import Box\n__all__ = ["Box"]\n',
        f"{room}/box.py": f'from {package}.upgrade import upgrade\n\nclass Box:\n    """A box."""\n',
        f"{room}/upgrade.py": "def upgrade() -> None:\n    from .box import Box\n    Box()\n",
        f"{room}/keys.py": f"from {package} import Box\n",  # through its own __init__: no circle here
    })
    run = room_check(root)
    assert run.stdout.splitlines() == [
        f"in {room}, modules import each other in a circle: {package}.box -> {package}.upgrade "
        f"({room}/box.py:1); {package}.upgrade -> {package}.box ({room}/upgrade.py:2)",
        "room check: 1 problem(s)"]


def test_a_module_importing_its_own_room_s_front_door_back_is_a_circle(tmp_path: Path) -> None:
    root = project(tmp_path, {
        "drivers/__init__.py": '"""Drivers."""\nfrom drivers.decoders import decode\n__all__ = ["decode"]\n',
        "drivers/decoders.py": "import drivers\n\ndef decode() -> None: ...\n",
    })
    run = room_check(root)
    assert "in drivers, modules import each other in a circle: drivers -> drivers.decoders (drivers/__init__.py:2); " \
           "drivers.decoders -> drivers (drivers/decoders.py:1)" in run.stdout


def test_a_function_over_80_lines_is_named(tmp_path: Path) -> None:
    body = "    x = 1\n" * 78
    root = project(tmp_path, {
        "protocol/__init__.py": '"""P."""\n__all__ = []\n',
        "protocol/long.py": f"def fits():\n{body}    return x\n\n\nasync def too_long():\n{body}    x += 1\n"
                            "    return x\n",
        "tests/test_long.py": f"def test_long():\n{body * 2}",  # tests are not product code
    })
    run = room_check(root)
    assert run.stdout.splitlines() == [
        "protocol/long.py:83: too_long is 81 lines long (at most 80): split it into named steps",
        "room check: 1 problem(s)"]
