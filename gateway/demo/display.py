"""Words and numbers shown to people: one line per reading, and its advice (with the notice red needs)."""

from __future__ import annotations

from decimal import Decimal

from drivers.measurement import Measurement, MeasurementKind
from zoning import EMERGENCY, AdviceBook, Assessment, Language, Zone


def _plain(value: object) -> str:
    # 83.800 kg (0.005 kg steps) is shown as 83.8; the stored value keeps the device's resolution.
    return format(value.normalize(), "f") if isinstance(value, Decimal) else str(value)


def describe_values(m: Measurement) -> str:
    c = m.components
    if m.kind == MeasurementKind.BLOOD_PRESSURE:
        text = f"{_plain(c['systolic'].value)}/{_plain(c['diastolic'].value)} mmHg"
        if "pulse" in c:
            text += f", pulse {_plain(c['pulse'].value)}/min"
        return text
    return ", ".join(f"{name} {_plain(q.value)} {q.unit}" for name, q in c.items())


def reading_line(m: Measurement, assessment: Assessment) -> str:
    """One fixed-width line: the kind, the values with their units and flags, and the zone in capitals."""
    flags = f" [{', '.join(sorted(f.value.replace('_', ' ') for f in m.flags))}]" if m.flags else ""
    return f"{m.kind.value.replace('_', ' '):<15} {describe_values(m) + flags:<48} {assessment.zone.upper():<6}"


def advice_lines(assessment: Assessment, advice: AdviceBook, language: Language) -> list[str]:
    """Every advice text of the assessment, in order. On red the emergency notice is always among them:
    the engine adds its key, and this refuses to show a red without it."""
    if assessment.zone == Zone.RED and EMERGENCY not in assessment.advice_keys:
        raise ValueError("a red assessment without the emergency notice must never be shown")
    return [advice.text(key, language) for key in assessment.advice_keys]
