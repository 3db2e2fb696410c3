"""What the patient is judged by: the shipped standard profiles and advice (signed plans come here)."""

from __future__ import annotations

from gateway.plans.standard import load_advice, load_profile, shipped_profiles

__all__ = [
    "load_advice",
    "load_profile",
    "shipped_profiles",
]
