"""The 14-day baseline proposal, sent up for the clinician (retained on `up/proposal`); never applied here.

Computed from the sealed history after each stored reading once the start-up period is over, and sent
only when it changed, so the broker's retained copy is always the latest one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from protocol import BaselineProposal, WireBaselineComponent, WireProposedBound
from zoning import BASELINE_DAYS, PastReading, Plan, propose_baseline


def baseline_document(history: Sequence[PastReading], plan: Plan, *, gateway: str, patient: str, today: date,
                      tz: ZoneInfo, computed: datetime) -> BaselineProposal | None:
    """The proposal as a wire document, or None before the start-up period is over or without a
    parameter that has enough days."""
    if today < plan.enrolled + timedelta(days=BASELINE_DAYS - 1):
        return None
    found = propose_baseline(history, plan.profile, today, tz)
    if not found.components:
        return None
    return BaselineProposal(
        gateway=gateway, patient=patient, computed=computed, period=found.period,
        profile=plan.profile.id, profile_version=plan.profile.version, rules_hash=plan.rules_hash,
        plan_version=plan.signed_version,
        components=[
            WireBaselineComponent(
                type=c.kind.value, component=c.component, days=c.days, readings=c.readings, median=c.median,
                iqr=c.iqr, method=c.method,
                proposal=[WireProposedBound(zone=b.zone.value, op=b.op, limit=b.limit, standard_limit=b.standard_limit,
                                            clamped=b.clamped) for b in c.proposal],
            )
            for c in found.components
        ],
        insufficient=list(found.insufficient),
    )


class ProposalWatch:
    """Remembers what was last sent so an unchanged proposal is not sent again."""

    def __init__(self, send: Callable[[bytes], None], *, gateway: str, patient: str, tz: ZoneInfo,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._send = send
        self._gateway = gateway
        self._patient = patient
        self._tz = tz
        self._now = now
        self._last: BaselineProposal | None = None

    def check(self, history: Sequence[PastReading], plan: Plan) -> bool:
        """Send the proposal if it changed; True when one was sent."""
        now = self._now()
        document = baseline_document(history, plan, gateway=self._gateway, patient=self._patient,
                                     today=now.astimezone(self._tz).date(), tz=self._tz, computed=now)
        if document is None:
            return False
        if self._last is not None and document.model_copy(update={"computed": self._last.computed}) == self._last:
            return False
        self._last = document
        self._send(document.model_dump_json().encode())
        return True
