"""Words and numbers shown to people: one line per reading, and the notice that must go with red."""

from __future__ import annotations

from drivers.measurement import Measurement, MeasurementKind
from zoning.models import Assessment, Zone

# Shown wherever red is shown (service-model.md): the follow-up service is not an emergency service.
EMERGENCY_NOTICE = {
    "nb": "Oppfølgingstjenesten er ikke en akuttjeneste. Ved akutt sykdom: ring fastlegen, "
    "legevakten (116 117) eller 113.",
    "en": "The follow-up service is not an emergency service. In an emergency call your GP, "
    "the out-of-hours service legevakt (116 117) or 113.",
}


def _plain(value: object) -> str:
    return format(value, "f") if not isinstance(value, str) else value


def describe_values(m: Measurement) -> str:
    c = m.components
    if m.kind == MeasurementKind.BLOOD_PRESSURE:
        text = f"{_plain(c['systolic'].value)}/{_plain(c['diastolic'].value)} mmHg"
        if "pulse" in c:
            text += f", pulse {_plain(c['pulse'].value)}/min"
        return text
    return ", ".join(f"{name} {_plain(q.value)} {q.unit}" for name, q in c.items())


def reading_line(m: Measurement, assessment: Assessment) -> str:
    flags = f" [{', '.join(sorted(f.value.replace('_', ' ') for f in m.flags))}]" if m.flags else ""
    return f"{m.kind.value.replace('_', ' '):<15} {describe_values(m) + flags:<48} {assessment.zone.upper():<6}"


def needs_emergency_notice(assessment: Assessment) -> bool:
    return assessment.zone == Zone.RED
