"""Device drivers: GATT bytes in, typed `Measurement`s (or a `DecodeError`) out.

Decoders are pure functions of bytes; connection handling lives apart from them.
"""
