"""Reading a gateway's baseline proposal (retained on `up/proposal`) as the start of an order."""

from __future__ import annotations

import asyncio

import aiomqtt
from pydantic import ValidationError

from central.errors import CentralError
from central.plans.drafting import component_name, number
from central.plans.shipped import shipped_profile
from protocol import BaselineProposal, BrokerSettings, Topics, make_client, subscribe
from zoning import Profile

_SAY = {"<=": "at or below", ">=": "at or above"}
_DEVICE = {"spo2": "oximeter", "blood_pressure": "blood pressure monitor", "body_weight": "scale",
           "body_temperature": "thermometer", "glucose": "glucose meter"}


async def fetch_proposal(broker: BrokerSettings, tenant: str, gateway: str, *, wait_s: float = 5.0
                         ) -> BaselineProposal | None:
    """The latest proposal the gateway sent, or None when it has sent none (it is retained)."""
    try:
        async with make_client(broker, f"dho-central-proposal-{gateway}") as client:
            await subscribe(client, Topics(tenant, gateway).proposal)
            try:
                async with asyncio.timeout(wait_s):
                    async for message in client.messages:
                        payload = bytes(message.payload)  # type: ignore[arg-type,unused-ignore]
                        return BaselineProposal.model_validate_json(payload)
            except TimeoutError:
                return None
    except aiomqtt.MqttError as exc:
        raise CentralError(f"broker {broker.host}:{broker.port}: {exc}") from None
    except ValidationError as exc:
        raise CentralError(f"the proposal on the broker is not a BaselineProposal: {exc.errors()[0]['msg']}") from None
    return None


def _rule_for(profile: Profile, kind: str, component: str, zone: str, op: str) -> str | None:
    """The standard rule an order would change to adopt this bound (same parameter, zone and direction)."""
    low = op in ("<", "<=")
    for rule in profile.rules:
        if (rule.kind, rule.component, rule.zone) == (kind, component, zone) and (rule.op in ("<", "<=")) == low:
            return rule.id
    return None


def describe_proposal(proposal: BaselineProposal) -> list[str]:
    """Plain language, with the `draft --set` each bound would take."""
    profile = shipped_profile(proposal.profile)
    first, last = proposal.period
    lines = [f"baseline {first} to {last}, against {proposal.profile} v{proposal.profile_version}"
             + (f" (plan v{proposal.plan_version} in force)" if proposal.plan_version else "")]
    for c in proposal.components:
        name = component_name(c.component)
        spread = f", spread {number(c.iqr[0], c.component)} to {number(c.iqr[1], c.component)}" if c.iqr else ""
        device = _DEVICE.get(c.type, c.type)
        lines.append(f"{name} ({device}): median {number(c.median, c.component)}{spread}, {c.days} days, "
                     f"{c.readings} readings")
        for b in c.proposal:
            standard = f"standard {number(b.standard_limit, c.component)}" if b.standard_limit is not None else \
                "no standard bound"
            clamped = ", clamped to the standard red" if b.clamped else ""
            rule = _rule_for(profile, c.type, c.component, b.zone, b.op)
            order = f"  ->  --set {rule}={b.limit.normalize():f} \"ORDER\"" if rule else ""
            lines.append(f"  {b.zone} {_SAY[b.op]} {number(b.limit, c.component)} ({standard}{clamped}){order}")
    lines += [f"not enough data: {why}" for why in proposal.insufficient]
    return lines
