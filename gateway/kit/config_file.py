"""The kit's configuration file as the kit commands write it: plain TOML, atomically replaced, the
earlier version kept beside it (`gateway.toml.bak-<UTC time>`) so a technician can always go back."""

from __future__ import annotations

import json
import os
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from gateway.settings import ConfigError, build_settings

Table = dict[str, Any]

_HEADER = "# dho-gateway configuration, written by `dho-gateway kit`; every key: config/gateway.example.toml\n"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dumps(data: Table) -> str:
    """Top-level keys, then one [table] per section, then [[arrays of tables]]; no deeper nesting."""
    lines = [_HEADER]
    plain = {k: v for k, v in data.items() if v is not None and not isinstance(v, dict | list)}
    lines += [f"{k} = {_value(v)}" for k, v in plain.items()]
    for name, table in data.items():
        if isinstance(table, dict):
            lines += ["", f"[{name}]"] + [f"{k} = {_value(v)}" for k, v in table.items() if v is not None]
    for name, items in data.items():
        if isinstance(items, list) and all(isinstance(i, dict) for i in items):
            for item in items:
                lines += ["", f"[[{name}]]"] + [f"{k} = {_value(v)}" for k, v in item.items() if v is not None]
    return "\n".join(lines) + "\n"


def read(path: Path) -> Table:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file: run `dho-gateway kit provision` first") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None


def write(path: Path, data: Table) -> Path | None:
    """Validate, keep a backup of the earlier file, replace atomically. Returns the backup's path."""
    text = dumps(data)
    build_settings(tomllib.loads(text))  # never write a file the gateway would refuse at start-up
    backup = None
    if path.exists():
        backup = path.with_name(f"{path.name}.bak-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}")
        backup.write_bytes(path.read_bytes())
        backup.chmod(0o600)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return backup
