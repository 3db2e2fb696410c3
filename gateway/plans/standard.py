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
from zoning import ENVELOPE, AdviceBook, Profile

# The content hash (sha256 of the canonical rules) of every shipped profile, by name, as this release
# ships it: `load_profile` refuses a profile file that does not match.
PINNED: dict[str, str] = {
    "standard-blood-pressure": "sha256:d909c71d0bcd7cf329211dbfd7e8cbcce85764be28a0cdb26e0e5371496df891",
    "standard-copd": "sha256:0d6281d724f77347a0e807c9e9b218d44538855f017c9cfe4f4b208e4fac1358",
    "standard-copd-scale2": "sha256:a7fd51049339909c6e974aa8d3ba927873faf6933399bda980f8ce52f480ca02",
    "standard-heart-failure": "sha256:11ba7d3d026de186b093cf49e6bad3834c28b84d6b65328690f27fa0fe6afb78",
}

# The safety envelope (zoning/envelope.py): limits beyond which a reading is red whatever the plan says, and
# which no plan may cross. Pinned like a profile: a change to a line is a reviewed change that renews this pin
# with its reason in the commit.
ENVELOPE_PIN = "sha256:bf694f0792120279004240f7fb9e9516c052435722808bca56a9d6b8c9e540c0"


def check_envelope(envelope: Profile = ENVELOPE) -> None:
    """ConfigError unless the safety envelope this release judges by is the one pinned for it."""
    if envelope.content_hash() != ENVELOPE_PIN:
        raise ConfigError("the safety envelope does not match the hash pinned for this release (the code was "
                          "altered): reinstall the gateway package")


def shipped_profiles() -> list[str]:
    """The names of the profiles shipped in zoning/profiles, sorted."""
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
    check_envelope()  # every profile is judged within it
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
