"""Which kinds the plan in force judges that no paired device measures: a fault for the technician page.

A heart-failure plan on a kit with only an oximeter judges nothing the kit measures: every reading is
unassessed, nothing is ever overdue (the schedule asks only for kinds the patient has a device for), and
without this check nobody is told. Pure: the caller passes the plan and the paired devices' kinds.
"""

from __future__ import annotations

from collections.abc import Iterable

from drivers.measurement import MeasurementKind
from zoning import Plan


def unmeasured_kinds(plan: Plan, paired: Iterable[MeasurementKind]) -> list[MeasurementKind]:
    """The kinds the plan asks for (`Plan.measured`, else every kind its rules judge) that no paired device measures."""
    have = set(paired)
    wanted = plan.measured or tuple(plan.rules.kinds)
    return sorted(k for k in set(wanted) if k not in have)


def unmeasured_faults(plan: Plan, paired: Iterable[MeasurementKind]) -> list[str]:
    """The status fault for a plan the kit cannot serve, or none.

    A fault when no paired device measures any kind the plan judges, or a kind the plan explicitly schedules
    (`Plan.measured`) has no device. Not for a judged kind merely left unpaired beside others that are
    measured (a COPD kit without a thermometer: the patient's own is often used unpaired).
    """
    have = set(paired)
    missing = unmeasured_kinds(plan, have)
    if not missing:
        return []
    named = ", ".join(missing)
    which = f"plan v{plan.version}" if plan.plan_hash else f"standard profile {plan.id}"
    if plan.measured:
        return [f"{which} schedules {named} but no paired device measures it: pair one, or the patient is never "
                "judged or chased for it"]
    if not have & plan.rules.kinds:
        return [f"{which} judges {named} but no paired device measures any of them: every reading is unassessed "
                "and none is ever overdue; pair the devices the plan needs or change the plan"]
    return []
