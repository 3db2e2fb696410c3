"""The contract both deployables share: what a gateway and the central service say to each other.

Nothing else is shared between the box and the central side (ARCHITECTURE.md). Other packages import
these names from `protocol`, never from its modules.

- wire models of protocol v1 (docs/protocol.md): `WireReading` and its parts, `ReadingBatch`, `Ack`,
  `Refusal`, `RefusalCode`,
  `Status`, `DeviceStatus`, `Event`, `EventKind`, `BaselineProposal`, `TimeSource`, `WIRE_MODELS`,
  `PROTOCOL_VERSION`;
- topics: `Topics`, `PREFIX`, `parse_up_topic`;
- signed documents (RFC 8785 canonical JSON, Ed25519; docs/decisions/0004): `Envelope`, `ConfigMessage`,
  `TrustStore`, `TrustedKey`, `Role`, `SignedError`, `open_trust_store`, `validate`, `signers`,
  `check_two_people`, `describe`, `encode_key`, `decode_key`;
- reaching the broker (MQTT 5 over mutual TLS): `BrokerSettings`, `make_client`, `publish`, `subscribe`,
  `bounded`, `OPERATION_TIMEOUT_S`;
- waiting before trying again: `Backoff` (the one backoff of both deployables;
  docs/decisions/0006-protocol-room.md says why it lives here).
"""

from protocol.backoff import Backoff
from protocol.mqtt import OPERATION_TIMEOUT_S, BrokerSettings, PublishRefused, bounded, make_client, publish, subscribe
from protocol.signed import (
    MAX_VERSION,
    ConfigMessage,
    Envelope,
    Role,
    SignedError,
    TrustedKey,
    TrustStore,
    check_two_people,
    decode_key,
    describe,
    encode_key,
    holder_identity,
    open_trust_store,
    same_person,
    signers,
    validate,
)
from protocol.topics import PREFIX, Topics, parse_up_topic
from protocol.wire import (
    PROTOCOL_VERSION,
    WIRE_MODELS,
    Ack,
    BaselineProposal,
    DeviceStatus,
    Event,
    EventKind,
    ReadingBatch,
    Refusal,
    RefusalCode,
    Status,
    TimeSource,
    WireAssessment,
    WireBaselineComponent,
    WireDevice,
    WireFiredRule,
    WireProposedBound,
    WireQuantity,
    WireReading,
)

__all__ = [
    "MAX_VERSION",
    "OPERATION_TIMEOUT_S",
    "PREFIX",
    "PROTOCOL_VERSION",
    "WIRE_MODELS",
    "Ack",
    "Backoff",
    "BaselineProposal",
    "BrokerSettings",
    "ConfigMessage",
    "DeviceStatus",
    "Envelope",
    "Event",
    "EventKind",
    "PublishRefused",
    "ReadingBatch",
    "Refusal",
    "RefusalCode",
    "Role",
    "SignedError",
    "Status",
    "TimeSource",
    "Topics",
    "TrustStore",
    "TrustedKey",
    "WireAssessment",
    "WireBaselineComponent",
    "WireDevice",
    "WireFiredRule",
    "WireProposedBound",
    "WireQuantity",
    "WireReading",
    "bounded",
    "check_two_people",
    "decode_key",
    "describe",
    "encode_key",
    "holder_identity",
    "make_client",
    "open_trust_store",
    "parse_up_topic",
    "publish",
    "same_person",
    "signers",
    "subscribe",
    "validate",
]
