"""The consumer group: stateless workers sharing upstream messages through MQTT 5 shared
subscriptions; each validates (tenancy from the registry), stores, commits, then acks."""

from __future__ import annotations

from central.ingest.validate import MAX_PAYLOAD_BYTES, decide
from central.ingest.worker import IngestWorker, subscriptions

__all__ = ["MAX_PAYLOAD_BYTES", "IngestWorker", "decide", "subscriptions"]
