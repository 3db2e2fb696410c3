"""MQTT sync with the central follow-up service: the outbox drains only on application-level acks."""
