"""Finding and reading threshold profiles (the I/O that zoning itself must not do)."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from gateway.settings import ConfigError, describe_validation_error
from zoning.advice import AdviceBook
from zoning.models import Profile


def shipped_profiles() -> list[str]:
    folder = resources.files("zoning") / "profiles"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_profile(name_or_path: str) -> Profile:
    """A shipped profile by name, or a profile file (TOML, or JSON as a plan service may send) by path;
    a bad one is a ConfigError line."""
    if name_or_path.endswith((".toml", ".json")) or "/" in name_or_path:
        where = name_or_path
        try:
            text = Path(name_or_path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read profile: {exc.strerror}") from None
    else:
        if name_or_path not in shipped_profiles():
            known = ", ".join(shipped_profiles())
            raise ConfigError(f"zoning.profile: no shipped profile {name_or_path!r} (shipped: {known})")
        where = f"profile {name_or_path}"
        text = (resources.files("zoning") / "profiles" / f"{name_or_path}.toml").read_text(encoding="utf-8")
    try:
        if name_or_path.endswith(".json"):
            return Profile.model_validate_json(text)
        return Profile.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise ConfigError(f"{where}: {describe_validation_error(exc)}") from None


def load_advice(path: str | None = None) -> AdviceBook:
    """The shipped self-care advice templates, or a plan's own advice file."""
    where = path or "the shipped advice templates"
    try:
        text = Path(path).read_text(encoding="utf-8") if path else (
            resources.files("zoning") / "advice" / "standard.toml").read_text(encoding="utf-8")
        return AdviceBook.model_validate(tomllib.loads(text))
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read advice: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise ConfigError(f"{where}: {describe_validation_error(exc)}") from None
