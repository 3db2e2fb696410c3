"""What the patient is judged by: the shipped standard profiles (pinned by hash), the signed plan in force
(verified, kept sealed), and the baseline proposal sent up for the clinician."""

from __future__ import annotations

from gateway.plans.coverage import unmeasured_faults, unmeasured_kinds
from gateway.plans.keeper import PLAN_DOCUMENT, TRUST_STORE_DOCUMENT, PlanKeeper, check_provisioned_trust
from gateway.plans.proposal import ProposalWatch, baseline_document
from gateway.plans.standard import (
    ENVELOPE_PIN,
    PINNED,
    check_envelope,
    load_advice,
    load_profile,
    read_shipped_profile,
    shipped_profiles,
)
from gateway.plans.verify import Accepted, Binding, InForce, PlanRejected, check_plan, verify_config

__all__ = [
    "ENVELOPE_PIN",
    "PINNED",
    "PLAN_DOCUMENT",
    "TRUST_STORE_DOCUMENT",
    "Accepted",
    "Binding",
    "InForce",
    "PlanKeeper",
    "PlanRejected",
    "ProposalWatch",
    "baseline_document",
    "check_envelope",
    "check_plan",
    "check_provisioned_trust",
    "load_advice",
    "load_profile",
    "read_shipped_profile",
    "shipped_profiles",
    "unmeasured_faults",
    "unmeasured_kinds",
    "verify_config",
]
