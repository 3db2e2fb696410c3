"""The shipped standard profiles, pinned by content hash, and the advice templates (the I/O zoning must not do).

Thresholds come from two places only: a shipped standard profile whose rules hash to the value pinned
here, or a signed plan (gateway/plans/verify.py) that starts from one. A profile file edited on the box
(red at <= 80 % while still calling itself standard-copd v1) fails its pin and stops start-up. A
reviewed change to a profile changes its pin in the same commit (tests/test_plan_profiles_pinned.py
prints the new hash).
"""

from __future__ import annotations

import functools
import tomllib
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from gateway.settings import ConfigError, describe_validation_error
from zoning.advice import AdviceBook
from zoning.models import Profile

PINNED: dict[str, str] = {
    "standard-blood-pressure": "sha256:d909c71d0bcd7cf329211dbfd7e8cbcce85764be28a0cdb26e0e5371496df891",
    "standard-copd": "sha256:504c0c2e89495e6a11d225fa1f9b7fbfc48c1c276a28614bc2f573a18848371e",
    "standard-copd-scale2": "sha256:d4ff6f7f03e7a09686c151af70f89f516047e43ca7cee5ef9308aa4d92829d2a",
    "standard-heart-failure": "sha256:7aacd59212c01c3599901ca4adaaee2953ca421be86cde64be8a30e5ff830189",
}


def shipped_profiles() -> list[str]:
    folder = resources.files("zoning") / "profiles"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def read_shipped_profile(name: str) -> Profile:
    """The shipped profile as its file says, without the pin check (for computing a new pin)."""
    if name not in shipped_profiles():
        known = ", ".join(shipped_profiles())
        raise ConfigError(f"zoning.profile: no shipped profile {name!r} (shipped: {known}; a patient's own "
                          "thresholds arrive as a signed plan, never as a file)")
    text = (resources.files("zoning") / "profiles" / f"{name}.toml").read_text(encoding="utf-8")
    try:
        return Profile.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"profile {name}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise ConfigError(f"profile {name}: {describe_validation_error(exc)}") from None


@functools.lru_cache(maxsize=16)
def load_profile(name: str) -> Profile:
    """A shipped profile by name, checked against its pinned content hash; anything else is a ConfigError.
    Kept once checked (profiles are immutable, and a plan check would otherwise parse and hash it again)."""
    profile = read_shipped_profile(name)
    pin = PINNED.get(name)
    if pin is None or profile.content_hash() != pin:
        raise ConfigError(f"profile {name}: its rules do not match the hash pinned for this release (the file "
                          "was altered): reinstall the gateway package")
    return profile


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
