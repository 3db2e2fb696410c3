"""Numbers on the wire keep the device's decimal resolution, and the receiver reads them back exactly.

FHIR's valueQuantity keeps the precision it is given (83.800 kg is not 83.8 kg, 128 mmHg is not 128.0),
and 0.005 kg steps are not binary fractions: a JSON number written from a float would be both wrong.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from central.ingest.worker import Incoming, changes_and_acks
from central.store import Database
from protocol import Ack, ReadingBatch, WireAssessment, WireDevice, WireFiredRule, WireQuantity, WireReading

NOW = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)


def reading(components: dict[str, tuple[str, str]], rule_value: str = "128") -> WireReading:
    return WireReading(
        id=uuid.uuid4(), patient="p-1", type="body_weight",
        components={name: WireQuantity(value=Decimal(v), unit=u) for name, (v, u) in components.items()},
        effective=NOW, time_source="device_synced", device=WireDevice(id="SCALE1"),
        assessment=WireAssessment(
            zone="yellow", advice=[], profile="standard-heart-failure", profile_version=1, next_due=date(2026, 11, 26),
            rules=[WireFiredRule(rule="r", component="weight", value=Decimal(rule_value), op=">=",
                                 limit=Decimal("2.0"), zone="yellow")]),
        received=NOW, clock_correction_s=0.25,
    )


def test_integers_go_out_as_integers_and_decimals_with_their_own_digits() -> None:
    text = reading({"systolic": ("128", "mm[Hg]"), "weight": ("83.805", "kg"), "step": ("83.800", "kg"),
                    "tiny": ("0.005", "kg")}).model_dump_json()
    components = text[text.index('"components"'):text.index('"effective"')]
    assert '"value":128,' in components
    assert '"value":83.805,' in components
    assert '"value":83.800,' in components  # three decimals measured: three decimals sent
    assert '"value":0.005,' in components
    assert '"limit":2.0,' in text
    assert "128.0" not in text
    json.loads(text)  # and it is plain JSON that any parser reads


@pytest.mark.parametrize("value", ["128", "83.805", "83.800", "0.005", "36.95", "7.1", "-0.5", "1E+3"])
def test_the_receiver_reads_back_the_same_decimal_with_the_same_exponent(value: str) -> None:
    sent = ReadingBatch(gateway="gw-1", batch=uuid.uuid4(), sent=NOW,
                        readings=[reading({"weight": (value, "kg")}, rule_value=value)])
    received = ReadingBatch.model_validate_json(sent.model_dump_json().encode())
    got = received.readings[0].components["weight"].value
    assert got == Decimal(value) and got.as_tuple() == Decimal(value).as_tuple()
    assert received.readings[0].assessment.rules[0].value.as_tuple() == Decimal(value).as_tuple()
    assert received == sent


def test_a_value_too_precise_for_a_float_survives() -> None:
    value = "12345678901234567890.123456789"
    sent = reading({"weight": (value, "kg")})
    assert WireReading.model_validate_json(sent.model_dump_json()).components["weight"].value == Decimal(value)


def test_malformed_json_is_a_validation_error_as_before() -> None:
    with pytest.raises(ValidationError):
        Ack.model_validate_json(b'{"v": 1, "ids": [')
    with pytest.raises(ValidationError):
        Ack.model_validate_json(b'{"v": 1, "ids": ["not-a-uuid"]}')


def test_a_non_finite_value_is_refused_not_sent_as_invalid_json() -> None:
    with pytest.raises(ValidationError):
        WireQuantity(value=Decimal("NaN"), unit="kg")


def test_the_central_service_stores_and_returns_the_exact_digits(tmp_path: Path) -> None:
    database = Database(str(tmp_path / "central.sqlite3"))
    try:
        database.provision("gw-1", tenant="t-1", patient="p-1")
        batch = ReadingBatch(gateway="gw-1", batch=uuid.uuid4(), sent=NOW,
                             readings=[reading({"weight": ("83.800", "kg"), "systolic": ("128", "mm[Hg]")})])
        incoming = Incoming("dho/v1/t-1/gw-1/up/readings", batch.model_dump_json().encode(), mid=1, qos=1)
        changes, _acks = changes_and_acks([incoming], database.registered(["gw-1"]), now=NOW)
        database.commit(changes)
        (body,) = database.reading_bodies()
        got = WireReading.model_validate_json(body)
    finally:
        database.close()
    assert got.components["weight"].value.as_tuple() == Decimal("83.800").as_tuple()
    assert got.components["systolic"].value.as_tuple() == Decimal("128").as_tuple()
