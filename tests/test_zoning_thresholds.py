"""Every bound of the shipped standard blood pressure profile: just below, at, and just above (a value
between two whole-mmHg bands counts in the alert band: 110.1 is still in "<= 110", docs/zoning.md)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from drivers.measurement import Measurement, MeasurementKind, Quantity
from gateway.plans import load_profile
from tests.zoning_support import assess
from zoning import Profile, Zone

PROFILE = load_profile("standard-blood-pressure")
NORMAL = {"systolic": 125, "diastolic": 80, "pulse": 70}


def bp(**values: float | int | str) -> Measurement:
    merged = {**NORMAL, **values}
    units = {"pulse": "/min"}
    return Measurement(
        kind=MeasurementKind.BLOOD_PRESSURE,
        components={k: Quantity(value=Decimal(str(v)), unit=units.get(k, "mm[Hg]")) for k, v in merged.items()},
    )


# (component, value, expected zone): each bound of the profile from just below to just above.
BOUNDS = [
    ("systolic", 89, Zone.RED), ("systolic", 90, Zone.RED), ("systolic", 91, Zone.YELLOW),
    ("systolic", 110, Zone.YELLOW), ("systolic", "110.1", Zone.YELLOW), ("systolic", 111, Zone.GREEN),
    ("systolic", 160, Zone.GREEN), ("systolic", "160.1", Zone.YELLOW), ("systolic", 161, Zone.YELLOW),
    ("systolic", 219, Zone.YELLOW), ("systolic", 220, Zone.RED), ("systolic", 221, Zone.RED),
    ("diastolic", 59, Zone.YELLOW), ("diastolic", "59.9", Zone.YELLOW), ("diastolic", 60, Zone.GREEN),
    ("diastolic", 95, Zone.GREEN), ("diastolic", "95.1", Zone.YELLOW), ("diastolic", 96, Zone.YELLOW),
    ("pulse", 39, Zone.RED), ("pulse", 40, Zone.RED), ("pulse", 41, Zone.YELLOW),
    ("pulse", 50, Zone.YELLOW), ("pulse", 51, Zone.GREEN),
    ("pulse", 90, Zone.GREEN), ("pulse", 91, Zone.YELLOW), ("pulse", 92, Zone.YELLOW),
    ("pulse", 130, Zone.YELLOW), ("pulse", 131, Zone.RED), ("pulse", 132, Zone.RED),
]


@pytest.mark.parametrize(("component", "value", "zone"), BOUNDS)
def test_standard_profile_bounds(component: str, value: int | str, zone: Zone) -> None:
    assert assess(bp(**{component: value}), PROFILE).zone == zone


def test_worst_zone_wins_and_every_fired_rule_is_reported() -> None:
    a = assess(bp(systolic=88, diastolic=54, pulse=95), PROFILE)
    assert a.zone == Zone.RED
    fired = {f.rule for f in a.fired}
    assert fired == {
        "bp.systolic.red.low", "bp.systolic.yellow.low", "bp.diastolic.yellow.low", "bp.pulse.yellow.high",
    }
    assert a.advice_keys == ("blood_pressure.red", "emergency")
    assert (a.profile, a.profile_version) == ("standard-blood-pressure", 1)


def test_missing_pulse_is_not_judged_on_pulse() -> None:
    m = bp()
    m = m.model_copy(update={"components": {k: v for k, v in m.components.items() if k != "pulse"}})
    assert assess(m, PROFILE).zone == Zone.GREEN


def test_a_kind_without_rules_is_unassessed_never_green() -> None:
    weight = Measurement(
        kind=MeasurementKind.BODY_WEIGHT, components={"weight": Quantity(value=Decimal(80), unit="kg")}
    )
    assert assess(weight, PROFILE).zone == Zone.UNASSESSED


def test_every_standard_rule_cites_a_source() -> None:
    assert all(rule.source.strip() for rule in PROFILE.rules)


def test_profile_with_a_misspelt_component_is_refused() -> None:
    with pytest.raises(ValidationError, match="no component 'systolc'"):
        Profile.model_validate({
            "id": "x", "version": 1, "title": "x",
            "rules": [{"id": "r", "kind": "blood_pressure", "component": "systolc", "op": "<", "limit": 90,
                       "zone": "red", "source": "s"}],
        })


def test_profile_with_duplicate_rule_ids_is_refused() -> None:
    rule = {"id": "r", "kind": "blood_pressure", "component": "systolic", "op": "<", "limit": 90,
            "zone": "red", "source": "s"}
    with pytest.raises(ValidationError, match="used twice"):
        Profile.model_validate({"id": "x", "version": 1, "title": "x", "rules": [rule, rule]})
