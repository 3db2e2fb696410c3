"""The patient's questionnaire answers as a reading of their own type on the wire."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from protocol import WireAssessment, WireDevice, WireFiredRule, WireReading
from zoning import Answers, Assessment

# The answers are given on the gateway's own page: the "device" is the page, not a sensor.
PAGE_DEVICE = WireDevice(id="gateway-page", model="dho-gateway patient page")


def answers_to_wire(record_id: UUID, patient: str, answers: Answers, assessment: Assessment,
                    received: datetime) -> WireReading:
    """A questionnaire's answers and their assessment as a `questionnaire` reading on the wire; the
    gateway's page is its device and the answering time its (gateway-received) time."""
    return WireReading(
        id=record_id,
        patient=patient,
        type="questionnaire",
        components={},
        answers=dict(answers.answers),
        effective=answers.answered,
        time_source="gateway_receive",
        device=PAGE_DEVICE,
        assessment=WireAssessment(
            zone=assessment.zone.value,
            rules=[WireFiredRule(rule=f.rule, component=f.component, value=f.value, op=f.op, limit=f.limit,
                                 zone=f.zone.value) for f in assessment.fired],
            advice=list(assessment.advice_keys),
            profile=assessment.profile,
            profile_version=assessment.profile_version,
            next_due=assessment.next_due,
            notes=list(assessment.notes),  # a partly answered form: what it was judged on
        ),
        received=received,
    )
