"""The standard profiles and advice templates shipped with `zoning`, which plans are drafted from."""

from __future__ import annotations

import tomllib
from importlib import resources

from central.errors import CentralError
from zoning import AdviceBook, Profile


def profile_names() -> list[str]:
    folder = resources.files("zoning") / "profiles"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def shipped_profile(name: str) -> Profile:
    if name not in profile_names():
        raise CentralError(f"no standard profile {name!r} (shipped: {', '.join(profile_names())})")
    text = (resources.files("zoning") / "profiles" / f"{name}.toml").read_text(encoding="utf-8")
    return Profile.model_validate(tomllib.loads(text))


def advice_templates() -> AdviceBook:
    text = (resources.files("zoning") / "advice" / "standard.toml").read_text(encoding="utf-8")
    return AdviceBook.model_validate(tomllib.loads(text))
