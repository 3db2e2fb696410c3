"""Single-reading threshold zoning: the worst zone of every rule that fires wins."""

from __future__ import annotations

from drivers.measurement import Measurement
from zoning.models import SEVERITY, Assessment, FiredRule, Profile, Zone


def assess(measurement: Measurement, profile: Profile) -> Assessment:
    rules = [rule for rule in profile.rules if rule.kind == measurement.kind]
    if not rules:
        return Assessment(
            zone=Zone.UNASSESSED,
            advice_keys=(f"{measurement.kind}.unassessed",),
            profile=profile.id,
            profile_version=profile.version,
        )
    fired = tuple(
        FiredRule(
            rule=rule.id,
            component=rule.component,
            value=quantity.value,
            op=rule.op,
            limit=rule.limit,
            zone=rule.zone,
        )
        for rule in rules
        if (quantity := measurement.components.get(rule.component)) is not None and rule.fires(quantity.value)
    )
    zone = max((f.zone for f in fired), key=SEVERITY.__getitem__, default=Zone.GREEN)
    return Assessment(
        zone=zone,
        fired=fired,
        advice_keys=(f"{measurement.kind}.{zone}",),
        profile=profile.id,
        profile_version=profile.version,
    )
